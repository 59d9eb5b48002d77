# devnames.awk: the device nodes that load a module when they are opened, read from
# modules.alias (kmod's `static-nodes`, which Debian's kernels expect udev to run). A
# module with a `devname:NAME` alias and a `char-major-M-N` or `block-major-M-N` alias
# (loop: loop-control, dm_mod: mapper/control, btrfs: btrfs-control) gets the line
#   NAME TYPE MAJOR MINOR        (TYPE c or b)
# Opening /dev/NAME then makes the kernel ask modprobe for the module.
$1 == "alias" && $2 ~ /^devname:/ { name[$3] = substr($2, 9) }
$1 == "alias" && $2 ~ /^(char|block)-major-[0-9]+-[0-9]+$/ {
	split($2, part, "-")
	node[$3] = (part[1] == "char" ? "c" : "b") " " part[3] " " part[4]
}
END {
	for (module in name)
		if (module in node && name[module] !~ /(^|\/)\.\.?(\/|$)/)
			print name[module], node[module]
}
