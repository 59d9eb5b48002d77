#!/bin/sh
# swap.sh --path /var/FILE --size SIZE [--encrypt] [--condition COND]... [--debug]
# swap.sh --device DEVICE [--encrypt] [--debug]
# Swap space, at boot (an onboot container): LinuxKit's swap, its options, and a device
# as well as a file. A file (under /var, where disks are mounted) is made SIZE big (G, M,
# K or bytes) if it is not that size already; a file or device gets a swap signature if it
# has none. --encrypt maps it through dm-crypt first (plain mode,
# aes-cbc-essiv:sha256, a random 256-bit key each boot, /dev/mapper/swapfile, as
# LinuxKit's does) and writes the signature on the mapping, every boot.
# Conditions, all met or no swap: part:PATH[:true] (PATH is a mount point) and
# partsize:PATH:SIZE[:true] (the file system holding PATH is at least SIZE); one not met
# ends with success, or failure when its last field is true.
# shellcheck source=disk.sh
. /usr/lib/cairn/disk.sh

fail() {
	echo "swap: $*" >&2
	exit 1
}

path=
device=
size=
encrypt=
conditions=
while [ $# -gt 0 ]; do
	case $1 in
	--debug) set -x ;;
	--encrypt) encrypt=1 ;;
	--path | --device | --size | --condition)
		[ $# -ge 2 ] || fail "$1 needs a value"
		case $1 in
		--path) path=$2 ;;
		--device) device=$2 ;;
		--size) size=$2 ;;
		--condition) conditions="$conditions $2" ;;
		esac
		shift
		;;
	*) fail "unknown option $1" ;;
	esac
	shift
done

# bytes SIZE: BYTES = SIZE (a number with G, M or K, or bytes) in bytes.
bytes() {
	case $1 in
	'' | *[!0-9GMK]* | *[GMK]?*) fail "not a size: $1 (a number, with G, M or K)" ;;
	*G) BYTES=$((${1%G} * 1073741824)) ;;
	*M) BYTES=$((${1%M} * 1048576)) ;;
	*K) BYTES=$((${1%K} * 1024)) ;;
	*) BYTES=$1 ;;
	esac
}

# met CONDITION: true when the condition holds; a malformed one ends the container.
met() {
	IFS=: read -r kind arg1 arg2 _ <<EOF2
$1
EOF2
	case $kind in
	part) grep -q " $arg1 " /proc/mounts ;;
	partsize)
		bytes "$arg2"
		# df -P: the size of the file system holding arg1, in 1024-byte blocks
		blocks=$(df -Pk "$arg1" 2>/dev/null | awk 'NR == 2 { print $2 }')
		[ -n "$blocks" ] && [ $((blocks * 1024)) -ge "$BYTES" ]
		;;
	*) fail "unknown condition: $1 (part:PATH or partsize:PATH:SIZE)" ;;
	esac
}

if [ -n "$device" ]; then
	[ -z "$path$size" ] || fail "--device takes no --path or --size"
	[ -b "$device" ] || fail "$device is not a block device"
else
	case $path in
	/var/?*) ;;
	*) fail "--path must name a file under /var (got '${path}')" ;;
	esac
	[ -n "$size" ] || fail "--size is needed with --path"
	bytes "$size"
fi
for condition in $conditions; do
	if ! met "$condition"; then
		case $condition in
		*:true) fail "condition $condition is not met" ;;
		esac
		echo "swap: condition $condition is not met: no swap"
		exit 0
	fi
done

swap=$device
if [ -n "$path" ]; then
	swap=$path
	if [ ! -f "$path" ] || [ "$(stat -c %s "$path")" != "$BYTES" ]; then
		echo "swap: making $path, $size"
		rm -f "$path"
		mkdir -p "${path%/*}"
		# written, not sparse: swap on a file with holes is refused
		head -c "$BYTES" /dev/zero >"$path" || fail "could not write $path (is a disk mounted there?)"
		chmod 0600 "$path"
	fi
fi
if [ -n "$encrypt" ]; then
	if [ -n "$path" ]; then
		control loop-control 237 || fail "no loop devices"
		if ! loop=$(losetup -f) || ! losetup "$loop" "$path"; then
			fail "could not attach $path to a loop device"
		fi
		swap=$loop
	fi
	control mapper/control 236 || fail "no device-mapper"
	sectors=$(blockdev --getsz "$swap") || exit 1
	key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
	# the table on stdin: the key never shows in a command line
	echo "0 $sectors crypt aes-cbc-essiv:sha256 $key 0 $swap 0" |
		dmsetup --noudevsync create swapfile || fail "could not map $swap through dm-crypt"
	dmsetup --noudevsync mknodes swapfile
	swap=/dev/mapper/swapfile
fi
# A new key each boot: the mapping is new too. A file or device keeps its signature.
fs_type "$swap"
if [ -n "$encrypt" ] || [ "$FS_TYPE" != swap ]; then
	mkswap "$swap" >/dev/null || fail "mkswap $swap failed"
fi
echo "swap: on $swap"
exec swapon "$swap"
