# Cairn's metadata: LinuxKit's user data tree as steps for lib.sh (write_tree), one per
# line, fields separated by \u001f (not in any usable name, and not shell whitespace).
#
# The user data is a JSON object whose members are entries named by their keys:
#   {"perm": "0600", "content": "..."}         a file (perm defaults to 0644)
#   {"perm": "0700", "entries": {NAME: ...}}   a directory (perm defaults to 0755)
# Steps, parents before their children, names in sorted order:
#   d MODE PATH             make the directory PATH
#   f MODE PATH BASE64      write the file PATH
#   ! PATH WHY              an entry left out, with everything under it
# or the single step "# WHY" when the document is not one JSON object (run with --slurp).
# MODE is octal; only the permission bits count (LinuxKit's Go code ignores the others).

def step: map(tostring) | join("\u001f");

# The entry's permission as octal digits (the last three: the permission bits), or null
# when perm is not a string of octal digits.
def mode($default):
  if .perm == null or .perm == "" then $default
  elif (.perm | type) == "string" and (.perm | test("^[0-7]{1,11}$")) then .perm[-3:]
  else null
  end;

# A name that stays one path component: no "/", no control characters, not "." or "..".
def usable: . != "" and . != "." and . != ".." and (explode | all(. >= 32 and . != 47 and . != 127));

def tree($prefix):
  to_entries | sort_by(.key)[] | .key as $name | ($prefix + $name) as $path | .value
  | if ($name | usable | not) then ["!", $prefix + ($name | tojson), "not a usable file name"]
    elif type != "object" then ["!", $path, "not an object with content or entries"]
    elif .content != null and .entries == null then
      if (.content | type) != "string" then ["!", $path, "content is not a string"]
      else mode("644") as $mode
        | if $mode == null then ["!", $path, "perm \(.perm | tojson) is not an octal number"]
          else ["f", $mode, $path, (.content | @base64)]
          end
      end
    elif .content == null and .entries != null then
      if (.entries | type) != "object" then ["!", $path, "entries is not an object"]
      else mode("755") as $mode
        | if $mode == null then ["!", $path, "perm \(.perm | tojson) is not an octal number"]
          else ["d", $mode, $path], (.entries | tree($path + "/"))
          end
      end
    else ["!", $path, "needs either content (a file) or entries (a directory)"]
    end;

if length != 1 then ["#", "not one JSON value"]
elif (.[0] | type) != "object" then ["#", "not a JSON object"]
else .[0] | tree("")
end
| step
