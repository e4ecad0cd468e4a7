"""Where the control plane's binaries are: KUBEBUILDER_ASSETS (envtest's folder of
kube-apiserver and etcd), MODELAPI_COMPILE_TOOLS, the project's build cache (tools/build.sh
writes it), then PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

HOW_TO_GET = (
    "build them from source with tools/build.sh in a clone of modelapi-compile (it prints the "
    "folder; set MODELAPI_COMPILE_TOOLS to it), or set KUBEBUILDER_ASSETS to an envtest folder "
    "(setup-envtest use) holding kube-apiserver and etcd, with kube-controller-manager, "
    "kube-scheduler and kwok (sigs.k8s.io/kwok) in the same folder or on PATH")


class MissingBinaries(Exception):
    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__(f"missing {', '.join(missing)}: {HOW_TO_GET}")


def cache_root() -> Path:
    """The user's cache folder of modelapi-compile (build memos and built tools)."""
    if os.environ.get("MODELAPI_COMPILE_CACHE"):
        return Path(os.environ["MODELAPI_COMPILE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "modelapi-compile")


def search_folders() -> list[Path]:
    folders = [Path(os.environ[name]) for name in ("KUBEBUILDER_ASSETS", "MODELAPI_COMPILE_TOOLS")
               if os.environ.get(name)]
    builds = cache_root() / "tools"
    if builds.is_dir():
        # Newest build first: a later go.sum supersedes an older one.
        found = [p / "bin" for p in builds.iterdir() if (p / "bin").is_dir()]
        folders += sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
    return folders


def find(name: str) -> str | None:
    for folder in search_folders():
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def require(names: tuple[str, ...] = CONTROL_PLANE) -> dict[str, str]:
    found = {name: find(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise MissingBinaries(missing)
    return {name: path for name, path in found.items() if path is not None}
