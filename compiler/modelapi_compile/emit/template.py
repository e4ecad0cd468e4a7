"""`modelapi-compile template`: what `helm template` renders for one environment, using a
`helm` binary when one is on PATH, otherwise the Helm SDK."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..problems import Problem, SpecError
from ..verify.engines import HELM_SDK_MISSING, helm_sdk


def render_environment(spec_path: str, environment: str) -> str:
    from ..pipeline import compile_spec

    compiled = compile_spec(spec_path, use_helm=False, keep_objects=True)
    envs = {e.environment: e for e in compiled.environments}
    if environment not in envs:
        raise SpecError([Problem(spec_path, 0, 0, "", f"no environment named '{environment}'",
                                 "known: " + ", ".join(sorted(envs)))])
    env = envs[environment]
    with tempfile.TemporaryDirectory(prefix="modelapi-compile-") as tmp:
        for path, text in compiled.files:
            if path.startswith("charts/"):
                Path(tmp, path).parent.mkdir(parents=True, exist_ok=True)
                Path(tmp, path).write_text(text, encoding="utf-8")
        chart = Path(tmp, "charts", env.name)
        values = chart / f"values-{environment}.yaml"
        helm = shutil.which("helm")
        if helm:
            result = subprocess.run(
                [helm, "template", env.name, str(chart), "-f", str(values),
                 "--namespace", env.namespace], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"helm template failed: {result.stderr.strip()}")
            return result.stdout.replace(tmp + "/", "")
        sdk = helm_sdk()
        if sdk is None:
            raise SpecError([Problem(spec_path, 0, 0, "", HELM_SDK_MISSING,
                                     "reinstall modelapi-compile (helm-python-sdk is one of "
                                     "its dependencies), or put a helm binary on PATH")])
        import yaml

        overrides = yaml.load(values.read_text("utf-8"), Loader=yaml.CSafeLoader) or {}
        output = sdk.Chart.load(str(chart)).render(overrides, name=env.name,
                                                   namespace=env.namespace)
    chunks = []
    for name, text in sorted(output.items()):
        if name.endswith("NOTES.txt"):
            continue
        source = name.split("/", 1)[-1] if "/" in name else name
        for document in text.split("\n---\n"):
            body = document.strip("\n").removeprefix("---").strip("\n")
            if body:
                chunks.append(f"---\n# Source: {env.name}/{source}\n{body}\n")
    return "".join(chunks)
