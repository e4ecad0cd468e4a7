"""Write a build into an output folder that may hold other people's files.

The folder's `.modelapi-compile.json` manifest lists every file the last build wrote with its
hash. A build writes each file atomically (temporary file + rename), removes the files the
previous build wrote that this one no longer produces, never touches a file the manifest
does not list, and refuses to overwrite a generated file that was edited by hand.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .emit.files import OutputFiles
from .problems import Problem, SpecError

MANIFEST = ".modelapi-compile.json"


def sha256(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def manifest_text(files: OutputFiles, spec_text: bytes, spec_name: str) -> str:
    manifest = {
        "generator": "modelapi-compile",
        "version": __version__,
        "spec": spec_name,
        "specSha256": sha256(spec_text),
        "files": {path: sha256(text) for path, text in files},
    }
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Change:
    path: str
    old: str | None  # None: the file is new
    new: str | None  # None: the file goes away


def _safe_path(root: Path, relative: str) -> Path:
    """`root/relative`, refusing anything that would leave root or pass a symlink."""
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts or not parts:
        raise SpecError([Problem(relative, 0, 0, "", "refusing to write outside the output "
                                 "folder")])
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise SpecError([Problem(str(current), 0, 0, "", "is a symbolic link; refusing to "
                                     "write through it", "replace it with a real folder/file")])
    return current


def _read_manifest(root: Path) -> dict[str, str]:
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
        return {str(k): str(v) for k, v in data.get("files", {}).items()}
    except (ValueError, AttributeError):
        raise SpecError([Problem(str(path), 0, 0, "", "the build manifest is not valid JSON",
                                 "restore it from version control, or delete it and "
                                 "build with --force")]) from None


def _read(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except UnicodeDecodeError:
        return path.read_bytes().decode("utf-8", "replace")


def plan_changes(root: Path, files: OutputFiles, manifest: str) -> list[Change]:
    """What writing `files` (and the manifest) into root would change, by path."""
    owned = _read_manifest(root)
    wanted = dict(files)
    wanted[MANIFEST] = manifest
    changes = []
    for path, text in sorted(wanted.items()):
        old = _read(_safe_path(root, path))
        if old != text:
            changes.append(Change(path, old, text))
    for path in sorted(set(owned) - set(wanted)):
        old = _read(_safe_path(root, path))
        if old is not None:
            changes.append(Change(path, old, None))
    return changes


def check_ownership(root: Path, files: OutputFiles, *, force: bool) -> None:
    """Refuse to overwrite hand-edited generated files or files the tool did not write."""
    if force:
        return
    owned = _read_manifest(root)
    problems = []
    for path in sorted(set(owned) | {p for p, _ in files}):
        current = _read(_safe_path(root, path))
        if current is None:
            continue
        if path in owned and sha256(current) != owned[path]:
            problems.append(Problem(str(root / path), 0, 0, "", "a generated file was edited "
                                    "by hand", "change the spec instead, or pass --force to "
                                    "overwrite it"))
        elif path not in owned:
            problems.append(Problem(str(root / path), 0, 0, "", "a file modelapi-compile did "
                                    "not write is in the way", "move it, or pass --force"))
    if problems:
        raise SpecError(problems)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def apply_changes(root: Path, changes: list[Change]) -> None:
    # The manifest goes last so it never lists a file that is not there yet.
    ordered = sorted(changes, key=lambda c: (c.path == MANIFEST, c.path))
    for change in ordered:
        target = _safe_path(root, change.path)
        if change.new is None:
            target.unlink(missing_ok=True)
            _remove_empty_parents(root, target.parent)
        else:
            write_atomic(target, change.new)


def _remove_empty_parents(root: Path, folder: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def unified_diff(changes: list[Change]) -> str:
    chunks = []
    for change in changes:
        old = (change.old or "").splitlines(keepends=True)
        new = (change.new or "").splitlines(keepends=True)
        before = f"a/{change.path}" if change.old is not None else "/dev/null"
        after = f"b/{change.path}" if change.new is not None else "/dev/null"
        chunks.append("".join(difflib.unified_diff(old, new, before, after)))
    return "".join(chunks)
