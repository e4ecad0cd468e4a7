"""Environment patches: deep-merge `environments[].patch` onto `spec`.

Maps merge key by key (null removes a key); lists whose items all have a `name` merge item
by item, matched by name; any other value replaces what the spec had. A patch cannot invent
an item by accident: an unmatched name is an error unless the item says `$patch: add`;
`$patch: delete` removes the items of that name. Positions follow the data, so an error in
merged data points into the patch when the patch set the value, and into the spec otherwise.
"""

from __future__ import annotations

from typing import Any

from ..problems import Path, Problem, SpecError
from .loader import Positions

PATCH_MARKER = "$patch"


class _Merger:
    def __init__(self, source: Positions):
        self.source = source
        self.out = Positions(source.file)
        self.problems: list[Problem] = []

    def copy(self, value: Any, origin: Path, target: Path) -> Any:
        """Take `value` (from `origin` in the file) wholesale to `target`."""
        self.out.origins[target] = origin
        if origin in self.source.values:
            self.out.values[target] = self.source.values[origin]
        if origin in self.source.keys:
            self.out.keys[target] = self.source.keys[origin]
        if isinstance(value, dict):
            return {k: self.copy(v, (*origin, k), (*target, k))
                    for k, v in value.items() if k != PATCH_MARKER}
        if isinstance(value, list):
            return [self.copy(v, (*origin, i), (*target, i)) for i, v in enumerate(value)]
        return value

    def merge(self, base: Any, base_origin: Path, patch: Any, patch_origin: Path,
              target: Path) -> Any:
        if isinstance(base, dict) and isinstance(patch, dict):
            return self._merge_maps(base, base_origin, patch, patch_origin, target)
        if _named_list(base) and isinstance(patch, list) and _named_list(patch):
            return self._merge_named(base, base_origin, patch, patch_origin, target)
        return self.copy(patch, patch_origin, target)

    def _merge_maps(self, base: dict[str, Any], base_origin: Path, patch: dict[str, Any],
                    patch_origin: Path, target: Path) -> dict[str, Any]:
        self.out.values[target] = self.source.values.get(base_origin, (1, 1))
        self.out.origins[target] = base_origin
        if base_origin in self.source.keys:
            self.out.keys[target] = self.source.keys[base_origin]
        result: dict[str, Any] = {}
        for key, value in base.items():
            if key in patch:
                continue
            result[key] = self.copy(value, (*base_origin, key), (*target, key))
        for key, value in patch.items():
            if key == PATCH_MARKER or (value is None and key in base):
                continue  # null removes the key, as in a JSON merge patch
            if key in base:
                result[key] = self.merge(base[key], (*base_origin, key), value,
                                         (*patch_origin, key), (*target, key))
            else:
                result[key] = self.copy(value, (*patch_origin, key), (*target, key))
        return dict(sorted(result.items(), key=lambda kv: _key_order(base, patch, kv[0])))

    def _merge_named(self, base: list[Any], base_origin: Path, patch: list[Any],
                     patch_origin: Path, target: Path) -> list[Any]:
        by_name: dict[str, list[int]] = {}
        for i, item in enumerate(base):
            by_name.setdefault(item["name"], []).append(i)
        patches: dict[int, tuple[Any, Path]] = {}
        deleted: set[int] = set()
        added: list[tuple[Any, Path]] = []
        for j, item in enumerate(patch):
            origin = (*patch_origin, j)
            marker = item.get(PATCH_MARKER)
            if marker not in (None, "add", "delete"):
                self.problems.append(self.source.problem(
                    (*origin, PATCH_MARKER), f"unknown {PATCH_MARKER} value {marker!r}",
                    "use 'add' to add an item or 'delete' to remove one"))
                continue
            indices = by_name.get(item["name"], [])
            if marker == "add":
                if indices:
                    self.problems.append(self.source.problem(
                        (*origin, "name"), f"'{item['name']}' already exists in the spec",
                        f"drop '{PATCH_MARKER}: add' to change the existing item"))
                added.append((item, origin))
            elif not indices:
                known = ", ".join(sorted(by_name)) or "none"
                self.problems.append(self.source.problem(
                    (*origin, "name"), f"no item named '{item['name']}' to patch (known: {known})",
                    f"fix the name, or add '{PATCH_MARKER}: add' to add a new item"))
            elif marker == "delete":
                deleted.update(indices)
            elif len(indices) > 1:
                self.problems.append(self.source.problem(
                    (*origin, "name"), f"{len(indices)} items are named '{item['name']}'",
                    f"'{PATCH_MARKER}: delete' them and '{PATCH_MARKER}: add' the new ones"))
            else:
                patches[indices[0]] = (item, origin)
        result: list[Any] = []
        for i, item in enumerate(base):
            if i in deleted:
                continue
            out = (*target, len(result))
            if i in patches:
                value, origin = patches[i]
                result.append(self.merge(item, (*base_origin, i), value, origin, out))
            else:
                result.append(self.copy(item, (*base_origin, i), out))
        for value, origin in added:
            result.append(self.copy(value, origin, (*target, len(result))))
        self.out.values[target] = self.source.values.get(base_origin, (1, 1))
        self.out.origins[target] = base_origin
        return result


def _named_list(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(item, dict) and isinstance(item.get("name"), str)
                    for item in value))


def _key_order(base: dict[str, Any], patch: dict[str, Any], key: str) -> tuple[int, int]:
    """Keep the spec's key order, patch-only keys after it in patch order."""
    if key in base:
        return (0, list(base).index(key))
    return (1, list(patch).index(key))


def apply_patch(document: dict[str, Any], positions: Positions, env_index: int
                ) -> tuple[dict[str, Any], Positions]:
    """The document with environment `env_index`'s patch merged onto its spec."""
    spec = document["spec"]
    patch = spec["environments"][env_index].get("patch") or {}
    patch_origin: Path = ("spec", "environments", env_index, "patch")
    merger = _Merger(positions)
    if not isinstance(patch, dict):
        raise SpecError([positions.problem(patch_origin, "a patch must be a mapping",
                                           "write fields of spec, e.g. agents: [...]")])
    for key in ("environments", "namespace"):
        if key in patch:
            raise SpecError([positions.problem(
                (*patch_origin, key), f"a patch cannot change spec.{key}",
                "set environments[].namespace instead" if key == "namespace" else
                "environments cannot nest")])
    merged: dict[str, Any] = {}
    for key, value in document.items():
        if key == "spec":
            merged[key] = merger.merge(spec, ("spec",), patch, patch_origin, ("spec",))
        else:
            merged[key] = merger.copy(value, (key,), (key,))
    merger.out.values[()] = positions.values.get((), (1, 1))
    if merger.problems:
        raise SpecError(merger.problems)
    # Environments are validated with the spec itself; the merged copy would repeat them.
    merged["spec"].pop("environments", None)
    return merged, merger.out
