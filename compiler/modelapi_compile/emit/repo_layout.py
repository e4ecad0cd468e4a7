"""Where a build lands in the GitOps repository: the Argo CD Applications and Flux
Kustomizations point at `gitops.path` (relative to the repository root), so a build written
anywhere else is a build those controllers never read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..problems import Problem
from ..spec.loader import load_bytes

GITOPS_PATH = ("spec", "gitops", "path")


def repository_root(folder: Path) -> Path | None:
    """The work tree holding `folder` (which may not exist yet): the nearest folder with a
    `.git` entry (a folder, or a file in a linked worktree or submodule); None outside one."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def normalized(path: str) -> str:
    """`./deploy/x/` -> `deploy/x`; the root is "."."""
    parts = [part for part in path.strip().split("/") if part not in ("", ".")]
    return "/".join(parts) or "."


def gitops_path_warning(spec_file: str, spec_bytes: bytes, out: Path) -> Problem | None:
    """A warning at the spec's gitops.path when `out` is inside a Git work tree at another
    path than gitops.path; None when they agree, when the spec has no gitops section, or
    when `out` is in no work tree (nothing to compare with)."""
    document = load_bytes(spec_bytes, spec_file)
    gitops = _mapping(_mapping(document.data).get("spec")).get("gitops")
    if not isinstance(gitops, dict):
        return None
    target = out.resolve()
    root = repository_root(target)
    if root is None:
        return None
    written = normalized(target.relative_to(root).as_posix())
    declared = gitops.get("path", ".")
    wanted = normalized(declared) if isinstance(declared, str) else "."
    if written == wanted:
        return None
    return document.positions.problem(
        GITOPS_PATH,
        f"this build writes {written} of the repository at {root}, but the Argo CD "
        f"Applications and Flux Kustomizations read {wanted}",
        f"build with -o {root / wanted if wanted != '.' else root}, or set gitops.path: "
        f"{written}")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
