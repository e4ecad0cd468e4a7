"""Deterministic YAML text for everything the build writes.

One small emitter instead of a general YAML library so that the bytes are ours: keys keep the
order the emitters built, and a string is left plain only when YAML 1.1 (Helm, which reads
like go-yaml v2) and YAML 1.2 (Kustomize, go-yaml v3) both read it back as the same string.
Anything else is double-quoted.

GitOps repositories lint what they hold, so the text passes yamllint's default rules:
sequences are indented under their key, and a line that would pass 80 characters is folded
at spaces (plain and double-quoted scalars fold a line break into one space) or, for one long
word, moved onto its own line below the key. Only `|` block text (scripts) cannot be folded.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

# Plain scalars either YAML version could resolve to something other than a string.
_NOT_A_STRING = re.compile(
    r"""^(?:
        ~|null|Null|NULL
      | y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
      | [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?     # sexagesimal (1.1)
      | [-+]?(?:0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)   # ints, both versions
      | [-+]?(?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][-+]?[0-9]+)?   # floats, both versions
      | [-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
      | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*                      # timestamps (1.1)
      | =|<<
    )$""",
    re.VERBOSE,
)
_PLAIN_CHAR = r"[A-Za-z0-9_./@()+=,;$%*^&!-]"
_PLAIN_SAFE = re.compile(rf"^[A-Za-z0-9_./(]{_PLAIN_CHAR}*(?:[ :]{_PLAIN_CHAR}+)*$")
WIDTH = 80  # yamllint's default line-length
_NEEDS_ESCAPE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff\ufeff]"
)


def is_plain_safe(text: str) -> bool:
    """Can `text` stand unquoted and still be this exact string in YAML 1.1 and 1.2?"""
    if not text or not _PLAIN_SAFE.fullmatch(text) or _NOT_A_STRING.fullmatch(text):
        return False
    # ': ' would start a mapping, ' #' a comment; a trailing ':' or '-' is fine but rare.
    return ": " not in text and " #" not in text and not text.endswith(":")


def quote(text: str) -> str:
    """A double-quoted YAML scalar (JSON's escapes are valid YAML escapes)."""
    quoted = json.dumps(text, ensure_ascii=False)
    return _NEEDS_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if "." not in mantissa:  # YAML 1.1 floats need a dot, and a signed exponent
            mantissa += ".0"
        return mantissa + (e + exponent if e else "")
    if isinstance(value, str):
        return value if is_plain_safe(value) else quote(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _block_literal(text: str, indent: str) -> str | None:
    """`|` block text for multi-line strings that round-trip exactly, else None."""
    if "\n" not in text.rstrip("\n") or _NEEDS_ESCAPE.search(text) or "\r" in text:
        return None
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    lines = body.split("\n")
    if any(line != line.rstrip(" \t") for line in lines) or lines[0][:1] in (" ", "\t"):
        return None
    chomp = {0: "-", 1: ""}.get(trailing, "+")
    if chomp == "+":
        return None
    out = [f"|{chomp}"]
    out += [f"{indent}{line}" if line else "" for line in lines]
    return "\n".join(out)


class _Writer:
    """Block-style YAML lines; with `shared`, repeated collections become anchors and
    aliases (`&s1` ... `*s1`), which keeps very large values files small."""

    def __init__(self, shared: set[str] | None = None):
        self.shared = shared or set()
        self.anchors: dict[str, str] = {}

    def _reference(self, value: Any) -> tuple[str, bool]:
        """("&s1", False) for a first occurrence, ("*s1", True) after; ("", False) if not
        shared."""
        if not self.shared or not isinstance(value, (dict, list)) or not value:
            return "", False
        signature = _signature(value)
        if signature not in self.shared:
            return "", False
        if signature in self.anchors:
            return "*" + self.anchors[signature], True
        self.anchors[signature] = f"s{len(self.anchors) + 1}"
        return "&" + self.anchors[signature], False

    def lines(self, value: Any, indent: int) -> Iterable[str]:
        pad = " " * indent
        if isinstance(value, dict):
            if not value:
                yield pad + "{}"
                return
            for key, item in value.items():
                yield from self.entry(pad + scalar(str(key)) + ":", item, indent, in_list=False)
        elif isinstance(value, list):
            if not value:
                yield pad + "[]"
                return
            for item in value:
                yield from self.entry(pad + "-", item, indent, in_list=True)
        else:
            yield pad + scalar(value)

    def entry(self, head: str, item: Any, indent: int, *, in_list: bool) -> Iterable[str]:
        child = indent + 2
        reference, is_alias = self._reference(item)
        if is_alias:
            yield f"{head} {reference}"
        elif reference:
            yield f"{head} {reference}"
            yield from self.lines(item, child)
        elif isinstance(item, dict) and item:
            if in_list:
                nested = list(self.lines(item, child))
                yield head + " " + nested[0].lstrip()
                yield from nested[1:]
            else:
                yield head
                yield from self.lines(item, child)
        elif isinstance(item, list) and item:
            yield head
            yield from self.lines(item, child)
        elif isinstance(item, str) and "\n" in item:
            block = _block_literal(item, " " * child)
            if block is not None:
                yield head + " " + block
            else:
                yield from _fitted(head, quote(item), child, in_list=in_list)
        else:
            empty = "{}" if isinstance(item, dict) else "[]" if isinstance(item, list) else None
            yield from _fitted(head, empty or scalar(item), child, in_list=in_list)


def _fitted(head: str, text: str, indent: int, *, in_list: bool) -> Iterable[str]:
    """`head text` within WIDTH: folded at single spaces, or a lone long word on its own
    line below a key (yamllint allows an over-long line that is one word)."""
    if len(head) + 1 + len(text) <= WIDTH:
        yield f"{head} {text}"
        return
    pieces = _fold_points(text)
    if len(pieces) > 1:
        if not in_list and len(head) + 1 + len(pieces[0]) > WIDTH:
            yield head  # the first word is long: alone on the next line, as below
            line = " " * indent + pieces[0]
        else:
            line = f"{head} {pieces[0]}"
        for piece in pieces[1:]:
            if len(line) + 1 + len(piece) <= WIDTH:
                line += " " + piece
            else:
                yield line
                line = " " * indent + piece
        yield line
    elif in_list:
        yield f"{head} {text}"  # `- word`: yamllint's non-breakable-word exception
    else:
        yield head
        yield " " * indent + text


def _fold_points(text: str) -> list[str]:
    """`text` split at the spaces where a line break may stand instead: a single space
    between two words, the next starting with a letter or digit (so a continuation line never
    starts a comment, a sequence entry or an indicator), the previous not ending in an escape
    character. Inside double quotes no character is an indicator, so a continuation line
    may start with any (an escape like JSON's `\\"`, or PromQL's `/`): a long word then
    stands alone on its line, as yamllint allows."""
    pieces = [""]
    quoted = text.startswith('"')
    for i, char in enumerate(text):
        before, after = text[i - 1:i], text[i + 1:i + 2]
        if char == " " and pieces[-1] and before not in (" ", "\\") and (
                after.isalnum() or (quoted and after not in ("", " "))):
            pieces.append("")
        else:
            pieces[-1] += char
    return pieces


def _signature(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _repeated(value: Any, min_chars: int) -> set[str]:
    """Signatures of collections of at least `min_chars` that occur more than once."""
    counts: dict[str, int] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            return
        signature = _signature(node)
        if len(signature) >= min_chars:
            counts[signature] = counts.get(signature, 0) + 1
        for child in children:
            walk(child)

    walk(value)
    return {signature for signature, count in counts.items() if count > 1}


def comment(text: str, indent: int = 0, *, hang: int = 0) -> str:
    """`text` as `#` comment lines within WIDTH (words are never broken); continuation lines
    are indented `hang` spaces more after the `#`."""
    import textwrap

    pad = " " * indent + "# "
    lines = textwrap.wrap(text, WIDTH, initial_indent=pad, subsequent_indent=pad + " " * hang,
                          break_long_words=False, break_on_hyphens=False)
    return "".join(line + "\n" for line in lines) if lines else pad.rstrip() + "\n"


def dump(value: Any) -> str:
    """One YAML document, ending in a newline."""
    return "\n".join(_Writer().lines(value, 0)) + "\n"


def dump_compact(value: Any, *, above: int = 2 * 1024 * 1024, min_chars: int = 64) -> str:
    """Like `dump`, but when the text would exceed `above` characters, repeated collections
    are written once with an anchor and referenced by alias elsewhere (Helm refuses chart
    files over 5 MiB; the values of thousands of similar workloads repeat a lot)."""
    text = dump(value)
    if len(text) <= above:
        return text
    return "\n".join(_Writer(_repeated(value, min_chars)).lines(value, 0)) + "\n"


def dump_all(documents: Iterable[Any]) -> str:
    return "".join("---\n" + dump(doc) for doc in documents)
