# shellcheck shell=sh disable=SC3043 # busybox ash has local
# Cairn's metadata: one HTTP client for the network providers, in busybox sh. Plain HTTP
# is written and read by hand over `nc` (busybox wget can neither PUT, as IMDSv2 needs,
# nor choose its source port, as Scaleway needs, nor say the status code); HTTPS (Equinix
# Metal only) goes through busybox wget. Every exchange is bounded in time and size.
#
# http METHOD URL [HEADER...]: one exchange. The body is in $HTTP_OUT, the response head
# in $HTTP_OUT.head; HTTP_STATUS is the status code, 000 when nothing answered. Returns 0
# for 200 only. $HTTP_DATA is the request body of a POST or PUT; $HTTP_PORT, when set, is
# the local port to send from. A host:port that did not answer once is not tried again
# (HTTP_DEAD), so a machine without a metadata service waits for it once, not per request.

HTTP_TIMEOUT=${HTTP_TIMEOUT:-2} # seconds for one exchange, connect included
HTTP_MAX=1048576                 # bytes of response: more is refused, not cut
HTTP_DEAD=

http() {
	local method="$1" url="$2" rest hostport host port path line
	shift 2
	HTTP_STATUS=000
	: >"$HTTP_OUT"
	: >"$HTTP_OUT.head"
	case $url in
	https://*)
		http_tls "$method" "$url" "$@"
		return
		;;
	http://*) rest=${url#http://} ;;
	*) return 1 ;;
	esac
	hostport=${rest%%/*}
	path=/${rest#*/}
	[ "$rest" = "$hostport" ] && path=/
	host=${hostport%:*}
	port=80
	[ "$host" != "$hostport" ] && port=${hostport##*:}
	case " $HTTP_DEAD " in *" $host:$port "*) return 1 ;; esac
	{
		printf '%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: cairn-metadata\r\n' "$method" "$path" "$hostport"
		for line; do printf '%s\r\n' "$line"; done
		case $method in POST | PUT) printf 'Content-Length: %s\r\n' "${#HTTP_DATA}" ;; esac
		printf '\r\n'
		case $method in POST | PUT) printf '%s' "$HTTP_DATA" ;; esac
	} | timeout "$HTTP_TIMEOUT" nc -w "$HTTP_TIMEOUT" ${HTTP_PORT:+-p "$HTTP_PORT"} "$host" "$port" 2>/dev/null |
		head -c $((HTTP_MAX + 65536)) >"$HTTP_OUT.raw"
	if ! http_parse "$HTTP_OUT.raw"; then
		[ -s "$HTTP_OUT.raw" ] || HTTP_DEAD="$HTTP_DEAD $host:$port"
		rm -f "$HTTP_OUT.raw"
		return 1
	fi
	rm -f "$HTTP_OUT.raw"
	[ "$HTTP_STATUS" = 200 ]
}

# http_parse RAW: split a response into $HTTP_OUT.head and $HTTP_OUT, set HTTP_STATUS.
# Fails (HTTP_STATUS 000) for anything but a whole HTTP/1.x response: no status line, no
# end of the head, a body shorter or longer than its Content-Length, or too big. One awk
# reads the head (processes are dear in a VM without acceleration).
http_parse() {
	local raw="$1" head status length expected size
	# shellcheck disable=SC2016 # awk's own $0 and $2
	head=$(awk -v out="$HTTP_OUT.head" '
		NR == 1 { if ($0 !~ /^HTTP\/1\.[01] [0-9][0-9][0-9]/) exit; status = substr($0, 10, 3) }
		{ n += length($0) + 1; line = $0; sub(/\r$/, "", line); print line > out }
		tolower(line) ~ /^content-length:/ { expected = line; sub(/^[^:]*:[ \t]*/, "", expected) }
		line == "" && NR > 1 { print status, n, (expected == "" ? "-" : expected); exit }
	' "$1")
	# shellcheck disable=SC2086 # three words on purpose
	set -- $head
	[ $# = 3 ] || return 1
	status=$1 length=$2 expected=$3
	tail -c +$((length + 1)) "$raw" >"$HTTP_OUT"
	size=$(wc -c <"$HTTP_OUT")
	[ "$size" -le "$HTTP_MAX" ] || return 1
	[ "$expected" = - ] || [ "$expected" = "$size" ] || return 1
	HTTP_STATUS=$status
}

# http_header NAME: the value of response header NAME (lower case) of the last exchange.
http_header() {
	awk -v name="$1" 'NR > 1 { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == name) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v); print v; exit } }' "$HTTP_OUT.head"
}

# http_tls METHOD URL [HEADER...]: HTTPS through busybox wget (GET only). busybox's TLS
# does not check the server's certificate: docs/metadata.md says so.
http_tls() {
	local url="$2" n
	shift 2
	n=$#
	while [ "$n" -gt 0 ]; do
		set -- "$@" --header "$1"
		shift
		n=$((n - 1))
	done
	if timeout $((HTTP_TIMEOUT + 1)) wget -q -O "$HTTP_OUT" "$@" "$url" 2>"$HTTP_OUT.head"; then
		HTTP_STATUS=200
		: >"$HTTP_OUT.head"
		[ "$(wc -c <"$HTTP_OUT")" -le "$HTTP_MAX" ]
		return
	fi
	HTTP_STATUS=$(sed -n 's/.*HTTP\/1\.[01] \([0-9][0-9][0-9]\).*/\1/p' "$HTTP_OUT.head" | head -n 1)
	HTTP_STATUS=${HTTP_STATUS:-000}
	return 1
}
