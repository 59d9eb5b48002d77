#!/bin/sh
# A getty on every console= of the kernel command line (or /dev/console when there is
# none), each restarted when its session ends. INSECURE=true: a root shell, no login.
consoles=
read -r cmdline </proc/cmdline
for word in $cmdline; do
	case $word in
	console=*)
		name=${word#console=}
		name=${name%%,*}
		case " $consoles " in *" $name "*) ;; *) consoles="$consoles $name" ;; esac
		;;
	esac
done
[ -n "$consoles" ] || consoles=console

set -- # getty's options
[ "$INSECURE" = true ] && set -- -n -l /usr/bin/autologin

started=
for name in $consoles; do
	if [ ! -c "/dev/$name" ]; then
		echo "getty: no device /dev/$name in the container" >&2
		continue
	fi
	# A console of another architecture (ttyAMA0 on a PC, ttyS0 on arm64's virt machine:
	# the examples name both) has a node here but no driver: opening it fails. Opened in a
	# subshell, which cannot make it its controlling terminal.
	if ! (: <"/dev/$name") 2>/dev/null; then
		echo "getty: no console /dev/$name on this machine" >&2
		continue
	fi
	(
		while :; do
			setsid getty "$@" 0 "$name" linux
			sleep 1
		done
	) &
	started=1
done
[ -n "$started" ] || exit 1
wait
