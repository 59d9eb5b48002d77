"""YAML text -> plain Python data, typed the way Go's yaml.v3 types it, with positions.

LinuxKit decodes its YAML with gopkg.in/yaml.v3 into a generic value and validates that
against its JSON schema, so the scalar typing decides what is valid: ``yes``/``no``/``on``/
``off`` are strings, ``0644`` is the integer 420 (a Go octal literal), ``08`` is the float
8.0 and timestamps stay strings. ruamel.yaml only builds the node tree here (its own
constructors follow different rules); the resolution below follows yaml.v3's. Every value
and every mapping key keeps its 1-based file:line:column for error messages.

A YAML file may come from anyone, so reading it is bounded: its size, the nesting of its
mappings and sequences, the length of one scalar, and the values that aliases expand to
(a few hundred bytes of nested aliases would otherwise expand to billions of values).
Each limit is a located error, reached in well under a second.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cairn import log
from cairn.errors import CairnError, Position

# A path into a document: mapping keys and sequence indices, e.g. ("services", 1, "binds").
Path = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INF = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"}
_NEG_INF = {"-.inf", "-.Inf", "-.INF"}
_NAN = {".nan", ".NaN", ".NAN"}
_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_INT64 = (-(2**63), 2**64 - 1)  # yaml.v3 falls back to uint64, then to float
_NUMBER_CHARS = 80  # longer plain scalars are no int64 (nor a number Go would parse)

MAX_BYTES = 8 << 20  # one YAML file
MAX_DEPTH = 64  # nested mappings and sequences
MAX_SCALAR = 1 << 20  # one key or value (inline file contents included)
MAX_VALUES = 1_000_000  # values in the document once aliases are expanded
MAX_ALIASED = 100_000  # of which repeated through aliases


@dataclass
class Parsed:
    """A parsed YAML document with the position of every value and mapping key."""

    data: Any
    file: str
    positions: dict[Path, Position] = field(default_factory=dict)
    key_positions: dict[Path, Position] = field(default_factory=dict)

    def position(self, path: Path) -> Position:
        """The position of the value at ``path``, or of its closest enclosing value."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return Position(self.file)

    def key_position(self, path: Path) -> Position:
        """The position of the mapping key naming ``path`` (falls back to the value)."""
        return self.key_positions.get(path) or self.position(path)


def parse_yaml(text: str, file: str) -> Parsed:
    """Parse the first YAML document of ``text``; ``file`` names it in errors.

    An empty document gives ``None``. Later documents in the same stream are ignored with
    a warning, as LinuxKit ignores them.
    """
    if len(text) > MAX_BYTES:
        raise CairnError(
            f"the file is larger than {MAX_BYTES >> 20} MiB, too large for a configuration",
            position=Position(file),
        )
    yaml = YAML(typ="rt", pure=True)
    yaml.max_depth = MAX_DEPTH
    parsed = Parsed(None, file)
    try:
        documents = list(yaml.compose_all(io.StringIO(text)))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if "maximum depth" in problem:
            problem = f"mappings and sequences nest deeper than {MAX_DEPTH} levels"
        raise CairnError(f"invalid YAML: {problem}", position=where) from exc
    except YAMLError as exc:
        raise CairnError(f"invalid YAML: {exc}", position=Position(file)) from exc
    if not documents:
        return parsed
    if any(not _is_empty(d) for d in documents[1:]):
        log.warn("%s: only the first YAML document is used; the others are ignored", file)
    builder = _Builder(parsed, yaml)
    parsed.data = builder.value(documents[0], ())
    return parsed


def _is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _TAG + "null" and not node.value


class _Builder:
    def __init__(self, parsed: Parsed, yaml: YAML) -> None:
        self.parsed = parsed
        self.resolver = yaml.resolver
        self.active: set[int] = set()  # nodes being built, to catch recursive aliases
        self.seen: set[int] = set()  # nodes built once: building one again expands an alias
        self.values = 0
        self.aliased = 0
        self.repeating = 0  # > 0 while building a node again through an alias

    def where(self, node: Node) -> Position:
        mark = node.start_mark
        return Position(self.parsed.file, mark.line + 1, mark.column + 1)

    @contextlib.contextmanager
    def building(self, node: Node) -> Iterator[None]:
        """Count ``node`` against the expansion limits; refuse an alias to itself."""
        if id(node) in self.active:
            raise CairnError("recursive YAML alias", position=self.where(node))
        again = id(node) in self.seen
        self.seen.add(id(node))
        self.repeating += again
        self.values += 1
        self.aliased += self.repeating > 0
        if self.values > MAX_VALUES or self.aliased > MAX_ALIASED:
            raise CairnError(
                f"the document expands to more than {MAX_VALUES} values, or its aliases "
                f"repeat more than {MAX_ALIASED}: too large for a configuration",
                position=self.where(node),
            )
        self.active.add(id(node))
        try:
            yield
        finally:
            self.active.discard(id(node))
            self.repeating -= again

    def value(self, node: Node, path: Path) -> Any:
        self.parsed.positions.setdefault(path, self.where(node))
        with self.building(node):
            if isinstance(node, ScalarNode):
                return self.scalar(node)
            if isinstance(node, SequenceNode):
                return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
        raise CairnError("unsupported YAML node", position=self.where(node))

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, Position] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge" or (
                isinstance(key_node, ScalarNode) and key_node.value == "<<" and not key_node.style
            ):
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise CairnError("mapping keys must be plain values", position=self.where(key_node))
            key = str(key_node.value)
            if len(key) > MAX_SCALAR:
                raise CairnError(f"a mapping key longer than {MAX_SCALAR} characters",
                                 position=self.where(key_node))  # fmt: skip
            if key in seen:
                first = seen[key]
                raise CairnError(
                    f"mapping key {key!r} already defined at line {first.line}",
                    position=self.where(key_node),
                )
            seen[key] = self.where(key_node)
            self.parsed.key_positions.setdefault((*path, key), seen[key])
            result[key] = self.value(value_node, (*path, key))
        # YAML merge keys (<<): explicit keys win, then earlier merged mappings win.
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise CairnError(
                        "a merge key (<<) needs a mapping or a list of mappings",
                        position=self.where(source),
                    )
                with self.building(source):
                    merged = self.mapping(source, path)
                for key, value in merged.items():
                    result.setdefault(key, value)
        return result

    def scalar(self, node: ScalarNode) -> Any:
        text: str = node.value
        tag: str = node.tag or ""
        if len(text) > MAX_SCALAR:
            raise CairnError(
                f"a value of {len(text)} characters, longer than {MAX_SCALAR}",
                position=self.where(node),
            )
        if node.style is None:
            implicit = self.resolver.resolve(ScalarNode, text, (True, False))
            if tag == implicit:
                return resolve_plain(text)
        # Quoted and block scalars, and explicitly tagged ones.
        if tag in (_TAG + "str", _TAG + "timestamp", _TAG + "binary") or not tag.startswith(_TAG):
            return text
        value = resolve_plain(text)
        expected = {
            _TAG + "int": int,
            _TAG + "float": float,
            _TAG + "bool": bool,
            _TAG + "null": type(None),
        }.get(tag)
        if expected is float and type(value) is int:
            return float(value)
        if expected is not None and type(value) is not expected:
            raise CairnError(
                f"cannot decode {text!r} as {tag[len(_TAG) :]}", position=self.where(node)
            )
        return value


def resolve_plain(text: str) -> Any:
    """The value yaml.v3 gives an untagged plain scalar (YAML 1.2 core schema + Go ints)."""
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text in _INF:
        return float("inf")
    if text in _NEG_INF:
        return float("-inf")
    if text in _NAN:
        return float("nan")
    if not text or text[0] not in "+-.0123456789":
        return text
    plain = text.replace("_", "")
    if len(plain) > _NUMBER_CHARS:
        return text
    if _GO_INT.match(plain):
        number = _go_int(plain)
        if _INT64[0] <= number <= _INT64[1]:
            return number
    if _GO_FLOAT.match(plain):
        real = float(plain)
        # strconv.ParseFloat fails on overflow, and yaml.v3 keeps such a scalar a string.
        return text if math.isinf(real) else real
    return text


def _go_int(text: str) -> int:
    """strconv.ParseInt(text, 0, 64) syntax: 0x, 0o, 0b prefixes and leading-0 octal."""
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    lower = body.lower()
    if lower.startswith("0x"):
        return sign * int(body[2:], 16)
    if lower.startswith("0o"):
        return sign * int(body[2:], 8)
    if lower.startswith("0b"):
        return sign * int(body[2:], 2)
    if len(body) > 1 and body.startswith("0"):
        return sign * int(body[1:], 8)
    return sign * int(body)
