"""Build memos: `build --check` on an unchanged tree answers in about a second.

A full compile is a pure function of its inputs (the same spec always gives the same bytes):
the spec's bytes, name and location, every other file the spec pulls in, the tool's own code
and data, the versions of the libraries that render or verify the output, and whether Helm
verification ran. After every successful compile, `build` records a memo under a key hashed
from exactly those inputs: the SHA-256 of every file the build wants on disk (the ownership
manifest included) and the warnings the compile printed.

`build --check` first computes that key. When a memo exists and every file it lists has, on
disk, exactly the recorded bytes, a full compile would find nothing to report, so the check
answers without compiling. Anything else runs the full compile, which then also prints the
diff: no memo, any changed input, one byte of drift, a missing file, a symbolic link on the
way, a switch that a crash interrupted. Files nobody generated are ignored by both paths
alike; stale generated files are caught by both, since the manifest that names them must be
byte-identical.

Memos live in the user's cache folder (`MODELAPI_COMPILE_CACHE`, else
`$XDG_CACHE_HOME/modelapi-compile`, else `~/.cache/modelapi-compile`), never in the output
folder: a memo vouches that this very tool compiled and verified these bytes, which a file
committed next to the output could not. CI keeps the folder between runs with its cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..problems import Problem

FORMAT = 1
KEEP = 32  # memos kept per user; the least recently used go first
PACKAGES = ("modelapi_compile", "modelapi_compile.schemas")
# Libraries whose version can change what is rendered or what verification accepts.
LIBRARIES = ("click", "fastjsonschema", "helm-python-sdk", "jsonschema", "kubernetes-validate",
             "pydantic", "pydantic-core", "PyYAML", "ruamel.yaml")
_UNFINISHED = (".modelapi-compile.journal", ".modelapi-compile.staging")


def cache_root() -> Path:
    """The user's cache folder of modelapi-compile (it may not exist yet)."""
    base = os.environ.get("MODELAPI_COMPILE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modelapi-compile")
    return Path(base)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tool_fingerprint() -> str:
    """The tool's version, the bytes of every file of its packages (code, chart templates,
    schemas) and the versions of the libraries and Python it runs on."""
    import importlib.util
    from importlib import metadata

    digest = hashlib.sha256(f"{FORMAT}|{__version__}|{sys.version}".encode())
    for package in PACKAGES:
        found = importlib.util.find_spec(package)
        for folder in (found.submodule_search_locations or []) if found else []:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    relative = path.relative_to(folder).as_posix()
                    digest.update(f"{package}/{relative}\0".encode())
                    digest.update(_sha256(path.read_bytes()).encode())
    for library in LIBRARIES:
        try:
            version = metadata.version(library)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{library}={version}\0".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Inputs:
    """What a compile reads: the spec, the files it includes, the options that matter."""

    spec: Path
    spec_bytes: bytes
    helm_verified: bool  # whether the compile renders and compares with Helm

    def key(self) -> str:
        spec = self.spec.resolve()
        text = json.dumps({"tool": tool_fingerprint(), "spec": str(spec),
                           "specSha256": _sha256(self.spec_bytes),
                           "helm": self.helm_verified}, sort_keys=True)
        return _sha256(text.encode())


def _entry_path(key: str) -> Path:
    return cache_root() / "builds" / f"{key}.json"


def record(inputs: Inputs, included: Sequence[str], wanted: Iterable[tuple[str, str]],
           warnings: Sequence[Problem]) -> None:
    """Remember what a successful compile of `inputs` wants on disk; `wanted` is every file
    with its text (manifest included), `included` the files the spec pulled in besides
    itself. Never fails the build: a memo that cannot be written only costs time."""
    files: dict[str, str] = {}
    for path, text in wanted:
        if "\r" in text:
            return  # the full check reads text with universal newlines: no byte shortcut
        files[path] = _sha256(text.encode("utf-8"))
    try:
        included_hashes = {str(Path(p).resolve()): _sha256(Path(p).read_bytes())
                           for p in included}
    except OSError:
        return
    entry = {"format": FORMAT, "included": included_hashes, "files": files,
             "warnings": [warning.as_dict() for warning in warnings]}
    target = _entry_path(inputs.key())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entry, handle, sort_keys=True)
        os.replace(temporary, target)
        _prune(target.parent)
    except OSError:
        pass


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[KEEP:]:
        stale.unlink(missing_ok=True)


@dataclass(frozen=True)
class Verdict:
    files: int  # generated files, the manifest not counted
    warnings: tuple[Problem, ...]  # what the compile warned about, to say again


def up_to_date(inputs: Inputs, root: Path) -> Verdict | None:
    """A Verdict when a memo proves `root` is exactly what a full compile of `inputs` wants;
    None whenever that is not certain (the caller then compiles)."""
    if any(os.path.lexists(root / name) for name in _UNFINISHED):
        return None  # the full path finishes the interrupted switch first
    entry_path = _entry_path(inputs.key())
    try:
        entry = json.loads(entry_path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        return None
    for path, expected in entry.get("included", {}).items():
        if _file_sha256(Path(path)) != expected:
            return None
    files: dict[str, str] = entry.get("files", {})
    if not files or not all(_matches(root, path, sha) for path, sha in files.items()):
        return None
    os.utime(entry_path)  # recently used: pruned last
    from .writer import MANIFEST

    try:
        warnings = tuple(Problem(**warning) for warning in entry.get("warnings", []))
    except TypeError:
        return None  # a memo of another shape: compile
    return Verdict(len([p for p in files if p != MANIFEST]), warnings)


def _file_sha256(path: Path) -> str | None:
    try:
        return _sha256(path.read_bytes())
    except OSError:
        return None


def _matches(root: Path, relative: str, expected: str) -> bool:
    """The file has exactly the expected bytes, and the full path would read it too
    (inside root, no symbolic link on the way)."""
    current = root
    for part in Path(relative).parts:
        if part in ("..", "") or Path(part).is_absolute():
            return False
        current = current / part
        if current.is_symlink():
            return False
    return _file_sha256(current) == expected
