"""Write a build into an output folder that may hold other people's files.

Ownership: `.modelapi-compile.json` lists every file the last build wrote with its hash, the
spec's hash and the tool version. A build never touches a file the manifest does not list,
refuses to overwrite a generated file that was edited by hand (unless forced), and removes the
generated files the new build no longer produces.

Atomicity: a build first stages the complete new set under `.modelapi-compile.staging/`, then
writes a journal naming every move and deletion, then switches: each staged file is renamed
into place (a rename, never a copy), stale files are removed, the manifest is replaced, and
the journal is deleted last. A crash before the journal exists leaves the old set; after it,
the journal lets the next `build`, `build --check` or `diff` finish the switch first. Every
step of the switch is idempotent, so finishing it twice is harmless.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .emit.files import OutputFiles
from .problems import Problem, SpecError

MANIFEST = ".modelapi-compile.json"
STAGING = ".modelapi-compile.staging"
JOURNAL = ".modelapi-compile.journal"
_TRACE = "MODELAPI_COMPILE_TRACE_WRITES"  # prints each switch step to stderr (fault tests)
# With the value "slow", each step also waits a moment, so that a signal sent on seeing a
# step's line lands before the next step however loaded the machine is.
_SLOW_STEP_SECONDS = 0.5
# The folders a switch is under way in, so an interrupted command can say what it left.
WRITING: list[str] = []


def sha256(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def manifest_text(files: OutputFiles, spec_text: bytes, spec_name: str, stack: str,
                  claims: tuple[str, ...] = (), immutable: dict[str, Any] | None = None) -> str:
    manifest = {
        "generator": "modelapi-compile",
        "version": __version__,
        "stack": stack,
        "spec": spec_name,
        "specSha256": sha256(spec_text),
        "files": {path: sha256(text) for path, text in files},
        # Prune-protected claims of this build: the next build names those it drops.
        "claims": list(claims),
        # Fields the cluster never changes in place, per object: the next build compares.
        "immutable": immutable or {},
    }
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def previous_immutable(root: Path) -> dict[str, Any]:
    """The immutable fields the last build in `root` recorded (none for an older build)."""
    try:
        found = json.loads((root / MANIFEST).read_text("utf-8")).get("immutable", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}


def left_behind_claims(root: Path, claims: tuple[str, ...]) -> list[str]:
    """Claims the last build in `root` owned that this build no longer has: Argo CD, Flux
    and Helm keep them (prune protection), so someone has to delete them by hand."""
    path = root / MANIFEST
    try:
        previous = json.loads(path.read_text("utf-8")).get("claims", [])
    except (OSError, ValueError, AttributeError):
        return []
    return sorted(set(map(str, previous)) - set(claims))


@dataclass(frozen=True)
class Change:
    path: str
    old: str | None  # None: the file is new
    new: str | None  # None: the file goes away


def safe_path(root: Path, relative: str) -> Path:
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


def read_manifest(root: Path) -> dict[str, str]:
    return {str(k): str(v) for k, v in _manifest(root).get("files", {}).items()}


def _manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("files", {}), dict):
            raise ValueError
        return data
    except (ValueError, AttributeError):
        raise SpecError([Problem(str(path), 0, 0, "", "the build manifest is not valid JSON",
                                 "restore it from version control, or delete it and "
                                 "build with --force")]) from None


def _read(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except UnicodeDecodeError:
        return path.read_bytes().decode("utf-8", "replace")


def plan_changes(root: Path, files: OutputFiles, manifest: str) -> list[Change]:
    """What writing `files` (and the manifest) into root would change, by path."""
    recover(root)
    owned = read_manifest(root)
    wanted = dict(files)
    wanted[MANIFEST] = manifest
    changes = []
    for path, text in sorted(wanted.items()):
        old = _read(safe_path(root, path))
        if old != text:
            changes.append(Change(path, old, text))
    for path in sorted(set(owned) - set(wanted)):
        old = _read(safe_path(root, path))
        if old is not None:
            changes.append(Change(path, old, None))
    return changes


def check_ownership(root: Path, files: OutputFiles, *, force: bool, stack: str,
                    spec_name: str) -> list[str]:
    """Refuse to overwrite another stack's build, hand-edited generated files or files the
    tool did not write; with `force`, the warnings of what is overwritten."""
    previous = _manifest(root)
    before = (previous.get("stack"), previous.get("spec"))
    other = previous and (before[0] not in (None, stack) or before[1] != spec_name)
    if other:
        what = (f"stack '{before[0]}' from {before[1]}" if before[0] else f"{before[1]}")
        message = (f"{root} holds the build of {what}; this is stack '{stack}' from "
                   f"{spec_name}")
        if not force:
            raise SpecError([Problem(str(root / MANIFEST), 0, 0, "", message,
                                     "build into another folder (one per stack: its "
                                     "gitops.path), or pass --force to replace that build")])
        return [message + "; replaced (--force): its files are removed"]
    if force:
        return []
    owned = read_manifest(root)
    problems = []
    for path in sorted(set(owned) | {p for p, _ in files}):
        current = _read(safe_path(root, path))
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
    return []


def write_atomic(path: Path, text: str, *, durable: bool = True,
                 temp_dir: Path | None = None) -> None:
    """Write via a temporary file (in `temp_dir`, default beside `path`, on the same file
    system) and a rename; `durable` also fsyncs the data first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=temp_dir or path.parent, prefix=f".{path.name}.",
                                     suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _trace(step: str) -> None:
    mode = os.environ.get(_TRACE)
    if mode:
        print(f"modelapi-compile: step {step}", file=sys.stderr, flush=True)
        if mode == "slow":
            time.sleep(_SLOW_STEP_SECONDS)


def apply_changes(root: Path, changes: list[Change]) -> None:
    """Stage every new file, journal the switch, then switch (see the module docstring)."""
    WRITING.append(str(root))
    _apply(root, changes)  # on an interruption WRITING keeps naming the folder
    WRITING.remove(str(root))


def _apply(root: Path, changes: list[Change]) -> None:
    recover(root)
    staging = root / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    moves, deletions = [], []
    for change in changes:
        safe_path(root, change.path)
        if change.new is None:
            deletions.append(change.path)
        else:
            _trace(f"stage {change.path}")
            write_atomic(staging / change.path, change.new, durable=False)
            moves.append(change.path)
    # One flush of everything staged instead of an fsync per file: the journal, written
    # durably next, must never name staged files that a power cut could lose.
    os.sync()
    _trace("journal")
    # Its temporary file goes in staging, so a kill mid-write leaves nothing at the root.
    staging.mkdir(parents=True, exist_ok=True)
    write_atomic(root / JOURNAL, json.dumps({"moves": moves, "deletions": deletions},
                                            indent=1, sort_keys=True) + "\n", temp_dir=staging)
    _switch(root, moves, deletions)


def recover(root: Path) -> None:
    """Finish a switch that a crash interrupted; drop staging that never got a journal."""
    journal = root / JOURNAL
    if journal.is_file():
        try:
            plan = json.loads(journal.read_text("utf-8"))
        except ValueError:
            plan = None  # a torn journal was never complete: the switch never started
        if plan is not None:
            _switch(root, list(plan["moves"]), list(plan["deletions"]))
            return
        journal.unlink()
    shutil.rmtree(root / STAGING, ignore_errors=True)


def _switch(root: Path, moves: list[str], deletions: list[str]) -> None:
    staging = root / STAGING
    # The manifest moves last, so it names the new set only once the set is in place.
    for path in sorted(moves, key=lambda p: (p == MANIFEST, p)):
        staged = staging / path
        if staged.is_file():  # already moved when an earlier attempt got this far
            target = safe_path(root, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            _trace(f"move {path}")
            os.replace(staged, target)
    for path in deletions:
        target = safe_path(root, path)
        _trace(f"delete {path}")
        target.unlink(missing_ok=True)
        _remove_empty_parents(root, target.parent)
    _fsync_dir(root)
    _trace("finish")
    (root / JOURNAL).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_empty_parents(root: Path, folder: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
