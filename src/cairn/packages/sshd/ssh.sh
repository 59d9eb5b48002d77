#!/bin/sh
# Make the host key on first start (ed25519: instant, even under emulation), then run
# sshd in the foreground, logging to stderr.
key=/etc/ssh/ssh_host_ed25519_key
if [ ! -s "$key" ]; then
	ssh-keygen -q -t ed25519 -N '' -f "$key" || exit 1
fi
exec /usr/sbin/sshd -D -e "$@"
