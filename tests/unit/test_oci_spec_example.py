"""Byte-exact config.json and runtime.json for minimal.yml's dhcpcd onboot entry (ref. 2.14)."""

from __future__ import annotations

import json
from pathlib import Path

from cairn.config.load import load
from cairn.config.oci_spec import generate, id_map, runtime_json

MINIMAL = """\
kernel:
  image: linuxkit/kernel:6.12.59
  cmdline: "console=tty0 console=ttyS0 console=ttyAMA0"
init:
  - linuxkit/init:8eea386739975a43af558eec757a7dcb3a3d2e7b
  - linuxkit/runc:667e7ea2c426a2460ca21e3da065a57dbb3369c9
  - linuxkit/containerd:a988a1a8bcbacb2c0c4f0d6bd6d2bd7ab1c7e8b8
onboot:
  - name: dhcpcd
    image: linuxkit/dhcpcd:157df9ef45a035f1542ec2270e374f18efef98a5
    command: ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"]
services:
  - name: getty
    image: linuxkit/getty:05eca453695984a69617f1f1f0bcdae7f7032967
    env:
     - INSECURE=true
"""

# The dhcpcd package's label, as `pkg build` writes it (json.Marshal of build.yml's config).
DHCPCD_LABEL = json.dumps(
    {
        "binds": ["/run/resolvconf:/etc"],
        "capabilities": ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_ADMIN"],
    },
    separators=(",", ":"),
)
DHCPCD_IMAGE_CONFIG = {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["/sbin/dhcpcd"],
    "WorkingDir": "",
    "Labels": {"org.mobyproject.config": DHCPCD_LABEL},
}

EXPECTED_CONFIG_JSON = """\
{
    "ociVersion": "1.2.1",
    "process": {
        "user": {
            "uid": 0,
            "gid": 0
        },
        "args": [
            "/sbin/dhcpcd",
            "--nobackground",
            "-f",
            "/dhcpcd.conf",
            "-1"
        ],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ],
        "cwd": "/",
        "capabilities": {
            "bounding": [
                "CAP_NET_ADMIN",
                "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW",
                "CAP_SYS_ADMIN"
            ],
            "effective": [
                "CAP_NET_ADMIN",
                "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW",
                "CAP_SYS_ADMIN"
            ],
            "inheritable": [
                "CAP_NET_ADMIN",
                "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW",
                "CAP_SYS_ADMIN"
            ],
            "permitted": [
                "CAP_NET_ADMIN",
                "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW",
                "CAP_SYS_ADMIN"
            ]
        }
    },
    "root": {
        "path": "rootfs"
    },
    "mounts": [
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": [
                "nosuid",
                "strictatime",
                "mode=755",
                "size=65536k"
            ]
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": [
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620"
            ]
        },
        {
            "destination": "/etc",
            "type": "bind",
            "source": "/run/resolvconf",
            "options": [
                "rw",
                "rbind",
                "rshared"
            ]
        },
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": [
                "nosuid",
                "nodev",
                "noexec",
                "relatime"
            ]
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": [
                "nosuid",
                "noexec",
                "nodev"
            ]
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [
                "nosuid",
                "noexec",
                "nodev",
                "relatime",
                "ro"
            ]
        }
    ],
    "linux": {
        "resources": {},
        "namespaces": [
            {
                "type": "pid"
            },
            {
                "type": "mount"
            }
        ]
    }
}"""

EXPECTED_RUNTIME_JSON = """\
{
    "cgroups": [],
    "mounts": [],
    "mkdir": [],
    "interfaces": [],
    "bindNS": {
        "cgroup": "",
        "ipc": "",
        "mnt": "",
        "net": "",
        "pid": "",
        "user": "",
        "uts": ""
    },
    "namespace": ""
}"""


def test_dhcpcd_config_json_matches_linuxkit_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "minimal.yml"
    path.write_text(MINIMAL)
    config = load([str(path)])
    bundle = generate(config.onboot[0], DHCPCD_IMAGE_CONFIG, id_map(config), {})
    assert bundle.config_json.decode() == EXPECTED_CONFIG_JSON
    assert bundle.readonly is False


def test_dhcpcd_runtime_json_has_every_key(tmp_path: Path) -> None:
    path = tmp_path / "minimal.yml"
    path.write_text(MINIMAL)
    config = load([str(path)])
    bundle = generate(config.onboot[0], DHCPCD_IMAGE_CONFIG, id_map(config), {})
    assert runtime_json(bundle.runtime).decode() == EXPECTED_RUNTIME_JSON


def test_runtime_json_orders_mounts_prepended_by_the_bundle_writer() -> None:
    runtime = {
        "cgroups": [],
        "mounts": [
            {"source": "tmpfs", "type": "tmpfs", "destination": "/containers/services/getty/tmp"},
            {"options": ["remount", "private"], "destination": "/containers/services/getty/tmp"},
        ],
        "mkdir": [],
        "interfaces": [],
        "bindNS": {},
        "namespace": "",
    }
    assert json.loads(runtime_json(runtime))["mounts"] == [
        {"destination": "/containers/services/getty/tmp", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/containers/services/getty/tmp", "options": ["remount", "private"]},
    ]
    text = runtime_json(runtime).decode()
    assert text.index('"destination"') < text.index('"type"') < text.index('"source"')
