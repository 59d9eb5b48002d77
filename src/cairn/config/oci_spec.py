"""One image entry -> its bundle's ``config.json`` and ``runtime.json`` (LinuxKit's ConfigToOCI).

Each setting comes from the YAML entry if it sets it, else from the image's
``org.mobyproject.config`` label, else from the OCI image config (command, env, cwd), else
a default; ``capabilities.add`` and ``binds.add`` extend the label's lists. The JSON is
written with Go's encoder rules and struct key order so a bundle matches LinuxKit's byte
for byte. Deliberate fixes (docs/compat.md): ``.add`` merges drop duplicates, volume names
are translated in ``mounts`` as well as ``binds``, a read-only volume accepts any ``ro``
option list, OCI structs take camelCase or lowercase keys, and unknown rlimits are named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from cairn import log
from cairn.config import gojson, oci_parts, ocitypes, schema
from cairn.config.model import Config, ImageSpec, VolumeSpec
from cairn.config.oci_parts import PartError, Where
from cairn.config.parse import parse_yaml
from cairn.config.problems import key_path
from cairn.errors import CairnError, Position

OCI_VERSION = "1.2.1"
LABEL = "org.mobyproject.config"
VOLUMES_DIR = "/containers/volumes"
FIRST_ID = 100
RUNTIME_NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


@dataclass(frozen=True)
class BundleSpec:
    """What a container bundle needs besides its root filesystem."""

    config_json: bytes  # the exact config.json
    # LinuxKit's runtime object (cgroups, mounts, mkdir, interfaces, bindNS, namespace); the
    # bundle writer prepends its rootfs mounts, then serialises it with runtime_json().
    runtime: dict[str, Any]
    readonly: bool  # read-only root: the bundle is laid out as rootfs/ instead of lower/


def id_map(config: Config) -> dict[str, int]:
    """Container name -> uid/gid number: 100, 101, ... over onboot, onshutdown, services.

    A name used twice keeps the later id, as in LinuxKit.
    """
    return {spec.name: FIRST_ID + i for i, spec in enumerate(config.containers)}


def parse_label(text: str, image: str) -> dict[str, Any]:
    """The ``org.mobyproject.config`` label as validated options (JSON or YAML text)."""
    title = f"the {LABEL} label of {image}"
    parsed = parse_yaml(text, title)
    if not isinstance(parsed.data, dict):
        raise CairnError(f"{title} must be a JSON object")
    for key in ("name", "image"):
        if key in parsed.data:
            raise CairnError(f"{title} must not set {key!r}")
    label = parsed.data
    parsed.data = {**label, "name": "label", "image": image}
    problems = schema.validate(parsed, definition="image")
    parsed.data = label
    if problems:
        details = "; ".join(str(p) for p in problems)
        raise CairnError(f"{title} is invalid: {details}")
    return label


def generate(
    spec: ImageSpec,
    image_config: Mapping[str, Any],
    ids: Mapping[str, int],
    volumes: Mapping[str, VolumeSpec],
) -> BundleSpec:
    """The OCI spec and runtime config of ``spec`` run from an image with ``image_config``.

    ``image_config`` is the ``config`` object of the OCI image config (Entrypoint, Cmd, Env,
    WorkingDir, Labels); ``ids`` comes from :func:`id_map`; ``volumes`` maps volume names
    to their specs, for binds and mounts that name a volume.
    """
    return _Generator(spec, image_config, ids, volumes).run()


def runtime_json(runtime: Mapping[str, Any]) -> bytes:
    """``runtime.json`` bytes: LinuxKit's Runtime struct, every key present, Go formatting."""
    bind_ns = runtime.get("bindNS") or {}
    ordered = {
        "cgroups": list(runtime.get("cgroups") or []),
        "mounts": [ocitypes.normalise(ocitypes.MOUNT, m) for m in runtime.get("mounts") or []],
        "mkdir": list(runtime.get("mkdir") or []),
        "interfaces": [
            ocitypes.normalise(ocitypes.INTERFACE, i) for i in runtime.get("interfaces") or []
        ],
        "bindNS": {ns: bind_ns.get(ns) or "" for ns in RUNTIME_NAMESPACES},
        "namespace": runtime.get("namespace") or "",
    }
    return gojson.dumps(ordered)


class _Generator:
    def __init__(
        self,
        spec: ImageSpec,
        image_config: Mapping[str, Any],
        ids: Mapping[str, int],
        volumes: Mapping[str, VolumeSpec],
    ) -> None:
        self.spec = spec
        self.image_config = image_config or {}
        self.ids = ids
        self.volumes = volumes
        labels = self.image_config.get("Labels") or {}
        text = labels.get(LABEL, "")
        try:
            self.label: dict[str, Any] = parse_label(text, spec.image) if text else {}
        except CairnError as exc:
            raise self._error(exc.message, (), hint=exc.hint) from exc
        self.yaml: dict[str, Any] = dict(spec.options)

    # -- errors ------------------------------------------------------------------------------

    def _error(self, message: str, where: Where, hint: str | None = None) -> CairnError:
        position = self._position(where)
        path = key_path(where)
        prefix = f"{self.spec.location} ({self.spec.name})" + (f": {path}" if path else "")
        return CairnError(f"{prefix}: {message}", hint=hint, position=position)

    def _position(self, where: Where) -> Position | None:
        for end in range(len(where), 0, -1):
            found = self.spec.option_positions.get(key_path(where[:end]))
            if found is not None:
                return found
        return self.spec.position

    def _fail(self, exc: PartError | ocitypes.NormaliseError, source: str) -> NoReturn:
        """Re-raise a parser error; label values have no YAML position, so say so."""
        hint = getattr(exc, "hint", None)
        if source == "label":
            raise self._error(
                f"in the {LABEL} label: {key_path(exc.path)}: {exc.message}", (), hint
            )
        raise self._error(exc.message, exc.path, hint)

    # -- precedence --------------------------------------------------------------------------

    def pick(self, key: str) -> tuple[Any, str]:
        """YAML value if set, else the label's: (value, "yaml" | "label" | "")."""
        if key in self.yaml:
            return self.yaml[key], "yaml"
        if key in self.label:
            return self.label[key], "label"
        return None, ""

    def pick_text(self, key: str, default: str) -> str:
        # LinuxKit's plain-string fields: an empty string does not override.
        for source in (self.yaml, self.label):
            if source.get(key):
                return str(source[key])
        return default

    def each(self, key: str, parse: Callable[[Any, Where], Any]) -> list[Any]:
        values, source = self.pick(key)
        out = []
        for i, value in enumerate(values or []):
            try:
                out.append(parse(value, (key, i)))
            except (PartError, ocitypes.NormaliseError) as exc:
                self._fail(exc, source)
        return out

    # -- assembly ----------------------------------------------------------------------------

    def run(self) -> BundleSpec:
        self._rewrite_volumes()
        config = self.image_config
        args, _ = self.pick("command")
        if args is None:
            args = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        env, _ = self.pick("env")
        if env is None:
            env = config.get("Env") or []
        cwd = self.pick_text("cwd", config.get("WorkingDir") or "/")
        readonly = bool(self.pick("readonly")[0])

        process: dict[str, Any] = {"user": self._user()}
        if args:
            process["args"] = list(args)
        if env:
            process["env"] = list(env)
        process["cwd"] = cwd
        process["capabilities"] = self._capabilities()
        rlimits = self.each("rlimits", oci_parts.rlimit)
        if rlimits:
            process["rlimits"] = rlimits
        if self.pick("noNewPrivileges")[0]:
            process["noNewPrivileges"] = True
        oom, _ = self.pick("oomScoreAdj")
        if oom is not None:
            process["oomScoreAdj"] = oom

        root: dict[str, Any] = {"path": "rootfs"}
        if readonly:
            root["readonly"] = True
        spec: dict[str, Any] = {"ociVersion": OCI_VERSION, "process": process, "root": root}
        hostname = self.pick_text("hostname", "")
        if hostname:
            spec["hostname"] = hostname
        spec["mounts"] = self._mounts(readonly)
        annotations = self._string_map("annotations")
        if annotations:
            spec["annotations"] = annotations
        spec["linux"] = self._linux()
        return BundleSpec(gojson.dumps(spec), self._runtime(), readonly)

    def _user(self) -> dict[str, Any]:
        user: dict[str, Any] = {}
        for key in ("uid", "gid"):
            value, source = self.pick(key)
            try:
                user[key] = oci_parts.numeric_id(value, self.ids, (key,))
            except PartError as exc:
                self._fail(exc, source)
        groups = self.each("additionalGids", lambda v, w: oci_parts.numeric_id(v, self.ids, w))
        if groups:
            user["additionalGids"] = groups
        return user

    def _capabilities(self) -> dict[str, Any]:
        caps = self._merged_list("capabilities")
        ambient, ambient_source = self.pick("ambient")
        try:
            effective = oci_parts.capabilities(caps, ("capabilities",))
        except PartError as exc:
            self._fail_merged("capabilities", caps[int(exc.path[-1])], exc)
        try:
            ambient = oci_parts.capabilities(ambient or [], ("ambient",))
        except PartError as exc:
            self._fail(exc, ambient_source)
        bounding = sorted(set(effective) | set(ambient))
        result: dict[str, Any] = {}
        for key, value in (
            ("bounding", bounding),
            ("effective", effective),
            ("inheritable", bounding),
            ("permitted", bounding),
            ("ambient", ambient),
        ):
            if value:
                result[key] = list(value)
        return result

    def _fail_merged(self, key: str, value: Any, exc: PartError) -> NoReturn:
        """Blame the entry of a merged list where it was written: YAML key, key.add or label."""
        added = self.yaml.get(f"{key}.add") or []
        if key in self.yaml:
            where: Where = (key, self.yaml[key].index(value))
        elif value in added:
            where = (f"{key}.add", added.index(value))
        else:
            self._fail(
                PartError((key, (self.label.get(key) or []).index(value)), exc.message, exc.hint),
                "label",
            )
        self._fail(PartError(where, exc.message, exc.hint), "yaml")

    def _merged_list(self, key: str) -> list[Any]:
        """YAML ``key`` if set, else the label's ``key`` plus YAML ``key.add``, without repeats."""
        if key in self.yaml:
            if f"{key}.add" in self.yaml:
                log.warn("%s: %s.add is ignored because %s is set", self.spec.location, key, key)
            return list(self.yaml[key])
        merged = list(self.label.get(key) or [])
        for item in self.yaml.get(f"{key}.add") or []:
            if item not in merged:
                merged.append(item)
        return merged

    def _mounts(self, readonly: bool) -> list[dict[str, Any]]:
        mounts = oci_parts.default_mounts(readonly)
        for mount in self.each("tmpfs", oci_parts.tmpfs_mount):
            mounts[mount["destination"]] = mount
        for text in self._merged_list("binds"):
            try:
                mount = oci_parts.bind_mount(text, ("binds",))
            except PartError as exc:
                self._fail_merged("binds", text, exc)
            mounts[mount["destination"]] = mount
        for mount in self.each("mounts", oci_parts.full_mount):
            mounts[mount["destination"]] = mount
        # Sorted by destination, so /dev is mounted before /dev/pts.
        return [mounts[d] for d in sorted(mounts)]

    def _string_map(self, key: str) -> dict[str, str]:
        # Go maps are written with sorted keys.
        value, _ = self.pick(key)
        return {k: value[k] for k in sorted(value)} if value else {}

    def _linux(self) -> dict[str, Any]:
        linux: dict[str, Any] = {}
        for key in ("uidMappings", "gidMappings"):
            mappings = self.each(key, lambda v, w: ocitypes.normalise(ocitypes.ID_MAPPING, v, w))
            if mappings:
                linux[key] = mappings
        sysctl = self._string_map("sysctl")
        if sysctl:
            linux["sysctl"] = sysctl
        devices = self.each("devices", oci_parts.device)
        linux["resources"] = self._resources([rule for _, rule in devices])
        cgroups_path, _ = self.pick("cgroupsPath")
        if cgroups_path:
            linux["cgroupsPath"] = cgroups_path
        linux["namespaces"] = self._namespaces()
        nodes = [node for node, _ in devices if node is not None]
        if nodes:
            linux["devices"] = nodes
        propagation, _ = self.pick("rootfsPropagation")
        if propagation:
            linux["rootfsPropagation"] = propagation
        for key in ("maskedPaths", "readonlyPaths"):
            paths, _ = self.pick(key)
            if paths:
                linux[key] = list(paths)
        return linux

    def _resources(self, rules: list[dict[str, Any]]) -> dict[str, Any]:
        value, source = self.pick("resources")
        try:
            resources = ocitypes.normalise(ocitypes.RESOURCES, value or {}, ("resources",))
        except ocitypes.NormaliseError as exc:
            self._fail(exc, source)
        # Every device node (and `path: all` class) is allowed in the device cgroup too.
        devices = resources.pop("devices", []) + rules
        return {"devices": devices, **resources} if devices else resources

    def _namespaces(self) -> list[dict[str, Any]]:
        namespaces: list[dict[str, Any]] = []
        # (OCI type, option, default, values meaning "a new namespace"); LinuxKit shares the
        # host's namespaces except pid, and treats `none` as new only for the network.
        for kind, key, default, new in (
            ("network", "net", "root", ("new", "none")),
            ("ipc", "ipc", "root", ("new",)),
            ("uts", "uts", "root", ("new",)),
            ("pid", "pid", "new", ("new",)),
            ("user", "userns", "root", ("new",)),
        ):
            value = self.pick_text(key, default)
            if value in ("host", "root"):
                continue
            entry = {"type": kind}
            if value not in new:
                entry["path"] = value
            namespaces.append(entry)
        namespaces.append({"type": "mount"})
        return namespaces

    def _runtime(self) -> dict[str, Any]:
        """LinuxKit's assignRuntime: each field YAML > label > empty."""
        yaml = self.yaml.get("runtime") or {}
        label = self.label.get("runtime") or {}

        def pick(key: str) -> tuple[Any, str]:
            if key in yaml:
                return yaml[key], "yaml"
            if key in label:
                return label[key], "label"
            return None, ""

        runtime: dict[str, Any] = {}
        for key, struct in (
            ("cgroups", None),
            ("mounts", ocitypes.MOUNT),
            ("mkdir", None),
            ("interfaces", ocitypes.INTERFACE),
        ):
            values, source = pick(key)
            items = []
            for i, item in enumerate(values or []):
                try:
                    where = ("runtime", key, i)
                    items.append(
                        item if struct is None else ocitypes.normalise(struct, item, where)
                    )
                except ocitypes.NormaliseError as exc:
                    self._fail(exc, source)
            runtime[key] = items
        yaml_ns = yaml.get("bindNS") or {}
        label_ns = label.get("bindNS") or {}
        runtime["bindNS"] = {
            ns: yaml_ns[ns] if ns in yaml_ns else label_ns.get(ns, "") for ns in RUNTIME_NAMESPACES
        }
        runtime["namespace"] = pick("namespace")[0] or ""
        return runtime

    # -- volumes -----------------------------------------------------------------------------

    def _rewrite_volumes(self) -> None:
        """Point YAML binds and bind mounts that name a volume at its merged directory."""
        for key in ("binds", "binds.add"):
            if key not in self.yaml:
                continue
            rewritten = []
            for i, text in enumerate(self.yaml[key]):
                parts = text.split(":")
                if parts[0].startswith("/"):
                    rewritten.append(text)
                    continue
                options = parts[2].split(",") if len(parts) > 2 else []
                parts[0] = self._volume_dir(parts[0], options, (key, i))
                rewritten.append(":".join(parts))
            self.yaml[key] = rewritten
        if "mounts" in self.yaml:
            mounts = []
            for i, mount in enumerate(self.yaml["mounts"]):
                source = mount.get("source", "")
                if mount.get("type") == "bind" and not source.startswith("/"):
                    where = ("mounts", i, "source")
                    mount = {
                        **mount,
                        "source": self._volume_dir(source, mount.get("options") or [], where),
                    }
                mounts.append(mount)
            self.yaml["mounts"] = mounts

    def _volume_dir(self, name: str, options: list[str], where: Where) -> str:
        volume = self.volumes.get(name)
        if volume is None:
            known = ", ".join(sorted(self.volumes)) or "none are declared"
            raise self._error(
                f"volume {name!r} not found",
                where,
                hint=f"binds that do not start with / name a volume ({known})",
            )
        if volume.readonly and _first_of(options, ("ro", "rw")) != "ro":
            raise self._error(
                f"volume {name!r} is read-only, but is mounted read-write",
                where,
                hint="add the ro option",
            )
        return f"{VOLUMES_DIR}/{name}/merged"


def _first_of(options: list[str], choices: tuple[str, ...]) -> str | None:
    return next((o for o in options if o in choices), None)
