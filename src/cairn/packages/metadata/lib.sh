# shellcheck shell=sh disable=SC3043 # busybox ash has local
# Cairn's metadata (busybox sh): find user data and lay it out. Sourced by
# /usr/bin/metadata; the functions keep their variables local. cidata, local_hostname and
# write_tree work on plain files and their arguments only, so that tests run them on the
# host. TREE_JQ names tree.jq.

US=$(printf '\037') # the field separator of tree.jq's steps

say() {
	echo "metadata: $*"
}

# cidata: from `blkid` output on stdin (busybox's or util-linux's: `DEVICE: KEY="VALUE"...`),
# print DEVICE:TYPE for every iso9660 or vfat file system labelled cidata or CIDATA.
cidata() {
	local line
	while read -r line; do
		case $line in
		*' LABEL="cidata"'* | *' LABEL="CIDATA"'*) ;;
		*) continue ;;
		esac
		case $line in
		*' TYPE="iso9660"'*) echo "${line%%:*}:iso9660" ;;
		*' TYPE="vfat"'*) echo "${line%%:*}:vfat" ;;
		esac
	done
}

# cd_devices: DEVICES = DEVICE:TYPE for every block device (disk or partition, not loop
# or RAM disks) labelled cidata or CIDATA, as cloud-init's NoCloud wants, then for every
# CD drive; each device once, in that order. One blkid reads every label.
cd_devices() {
	local sys name entry dev
	DEVICES=
	set --
	for sys in /sys/class/block/*; do
		name=${sys##*/}
		case $name in
		loop* | ram* | zram*) continue ;;
		esac
		[ -b "/dev/$name" ] && set -- "$@" "/dev/$name"
	done
	if [ $# -gt 0 ]; then
		for entry in $(blkid "$@" | cidata); do
			add_device "$entry"
		done
	fi
	for dev in /dev/sr[0-9]*; do
		[ -b "$dev" ] && add_device "$dev:iso9660"
	done
}

add_device() {
	case " $DEVICES " in
	*" ${1%:*}:"*) ;;
	*) DEVICES="${DEVICES:+$DEVICES }$1" ;;
	esac
}

# read_cd DEVICE TYPE WORK: mount DEVICE (file system TYPE) read-only on WORK/mnt and
# copy its user data (the first of `user-data` and `config` that is not empty) to
# WORK/userdata and its `meta-data`, if any, to WORK/meta-data. Fails when DEVICE cannot
# be mounted or has no user data.
read_cd() {
	local found name options=ro
	# FAT: Debian's kernel defaults to iocharset=ascii, whose module a Cairn kernel may
	# leave out; utf8 is the one it keeps (pkg/kernel: nls_utf8).
	[ "$2" = vfat ] && options=ro,iocharset=utf8
	mkdir -p "$3/mnt"
	if ! mount -t "$2" -o "$options" "$1" "$3/mnt" 2>"$3/error"; then
		say "$1: not mounted: $(cat "$3/error")"
		return 1
	fi
	found=1
	for name in user-data config; do
		if [ -s "$3/mnt/$name" ]; then
			cp "$3/mnt/$name" "$3/userdata" && found=0
			break
		fi
	done
	rm -f "$3/meta-data"
	if [ "$found" = 0 ]; then
		[ -f "$3/mnt/meta-data" ] && cp "$3/mnt/meta-data" "$3/meta-data"
	else
		say "$1: no user-data or config file on it"
	fi
	umount "$3/mnt"
	return $found
}

# local_hostname META_DATA: the local-hostname of a NoCloud meta-data file (YAML: one
# `local-hostname: NAME` line, the name possibly quoted), or nothing.
local_hostname() {
	sed -n "s/^local-hostname:[[:space:]]*//p" "$1" 2>/dev/null | head -n 1 |
		sed "s/[[:space:]]*\$//; s/^\"\\(.*\\)\"\$/\\1/; s/^'\\(.*\\)'\$/\\1/"
}

# write_tree USERDATA DIR: when USERDATA is a JSON object in LinuxKit's format (tree.jq),
# make its directories and files under DIR with their permissions (directories get theirs
# last, deepest first, so that a read-only directory can still be filled). Prints what it
# did; returns 1 when an entry was left out. User data that is not JSON is not an error.
write_tree() {
	local steps status modes kind mode path data target new
	if ! steps=$(jq -r -s -f "$TREE_JQ" <"$1" 2>/dev/null); then
		say "the user data is not JSON: no files made from it"
		return 0
	fi
	status=0
	modes=
	while IFS=$US read -r kind mode path data; do
		target=$2/$path
		case $kind in
		'#')
			say "the user data is JSON but $mode: no files made from it"
			;;
		'!')
			say "left out $mode: $path"
			status=1
			;;
		d)
			if [ -d "$target" ] || mkdir -m 0700 "$target"; then
				modes="$mode$US$path
$modes"
				say "made $path/ ($mode)"
			else
				say "left out $path: cannot make the directory"
				status=1
			fi
			;;
		f)
			new=$target.metadata-new
			if [ -d "$target" ]; then
				say "left out $path: a directory has that name"
				status=1
			elif printf '%s' "$data" | base64 -d >"$new" && chmod "$mode" "$new" &&
				mv -f "$new" "$target"; then
				say "wrote $path ($mode)"
			else
				rm -f "$new"
				say "left out $path: cannot write it"
				status=1
			fi
			;;
		esac
	done <<EOF
$steps
EOF
	while IFS=$US read -r mode path; do
		[ -n "$path" ] && { chmod "$mode" "$2/$path" || status=1; }
	done <<EOF
$modes
EOF
	return $status
}
