# Cairn: LinuxKit runtime.json files as steps for lib.sh and prepare-process, one per line,
# each line "BUNDLE STEP ARGS...", fields separated by \037 (never in a path, and not shell
# whitespace, so empty fields survive `read`). Run once over every bundle's runtime.json
# at boot (busybox awk -f json.awk -f runtime.awk FILE...); a file that cannot be read
# gives the single step "invalid", so that only its container fails.
#
# Before the container is created, in this order (lib.sh: prepare_filesystem):
#   mkdir   PATH                                 (upperdir= and workdir= of an overlay)
#   mount   TYPE SOURCE DESTINATION OPTIONS PROPAGATION
#   mkdir   PATH                                 ("mkdir")
#   cgroup  PATH                                 ("cgroups", under /sys/fs/cgroup)
#   hook                                         ("interfaces" or "bindNS" are not empty)
# From the createRuntime hook, once the container's pid is known (prepare-process):
#   iface   NAME ADD PEER CREATEINROOT           ("interfaces")
#   bindns  NAMESPACE PATH                       ("bindNS")
# And one last line for the whole plan, for rc.init to load their drivers early:
#   modules ALIAS...                             (fs-TYPE of every mount type, rtnl-link-TYPE
#                                                 of every interface type; space separated)
#
# Relative destinations and mkdir paths are relative to the bundle's rootfs, as in LinuxKit.
# "namespace" (containerd's) is ignored.

BEGIN {
	SEP = sprintf("%c", 31)
	split("shared rshared slave rslave private rprivate unbindable runbindable", words, " ")
	for (i in words)
		PROPAGATION[words[i]] = 1
}

{
	bundle = FILENAME
	sub(/\/runtime\.json$/, "", bundle)
	json_tokens($0)
	out = ""
	if (json_parse() && J[""] == "object")
		plan()
	else
		out = bundle SEP "invalid\n"
	printf "%s", out
}

END {
	aliases = ""
	for (a in MODULES)
		aliases = aliases " " a
	if (aliases != "")
		print "modules" SEP substr(aliases, 2)
}

# step FIELDS: one line of the plan; FIELDS are the step and its arguments, joined by SEP.
function step(fields) {
	out = out bundle SEP fields "\n"
}

function plan(    i, n, p, key) {
	n = JN[SUBSEP "mounts"]
	for (i = 0; i < n; i++)
		mount(SUBSEP "mounts" SUBSEP i)
	n = JN[SUBSEP "mkdir"]
	for (i = 0; i < n; i++)
		step("mkdir" SEP in_rootfs(json_str(SUBSEP "mkdir" SUBSEP i)))
	n = JN[SUBSEP "cgroups"]
	for (i = 0; i < n; i++)
		step("cgroup" SEP json_str(SUBSEP "cgroups" SUBSEP i))
	hook = JN[SUBSEP "interfaces"] > 0
	n = JN[SUBSEP "bindNS"]
	for (i = 1; i <= n; i++)
		if (json_str(SUBSEP "bindNS" SUBSEP JK[SUBSEP "bindNS", i]) != "")
			hook = 1
	if (hook)
		step("hook")
	n = JN[SUBSEP "interfaces"]
	for (i = 0; i < n; i++) {
		p = SUBSEP "interfaces" SUBSEP i
		key = json_str(p SUBSEP "add")
		if (json_str(p SUBSEP "peer") != "")
			key = "veth"
		if (key != "")
			MODULES["rtnl-link-" key] = 1
		step("iface" SEP json_str(p SUBSEP "name") SEP json_str(p SUBSEP "add") SEP \
			json_str(p SUBSEP "peer") SEP (J[p SUBSEP "createInRoot"] == "true" ? "true" : "false"))
	}
	n = JN[SUBSEP "bindNS"]
	for (i = 1; i <= n; i++) {
		key = JK[SUBSEP "bindNS", i]
		p = json_str(SUBSEP "bindNS" SUBSEP key)
		if (p != "")
			step("bindns" SEP key SEP p)
	}
}

# One mount: a "bind" type is spelled as an option for mount(8); a missing source is the
# type (LinuxKit's rule too: {type: tmpfs} mounts "tmpfs"); propagation flags go apart,
# busybox mount wants them on their own.
function mount(p,    type, bind, source, i, n, o, options, flags, has_bind) {
	type = json_str(p SUBSEP "type")
	bind = type == "bind" || type == "rbind"
	source = json_str(p SUBSEP "source")
	if (source == "" && !bind)
		source = type
	options = flags = ""
	has_bind = 0
	n = JN[p SUBSEP "options"]
	for (i = 0; i < n; i++) {
		o = json_str(p SUBSEP "options" SUBSEP i)
		if (o ~ /^(upperdir|workdir)=/)
			step("mkdir" SEP substr(o, index(o, "=") + 1))
		if (o in PROPAGATION)
			flags = flags "," o
		else
			options = options "," o
		if (o == "bind" || o == "rbind")
			has_bind = 1
	}
	if (bind && !has_bind)
		options = "," type options
	if (!bind && type != "")
		MODULES["fs-" type] = 1
	step("mount" SEP (bind ? "" : type) SEP source SEP \
		in_rootfs(json_str(p SUBSEP "destination")) SEP substr(options, 2) SEP substr(flags, 2))
}

function in_rootfs(path) {
	return path ~ /^\// ? path : bundle "/rootfs/" path
}
