"""Write a build into an output folder that may hold other people's files.

Ownership: `.modelapi-compile.json` lists every file the last build wrote with its hash, the
spec's hash and the tool version. A build never touches a file the manifest does not list,
refuses to overwrite a generated file that was edited by hand (unless forced), and removes the
generated files the new build no longer produces.

One writer at a time: a build holds an exclusive lock on the output folder (flock on the
folder itself, so no lock file can be planted or left behind) from reading the old state to
the end of the switch; `build --check` and `diff` hold a shared one while they read. A second
build of the same folder waits for the first, then plans against what the first wrote.

Atomicity: a build first stages the complete new set (the new manifest always among it)
under `.modelapi-compile.staging/`, then writes a journal naming every move and deletion and
the hash of the staged manifest, then switches: each staged file is renamed into place (a
rename, never a copy), stale files are removed, the manifest is moved last, and the journal
is deleted. A crash before the journal exists leaves the old set; after it, the journal lets
the next `build` finish the switch. `build --check` and `diff` never write: they report an
unfinished switch as drift.

A journal is data, not a command: `build` replays it only when it proves to be a complete
switch of this tool (every path inside the folder, every moved file listed in the staged
manifest with the hash it has in staging, every deleted file listed in the manifest in place,
the staged manifest the one the journal names by hash). Anything else is refused, untouched.
The bookkeeping paths (manifest, journal, staging) are never used through a symbolic link.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..emit.files import OutputFiles
from ..problems import Problem, SpecError

MANIFEST = ".modelapi-compile.json"
STAGING = ".modelapi-compile.staging"
JOURNAL = ".modelapi-compile.journal"
BOOKKEEPING = (MANIFEST, STAGING, JOURNAL)
JOURNAL_FORMAT = 2
_TRACE = "MODELAPI_COMPILE_TRACE_WRITES"  # prints each switch step to stderr (fault tests)
# With the value "slow", each step also waits a moment, so that a signal sent on seeing a
# step's line lands before the next step however loaded the machine is; "slow:<word>" waits
# only at the steps that start with that word (a test that signals at the first move need
# not wait through every staged file).
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
    try:
        previous = _manifest(root).get("claims", [])
    except SpecError:
        return []  # check_ownership reports the broken manifest
    return sorted(set(map(str, previous)) - set(claims)) if isinstance(previous, list) else []


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


def _bookkeeping(root: Path, name: str) -> Path:
    """The manifest, journal or staging folder: never a symbolic link, whatever the folder
    holds (a link there would make the build read or write outside it)."""
    path = root / name
    if path.is_symlink():
        raise SpecError([Problem(str(path), 0, 0, "", "is a symbolic link; modelapi-compile "
                                 "never uses its bookkeeping files through one",
                                 "delete the link (modelapi-compile never makes one), then "
                                 "build again")])
    return path


@contextmanager
def locked(root: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the lock of the output folder: one build writes at a time, and `--check` or
    `diff` read only between writes. A build creates the folder; a reader of a folder that
    does not exist needs no lock. Where flock is missing (Windows) there is no lock."""
    if sys.platform == "win32" or not (exclusive or root.is_dir()):
        yield
        return
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"modelapi-compile: waiting for another modelapi-compile writing {root}",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


def read_manifest(root: Path) -> dict[str, str]:
    return {str(k): str(v) for k, v in _manifest(root).get("files", {}).items()}


def _manifest(root: Path) -> dict[str, Any]:
    path = _bookkeeping(root, MANIFEST)
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
    """What writing `files` (and the manifest) into root would change, by path. Reads only:
    an unfinished switch shows as the files it has not switched yet."""
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


def unfinished(root: Path) -> str | None:
    """What an interrupted build left in root that only `build` resolves, or None."""
    if os.path.lexists(root / JOURNAL):
        return (f"{root / JOURNAL}: a build was interrupted while switching the files; the "
                "folder is part old, part new")
    return None


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


def _file_mode() -> int:
    """What open() would give a new file: 0666 less the umask (0644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, text: str, *, durable: bool = True,
                 temp_dir: Path | None = None) -> None:
    """Write via a temporary file (in `temp_dir`, default beside `path`, on the same file
    system) and a rename; `durable` also fsyncs the data first. The file gets the mode a
    plain write would (mkstemp's 0600 is for the temporary name only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=temp_dir or path.parent, prefix=f".{path.name}.",
                                     suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
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
        slow, _, only = mode.partition(":")
        if slow == "slow" and step.startswith(only):
            time.sleep(_SLOW_STEP_SECONDS)


def apply_changes(root: Path, changes: list[Change], manifest: str) -> None:
    """Stage every new file and the manifest, journal the switch, then switch (see the
    module docstring). The caller holds the lock and has called `recover`."""
    WRITING.append(str(root))
    _apply(root, changes, manifest)  # on an interruption WRITING keeps naming the folder
    WRITING.remove(str(root))


def _fresh_staging(root: Path) -> Path:
    staging = _bookkeeping(root, STAGING)
    if staging.exists() and not staging.is_dir():
        raise SpecError([Problem(str(staging), 0, 0, "", "is not a folder; modelapi-compile "
                                 "stages its writes there", "delete it, then build again")])
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def _apply(root: Path, changes: list[Change], manifest: str) -> None:
    staging = _fresh_staging(root)
    moves, deletions = [], []
    current = ""  # the file being staged, to name in an error instead of its staged copy
    try:
        for change in changes:
            safe_path(root, change.path)
            if change.new is None:
                deletions.append(change.path)
            elif change.path != MANIFEST:
                current = change.path
                _trace(f"stage {change.path}")
                write_atomic(staging / change.path, change.new, durable=False)
                moves.append(change.path)
        # The manifest is always staged: the journal names it by hash, which binds the
        # journal to this staging folder.
        current = MANIFEST
        write_atomic(staging / MANIFEST, manifest, durable=False)
        moves.append(MANIFEST)
        # One flush of everything staged instead of an fsync per file: the journal, written
        # durably next, must never name staged files that a power cut could lose.
        os.sync()
        _trace("journal")
        current = JOURNAL
        plan = {"format": JOURNAL_FORMAT, "moves": moves, "deletions": deletions,
                "manifestSha256": sha256(manifest)}
        # Its temporary file goes in staging, so a kill mid-write leaves nothing at the root.
        write_atomic(_bookkeeping(root, JOURNAL), json.dumps(plan, indent=1, sort_keys=True)
                     + "\n", temp_dir=staging)
    except BaseException as error:
        if not os.path.lexists(root / JOURNAL):  # nothing switched: the old set stays whole
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and current:
            raise OSError(error.errno, error.strerror, str(root / current)) from error
        raise
    _switch(root, moves, deletions)


def recover(root: Path) -> None:
    """Finish a switch that an interrupted build left, when its journal proves to be one;
    drop staging that never got a journal. Only `build` calls this, holding the lock."""
    journal = _bookkeeping(root, JOURNAL)
    staging = _bookkeeping(root, STAGING)
    if not os.path.lexists(journal):
        if staging.exists():
            _fresh_staging(root)
        return
    moves, deletions = _verified_journal(root)
    _switch(root, moves, deletions)


def _refuse_journal(root: Path, why: str) -> SpecError:
    return SpecError([Problem(
        str(root / JOURNAL), 0, 0, "", f"not replayed: {why}; nothing was touched",
        f"modelapi-compile did not write this journal, or its staging folder was changed: "
        f"delete {JOURNAL} and {STAGING}, then build again (with --force if the folder "
        "then holds files that differ from the build manifest)")])


def _regular_file(root: Path, relative: str) -> Path | None:
    """root/relative when it is a regular file reached through no symbolic link."""
    try:
        path = safe_path(root, relative)
    except SpecError:
        return None
    return path if path.is_file() else None


def _verified_journal(root: Path) -> tuple[list[str], list[str]]:
    """The moves and deletions still to do, when the journal is this tool's own complete
    switch (see the module docstring); otherwise a SpecError, with nothing touched."""
    journal = root / JOURNAL
    try:
        plan = json.loads(journal.read_text("utf-8"))
    except (OSError, ValueError):
        raise _refuse_journal(root, "it is not a journal modelapi-compile writes") from None
    if not (isinstance(plan, dict) and plan.get("format") == JOURNAL_FORMAT
            and _strings(plan.get("moves")) and _strings(plan.get("deletions"))
            and isinstance(plan.get("manifestSha256"), str)):
        raise _refuse_journal(root, "it is not a journal this version of modelapi-compile "
                                    "writes")
    moves, deletions = list(plan["moves"]), list(plan["deletions"])
    staging = root / STAGING
    staged_manifest = _regular_file(staging, MANIFEST) if staging.is_dir() else None
    manifest_path = staged_manifest or _regular_file(root, MANIFEST)
    manifest_bytes = manifest_path.read_bytes() if manifest_path else b""
    if MANIFEST not in moves or sha256(manifest_bytes) != plan["manifestSha256"]:
        raise _refuse_journal(root, "the staged build manifest is not the one it names")
    try:
        new = json.loads(manifest_bytes)["files"]
        assert isinstance(new, dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise _refuse_journal(root, "the staged build manifest is not valid") from None
    new[MANIFEST] = plan["manifestSha256"]
    for path in [*moves, *deletions]:
        try:
            safe_path(root, path)
        except SpecError:
            raise _refuse_journal(root, f"{path} is outside the folder or behind a symbolic "
                                        "link") from None
    for path in moves:
        if path not in new or Path(path).parts[0] in BOOKKEEPING[1:]:
            raise _refuse_journal(root, f"it moves {path}, which the staged build manifest "
                                        "does not list")
        source = _regular_file(staging, path) if staging.is_dir() else None
        landed = source or _regular_file(root, path)  # moved already by the interrupted run
        if landed is None or sha256(landed.read_bytes()) != new[path]:
            raise _refuse_journal(root, f"{path} is not in staging with the hash the staged "
                                        "build manifest gives it")
    if staged_manifest is None:
        return moves, []  # the manifest moves after the deletions: they are done
    old = read_manifest(root)
    for path in deletions:
        if path not in old or path in new:
            raise _refuse_journal(root, f"it deletes {path}, which the build manifest in "
                                        "place does not list as a generated file to remove")
    return moves, deletions


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _switch(root: Path, moves: list[str], deletions: list[str]) -> None:
    staging = root / STAGING
    for path in sorted(p for p in moves if p != MANIFEST):
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
    # The manifest moves last, so it names the new set only once the set is in place, and
    # until then the manifest in place vouches for the deletions.
    if (staging / MANIFEST).is_file():
        _trace(f"move {MANIFEST}")
        os.replace(staging / MANIFEST, root / MANIFEST)
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
