"""Show what a build would change: a unified diff (coloured on a terminal), or with
`--semantic` a comparison of the Kubernetes objects in which moved keys and reordered lists
are not changes."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from typing import Any

from .writer import Change


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


BOOKKEEPING_README = "README.md"


def is_bookkeeping(path: str) -> bool:
    """The build manifest and the chart README restate what other files say."""
    from .writer import MANIFEST

    parts = path.split("/")
    return path == MANIFEST or (len(parts) == 3 and parts[0] == "charts"
                                and parts[2] == BOOKKEEPING_README)


def _differences(old: Any, new: Any, path: str = "") -> Iterator[str]:
    where = path or "(document)"
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            inner = f"{path}.{key}" if path else str(key)
            if key not in old:
                yield f"{inner}: added {_text(new[key])}"
            elif key not in new:
                yield f"{inner}: removed {_text(old[key])}"
            else:
                yield from _differences(old[key], new[key], inner)
    elif isinstance(old, list) and isinstance(new, list):
        yield from _list_differences(old, new, where)
    elif old != new:
        yield f"{where}: {_text(old)} -> {_text(new)}"


def _list_differences(old: list[Any], new: list[Any], where: str) -> Iterator[str]:
    """Items matched by name where they have one (then compared field by field), the rest
    as a multiset: each item only one side has is shown whole."""
    old_named, new_named = _by_name(old), _by_name(new)
    for name in sorted(set(old_named) & set(new_named)):
        yield from _differences(old_named[name], new_named[name], f"{where}[{name}]")
    rest_old = [i for i in old if _name(i) is None or _name(i) not in new_named]
    rest_new = [i for i in new if _name(i) is None or _name(i) not in old_named]
    for item in _minus(rest_old, rest_new):
        yield f"{where}: - {_text(item)}"
    for item in _minus(rest_new, rest_old):
        yield f"{where}: + {_text(item)}"


def _name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) else None


def _by_name(items: list[Any]) -> dict[str, Any]:
    names = [_name(i) for i in items]
    unique = {n for n in names if n is not None and names.count(n) == 1}
    return {n: i for n, i in zip(names, items, strict=True) if n in unique}


def _minus(items: list[Any], others: list[Any]) -> list[Any]:
    remaining = [_text(o) for o in others]
    result = []
    for item in items:
        text = _text(item)
        if text in remaining:
            remaining.remove(text)
        else:
            result.append(item)
    return result


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def semantic_changes(change: Change, new_documents: dict[str, list[Any]]) -> list[str] | None:
    """The object fields that really differ in one changed file (key and list order
    ignored); None when its objects are the same; one line for a file added or removed."""
    from ..verify.engines import load_yaml_documents

    if change.new is None:
        return ["removed"]
    if change.old is None:
        return ["added"]
    if change.path not in new_documents:
        return ["(text)"] if change.old != change.new else None
    try:
        old = load_yaml_documents(change.old)
    except Exception:  # a hand-broken file: every object differs
        old = []
    new = new_documents[change.path]
    if _canonical(old) == _canonical(new):
        return None
    return list(_differences(_by_index(old), _by_index(new)))


def semantic_diff(changes: list[Change], new_documents: dict[str, list[Any]]) -> str:
    """Per changed file, the object fields that really differ; files whose objects are the
    same once key order and list order are ignored are left out."""
    lines = []
    for change in changes:
        found = semantic_changes(change, new_documents)
        if found is None:
            continue
        if found in (["added"], ["removed"]):
            lines.append(f"{'+' if found == ['added'] else '-'} {change.path}")
        elif found == ["(text)"]:
            lines.append(f"~ {change.path} (text)")
        else:
            lines.append(f"~ {change.path}")
            lines += [f"    {d}" for d in found]
    return "".join(line + "\n" for line in lines)


def _by_index(documents: Any) -> Any:
    if isinstance(documents, list) and len(documents) == 1:
        return documents[0]
    if isinstance(documents, list):
        return {str(i): d for i, d in enumerate(documents)}
    return documents
