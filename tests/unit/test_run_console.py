"""The console a person reads (cairn.run.console): what is shown of the guest's output,
and what the keys typed become. Output arrives in pieces of any size (a serial line sends
bytes one at a time, a busy guest whole pages); the result never depends on how it was cut.
"""

from __future__ import annotations

import os
import pty
import termios
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cairn.run.console import ESCAPE, Key, Keys, Screen, Terminal
from cairn.run.state import StateDir
from tests.fixtures.cli import cairn

BOOT = (
    b"[    0.00] Linux version 6.1\r\n"
    b"cairn-event 1.67 init\r\n"
    b"cairn-event 2.17 onboot-end 000-dhcpcd 0\r\n"
    b"[    2.17] cairn: onboot 000-dhcpcd ok (0.41s)\r\n"
    b"cairn: not an event line\r\n"
    b"welcome\r\n~ # "
)
PEOPLE = (
    b"[    0.00] Linux version 6.1\r\n"
    b"[    2.17] cairn: onboot 000-dhcpcd ok (0.41s)\r\n"
    b"cairn: not an event line\r\n"
    b"welcome\r\n~ # "
)
# What OVMF and a shell's prompt print on a serial console.
FIRMWARE = (
    b"\x1b[2J\x1b[01;01H\x1b[=3h\x1bcBdsDxe: loading Boot0001\r\n"
    b"\x1b[1m\x1b[33m\x1b[40mMapping table\x1b[0m\x1b[37m\x1b[40m\r\n"
    b"\x1b]0;title\x07Shell> \x07"
)


def _shown(screen: Screen, pieces: list[bytes]) -> bytes:
    return b"".join(screen.feed(p) for p in pieces) + screen.flush()


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def test_event_lines_are_not_shown_by_default() -> None:
    assert _shown(Screen(events=False, plain=False), [BOOT]) == PEOPLE


def test_event_lines_are_shown_with_verbose() -> None:
    assert _shown(Screen(events=True, plain=False), [BOOT]) == BOOT


@given(st.lists(st.integers(min_value=0, max_value=len(BOOT)), max_size=40))
def test_events_are_hidden_however_the_output_is_cut(cuts: list[int]) -> None:
    assert _shown(Screen(events=False, plain=False), _cut(BOOT, cuts)) == PEOPLE


def test_a_prompt_without_a_newline_is_shown_at_once() -> None:
    screen = Screen(events=False, plain=False)
    assert screen.feed(b"~ # ") == b"~ # "
    assert screen.feed(b"\r\nc") == b"\r\n"  # a line starting so may be an event: wait
    assert screen.feed(b"at\r\n") == b"cat\r\n"


def test_control_sequences_are_left_out_when_plain() -> None:
    shown = _shown(Screen(events=False, plain=True), [FIRMWARE])
    assert shown == b"BdsDxe: loading Boot0001\r\nMapping table\r\nShell> "


@given(st.lists(st.integers(min_value=0, max_value=len(FIRMWARE)), max_size=40))
def test_control_sequences_are_left_out_however_the_output_is_cut(cuts: list[int]) -> None:
    shown = _shown(Screen(events=False, plain=True), _cut(FIRMWARE, cuts))
    assert shown == b"BdsDxe: loading Boot0001\r\nMapping table\r\nShell> "


def test_control_sequences_stay_on_a_terminal() -> None:
    assert _shown(Screen(events=False, plain=False), [FIRMWARE]) == FIRMWARE


def test_keys_go_to_the_guest_ctrl_c_included() -> None:
    assert Keys().feed(b"ls\r\x03\x04") == (b"ls\r\x03\x04", [])


def test_ctrl_a_x_quits_and_ctrl_a_p_powers_off_in_either_case() -> None:
    keys = Keys()
    assert keys.feed(b"\x01x") == (b"", [Key.QUIT])
    assert keys.feed(b"ab\x01Pcd") == (b"abcd", [Key.POWER_OFF])
    assert keys.feed(b"\x01h\x01?") == (b"", [Key.HELP, Key.HELP])


def test_ctrl_a_twice_sends_one_ctrl_a_even_across_reads() -> None:
    keys = Keys()
    assert keys.feed(b"\x01") == (b"", [])
    assert keys.feed(b"\x01") == (bytes([ESCAPE]), [])
    assert keys.feed(b"\x01a") == (bytes([ESCAPE]), [])


def test_another_key_after_ctrl_a_is_dropped_as_qemu_drops_it() -> None:
    assert Keys().feed(b"\x01zy") == (b"y", [])


def test_the_terminal_is_raw_while_attached_and_as_it_was_after() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        terminal = Terminal(slave)
        with terminal.raw():
            raw = termios.tcgetattr(slave)
            assert not raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
            assert raw[1] & termios.OPOST  # Cairn's own lines still start at the margin
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_cairn_run_console_shows_the_log_by_the_same_rules(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "vm-state")
    state.create()
    state.console_log.write_bytes(FIRMWARE + b"\r\n" + BOOT)
    shown = cairn("run", "console", "--no-follow", state.root)
    assert shown.returncode == 0, shown.stderr
    people = b"BdsDxe: loading Boot0001\r\nMapping table\r\nShell> \r\n" + PEOPLE
    assert shown.stdout == people.decode().replace("\r\n", "\n")  # read as text
    verbose = cairn("run", "console", "--no-follow", "-v", state.root)
    assert "cairn-event 1.67 init" in verbose.stdout and "\x1b" not in verbose.stdout
