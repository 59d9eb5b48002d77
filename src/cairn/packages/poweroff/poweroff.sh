#!/bin/sh
# poweroff.sh [SECONDS] [-f]: wait, then power the machine off. By default the machine's
# init is asked (SIGUSR2 to busybox init), so the onshutdown containers run and disks are
# unmounted; -f powers off at once, without any of that.
delay=0
force=
for arg; do
	case $arg in
	-f) force=1 ;;
	*[!0-9]* | '') echo "usage: poweroff.sh [SECONDS] [-f]" >&2; exit 2 ;;
	*) delay=$arg ;;
	esac
done
[ "$delay" -gt 0 ] && sleep "$delay"
if [ -n "$force" ]; then
	exec poweroff -f
fi
kill -USR2 1
