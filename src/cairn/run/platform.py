"""``cairn run --platform``: a cloud's or hypervisor's virtual hardware, as far as qemu
emulates it, and its metadata service, so an image is tested locally before it is uploaded.

One row per platform: the qemu machine, how disks and CDs attach (``--disk-bus``), the
NIC, and which metadata service (:mod:`cairn.run.imds`) answers at 169.254.169.254, or
none (VMware and VirtualBox have none: their user data comes on a metadata CD, as
``cairn metadata create`` writes it).

The network of a platform run is qemu's user network on 169.254.0.0/16 with
``restrict=on``: the guest reaches the metadata service (a ``guestfwd`` rule), the
published ports reach the guest, and nothing else leaves the host. On a cloud VM an
unrestricted guest's requests to 169.254.169.254 would otherwise reach the *host's*
metadata service.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from cairn.errors import CairnError, UsageError
from cairn.run import imds

METADATA_ADDRESS = "169.254.169.254"
NETWORK = "169.254.0.0/16"  # qemu's DHCP then hands out 169.254.0.15
MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class Platform:
    """A platform's virtual hardware and metadata service."""

    name: str
    machine: str  # qemu's -machine
    disk_bus: str  # cairn run's --disk-bus: nvme, scsi, ide, ahci, pvscsi, virtio
    nic: str  # qemu's NIC device
    service: str | None  # the cairn.run.imds platform, or None: no metadata service
    summary: str


PLATFORMS = {
    p.name: p
    for p in (
        Platform("aws", "q35", "nvme", "virtio-net-pci", "aws",
                 "Nitro: NVMe disks, IMDSv2 (qemu has no ENA: the NIC is virtio-net)"),
        Platform("gcp", "q35", "scsi", "virtio-net-pci", "gcp",
                 "virtio-scsi disks, virtio-net, the metadata server (Metadata-Flavor)"),
        Platform("azure", "pc", "ide", "e1000", "azure",
                 "generation 1: IDE disks, e1000 (for Hyper-V's netvsc), IMDS"),
        Platform("vmware", "pc", "pvscsi", "vmxnet3", None,
                 "pvscsi disks, vmxnet3; no metadata service (use a metadata CD)"),
        Platform("virtualbox", "q35", "ahci", "e1000", None,
                 "AHCI disks, e1000; no metadata service (use a metadata CD)"),
        Platform("openstack", "pc", "virtio", "virtio-net-pci", "openstack",
                 "virtio-blk disks, virtio-net, the EC2-compatible metadata service"),
    )
}  # fmt: skip


def lookup(name: str) -> Platform:
    """The platform called ``name`` (a usage error names the others)."""
    try:
        return PLATFORMS[name.lower()]
    except KeyError:
        raise UsageError(
            f"unknown --platform {name!r}", hint=f"use one of: {', '.join(PLATFORMS)}"
        ) from None


def read_keys(path: Path) -> tuple[str, ...]:
    """The public keys of ``--ssh-key FILE`` (an ``authorized_keys``-style file)."""
    try:
        with path.expanduser().open("rb") as f:
            raw = f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise CairnError(f"--ssh-key {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_KEY_FILE:
        raise CairnError(f"--ssh-key {path}: more than {MAX_KEY_FILE // 1024} KiB")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise CairnError(f"--ssh-key {path}: not a text file of public keys") from None
    keys = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not keys or any(line.startswith("-----BEGIN") for line in keys):
        raise CairnError(
            f"--ssh-key {path}: no public key in it",
            hint="give the public key, e.g. ~/.ssh/id_ed25519.pub (not the private key)",
        )
    return keys


def cd_data(keys: tuple[str, ...], data: bytes | None) -> bytes | None:
    """The user data of a metadata CD: ``data``, with ``keys`` as root's authorized keys
    (``ssh/authorized_keys`` of LinuxKit's JSON tree) when there are keys."""
    if not keys:
        return data
    tree: dict[str, object] = {}
    if data is not None:
        try:
            loaded = json.loads(data)
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            raise UsageError(
                "--ssh-key goes into the user data's JSON tree, and this user data is not "
                "a JSON object",
                hint="put the key into the data yourself (ssh -> authorized_keys)",
            )
        if "ssh" in loaded:
            raise UsageError("--ssh-key and the user data's own ssh entry: give one of them")
        tree = loaded
    content = "".join(key + "\n" for key in keys)
    tree["ssh"] = {"entries": {"authorized_keys": {"perm": "0600", "content": content}}}
    return json.dumps(tree, indent=1).encode() + b"\n"


def write_service(
    platform: Platform, config: Path, *, hostname: str, instance_id: str,
    keys: tuple[str, ...], data: bytes | None,
) -> Path:  # fmt: skip
    """Write the metadata service's configuration for this machine; returns its path."""
    assert platform.service is not None
    if platform.service == "aws":
        instance_id = "i-" + instance_id.replace("-", "")[:17]
    instance = imds.Instance(
        platform.service, hostname=hostname, instance_id=instance_id, ssh_keys=keys,
        user_data=data,
    )  # fmt: skip
    return imds.write_config(config, instance)


def netdev_options(config: Path | None) -> str:
    """What a platform run adds to ``-netdev user``: the link-local network, isolation, and
    the metadata service at 169.254.169.254:80 (``config``), if the platform has one."""
    options = f",net={NETWORK},restrict=on"
    if config is not None:
        command = _command([sys.executable, "-m", "cairn.run.imds", str(config)])
        options += f",guestfwd=tcp:{METADATA_ADDRESS}:80-cmd:{command}"
    return options


def _command(argv: list[str]) -> str:
    # qemu splits the command as a shell would (g_shell_parse_argv), and its option parser
    # takes a doubled comma for a comma.
    return " ".join(shlex.quote(arg) for arg in argv).replace(",", ",,")
