"""A minimal client for QMP, qemu's JSON control protocol, over the state directory's socket.

Only what Cairn needs: the greeting and capabilities handshake, then one command at a
time (``system_powerdown`` to press the ACPI power button, ``query-status``, ``quit``).
Events that arrive between commands are skipped.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from cairn.errors import CairnError

# sun_path is 108 bytes on Linux; longer paths are reached through /proc/self/fd.
_MAX_SOCKET_PATH = 100


class QMPError(CairnError):
    """qemu's control socket could not be reached or answered with an error."""


class QMPClient:
    """A connected QMP session; use as a context manager."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> QMPClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Connect and negotiate capabilities (leaves QMP's initial negotiation mode)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            _connect(sock, self.path)
        except OSError as exc:
            sock.close()
            raise QMPError(
                f"cannot reach qemu's control socket {self.path}: {exc.strerror or exc}"
            ) from exc
        self._sock = sock
        greeting = self._read_message()
        if "QMP" not in greeting:
            raise QMPError(f"{self.path} is not a QMP socket")
        self.execute("qmp_capabilities")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one command and return its ``return`` value; an ``error`` raises QMPError."""
        if self._sock is None:
            raise QMPError("not connected")
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise QMPError(f"qemu closed its control socket: {exc}") from exc
        while True:
            message = self._read_message()
            if "return" in message:
                return message["return"]
            if "error" in message:
                error = message["error"]
                raise QMPError(f"qemu refused {command}: {error.get('desc', error)}")
            # Anything else is an asynchronous event; not what we are waiting for.

    def _read_message(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            try:
                chunk = self._sock.recv(65536)
            except OSError as exc:
                raise QMPError(f"no answer on qemu's control socket: {exc}") from exc
            if not chunk:
                raise QMPError("qemu closed its control socket")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise QMPError(f"qemu sent something that is not JSON: {line[:80]!r}") from exc
        if not isinstance(message, dict):
            raise QMPError(f"unexpected QMP message: {line[:80]!r}")
        return message


def _connect(sock: socket.socket, path: Path) -> None:
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        sock.connect(os.fspath(path))
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{directory}/{path.name}")
    finally:
        os.close(directory)


def command(
    path: Path, name: str, arguments: dict[str, Any] | None = None, timeout: float = 5.0
) -> Any:
    """Connect, run one command, disconnect."""
    with QMPClient(path, timeout) as client:
        return client.execute(name, arguments)
