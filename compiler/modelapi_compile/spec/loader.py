"""Load a YAML spec into plain data, keeping the line and column of every key and value.

The YAML is composed into nodes by libyaml (PyYAML's C parser) with the YAML 1.2 core
schema's scalar rules, and turned into data here rather than by a YAML constructor, so that
hostile input is refused before it costs anything: duplicate keys, alias expansion past a
bound (billion laughs), recursive aliases, language-specific tags, deep nesting, huge or
non-UTF-8 files. Nesting and line length are bounded by a scan of the text before parsing,
because the C parser recurses without a limit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from yaml.error import MarkedYAMLError, YAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..problems import Path, Problem, SpecError, display_name, format_path

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_EXPANDED_NODES = 1_000_000  # after aliases are expanded
MAX_DEPTH = 64
MAX_SCALAR_CHARS = 1024 * 1024
MAX_LINE_CHARS = 64 * 1024
MAX_INDENT = 512  # columns: far deeper than MAX_DEPTH levels of any sane spec

_YAML_TAG = "tag:yaml.org,2002:"
_INT_PREFIXES = {"0x": 16, "0o": 8}


@dataclass
class Positions:
    """Where each path of the loaded data stood in the file (1-based line, column)."""

    file: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    # Data merged from several places (an environment's patch onto the spec): where each
    # path of this data was written, so a problem names the path the user wrote.
    origins: dict[Path, Path] = field(default_factory=dict)

    def written_at(self, path: Path) -> Path:
        """The path of the file that `path` of this data came from."""
        for cut in range(len(path), -1, -1):
            origin = self.origins.get(path[:cut])
            if origin is not None:
                return (*origin, *path[cut:])
        return path

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """The position of `path`, or of its nearest ancestor that has one."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), (1, 1))

    def problem(self, path: Path, message: str, hint: str = "", *, key: bool = False) -> Problem:
        line, column = self.locate(path, key=key)
        return Problem(self.file, line, column, format_path(self.written_at(path)), message,
                       hint)


@dataclass
class Document:
    data: Any
    positions: Positions


def load_file(path: str) -> Document:
    """Read and load a spec file; every failure is a SpecError naming the file."""
    try:
        raw = FsPath(path).read_bytes() if path != "-" else _read_stdin()
    except OSError as error:
        reason = error.strerror or str(error)
        raise SpecError([Problem(path, 0, 0, "", f"cannot read the file: {reason}")]) from None
    return load_bytes(raw, display_name(path))


def _read_stdin() -> bytes:
    import sys

    return sys.stdin.buffer.read(MAX_FILE_BYTES + 1)


def load_bytes(raw: bytes, file: str) -> Document:
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(
            [Problem(file, 1, 1, "", f"the file is larger than {MAX_FILE_BYTES} bytes",
                     "a stack spec is a few hundred kilobytes at most; split generated input")]
        )
    text = _decode(raw, file)
    root = _compose(text, file)
    positions = Positions(file)
    if root is None:
        raise SpecError([Problem(file, 1, 1, "", "the file is empty",
                                 "start from `modelapi-compile init` or examples/")])
    _check_expansion(root, file)
    data = _Builder(positions).build(root, (), 0)
    return Document(data, positions)


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise SpecError([Problem(file, line, column, "", "the file is not valid UTF-8",
                                 "save it as UTF-8")]) from None


class _Yaml12Loader(yaml.CSafeLoader):
    """libyaml parsing with YAML 1.2 core-schema scalars: `yes`, `on`, `010` are what 1.2
    says (a string, a string, the integer 10), and no timestamps or `=` values."""


_Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
              r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ("merge", r"^<<$", "<"),
):
    _Yaml12Loader.add_implicit_resolver(f"{_YAML_TAG}{_tag}", re.compile(_pattern),
                                        [*_first, ""] if _tag == "null" else list(_first))


def _prescan(text: str, file: str) -> None:
    """Bound line length and nesting before the parser sees the text."""
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise SpecError([Problem(file, number, 1, "", f"a line longer than "
                                     f"{MAX_LINE_CHARS} characters", "a spec has short lines")])
        indent = len(line) - len(line.lstrip(" "))
        if indent > MAX_INDENT:
            raise SpecError([Problem(file, number, 1, "", "the YAML is nested too deeply",
                                     f"a spec needs far fewer than {MAX_DEPTH} levels")])
    depth = 0
    unquoted = re.sub(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\n]|'')*'|#[^\n]*", "", text)
    for match in re.finditer(r"[\[\]{}]", unquoted):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            number = text.count("\n", 0, match.start()) + 1
            raise SpecError([Problem(file, number, 1, "", "the YAML is nested too deeply",
                                     f"a spec needs far fewer than {MAX_DEPTH} levels")])


def _compose(text: str, file: str) -> Node | None:
    _prescan(text, file)
    try:
        documents = list(yaml.compose_all(text, Loader=_Yaml12Loader))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = (error.problem or error.context or "invalid YAML").strip()
        raise SpecError([Problem(file, line, column, "", f"invalid YAML: {message}",
                                 "check the indentation and quoting around this point")]) from None
    except YAMLError as error:
        raise SpecError([Problem(file, 1, 1, "", f"invalid YAML: {error}")]) from None
    except RecursionError:
        raise SpecError([Problem(file, 1, 1, "", "the YAML is nested too deeply",
                                 f"a spec needs far fewer than {MAX_DEPTH} levels")]) from None
    documents = [d for d in documents if d is not None]
    if len(documents) > 1:
        second = documents[1].start_mark
        raise SpecError([Problem(file, second.line + 1, second.column + 1, "",
                                 "the file holds more than one YAML document",
                                 "a spec is one document; remove the extra '---'")])
    return documents[0] if documents else None


def _check_expansion(root: Node, file: str) -> None:
    """Refuse alias bombs and recursive aliases before anything is expanded."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SpecError([_at(file, node, "", "a YAML alias refers to its own anchor",
                                 "anchors cannot contain themselves")])
        active.add(key)
        total = 1
        if isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            total += sum(size(item) for item in node.value)
        active.discard(key)
        sizes[key] = total
        if total > MAX_EXPANDED_NODES:
            raise SpecError([_at(file, node, "",
                                 f"YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes",
                                 "this looks like an alias bomb; write the values out")])
        return total

    try:
        size(root)
    except RecursionError:
        raise SpecError([Problem(file, 1, 1, "", "the YAML is nested too deeply")]) from None


def _at(file: str, node: Node, path: str, message: str, hint: str = "") -> Problem:
    mark = node.start_mark
    return Problem(file, mark.line + 1, mark.column + 1, path, message, hint)


class _Builder:
    """Turns composed nodes into dicts, lists and scalars, recording positions."""

    def __init__(self, positions: Positions):
        self.positions = positions
        self.file = positions.file

    def build(self, node: Node, path: Path, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise SpecError([_at(self.file, node, format_path(path),
                                 f"nested deeper than {MAX_DEPTH} levels")])
        self.positions.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            self._check_tag(node, path, "seq")
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        self._check_tag(node, path, "map")
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _YAML_TAG + "merge":
                merged.update(self._merge_sources(value_node, path, depth))
                continue
            if not isinstance(key_node, ScalarNode):
                raise SpecError([_at(self.file, key_node, format_path(path),
                                     "a mapping key must be a plain string")])
            key = str(key_node.value)
            key_path = (*path, key)
            if key in result:
                first = self.positions.keys[key_path]
                raise SpecError([_at(self.file, key_node, format_path(key_path),
                                     "duplicate key",
                                     f"it is already set at line {first[0]}; keep one")])
            self.positions.keys[key_path] = (key_node.start_mark.line + 1,
                                             key_node.start_mark.column + 1)
            result[key] = self.build(value_node, (*path, key), depth + 1)
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def _merge_sources(self, node: Node, path: Path, depth: int) -> dict[str, Any]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):
            built = self.build(source, path, depth + 1)
            if not isinstance(built, dict):
                raise SpecError([_at(self.file, source, "", "'<<' merges only mappings")])
            merged.update(built)
        return merged

    def _check_tag(self, node: Node, path: Path, kind: str) -> None:
        if node.tag not in (_YAML_TAG + kind, _YAML_TAG + "omap", _YAML_TAG + "set"):
            raise SpecError([_at(self.file, node, format_path(path),
                                 f"the YAML tag {node.tag!r} is not allowed",
                                 "remove the tag; a spec holds plain data only")])

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        value: str = node.value
        if len(value) > MAX_SCALAR_CHARS:
            raise SpecError([_at(self.file, node, format_path(path),
                                 f"a value longer than {MAX_SCALAR_CHARS} characters")])
        tag = node.tag
        if tag == _YAML_TAG + "str" or tag == _YAML_TAG + "timestamp":
            return value
        if tag == _YAML_TAG + "null":
            return None
        if tag == _YAML_TAG + "bool":
            return value.lower() == "true"
        if tag == _YAML_TAG + "int":
            return _to_int(value)
        if tag == _YAML_TAG + "float":
            return _to_float(value)
        if tag == _YAML_TAG + "merge":  # `<<` as a value, not a key: just the string
            return value
        raise SpecError([_at(self.file, node, format_path(path),
                             f"the YAML tag {tag!r} is not allowed",
                             "remove the tag; a spec holds plain data only")])


def _to_int(text: str) -> int:
    cleaned = text.replace("_", "")
    sign = -1 if cleaned.startswith("-") else 1
    digits = cleaned.lstrip("+-")
    base = _INT_PREFIXES.get(digits[:2].lower())
    if base:
        return sign * int(digits[2:], base)
    return sign * int(digits)  # YAML 1.2: leading zeros are decimal


def _to_float(text: str) -> float:
    lowered = text.replace("_", "").lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered.endswith(".nan"):
        return math.nan
    return float(lowered)
