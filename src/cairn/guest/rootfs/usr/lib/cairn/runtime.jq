# Cairn: LinuxKit runtime.json files as steps for lib.sh and prepare-process, one per line,
# each line "BUNDLE STEP ARGS...", fields separated by \u001f (never in a path, and not
# shell whitespace, so empty fields survive `read`). Run once over every bundle's
# runtime.json at boot: jq takes a quarter of a second to start under emulation.
#
# Before the container is created, in this order (lib.sh: prepare_filesystem):
#   mkdir   PATH                                 (upperdir= and workdir= of an overlay)
#   mount   TYPE SOURCE DESTINATION OPTIONS PROPAGATION
#   mkdir   PATH                                 ("mkdir")
#   cgroup  PATH                                 ("cgroups", under /sys/fs/cgroup)
#   hook                                         ("interfaces" or "bindNS" are not empty)
# From the createRuntime hook, once the container's pid is known (prepare-process):
#   iface   NAME ADD PEER CREATEINROOT           ("interfaces")
#   bindns  NAMESPACE PATH                       ("bindNS")
#
# Relative destinations and mkdir paths are relative to the bundle's rootfs, as in LinuxKit.

def bundle: input_filename | rtrimstr("/runtime.json");

def line: [bundle] + . | map(tostring) | join("\u001f");

def in_rootfs: if startswith("/") then . else bundle + "/rootfs/" + . end;

def propagation:
  . as $o
  | ["shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable"]
  | any(. == $o);

# A "bind" type is spelled as an option for mount(8); a missing source is the type
# (LinuxKit's rule too: {type: tmpfs} mounts "tmpfs").
def mount_steps:
  (.options // []) as $options
  | (.type // "") as $type
  | ($type == "bind" or $type == "rbind") as $bind
  | ( $options[]
      | select(startswith("upperdir=") or startswith("workdir="))
      | ["mkdir", sub("^[a-z]+="; "")] | line ),
    ( [ "mount",
        (if $bind then "" else $type end),
        (if (.source // "") == "" and ($bind | not) then $type else .source // "" end),
        (.destination | in_rootfs),
        ( $options
          | map(select(propagation | not))
          | if $bind and (any(. == "bind" or . == "rbind") | not) then [$type] + . else . end
          | join(",") ),
        ($options | map(select(propagation)) | join(","))
      ] | line );

((.mounts // [])[] | mount_steps),
((.mkdir // [])[] | ["mkdir", in_rootfs] | line),
((.cgroups // [])[] | ["cgroup", .] | line),
( if ((.interfaces // []) | length) > 0
     or ((.bindNS // {}) | to_entries | any((.value // "") != ""))
  then ["hook"] | line
  else empty end ),
( (.interfaces // [])[]
  | ["iface", .name, (.add // ""), (.peer // ""), (.createInRoot // false)] | line ),
( (.bindNS // {}) | to_entries[] | select((.value // "") != "")
  | ["bindns", .key, .value] | line )
