# shellcheck shell=sh
# Cairn guest library, sourced by rc.init, rc.shutdown, service and the runc hooks.
# POSIX sh for busybox ash. Functions hand results back in global variables (NOW, SECS,
# BUNDLE, ...) rather than on stdout: $(...) forks, and the boot path avoids needless forks.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

CAIRN_LIB=/usr/lib/cairn
CAIRN_RUN=/run/cairn                  # timeline, service state, generated bundles
TIMELINE=$CAIRN_RUN/timeline
# shellcheck disable=SC3003 # busybox ash has $'...'; $(printf) would fork in every script
SEP=$'\037'                           # field separator of the plan (runtime.awk)

# --- time and events -------------------------------------------------------------------

# now: NOW = centiseconds since boot (/proc/uptime has two decimals).
now() {
	read -r _up _ </proc/uptime
	NOW=$((${_up%.*} * 100 + 1${_up#*.} - 100))
}

# secs CS: SECS = CS centiseconds written as seconds, e.g. 2.07.
secs() {
	_cs=$(($1 % 100))
	[ $_cs -lt 10 ] && _cs=0$_cs
	SECS=$(($1 / 100)).$_cs
}

# event WHAT [MESSAGE...]: a machine-readable line "cairn-event UPTIME WHAT" on the
# console, from which `cairn run` draws the boot timeline (WHAT is EVENT [NAME [STATUS]],
# e.g. "onboot-end 000-dhcpcd 0"), and MESSAGE, if any, as a line for people on the
# console and in /run/cairn/timeline ("2.07 onboot 000-dhcpcd ok (0.41s)"). One write
# each, however many lines.
event() {
	read -r _up _ </proc/uptime
	_what=$1
	shift
	if [ $# = 0 ]; then
		echo "cairn-event $_up $_what" >/dev/console
		return
	fi
	printf 'cairn-event %s %s\n[%8s] cairn: %s\n' "$_up" "$_what" "$_up" "$*" >/dev/console
	echo "$_up $*" >>$TIMELINE 2>/dev/null
}

# note MESSAGE...: a step worth a line in the timeline; on the console only with
# cairn.debug=1. debug MESSAGE...: on the console with cairn.debug=1 only.
note() {
	read -r _up _ </proc/uptime
	echo "$_up $*" >>$TIMELINE 2>/dev/null
	[ -z "$DEBUG" ] || printf '[%8s] cairn: %s\n' "$_up" "$*" >/dev/console
}

debug() {
	[ -n "$DEBUG" ] || return 0
	read -r _up _ </proc/uptime
	printf '[%8s] cairn: %s\n' "$_up" "$*" >/dev/console
}

# flag NAME: true when the kernel command line has NAME=1 (or a bare NAME).
flag() {
	case " $CMDLINE " in
	*" $1=1 "* | *" $1 "*) return 0 ;;
	esac
	return 1
}

# Knobs, read once per script. /proc is not mounted yet when rc.init on a disk root
# sources this file; rc.init calls read_flags again once it is.
read_flags() {
	DEBUG=
	CONSOLE_LOGS=
	RUNC=runc
	CMDLINE=
	[ -r /proc/cmdline ] && read -r CMDLINE </proc/cmdline
	if flag cairn.debug || flag linuxkit.runc_debug; then
		DEBUG=1
		RUNC="runc --debug"
	fi
	# LinuxKit's knob: container output on the console instead of in /var/log.
	flag linuxkit.runc_console && CONSOLE_LOGS=1
}
read_flags

# --- runtime.json ------------------------------------------------------------------------

PLAN=$CAIRN_RUN/plan

# make_plan: read the runtime.json of every bundle into $PLAN (see runtime.awk), once per
# boot and with one awk for all of them. A file that cannot be read gets an "invalid"
# step, so that only its container fails.
make_plan() {
	[ -f $PLAN ] && return 0
	set -- /containers/*/*/runtime.json
	if [ -f "$1" ]; then
		awk -f $CAIRN_LIB/json.awk -f $CAIRN_LIB/runtime.awk "$@" >$PLAN.new
	else
		: >$PLAN.new
	fi
	mv $PLAN.new $PLAN
}

# prepare_filesystem BUNDLE: the runtime.json steps that come before the container is
# created: "mounts" (in the root mount namespace), then "mkdir", then "cgroups". Sets
# NEED_HOOK when "interfaces" or "bindNS" need the createRuntime hook. Errors go to stderr.
prepare_filesystem() {
	NEED_HOOK=
	make_plan
	while IFS=$SEP read -r _bundle _step _a _b _c _d _e <&3; do
		[ "$_bundle" = "$1" ] || continue
		case $_step in
		mount) mount_step "$_a" "$_b" "$_c" "$_d" "$_e" || return 1 ;;
		mkdir) mkdir -p "$_a" || return 1 ;;
		cgroup) mkdir -p "/sys/fs/cgroup/$_a" || return 1 ;;
		hook) NEED_HOOK=1 ;;
		invalid)
			echo "$1/runtime.json is not valid JSON" >&2
			return 1
			;;
		esac
	done 3<$PLAN
}

# mount_step TYPE SOURCE DESTINATION OPTIONS PROPAGATION: one runtime.json mount. The
# destination is created if missing. busybox mount wants propagation flags (private,
# rshared, ...) on their own, as --make-*; and the kernel ignores "ro" on a new bind mount,
# so a read-only bind is remounted read-only (LinuxKit leaves it writable).
mount_step() {
	[ -e "$3" ] || mkdir -p "$3" || return 1
	if [ -n "$1$2$4" ]; then
		debug "mount ${1:+-t $1 }${4:+-o $4 }$2 $3"
		# A lone mount point would be looked up in /etc/fstab: always give a source.
		mount ${1:+-t "$1"} ${4:+-o "$4"} "${2:-none}" "$3" || return 1
		case ,$4, in
		*,ro,*)
			case ,$4, in
			*,bind,* | *,rbind,*) mount -o remount,bind,ro "$3" || return 1 ;;
			esac
			;;
		esac
	fi
	_rest=$5,
	while [ -n "$_rest" ]; do
		_p=${_rest%%,*}
		_rest=${_rest#*,}
		[ -z "$_p" ] || mount --make-"$_p" "$3" || return 1
	done
}

# bundle_for DIR ID [READY]: BUNDLE = the directory to give `runc --bundle`. That is DIR
# itself, unless prepare_filesystem set NEED_HOOK or READY is given: then a copy of
# config.json in /run/cairn/bundles/ID/ (runc reads config.json from the bundle directory
# only, and the image is read-only) with an absolute root.path and runc hooks added: the
# createRuntime hook prepare-process for NEED_HOOK, the poststart hook READY.
bundle_for() {
	BUNDLE=$1
	[ -n "$NEED_HOOK$3" ] || return 0
	BUNDLE=$CAIRN_RUN/bundles/$2
	mkdir -p "$BUNDLE" || return 1
	awk -v dir="$1" -v createRuntime="${NEED_HOOK:+$CAIRN_LIB/prepare-process $1}" \
		-v poststart="$3" -f $CAIRN_LIB/json.awk -f $CAIRN_LIB/bundle.awk \
		"$1/config.json" >"$BUNDLE/config.json"
}

# --- one-shot containers (onboot, onshutdown) --------------------------------------------

# run_once KIND DIR: run the bundle DIR (e.g. /containers/onboot/000-dhcpcd) to completion
# with runc and put one summary line on the console. The log is /var/log/KIND.NAME.log,
# stdout and stderr together; LinuxKit's names under /run/log/ point to it. Returns the
# container's exit status.
run_once() {
	_kind=$1
	_dir=$2
	_name=${2##*/}
	_log=/var/log/$_kind.$_name.log
	[ -n "$CONSOLE_LOGS" ] && _log=/dev/console
	event "$_kind-start $_name"
	now
	_t0=$NOW
	if prepare_filesystem "$_dir" >>"$_log" 2>&1 && bundle_for "$_dir" "$_name" >>"$_log" 2>&1; then
		$RUNC run --bundle "$BUNDLE" "$_name" </dev/null >>"$_log" 2>&1
		_rc=$?
		_why="exit $_rc"
	else
		echo "cairn: the runtime.json of $_dir could not be applied" >>"$_log"
		_rc=1
		_why=runtime.json
	fi
	umount "$_dir/rootfs" 2>/dev/null
	now
	secs $((NOW - _t0))
	if [ $_rc = 0 ]; then
		event "$_kind-end $_name 0" "$_kind $_name ok (${SECS}s)"
	else
		event "$_kind-end $_name $_rc" "$_kind $_name FAILED ($_why), see $_log"
		# The end of the log, so that the console alone tells what went wrong.
		[ -f "$_log" ] && tail -n 5 "$_log" | sed 's/^/    | /' >/dev/console
	fi
	return $_rc
}

# run_all KIND: run_once every bundle in /containers/KIND, in sorted order, one at a time.
# A failure is reported and the next one runs anyway.
run_all() {
	_section=$1
	set -- "/containers/$1"/*
	[ -d "$1" ] || return 0
	# LinuxKit's log names (/var/log/onboot -> /run/log/onboot/onboot.NAME{,.out}.log, and
	# the same with "shutdown") lead to Cairn's single log per container.
	_compat=$_section
	[ "$_section" = onshutdown ] && _compat=shutdown
	[ -z "$CONSOLE_LOGS" ] && mkdir -p "/run/log/$_compat" &&
		{ [ -e "/var/log/$_compat" ] || ln -s "/run/log/$_compat" "/var/log/$_compat"; }
	for _b; do
		[ -d "$_b" ] || continue
		_to=/var/log/$_section.${_b##*/}.log
		if [ -z "$CONSOLE_LOGS" ]; then
			ln -sf "$_to" "/run/log/$_compat/$_compat.${_b##*/}.log"
			ln -sf "$_to" "/run/log/$_compat/$_compat.${_b##*/}.out.log"
		fi
		run_once "$_section" "$_b"
	done
}
