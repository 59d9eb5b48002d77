# Cairn: a bundle's config.json, rewritten for a copy of the bundle under /run/cairn
# (lib.sh: bundle_for). busybox awk -v dir=BUNDLE [-v createRuntime="PATH ARG..."]
# [-v poststart="PATH ARG..."] -f json.awk -f bundle.awk BUNDLE/config.json
#
# * a relative root.path becomes absolute (relative to BUNDLE): runc reads config.json
#   from the bundle directory only, and the image is read-only;
# * each hook given is appended to hooks.createRuntime or hooks.poststart (made when
#   missing or null), as {"path": PATH, "args": [NAME OF PATH, ARG...]}.
#
# Everything else is copied token by token, in order, without whitespace.

{
	json_tokens($0)
	if (!rewrite()) {
		print "bundle.awk: " FILENAME " is not valid JSON" > "/dev/stderr"
		exit 1
	}
}

# The hooks to add, as JSON, by kind; "" when not asked for.
function hook_json(spec,    words, n, i, out, name) {
	if (spec == "")
		return ""
	n = split(spec, words, " ")
	name = words[1]
	sub(/.*\//, "", name)
	out = "{\"path\":" json_quote(words[1]) ",\"args\":[" json_quote(name)
	for (i = 2; i <= n; i++)
		out = out "," json_quote(words[i])
	return out "]}"
}

# The members still missing from hooks (or all of it), each as ,"kind":[hook].
function missing_hooks(    out) {
	out = ""
	if (HOOK["createRuntime"] != "" && !SEEN["createRuntime"])
		out = out ",\"createRuntime\":[" HOOK["createRuntime"] "]"
	if (HOOK["poststart"] != "" && !SEEN["poststart"])
		out = out ",\"poststart\":[" HOOK["poststart"] "]"
	return out
}

# rewrite: print the document with the changes. The stack holds, for each open object
# or array, its kind (O[d] "{" or "["), its path (D[d], keys joined by "/"), the key of
# the member being read (K[d]) and how many members it has so far (N[d]).
function rewrite(    d, i, t, path, out, expect_key) {
	HOOK["createRuntime"] = hook_json(createRuntime)
	HOOK["poststart"] = hook_json(poststart)
	out = ""
	d = 0
	expect_key = 0
	for (i = 1; i <= NT; i++) {
		t = T[i]
		if (expect_key) {
			if (t !~ /^"/ || T[i + 1] != ":")
				return 0
			K[d] = json_string(t)
			if (D[d] == "/hooks")
				SEEN[K[d]] = 1
			out = out (N[d]++ ? "," : "") t ":"
			i++
			expect_key = 0
			continue
		}
		if (t == "}" || t == "]") {
			if (d == 0 || t != (O[d] == "{" ? "}" : "]"))
				return 0
			if (D[d] == "" && !SEEN_HOOKS && missing_hooks() != "")
				out = out (N[d] ? "," : "") "\"hooks\":{" substr(missing_hooks(), 2) "}"
			else if (D[d] == "/hooks")
				out = out (N[d] ? missing_hooks() : substr(missing_hooks(), 2))
			else if (D[d] ~ /^\/hooks\/(createRuntime|poststart)$/ && HOOK[K[d - 1]] != "") {
				out = out (N[d] ? "," : "") HOOK[K[d - 1]]
				SEEN[K[d - 1]] = 1
			}
			out = out t
			d--
		} else if (t == ",") {
			if (d == 0)
				return 0
			expect_key = O[d] == "{"
		} else {
			# a value: the path it is at
			path = d == 0 ? "" : O[d] == "{" ? D[d] "/" K[d] : D[d] "/#"
			if (d > 0 && O[d] == "[")
				out = out (N[d]++ ? "," : "")
			if (path == "/hooks")
				SEEN_HOOKS = 1
			if (t == "{" || t == "[") {
				d++
				O[d] = t
				D[d] = path
				N[d] = 0
				expect_key = t == "{"
				if (t == "{" && T[i + 1] == "}")
					expect_key = 0
				out = out t
			} else if (t == "null" && path == "/hooks" && missing_hooks() != "")
				out = out "{" substr(missing_hooks(), 2) "}"
			else if (t == "null" && path ~ /^\/hooks\/(createRuntime|poststart)$/ &&
				HOOK[substr(path, 8)] != "") {
				out = out "[" HOOK[substr(path, 8)] "]"
				SEEN[substr(path, 8)] = 1
			} else if (path == "/root/path" && t ~ /^"/ && t !~ /^"\//)
				out = out json_quote(dir "/" json_string(t))
			else
				out = out t
		}
	}
	if (d != 0)
		return 0
	print out
	return 1
}
