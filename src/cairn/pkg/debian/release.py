"""A suite's Release file: fetched, its OpenPGP signature verified with gpgv, then parsed.

Nothing in a Release file is read before gpgv has verified it, and what is parsed is the
text gpgv itself extracted from the clearsigned ``InRelease`` (so text outside the signed
block can never slip in). ``Release`` + detached ``Release.gpg`` is the fallback for
mirrors without InRelease. Every other file of the suite is trusted only through the
SHA256 sums listed here.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from cairn import log, proc
from cairn.errors import CairnError
from cairn.pkg.debian import deb822, transport

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

# Packages index compressions in order of preference (smallest download first).
_COMPRESSIONS = (".xz", ".zst", ".gz", ".bz2", "")


@dataclass(frozen=True)
class IndexFile:
    """A file of the suite as the signed Release describes it (path relative to dists/SUITE)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    """The verified, parsed Release of one suite of one mirror."""

    mirror: str
    suite: str
    date: datetime | None
    valid_until: datetime | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    by_hash: bool
    files: Mapping[str, IndexFile] = field(repr=False)

    @property
    def where(self) -> str:
        """``suite 'bookworm' of mirror http://...``, for error messages."""
        return f"suite {self.suite!r} of mirror {self.mirror.rstrip('/')}"

    def url(self, path: str) -> str:
        """The URL of ``path`` under ``dists/SUITE/``."""
        return f"{self.mirror}dists/{self.suite}/{path}"

    def by_hash_url(self, index: IndexFile) -> str:
        """Where an index lives by its hash (immune to a mirror updating mid-run)."""
        directory = index.path.rpartition("/")[0]
        return self.url(f"{directory}/by-hash/SHA256/{index.sha256}")

    def packages_index(self, component: str, arch: str) -> IndexFile:
        """The Packages index of ``component``/``arch`` to download (smallest listed)."""
        if self.components and component not in self.components:
            raise CairnError(
                f"{self.where} has no component {component!r}",
                hint=f"its components are: {', '.join(self.components)}",
            )
        if self.architectures and arch not in self.architectures:
            raise CairnError(
                f"{self.where} has no architecture {arch!r}",
                hint=f"its architectures are: {', '.join(self.architectures)}",
            )
        for suffix in _COMPRESSIONS:
            found = self.files.get(f"{component}/binary-{arch}/Packages{suffix}")
            if found is not None:
                return found
        raise CairnError(
            f"the Release of {self.where} lists no Packages index for {component}/{arch}"
        )


def fetch(
    http: httpx.Client,
    mirror: str,
    suite: str,
    *,
    keyring: Path | None = None,
    allow_expired: bool = False,
    now: datetime | None = None,
) -> Release:
    """Fetch, verify and parse ``dists/SUITE/InRelease`` (or Release + Release.gpg).

    A missing suite, an unverifiable signature or an expired ``Valid-Until`` (unless
    ``allow_expired``, when it is only a warning) raise a CairnError naming mirror and suite.
    """
    base = transport.base_url(mirror)
    keyring = keyring or DEFAULT_KEYRING
    where = f"suite {suite!r} of mirror {base.rstrip('/')}"
    dists = f"{base}dists/{suite}/"
    with tempfile.TemporaryDirectory(prefix="cairn-gpgv-") as tmp:
        work = Path(tmp)
        keyring_file = _keyring(keyring, work)
        inrelease = _get(http, dists + "InRelease", where)
        if inrelease is not None:
            text = _verify(keyring_file, keyring, work, dists + "InRelease", inrelease, None)
        else:
            release = _get(http, dists + "Release", where)
            if release is None:
                raise CairnError(
                    f"{where} does not exist (no dists/{suite}/InRelease nor Release)",
                    hint="check the suite name (e.g. bookworm, trixie) and the mirror URL",
                )
            signature = _get(http, dists + "Release.gpg", where)
            if signature is None:
                raise CairnError(
                    f"{where} is not signed: it has no InRelease and no Release.gpg",
                    hint="Cairn only uses signed repositories",
                )
            text = _verify(keyring_file, keyring, work, dists + "Release", release, signature)
    parsed = parse(text, mirror=base, suite=suite)
    _check_dates(parsed, allow_expired=allow_expired, now=now or datetime.now(UTC))
    return parsed


def _get(http: httpx.Client, url: str, where: str) -> bytes | None:
    try:
        return transport.get(http, url)
    except CairnError as exc:
        raise CairnError(f"{where} cannot be reached: {exc.message}", hint=exc.hint) from exc


def parse(text: str, *, mirror: str, suite: str) -> Release:
    """Parse verified Release text; the suite must match its Suite or Codename."""
    where = f"suite {suite!r} of mirror {mirror.rstrip('/')}"
    try:
        fields = deb822.paragraph(text)
    except ValueError as exc:
        raise CairnError(f"the Release of {where} is malformed: {exc}") from exc
    names = {fields.get("Suite"), fields.get("Codename")} - {None}
    if names and suite not in names:
        raise CairnError(
            f"the Release of {where} is for {' / '.join(sorted(n for n in names if n))}",
            hint="a mirror serving another suite's signed Release is not trusted",
        )
    if "SHA256" not in fields:
        raise CairnError(f"the Release of {where} has no SHA256 sums (weaker hashes are not used)")
    files: dict[str, IndexFile] = {}
    for line in fields["SHA256"].splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[0]) != 64:
            raise CairnError(f"the Release of {where} has a malformed SHA256 line: {line!r}")
        files[parts[2]] = IndexFile(parts[2], int(parts[1]), parts[0].lower())
    return Release(
        mirror=mirror,
        suite=suite,
        date=_date(fields.get("Date"), where),
        valid_until=_date(fields.get("Valid-Until"), where),
        architectures=tuple(fields.get("Architectures", "").split()),
        components=tuple(fields.get("Components", "").split()),
        by_hash=fields.get("Acquire-By-Hash", "").lower() == "yes",
        files=files,
    )


def _date(value: str | None, where: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise CairnError(f"the Release of {where} has an unreadable date {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_dates(release: Release, *, allow_expired: bool, now: datetime) -> None:
    if release.valid_until is None or release.valid_until >= now:
        return
    message = (
        f"the Release of {release.where} expired on "
        f"{release.valid_until:%Y-%m-%d %H:%M} UTC (Valid-Until)"
    )
    if allow_expired:
        log.warn("%s", message)
        return
    raise CairnError(
        message,
        hint="a stale mirror can hide security updates; allow expired Release files only "
        "for archived snapshots",
    )


def _keyring(keyring: Path, work: Path) -> Path:
    """The keyring as gpgv reads it: binary; an ASCII-armoured one is converted."""
    try:
        data = keyring.read_bytes()
    except OSError as exc:
        raise CairnError(
            f"cannot read the OpenPGP keyring {keyring}: {exc.strerror}",
            hint="the Debian archive keyring comes from: apt-get install debian-archive-keyring",
        ) from exc
    if not data.lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
        return keyring.resolve()
    binary = work / "keyring.gpg"
    binary.write_bytes(_dearmor(data, keyring))
    return binary


def _dearmor(data: bytes, source: Path) -> bytes:
    # ASCII armour (RFC 4880, section 6.2): the BEGIN line, optional "Key: value" headers,
    # an empty line, base64 lines, an optional "=CRC" line, the END line. Blocks may repeat.
    out = bytearray()
    state = "outside"
    body: list[bytes] = []
    for raw in data.splitlines():
        line = raw.strip()
        if line.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK"):
            state, body = "headers", []
        elif state == "headers":
            state = "body" if not line else "headers"
        elif state == "body" and line.startswith(b"-----END"):
            out += base64.b64decode(b"".join(body))
            state = "outside"
        elif state == "body" and not line.startswith(b"="):
            body.append(line)
    if not out:
        raise CairnError(f"the keyring {source} holds no armoured public key block")
    return bytes(out)


def _verify(
    keyring: Path, shown: Path, work: Path, url: str, data: bytes, signature: bytes | None
) -> str:
    """Run gpgv; return the verified text (the signed part only) or raise.

    ``shown`` is the keyring as the user named it, for messages."""
    signed = work / "signed"
    signed.write_bytes(data)
    home = work / "home"
    home.mkdir(exist_ok=True, mode=0o700)
    # An explicit --keyring replaces gpgv's default trustedkeys.kbx; an empty --homedir
    # keeps the user's own GnuPG files out of the decision.
    argv: list[str | Path] = ["gpgv", "--homedir", home, "--status-fd", "1", "--keyring", keyring]
    if signature is None:
        output = work / "verified"
        argv += ["--output", output, signed]
    else:
        output = signed
        detached = work / "signature"
        detached.write_bytes(signature)
        argv += [detached, signed]
    result = proc.run(argv, check=False)
    status = _status(result.stdout.decode(errors="replace"))
    # gpgv fails when ANY signature cannot be checked (Debian signs with several keys and a
    # keyring may hold only some), so decide from the status lines, as apt does: at least
    # one good signature, and no bad one.
    if "BADSIG" in status:
        raise CairnError(
            f"the OpenPGP signature of {url} is BAD: the file was modified after signing",
            hint="the mirror or the network path to it is serving tampered files",
        )
    if "GOODSIG" in status and "VALIDSIG" in status:
        log.debug("%s: good signature by %s", url, ", ".join(status["VALIDSIG"]))
        try:
            return output.read_bytes().decode()
        except UnicodeDecodeError as exc:
            raise CairnError(f"the signed text of {url} is not UTF-8") from exc
    if "EXPKEYSIG" in status or "REVKEYSIG" in status:
        reason = "signed only by expired or revoked keys"
    elif "NO_PUBKEY" in status:
        reason = f"signed by unknown key(s) {', '.join(status['NO_PUBKEY'])}"
    elif "NODATA" in status:
        reason = "not signed (no OpenPGP signature found)"
    else:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        reason = f"not verifiable: {detail[-1] if detail else 'gpgv found no good signature'}"
    raise CairnError(
        f"{url} is {reason} (keyring {shown})",
        hint="pass the keyring of this repository, or check the mirror URL",
    )


def _status(text: str) -> dict[str, list[str]]:
    """gpgv's machine-readable status lines: keyword -> first argument of each."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        words = line.split()[1:]
        if words:
            found.setdefault(words[0], []).append(words[1] if len(words) > 1 else "")
    return found
