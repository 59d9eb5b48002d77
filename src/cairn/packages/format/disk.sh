# shellcheck shell=sh
# Shared by format and mount-disk (busybox sh): find disks and what is on them.
# pkg/format/disk.sh and pkg/mount/disk.sh are the same file (a test checks it).

# disks: DISKS = the whole disks of the machine (not partitions, loops or ram disks).
disks() {
	DISKS=
	for sys in /sys/block/*; do
		name=${sys##*/}
		case $name in
		loop* | ram* | sr* | fd* | zram* | dm-*) continue ;;
		esac
		[ -b "/dev/$name" ] && DISKS="$DISKS /dev/$name"
	done
}

# is_ext4 DEVICE: true when DEVICE holds an ext2/3/4 file system (superblock magic 0xEF53).
is_ext4() {
	[ "$(od -An -tx1 -j1080 -N2 "$1" 2>/dev/null | tr -d ' \n')" = 53ef ]
}

# is_blank DEVICE: true when the first MiB of DEVICE is all zeros (no partition table,
# no file system: nothing to lose).
is_blank() {
	cmp -s -n 1048576 "$1" /dev/zero
}
