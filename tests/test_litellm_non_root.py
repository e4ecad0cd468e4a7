"""LiteLLM with a database starts as non-root, as the kubelet sees the rendered pod: the
pinned image is a release whose Prisma CLI and engines any UID reads (LiteLLM 1.90.6, PR
#33853: baked under /opt/prisma, with PRISMA_* variables in the image pointing there), the
pod runs as the shared UID on a read-only root, leaves the image's PRISMA_* variables
alone, and every place the proxy and Prisma's wrapper write at start-up is a writable
volume."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

from cluster_models import workloads
from conftest import ENGINES, render_spec
from modelapi_compile.resolve.pod_security import level_violations

SPEC = """\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {name: db}
spec:
  namespace: llm
  modelAPIs:
    - name: gateway
      litellm:
        masterKeySecret: {name: litellm-master, key: master-key}
        databaseUrlSecret: {name: litellm-db, key: url}
        database: {host: 10.20.0.15, port: 5432}
        models:
          - {name: gpt-4o-mini, url: "https://api.openai.com/v1", provider: openai}
"""
FIRST_RELEASE_FOR_ANY_UID = (1, 90, 6)


def _writable_mounts(pod: dict[str, Any]) -> list[PurePosixPath]:
    writable = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    return [PurePosixPath(m["mountPath"]) for m in pod["containers"][0]["volumeMounts"]
            if m["name"] in writable and not m.get("readOnly")]


@pytest.fixture(scope="module")
def rendered(helm: Any, kustomize: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return render_spec(SPEC, tmp_path_factory.mktemp("db"), helm, kustomize)


@pytest.mark.parametrize("engine", ENGINES)
def test_litellm_with_a_database_starts_as_the_shared_uid(rendered: Any, engine: str) -> None:
    (proxy,) = list(workloads(rendered[engine]["default"]))
    pod = proxy["spec"]["template"]["spec"]
    assert level_violations(pod, "restricted") == []
    assert pod["securityContext"]["runAsUser"] == 65532
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    tag = container["image"].rsplit(":", 1)[1].removeprefix("v")
    release = tuple(int(part) for part in tag.split("-")[0].split("."))
    assert release >= FIRST_RELEASE_FOR_ANY_UID, container["image"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "DATABASE_URL" in env
    assert not [name for name in env if name.startswith("PRISMA_")]  # the image's hold
    home = env["HOME"]
    writes = {
        "HOME": home,
        "XDG_CACHE_HOME": env["XDG_CACHE_HOME"],
        "npm cache (Prisma's wrapper)": f"{home}/.npm",
        "migrations": env["LITELLM_MIGRATION_DIR"],
        "tempfile": "/tmp",
    }
    mounts = _writable_mounts(pod)
    for writer, path in writes.items():
        assert path and any(PurePosixPath(path).is_relative_to(m) for m in mounts), (
            writer, path, mounts)
