# shellcheck shell=sh
# shellcheck disable=SC2034 # the functions hand their results back in globals (DISKS, ...)
# Shared by the disk packages (busybox sh): find disks, their partitions and what is on
# them. The disk packages (format, mount, extend, swap, losetup, dm-crypt) take this one
# file through their extra-sources, as /usr/lib/cairn/disk.sh.

# disks: DISKS = the whole disks of the machine (not partitions, loops, ram disks, CDs or
# device-mapper devices), in name order.
disks() {
	DISKS=
	for sys in /sys/block/*; do
		name=${sys##*/}
		case $name in
		loop* | ram* | sr* | fd* | zram* | dm-* | nbd* | md*) continue ;;
		esac
		[ -b "/dev/$name" ] && DISKS="$DISKS /dev/$name"
	done
}

# partitions DISK: PARTITIONS = the partitions of DISK (/dev/sda1, /dev/nvme0n1p1, ...),
# in the kernel's order; empty when it has none.
partitions() {
	PARTITIONS=
	for sys in "/sys/class/block/${1##*/}"/*/partition; do
		[ -f "$sys" ] || continue
		sys=${sys%/partition}
		PARTITIONS="$PARTITIONS /dev/${sys##*/}"
	done
}

# partition DISK N: PARTITION = the device name of partition N of DISK: sda -> sda1, but
# nvme0n1 -> nvme0n1p1 (a disk name that ends with a digit takes a "p").
partition() {
	case $1 in
	*[0-9]) PARTITION=${1}p$2 ;;
	*) PARTITION=$1$2 ;;
	esac
}

# hex OFFSET COUNT DEVICE: the COUNT bytes at OFFSET of DEVICE, as hex digits.
hex() {
	od -An -tx1 -j "$1" -N "$2" "$3" 2>/dev/null | tr -d ' \n'
}

# fs_type DEVICE: FS_TYPE = what DEVICE holds, from its signature: ext4 (any ext2/3/4),
# xfs, btrfs, swap or crypto_LUKS (blkid's names); empty for none of them.
fs_type() {
	FS_TYPE=
	if [ "$(hex 1080 2 "$1")" = 53ef ]; then
		FS_TYPE=ext4
	elif [ "$(hex 0 4 "$1")" = 58465342 ]; then # XFSB
		FS_TYPE=xfs
	elif [ "$(hex 65600 8 "$1")" = 5f42485266535f4d ]; then # _BHRfS_M
		FS_TYPE=btrfs
	elif [ "$(hex 0 6 "$1")" = 4c554b53babe ]; then # LUKS\xba\xbe
		FS_TYPE=crypto_LUKS
	elif [ "$(hex 4086 10 "$1")" = 53574150535041434532 ]; then # SWAPSPACE2, 4 KiB pages
		FS_TYPE=swap
	fi
}

# is_blank DEVICE: true when the first MiB of DEVICE is all zeros (no partition table,
# no file system: nothing to lose).
is_blank() {
	cmp -s -n 1048576 "$1" /dev/zero
}

# wait_block DEVICE: wait up to 10 s for the block device node DEVICE (a partition the
# kernel has just read from a new table).
wait_block() {
	_n=100
	until [ -b "$1" ]; do
		[ $_n -gt 0 ] || return 1
		_n=$((_n - 1))
		sleep 0.1
	done
}

# fs_label DEVICE: FS_LABEL = the label of the ext4, xfs or btrfs file system on DEVICE,
# read from its superblock (FS_TYPE from fs_type first).
fs_label() {
	case $FS_TYPE in
	ext4) set -- "$1" 1144 16 ;;   # s_volume_name
	xfs) set -- "$1" 108 12 ;;     # sb_fname
	btrfs) set -- "$1" 65835 256 ;; # label, in the superblock at 64 KiB
	*)
		FS_LABEL=
		return
		;;
	esac
	FS_LABEL=$(dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | tr -d '\000')
}


# fs_uuid DEVICE: FS_UUID = the UUID of the ext4, xfs or btrfs file system on DEVICE, as
# blkid writes it (FS_TYPE from fs_type first).
fs_uuid() {
	case $FS_TYPE in
	ext4) _hex=$(hex 1128 16 "$1") ;;   # s_uuid
	xfs) _hex=$(hex 32 16 "$1") ;;      # sb_uuid
	btrfs) _hex=$(hex 65568 16 "$1") ;; # fsid
	*)
		FS_UUID=
		return
		;;
	esac
	FS_UUID=$(echo "$_hex" | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)/\1-\2-\3-\4-/')
}

# control NAME MINOR: make /dev/NAME, a misc character device (major 10), if the machine's
# /dev lacks it, and open it once: the kernel then loads the driver behind it. Debian's
# kernel has loop (loop-control, 237) and device-mapper (mapper/control, 236) as modules,
# and nothing else would load them.
control() {
	if [ ! -c "/dev/$1" ]; then
		mkdir -p "/dev/${1%/*}"
		mknod "/dev/$1" c 10 "$2" 2>/dev/null || [ -c "/dev/$1" ] || return 1
	fi
	: <"/dev/$1"
}
