# Cairn: a small JSON reader for busybox awk, shared by runtime.awk and bundle.awk.
#
# Good for what Go's encoding/json writes (runtime.json, config.json: objects, arrays,
# strings with \" \\ \/ \b \f \n \r \t \uXXXX escapes, numbers, true, false, null), not a
# validator: it accepts some malformed documents, and reports the rest as errors.
#
# Read a whole document as one record (RS is a byte that never occurs in JSON text), then:
#   json_tokens(text)   T[1..NT]: { } [ ] : , and scalars; strings keep their quotes
#   json_parse()        J[path] = type (object array string number true false null),
#                       JV[path] = string value (unescaped) or the scalar as written,
#                       JN[path] = members of an object or array, JK[path, i] = i-th key;
#                       paths are keys and indexes joined by SUBSEP ("" is the document).
#                       Returns 1, or 0 for a document it cannot read.

BEGIN { RS = "\001" }

# json_tokens TEXT: split on the quotes (strings alternate with what is between them;
# a quote after an odd number of backslashes is inside a string), then split what is
# outside strings around the structural characters. Linear, where scanning character
# by character would be quadratic in busybox awk.
function json_tokens(text,    parts, n, i, j, s, pieces, m, k) {
	NT = 0
	n = split(text, parts, "\"")
	for (i = 1; i <= n; i = j + 1) {
		s = parts[i]
		gsub(/[][{}:,]/, " & ", s)
		m = split(s, pieces, /[ \t\r\n]+/)
		for (k = 1; k <= m; k++)
			if (pieces[k] != "")
				T[++NT] = pieces[k]
		if (i == n)
			break
		j = i + 1
		s = parts[j]
		while (match(s, /\\+$/) && RLENGTH % 2 == 1 && j < n)
			s = s "\"" parts[++j]
		T[++NT] = "\"" s "\""
	}
}

function json_parse() {
	delete J
	delete JV
	delete JN
	delete JK
	P = 1
	return json_value("") && P == NT + 1
}

function json_value(path,    t, n, key) {
	if (P > NT)
		return 0
	t = T[P++]
	if (t == "{" || t == "[") {
		J[path] = t == "{" ? "object" : "array"
		n = 0
		if (T[P] == (t == "{" ? "}" : "]")) {
			P++
			JN[path] = 0
			return 1
		}
		for (;;) {
			if (t == "{") {
				key = T[P++]
				if (key !~ /^"/ || T[P++] != ":")
					return 0
				key = json_string(key)
				JK[path, ++n] = key
			} else
				key = n++
			if (!json_value(path SUBSEP key))
				return 0
			key = T[P++]
			if (key == (t == "{" ? "}" : "]"))
				break
			if (key != ",")
				return 0
		}
		JN[path] = n
		return 1
	}
	if (t ~ /^"/) {
		J[path] = "string"
		JV[path] = json_string(t)
		return 1
	}
	if (t ~ /^(true|false|null)$/)
		J[path] = t
	else if (t ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/)
		J[path] = "number"
	else
		return 0
	JV[path] = t
	return 1
}

# json_str PATH: the string at PATH, "" when it is missing or null (Go's omitempty).
function json_str(path) {
	return J[path] == "string" ? JV[path] : ""
}

# json_string TOKEN: the text of a string token, escapes resolved.
function json_string(s,    out, i, c, u, v) {
	s = substr(s, 2, length(s) - 2)
	if (index(s, "\\") == 0)
		return s
	out = ""
	while ((i = index(s, "\\")) > 0) {
		out = out substr(s, 1, i - 1)
		c = substr(s, i + 1, 1)
		if (c == "u") {
			u = json_hex(substr(s, i + 2, 4))
			s = substr(s, i + 6)
			# a surrogate pair is one character
			if (u >= 55296 && u < 56320 && substr(s, 1, 2) == "\\u") {
				v = json_hex(substr(s, 3, 4))
				if (v >= 56320 && v < 57344) {
					u = 65536 + (u - 55296) * 1024 + (v - 56320)
					s = substr(s, 7)
				}
			}
			out = out json_utf8(u)
			continue
		}
		if (c == "n")
			c = "\n"
		else if (c == "t")
			c = "\t"
		else if (c == "r")
			c = "\r"
		else if (c == "b")
			c = "\b"
		else if (c == "f")
			c = "\f"
		out = out c
		s = substr(s, i + 2)
	}
	return out s
}

function json_hex(s,    n, i) {
	n = 0
	for (i = 1; i <= length(s); i++)
		n = n * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
	return n
}

function json_utf8(u) {
	if (u < 128)
		return sprintf("%c", u)
	if (u < 2048)
		return sprintf("%c%c", 192 + int(u / 64), 128 + u % 64)
	if (u < 65536)
		return sprintf("%c%c%c", 224 + int(u / 4096), 128 + int(u / 64) % 64, 128 + u % 64)
	return sprintf("%c%c%c%c", 240 + int(u / 262144), 128 + int(u / 4096) % 64,
		128 + int(u / 64) % 64, 128 + u % 64)
}

# json_quote TEXT: TEXT as a JSON string token.
function json_quote(s) {
	gsub(/\\/, "\\\\", s)
	gsub(/"/, "\\\"", s)
	gsub(/\n/, "\\n", s)
	gsub(/\t/, "\\t", s)
	gsub(/\r/, "\\r", s)
	return "\"" s "\""
}
