# log.awk: the writer of one container's log (busybox awk, run by lib.sh: log_writer).
#
#   LC_ALL=C awk -v file=/var/log/NAME.log -v size=BYTES -v files=N -f log.awk
#
# Reads the container's output (stdout and stderr, through a pipe) line by line and
# appends each line to FILE at once (fflush), so that `service logs -f` sees it. A line
# that would take FILE past SIZE bytes first moves FILE to FILE.0, FILE.0 to FILE.1, ...
# and drops FILE.(N-1): LinuxKit's logwrite names. So one log never holds more than
# (N + 1) * SIZE bytes. A line longer than SIZE is cut to SIZE bytes (newline included).
# LC_ALL=C makes length() count bytes.
BEGIN {
	FS = "\n" # one field: no splitting work per line
	if (size < 2)
		size = 2
	# A log that is there already (a service that ran before) is continued.
	used = 0
	while ((getline line < file) > 0)
		used += length(line) + 1
	close(file)
}

{
	line = $0
	if (length(line) >= size)
		line = substr(line, 1, size - 1)
	if (used > 0 && used + length(line) + 1 > size)
		rotate()
	print line >> file
	fflush(file)
	used += length(line) + 1
}

# rotate: FILE becomes FILE.0 and every FILE.i FILE.(i+1); the oldest is overwritten. One
# shell for all the renames: a rotation happens once per SIZE bytes, not per line.
function rotate(   i, name, command) {
	close(file)
	name = quote(file)
	command = ""
	for (i = files - 1; i > 0; i--)
		command = command "mv -f " name "." (i - 1) " " name "." i " 2>/dev/null; "
	if (files > 0)
		command = command "mv -f " name " " name ".0"
	else
		command = "rm -f " name
	system(command)
	used = 0
}

# quote S: S as one word for sh.
function quote(s) {
	gsub(/'/, "'\\''", s)
	return "'" s "'"
}
