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
	# The bound of each log (log_writer): LinuxKit's logwrite defaults, or the kernel
	# command line's cairn.log_size=BYTES (K and M suffixes too) and cairn.log_files=N.
	LOG_SIZE=1048576
	LOG_FILES=10
	value cairn.log_size && bytes "$VALUE" && [ "$BYTES" -ge 1024 ] && LOG_SIZE=$BYTES
	value cairn.log_files && bytes "$VALUE" && LOG_FILES=$BYTES
}

# value NAME: VALUE = the value of NAME=VALUE on the kernel command line (the last one);
# false when it has none.
value() {
	case " $CMDLINE " in
	*" $1="*) ;;
	*) return 1 ;;
	esac
	VALUE=" $CMDLINE "
	VALUE=${VALUE##*" $1="}
	VALUE=${VALUE%% *}
}

# bytes VALUE: BYTES = VALUE (up to 12 digits, with an optional K or M suffix) in bytes;
# false if it is not such a number.
bytes() {
	BYTES=${1%[KM]}
	case $BYTES in '' | *[!0-9]* | ?????????????*) return 1 ;; esac
	BYTES=${BYTES#"${BYTES%%[!0]*}"} # no leading zeros: $((010)) is octal
	case $1 in
	*K) BYTES=$((${BYTES:-0} * 1024)) ;;
	*M) BYTES=$((${BYTES:-0} * 1048576)) ;;
	*) BYTES=${BYTES:-0} ;;
	esac
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

# --- logs ------------------------------------------------------------------------------

# log_writer FILE: copy standard input to the log FILE, bounded: at most LOG_SIZE bytes a
# file, with LOG_FILES older files FILE.0 (newest) ... (log.awk), each line written as it
# comes. It runs until every writer of its input has closed it, and ignores SIGTERM, so
# that at shutdown, when init signals every process, it still writes what its container
# said last. Run it in a pipeline or in the background: it replaces the shell it runs in.
log_writer() {
	trap '' TERM
	LC_ALL=C
	export LC_ALL
	exec awk -v file="$1" -v size="$LOG_SIZE" -v files="$LOG_FILES" -f $CAIRN_LIB/log.awk
}

# --- one-shot containers (onboot, onshutdown) --------------------------------------------

# run_once KIND DIR: run the bundle DIR (e.g. /containers/onboot/000-dhcpcd) to completion
# with runc and put one summary line on the console. The log is /var/log/KIND.NAME.log,
# stdout and stderr together, through a log writer (log_writer); LinuxKit's names under
# /run/log/ point to it. Returns the container's exit status.
run_once() {
	_kind=$1
	_dir=$2
	_name=${2##*/}
	_log=/var/log/$_kind.$_name.log
	_status=$CAIRN_RUN/status
	event "$_kind-start $_name"
	now
	_t0=$NOW
	echo 1 >"$_status" # what is left if run_bundle cannot even say
	if [ -n "$CONSOLE_LOGS" ]; then
		run_bundle "$_dir" "$_name" "$_status" >/dev/console 2>&1
		_log=/dev/console
	else
		# The pipeline ends when the writer has written the last line: the log is whole.
		run_bundle "$_dir" "$_name" "$_status" 2>&1 | log_writer "$_log"
	fi
	read -r _rc <"$_status"
	_why="exit $_rc"
	[ "$_rc" = runtime.json ] && _rc=1 && _why=runtime.json
	umount "$_dir/rootfs" 2>/dev/null
	now
	secs $((NOW - _t0))
	if [ "$_rc" = 0 ]; then
		event "$_kind-end $_name 0" "$_kind $_name ok (${SECS}s)"
	else
		event "$_kind-end $_name $_rc" "$_kind $_name FAILED ($_why), see $_log"
		# The end of the log, so that the console alone tells what went wrong.
		[ -f "$_log" ] && tail -n 5 "$_log" | sed 's/^/    | /' >/dev/console
	fi
	return "$_rc"
}

# run_bundle DIR ID STATUS: apply the runtime.json of bundle DIR and run it with runc as ID,
# to completion; write its exit status (or "runtime.json" if it could not be prepared) to
# the file STATUS. Its output is the container's.
run_bundle() {
	if prepare_filesystem "$1" && bundle_for "$1" "$2"; then
		$RUNC run --bundle "$BUNDLE" "$2" </dev/null
		echo $? >"$3"
	else
		echo "cairn: the runtime.json of $1 could not be applied"
		echo runtime.json >"$3"
	fi
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
