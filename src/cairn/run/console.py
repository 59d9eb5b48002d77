"""The console a person reads: ``cairn run`` in the foreground.

qemu's serial console comes to Cairn through a pipe (and, always and unchanged, into
STATE/console.log, which qemu writes itself). Cairn shows it on standard output, and
sends what is typed to the guest:

* The boot's machine-readable ``cairn-event`` lines (:mod:`cairn.run.timeline` reads them
  from the log) are not shown unless ``-v``; the init prints the same events for people.
* When standard output is not a terminal (a pipe, a CI log), the terminal control
  sequences firmware and guests print (clear screen, colours, cursor moves, resets) are
  left out: the log reads as text.
* A terminal on standard input is put in raw mode, as qemu's own ``-nographic`` does:
  every key goes to the guest, Ctrl-C included (it interrupts what runs on the guest's
  console). Ctrl-A is the escape key, as in qemu: Ctrl-A X quits (qemu stops at once),
  Ctrl-A P presses the power button (the guest shuts down, its onshutdown containers run),
  Ctrl-A H lists the keys, Ctrl-A Ctrl-A (or Ctrl-A A) sends a Ctrl-A.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
import re
import select
import termios
from collections.abc import Iterator
from typing import IO, Any

from cairn.run import timeline

ESCAPE = 0x01  # Ctrl-A, qemu's escape key too


class Key(enum.Enum):
    """What an escape sequence asks Cairn to do."""

    QUIT = "quit"
    POWER_OFF = "power-off"
    HELP = "help"


_COMMANDS = {ord("x"): Key.QUIT, ord("p"): Key.POWER_OFF, ord("h"): Key.HELP, ord("?"): Key.HELP}
KEYS_LINE = "Ctrl-A X quits, Ctrl-A P powers the machine off, Ctrl-A H lists the keys"
HELP = (
    "Ctrl-A X       quit: stop qemu now (nothing more runs in the guest)\n"
    "Ctrl-A P       power off: press the power button, the guest shuts down\n"
    "Ctrl-A Ctrl-A  send Ctrl-A to the guest\n"
    "Ctrl-C and every other key go to the guest"
)

EVENT_PREFIX = timeline.PREFIX
# ECMA-48 sequences: CSI (ESC [ ... final), OSC and the other strings (ESC ] P X ^ _ ...
# ended by BEL or ST), and the short ones (ESC c, ESC =, ESC ( B): a final byte that does
# not open one of the longer kinds.
_SEQUENCE = re.compile(
    rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|[]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)"
    rb"|[ -/]+[0-~]|[0-OQ-WYZ\\`-~])"
)
_LONGEST_PENDING = 256  # an escape sequence not ended after this many bytes is dropped


class Keys:
    """Typed bytes in, the bytes for the guest and the escape commands out."""

    def __init__(self) -> None:
        self._escaped = False

    def feed(self, data: bytes) -> tuple[bytes, list[Key]]:
        guest = bytearray()
        commands: list[Key] = []
        for byte in data:
            if self._escaped:
                self._escaped = False
                if byte in (ESCAPE, ord("a"), ord("A")):
                    guest.append(ESCAPE)
                elif byte | 0x20 in _COMMANDS:  # either case
                    commands.append(_COMMANDS[byte | 0x20])
                # Anything else after Ctrl-A is dropped, as qemu drops it.
            elif byte == ESCAPE:
                self._escaped = True
            else:
                guest.append(byte)
        return bytes(guest), commands


class Screen:
    """The console's bytes in, what to show out: without the event lines unless
    ``events``, without terminal control sequences when ``plain``."""

    def __init__(self, *, events: bool, plain: bool) -> None:
        self.events = events
        self.plain = plain
        self._line_start = True
        self._held = b""  # the start of a line that may be an event line
        self._dropping = False  # inside an event line
        self._pending = b""  # the start of a control sequence cut by a read

    def feed(self, data: bytes) -> bytes:
        shown = data if self.events else self._without_events(data)
        return self._without_sequences(shown) if self.plain else shown

    def flush(self) -> bytes:
        """What is still held back, at the end of the console."""
        rest, self._held = self._held, b""
        rest, self._pending = self._pending + rest, b""
        return _SEQUENCE.sub(b"", rest).replace(b"\x1b", b"") if self.plain else rest

    def _without_events(self, data: bytes) -> bytes:
        out = bytearray()
        for piece in data.splitlines(keepends=True):
            ends_line = piece.endswith(b"\n")
            if self._dropping:
                self._dropping = not ends_line
            elif not self._line_start:
                out += piece
            else:
                candidate = self._held + piece
                self._held = b""
                if candidate.startswith(EVENT_PREFIX):
                    self._dropping = not ends_line
                elif EVENT_PREFIX.startswith(candidate) and not ends_line:
                    self._held = candidate  # not known yet: wait for more of the line
                    continue
                else:
                    out += candidate
            self._line_start = ends_line
        return bytes(out)

    def _without_sequences(self, data: bytes) -> bytes:
        text = _SEQUENCE.sub(b"", self._pending + data)
        self._pending = b""
        cut = text.rfind(b"\x1b")
        if cut >= 0 and len(text) - cut < _LONGEST_PENDING:
            text, self._pending = text[:cut], text[cut:]  # the rest may come with the next read
        return text.replace(b"\x1b", b"").replace(b"\x07", b"")


class Terminal:
    """Standard input's terminal: raw while the console is attached, then put back as it
    was, whatever happened (a killed qemu or Cairn cannot leave it raw)."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.attrs: list[Any] | None = None
        self.flags: int | None = None
        try:
            if os.isatty(fd):
                self.attrs = termios.tcgetattr(fd)
            self.flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except (OSError, termios.error):
            pass

    @property
    def is_terminal(self) -> bool:
        return self.attrs is not None

    @contextlib.contextmanager
    def raw(self) -> Iterator[None]:
        """Keys as they are typed, unechoed, with no signal keys (qemu's -nographic mode);
        output processing stays on, so Cairn's own lines still start at the margin."""
        if self.attrs is None:
            yield
            return
        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = self.attrs
        iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                   | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)  # fmt: skip
        lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        cc = list(cc)
        cc[termios.VMIN], cc[termios.VTIME] = 1, 0
        try:
            termios.tcsetattr(self.fd, termios.TCSANOW,
                              [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])  # fmt: skip
            yield
        finally:
            self.restore()

    def restore(self) -> None:
        try:
            if self.attrs is not None:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.attrs)
            if self.flags is not None:
                fcntl.fcntl(self.fd, fcntl.F_SETFL, self.flags)
        except (OSError, termios.error):
            pass


class Console:
    """Moves bytes between this process's standard streams and qemu's: the console on
    ``out`` through a :class:`Screen`, the keys from ``keys_in`` (None: none are read)
    through :class:`Keys`."""

    def __init__(self, screen: Screen, out: int = 1, keys_in: int | None = 0) -> None:
        self.screen = screen
        self.out = out
        self.keys_in = keys_in
        self.keys = Keys()
        self.closed = False  # qemu's output has ended
        self._guest: IO[bytes] | None = None
        self._console: IO[bytes] | None = None
        self._typed = b""  # keys qemu has not taken yet

    def attach(self, console: IO[bytes], guest: IO[bytes] | None) -> None:
        """Read the console from ``console``; write keys to ``guest`` (qemu's stdin)."""
        self._console = console
        self._guest = guest
        if guest is not None:
            os.set_blocking(guest.fileno(), False)
        if guest is None:
            self.keys_in = None
        elif self.keys_in is not None:
            try:
                os.fstat(self.keys_in)
            except OSError:  # standard input is closed: no keys to read
                self.keys_in = None

    def pump(self, timeout: float) -> list[Key]:
        """Wait up to ``timeout`` seconds for output or keys, move what came; the escape
        commands typed meanwhile."""
        assert self._console is not None
        readers = [] if self.closed else [self._console.fileno()]
        if self.keys_in is not None:
            readers.append(self.keys_in)
        writers = [self._guest.fileno()] if self._guest is not None and self._typed else []
        if not readers and not writers:
            return []
        ready, _, _ = select.select(readers, writers, [], timeout)
        commands: list[Key] = []
        if self._console.fileno() in ready:
            self._show(os.read(self._console.fileno(), 65536))
        if self.keys_in is not None and self.keys_in in ready:
            commands = self._type(os.read(self.keys_in, 4096))
        if self._typed:
            self._send()
        return commands

    def finish(self) -> None:
        """Show the rest of the console once qemu has exited."""
        while not self.closed and self._console is not None:
            self._show(os.read(self._console.fileno(), 65536))
        _write_all(self.out, self.screen.flush())

    def _show(self, data: bytes) -> None:
        if not data:
            self.closed = True
            return
        _write_all(self.out, self.screen.feed(data))

    def _type(self, data: bytes) -> list[Key]:
        if not data:  # the end of standard input: nothing more to send
            self.keys_in = None
            if not self._typed:
                self._close_guest()
            return []
        guest, commands = self.keys.feed(data)
        self._typed += guest
        return commands

    def _send(self) -> None:
        if self._guest is None or not self._typed:
            return
        try:
            sent = os.write(self._guest.fileno(), self._typed)
        except BlockingIOError:
            return
        except BrokenPipeError:  # qemu has gone: the keys have nowhere to go
            sent = len(self._typed)
        self._typed = self._typed[sent:]
        if not self._typed and self.keys_in is None:
            self._close_guest()

    def _close_guest(self) -> None:
        if self._guest is not None:
            with contextlib.suppress(OSError):
                self._guest.close()
            self._guest = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # a terminal someone left non-blocking: wait for room
            select.select([], [fd], [], 1.0)
