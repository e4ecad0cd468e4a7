"""Show what a build would change: a unified diff (coloured on a terminal), or with
`--semantic` a comparison of the Kubernetes objects in which moved keys and reordered lists
are not changes."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from typing import Any

from .output import Change


def _colour(line: str) -> str:
    if line.startswith(("+++", "---")):
        return f"\033[1m{line}\033[0m"
    if line.startswith("+"):
        return f"\033[32m{line}\033[0m"
    if line.startswith("-"):
        return f"\033[31m{line}\033[0m"
    if line.startswith("@@"):
        return f"\033[36m{line}\033[0m"
    return line


def unified_diff(changes: list[Change], *, colour: bool = False) -> str:
    chunks = []
    for change in changes:
        old = (change.old or "").splitlines(keepends=True)
        new = (change.new or "").splitlines(keepends=True)
        before = f"a/{change.path}" if change.old is not None else "/dev/null"
        after = f"b/{change.path}" if change.new is not None else "/dev/null"
        for line in difflib.unified_diff(old, new, before, after):
            line = line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            chunks.append(_colour(line[:-1]) + "\n" if colour else line)
    return "".join(chunks)


def _canonical(value: Any) -> Any:
    """Order-free form: maps by key, lists as sorted multisets."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    return value


def _differences(old: Any, new: Any, path: str = "") -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                yield f"{where}: added {_short(new[key])}"
            elif key not in new:
                yield f"{where}: removed"
            else:
                yield from _differences(old[key], new[key], where)
    elif old != new:
        yield f"{path or '(document)'}: {_short(old)} -> {_short(new)}"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def semantic_diff(changes: list[Change], new_documents: dict[str, list[Any]]) -> str:
    """Per changed file, the object fields that really differ; files whose objects are the
    same once key order and list order are ignored are left out."""
    from .verify import load_yaml_documents

    lines = []
    for change in changes:
        if change.new is None:
            lines.append(f"- {change.path}")
            continue
        if change.old is None:
            lines.append(f"+ {change.path}")
            continue
        if change.path not in new_documents:
            if change.old != change.new:
                lines.append(f"~ {change.path} (text)")
            continue
        try:
            old = load_yaml_documents(change.old)
        except Exception:  # a hand-broken file: every object differs
            old = []
        before, after = _canonical(old), _canonical(new_documents[change.path])
        if before == after:
            continue
        lines.append(f"~ {change.path}")
        lines += [f"    {d}" for d in _differences(_by_index(before), _by_index(after))]
    return "".join(line + "\n" for line in lines)


def _by_index(documents: Any) -> Any:
    if isinstance(documents, list) and len(documents) == 1:
        return documents[0]
    if isinstance(documents, list):
        return {str(i): d for i, d in enumerate(documents)}
    return documents
