"""The performance benchmark (issues 8 and 14): one markdown table, then the targets.

    python bench/run.py [--sizes S,M,L,2L] [--runs N] [--engines S,M,L] [--timeout SECONDS]
                        [--keep DIR]

Per size (specs from bench/generate.py): median wall time of the whole
`modelapi-compile build -f SPEC -o DIR` process (verify included, fresh DIR each run), its
peak RSS (os.wait4 rusage of that one child), files written, and `build --check` on the
unchanged output (its build memo answers). Then, on the last build's output, the real engines
on the project's own output for every environment: Helm rendering the chart with
values-<env>.yaml (a `helm` binary on PATH, else the helm_python SDK in a worker process
timing only Chart.load+render) and `kustomize build` / `kubectl kustomize` of each
overlays/<env> (each folder on its own when the overlay is split, as Argo CD and Flux render
it); and the same engines on a plain rendering of the same objects (per
environment one file of every object Kustomize rendered, listed by a bare kustomization, and
a chart that only copies those objects out of its files): the ratio of the two is the cost of
the project's layout. Then the cold start of `modelapi-compile --version` against
`python -c pass`, and schema-validation throughput over all objects of the largest size
measured (one core, warm catalog), then the real kubeconform ($MODELAPI_COMPILE_TOOLS or
PATH) and `validate-manifests` side by side on the same files in the same run (objects/s of
whole processes). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from generate import SIZES  # noqa: E402
from generate import write as write_spec  # noqa: E402

MB = 1024.0  # ru_maxrss is in KiB on Linux


@dataclass
class Process:
    rc: int
    wall: float
    peak_mb: float
    stdout: str
    stderr: str


@dataclass
class Row:
    size: str
    builds: list[float] = field(default_factory=list)
    peak_mb: float = 0.0
    files: int = 0
    objects: int = 0
    render: float | None = None
    kustomize: float | None = None
    # the slowest and the largest of what a controller renders on its own: an environment
    # overlay, or a folder of a split one
    kustomize_max: float | None = None
    overlay_max: int = 0
    plain: float | None = None  # Helm + Kustomize on a plain rendering of the same objects
    check: float | None = None  # build --check on the unchanged output
    failure: str | None = None
    note: str | None = None

    @property
    def build(self) -> float | None:
        return statistics.median(self.builds) if self.builds else None

    @property
    def engines(self) -> float | None:
        if self.render is None or self.kustomize is None:
            return None
        return self.render + self.kustomize

    @property
    def ratio(self) -> float | None:
        if self.build is None or self.engines is None:
            return None
        return self.build / self.engines

    @property
    def layout_cost(self) -> float | None:
        """Engines on our output / engines on a plain rendering of the same objects."""
        if self.engines is None or not self.plain:
            return None
        return self.engines / self.plain


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------

def compiler() -> list[str]:
    """The console script next to this interpreter (not a pyenv shim), else `-m`."""
    script = Path(sys.executable).parent / "modelapi-compile"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "modelapi_compile"]


def measure(cmd: list[str], timeout: float | None = None) -> Process:
    """Run cmd; wall time and the peak RSS of that process tree alone (wait4 rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if timer:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Process(proc.returncode, wall, usage.ru_maxrss / MB,
                       out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def worker(kind: str, *args: str) -> dict[str, Any]:
    """Run this script as a worker process; its JSON answer (raises on failure)."""
    result = subprocess.run([sys.executable, __file__, "--worker", kind, *args],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{result.stderr.strip()}")
    return dict(json.loads(result.stdout))


# -- the build output ----------------------------------------------------------------------

def environments(out: Path) -> list[str]:
    overlays = out / "overlays"
    return sorted(p.name for p in overlays.iterdir() if p.is_dir() and p.name != "base")


def chart_dir(out: Path) -> Path:
    return next(p for p in (out / "charts").iterdir() if p.is_dir())


def namespace_of(out: Path, env: str) -> str:
    """The namespace of the objects of overlays/<env> (set in each of them)."""
    folder = out / "overlays" / env
    data = yaml.safe_load((folder / "kustomization.yaml").read_text())
    if data.get("namespace"):
        return str(data["namespace"])
    for path in sorted(folder.rglob("*.yaml")):
        first = yaml.safe_load(path.read_text())
        if path.name != "kustomization.yaml" and first["kind"] != "Namespace":
            return str(first["metadata"].get("namespace") or "default")
    return "default"


def controller_folders(out: Path, env: str) -> list[Path]:
    """What Argo CD and Flux render on their own: the overlay, or each folder of a split
    one (gitops.overlayParts), whose kustomization.yaml lists folders only."""
    folder = out / "overlays" / env
    resources = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    if all((folder / name).is_dir() for name in resources):
        return [folder / name for name in resources]
    return [folder]


def count_files(out: Path) -> int:
    return sum(1 for p in out.rglob("*") if p.is_file())


def count_documents(text: str) -> int:
    return sum(1 for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc)


# -- engines --------------------------------------------------------------------------------

def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def kustomize(folder: Path) -> Process:
    command = kustomize_command()
    if command is None:
        raise RuntimeError("neither kustomize nor kubectl on PATH")
    run = measure([*command, str(folder)])
    if run.rc != 0:
        raise RuntimeError(f"kustomize {folder} failed:\n{run.stderr.strip()}")
    return run


def run_kustomize(row: Row, out: Path, objects_dir: Path) -> int:
    """Times `kustomize build` of every environment overlay into `row`; objects rendered
    (each environment's kept in objects_dir for the plain reference and the checks)."""
    total, slowest, objects = 0.0, 0.0, 0
    for env in environments(out):
        rendered = []
        for folder in controller_folders(out, env):
            log(f"{row.size}: kustomize {folder.relative_to(out)}")
            run = kustomize(folder)
            count = count_documents(run.stdout)
            total, slowest, objects = total + run.wall, max(slowest, run.wall), objects + count
            row.overlay_max = max(row.overlay_max, count)
            rendered.append(run.stdout if run.stdout.endswith("\n") else run.stdout + "\n")
        (objects_dir / f"{env}.yaml").write_text("---\n".join(rendered), encoding="utf-8")
    row.kustomize, row.kustomize_max = total, slowest
    return objects


HELM_CHUNK = 4 * 1024 * 1024  # Helm refuses chart files over 5 MiB


def plain_reference(out: Path, objects_dir: Path) -> float:
    """Seconds Helm and Kustomize take, over every environment, to render the objects that
    Kustomize rendered from our overlays, laid out as plainly as they can be."""
    total, charts = 0.0, []
    for env in environments(out):
        rendered = (objects_dir / f"{env}.yaml").read_text(encoding="utf-8")
        folder = objects_dir / f"plain-{env}"
        folder.mkdir(exist_ok=True)
        (folder / "objects.yaml").write_text(rendered, encoding="utf-8")
        (folder / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
        total += kustomize(folder).wall
        charts.append(str(plain_chart(objects_dir / f"plain-chart-{env}", rendered)))
    if shutil.which("helm"):
        for chart in charts:
            run = measure(["helm", "template", "plain", chart])
            if run.rc != 0:
                raise RuntimeError(f"helm template {chart} failed:\n{run.stderr.strip()}")
            total += run.wall
        return total
    return total + float(worker("render-plain", *charts)["seconds"])


def plain_chart(chart: Path, rendered: str) -> Path:
    """A chart whose one template copies the rendered objects out of its files, unparsed."""
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "objects").mkdir(exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: plain\nversion: 0.1.0\n")
    (chart / "templates" / "objects.yaml").write_text(
        '{{- range $path, $_ := .Files.Glob "objects/*.yaml" }}\n'
        '{{ $.Files.Get $path }}\n{{- end }}\n')
    documents = rendered.split("\n---\n")
    chunk, index = "", 0
    for document in documents:
        if chunk and len(chunk) + len(document) > HELM_CHUNK:
            (chart / "objects" / f"{index:04d}.yaml").write_text(chunk, encoding="utf-8")
            chunk, index = "", index + 1
        chunk += ("---\n" if not document.startswith("---") else "") + document + "\n"
    (chart / "objects" / f"{index:04d}.yaml").write_text(chunk, encoding="utf-8")
    return chart


def run_helm(out: Path) -> tuple[float, int]:
    """Seconds Helm takes to render the chart for every environment; objects rendered."""
    chart = chart_dir(out)
    if not shutil.which("helm"):
        answer = worker("render", str(out))
        return float(answer["seconds"]), int(answer["objects"])
    total, objects = 0.0, 0
    for env in environments(out):
        values = chart / f"values-{env}.yaml"
        cmd = ["helm", "template", chart.name, str(chart), "-n", namespace_of(out, env)]
        run = measure(cmd + (["-f", str(values)] if values.is_file() else []))
        if run.rc != 0:
            raise RuntimeError(f"helm template {env} failed:\n{run.stderr.strip()}")
        total += run.wall
        objects += count_documents(run.stdout)
    return total, objects


def render_worker(out_dir: str) -> dict[str, Any]:
    import helm_python

    out = Path(out_dir)
    chart = chart_dir(out)
    total, objects = 0.0, 0
    for env in environments(out):
        values_file = chart / f"values-{env}.yaml"
        values = yaml.safe_load(values_file.read_text()) if values_file.is_file() else {}
        namespace = namespace_of(out, env)
        start = time.perf_counter()
        rendered = helm_python.Chart.load(str(chart)).render(
            values or {}, name=chart.name, namespace=namespace)
        total += time.perf_counter() - start
        objects += sum(count_documents(text) for path, text in rendered.items()
                       if path.endswith((".yaml", ".yml")))  # not NOTES.txt, as helm template
    return {"seconds": total, "objects": objects}


def render_plain_worker(*charts: str) -> dict[str, Any]:
    import helm_python

    total = 0.0
    for chart in charts:
        start = time.perf_counter()
        helm_python.Chart.load(chart).render({}, name="plain", namespace="default")
        total += time.perf_counter() - start
    return {"seconds": total}


# -- validation throughput ----------------------------------------------------------------

def validation_inputs(objects_dir: Path, out: Path) -> list[Path]:
    """What a CI job validates: every environment as Kustomize rendered it, and the GitOps
    objects."""
    files = sorted(objects_dir.glob("*.yaml"))
    return files + sorted(p for p in (out / "gitops").rglob("*.yaml")
                          if p.name != "kustomization.yaml")


def load_objects(objects_dir: Path, out: Path) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in validation_inputs(objects_dir, out):
        text = path.read_text(encoding="utf-8")
        objects += [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]
    return objects


def validate_worker(objects_dir: str, out_dir: str, version: str) -> dict[str, Any]:
    from modelapi_compile.verify.kubeschemas import SchemaCatalog

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    objects = load_objects(Path(objects_dir), Path(out_dir))
    catalog = SchemaCatalog(version)
    problems = sum(len(catalog.check(obj)) for obj in objects)  # warm-up pass
    checked, start = 0, time.perf_counter()
    while checked == 0 or time.perf_counter() - start < 1.0:
        for obj in objects:
            catalog.check(obj)
        checked += len(objects)
    elapsed = time.perf_counter() - start
    return {"objects": len(objects), "per_second": checked / elapsed, "problems": problems}


# -- kubeconform and validate-manifests side by side ----------------------------------------

def kubeconform_binary() -> Path | None:
    """kubeconform from $MODELAPI_COMPILE_TOOLS (the tools build's folder), else PATH."""
    folder = os.environ.get("MODELAPI_COMPILE_TOOLS")
    if folder and (Path(folder) / "kubeconform").is_file():
        return Path(folder) / "kubeconform"
    found = shutil.which("kubeconform")
    return Path(found) if found else None


def shared_crds() -> Path:
    default = BENCH.parent.parent / "shared"
    return Path(os.environ.get("MODELAPI_COMPILE_SHARED", default)) / "crds-strict"


def resources_found(output: str) -> int:
    """N of the "Summary: N resources found" line both tools print."""
    for line in output.splitlines():
        if line.startswith("Summary: "):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in:\n{output[-2000:]}")


def side_by_side(objects_dir: Path, out: Path, version: str, runs: int = 3
                 ) -> list[dict[str, Any]]:
    """kubeconform (its default 4 workers, and one) and validate-manifests, strict, on the
    same files with the same schemas (.ci/kubeconform's: kubernetes-validate's and the shared
    CRDs): whole processes, median wall time of `runs` after one warm-up."""
    binary, crds = kubeconform_binary(), shared_crds()
    if binary is None or not crds.is_dir():
        log(f"side by side skipped: kubeconform {binary or 'not found'}, CRDs in {crds}")
        return []
    env = {**os.environ, "PYTHON": sys.executable, "KUBERNETES_VERSION": version,
           "MODELAPI_COMPILE_SHARED": str(crds.parent)}
    flags = subprocess.run([str(BENCH.parent / ".ci" / "kubeconform"), str(binary),
                            "--locations"], env=env, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    files = [str(p) for p in validation_inputs(objects_dir, out)]
    tools = {
        "kubeconform (4 workers)": [str(binary), *flags, "-strict", "-summary", *files],
        "kubeconform -n 1": [str(binary), *flags, "-strict", "-summary", "-n", "1", *files],
        "modelapi-compile validate-manifests": [
            *compiler(), "validate-manifests", "--strict", "--kubernetes-version", version,
            "--schema-location", str(crds), *files],
    }
    rows = []
    for name, command in tools.items():
        log(f"side by side: {name}")
        walls, objects = [], 0
        for n in range(runs + 1):
            run = measure(command)
            if run.rc != 0:
                raise RuntimeError(f"{name} failed (exit {run.rc}):\n{run.stdout[-2000:]}"
                                   f"{run.stderr[-2000:]}")
            objects = resources_found(run.stdout)
            if n:
                walls.append(run.wall)
        wall = statistics.median(walls)
        rows.append({"tool": name, "objects": objects, "wall": wall,
                     "per_second": objects / wall})
    return rows


def side_by_side_table(size: str, rows: list[dict[str, Any]]) -> str:
    load = os.getloadavg()[0]
    lines = [f"Validation side by side ({size}: the same files, strict, the same schemas; whole "
             f"processes on {os.cpu_count()} cores, load average {load:.1f} at the end, median "
             "of 3 after a warm-up):", "",
             "| tool | objects | wall s | objects/s |", "|---|---:|---:|---:|"]
    lines += [f"| {r['tool']} | {r['objects']} | {r['wall']:.2f} | {r['per_second']:.0f} |"
              for r in rows]
    return "\n".join(lines)


def kubernetes_version(spec: Path) -> str:
    data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    return str((data.get("spec") or {}).get("kubernetesVersion") or "1.31.0")


# -- one size ---------------------------------------------------------------------------------

def bench_size(size: str, runs: int, work: Path, timeout: float, with_engines: bool
               ) -> tuple[Row, Path | None]:
    """Build `runs` times, then time the engines on the last output."""
    row = Row(size)
    spec = work / f"spec-{size}.yaml"
    write_spec(size, spec)
    out: Path | None = None
    for n in range(runs):
        out = work / f"out-{size}-{n}"
        shutil.rmtree(out, ignore_errors=True)
        log(f"{size}: build {n + 1}/{runs}")
        run = measure([*compiler(), "build", "-f", str(spec), "-o", str(out)], timeout)
        if run.rc != 0:
            row.failure = "timed out" if run.rc == -9 else f"build exit {run.rc}"
            print(f"build of {size} failed (exit {run.rc}):\n{run.stderr}", file=sys.stderr)
            return row, None
        row.builds.append(run.wall)
        row.peak_mb = max(row.peak_mb, run.peak_mb)
        if n + 1 < runs:
            shutil.rmtree(out)
    assert out is not None
    row.files = count_files(out)
    log(f"{size}: build --check")
    check = measure([*compiler(), "build", "-f", str(spec), "-o", str(out), "--check"], timeout)
    if check.rc != 0:
        row.failure = f"check exit {check.rc}"
        print(f"check of {size} failed:\n{check.stdout}{check.stderr}", file=sys.stderr)
        return row, out
    row.check = check.wall
    if not with_engines:
        row.note = "engines skipped (--engines)"
        return row, out
    try:
        engines(row, out, work / f"objects-{size}")
    except RuntimeError as error:
        row.failure = "engines failed"
        print(f"{size}: {error}", file=sys.stderr)
    return row, out


def engines(row: Row, out: Path, objects_dir: Path) -> None:
    objects_dir.mkdir(exist_ok=True)
    row.objects = run_kustomize(row, out, objects_dir)
    log(f"{row.size}: helm render")
    row.render, helm_objects = run_helm(out)
    if helm_objects != row.objects:
        row.note = f"Helm renders {helm_objects} objects, Kustomize {row.objects}"
    log(f"{row.size}: plain reference")
    row.plain = plain_reference(out, objects_dir)


# -- cold start -------------------------------------------------------------------------------

def cold_start(repeats: int = 10) -> tuple[float, float]:
    """Median seconds of `python -c pass` and `modelapi-compile --version`, interleaved."""
    bare, ours = [], []
    for _ in range(repeats):
        bare.append(measure([sys.executable, "-c", "pass"]).wall)
        ours.append(measure([*compiler(), "--version"]).wall)
    return statistics.median(bare), statistics.median(ours)


# -- report -----------------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def table(rows: list[Row], runs: int) -> str:
    lines = [f"| size | build s (median of {runs}) | peak MB | files | check s "
             "| objects (all envs) | largest overlay or part | helm render s | kustomize s "
             "| slowest overlay or part s | plain reference s | engines / plain "
             "| build / engines | status |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        status = f"FAILED: {r.failure}" if r.failure else (r.note or "ok")
        lines.append(f"| {r.size} | {fmt(r.build)} | {fmt(r.peak_mb or None, 0)} | {r.files} "
                     f"| {fmt(r.check)} | {r.objects} | {r.overlay_max or '-'} "
                     f"| {fmt(r.render)} | {fmt(r.kustomize)} | {fmt(r.kustomize_max)} "
                     f"| {fmt(r.plain)} | {fmt(r.layout_cost, 2, 'x')} "
                     f"| {fmt(r.ratio, 2, 'x')} | {status} |")
    return "\n".join(lines)


def verdict(ok: bool | None, text: str, failed: str | None = None) -> str:
    if failed:
        return f"- NOT MET: {text} ({failed})"
    label = "NOT MEASURED" if ok is None else ("MET" if ok else "NOT MET")
    return f"- {label}: {text}"


def failed(*rows: Row | None) -> str | None:
    reasons = [f"{r.size}: {r.failure}" for r in rows if r and r.failure]
    return "; ".join(reasons) or None


def targets(rows: dict[str, Row], start: tuple[float, float],
            validation: dict[str, Any] | None) -> list[str]:
    large, double = rows.get("L"), rows.get("2L")
    ratio = large.ratio if large else None
    lines = [
        verdict(None if ratio is None else ratio <= 1.0,
                f"L build <= 1.0x render + kustomize: {fmt(ratio, 2, 'x')}", failed(large)),
        verdict(None if ratio is None else ratio <= 0.5,
                f"stretch: L build <= 0.5x render + kustomize: {fmt(ratio, 2, 'x')}",
                failed(large)),
        verdict(start[1] - start[0] <= 0.15,
                f"--version within 0.15 s of a bare interpreter: +{start[1] - start[0]:.3f} s"),
    ]
    rate = validation["per_second"] if validation else None
    lines.append(verdict(None if rate is None else rate >= 5000,
                         f"validation >= 5,000 objects/s on one core: {fmt(rate, 0)}/s"))
    growth = (double.build / large.build if large and double and large.build and double.build
              else None)
    lines.append(verdict(None if growth is None else growth <= 2.2,
                         f"linear: 2L build <= 2.2x L build: {fmt(growth, 2, 'x')}",
                         failed(large, double)))
    peak = large.peak_mb if large and large.builds else None
    lines.append(verdict(None if peak is None else peak < 500,
                         f"peak memory of the L build < 500 MB: {fmt(peak, 0, ' MB')}",
                         None if peak else failed(large)))
    cost = large.layout_cost if large else None
    lines.append(verdict(None if cost is None else cost <= 1.5,
                         "issue 14: L engines on our output <= 1.5x a plain rendering of the "
                         f"same objects: {fmt(cost, 2, 'x')}", failed(large)))
    slowest = large.kustomize_max if large else None
    lines.append(verdict(None if slowest is None else slowest <= 30,
                         "issue 14: every L environment overlay (each part) renders in "
                         f"<= 30 s: slowest {fmt(slowest, 1, ' s')}", failed(large)))
    check = large.check if large else None
    lines.append(verdict(None if check is None else check <= 3,
                         "issue 14: L build --check, unchanged tree, <= 3 s: "
                         f"{fmt(check, 2, ' s')}",
                         failed(large)))
    return lines


def report(rows: list[Row], runs: int, start: tuple[float, float],
           validation: dict[str, Any] | None) -> str:
    bare, ours = start
    parts = [table(rows, runs), "",
             f"Cold start (median of 10): `python -c pass` {bare:.3f} s, "
             f"`modelapi-compile --version` {ours:.3f} s ({ours / bare:.1f}x, "
             f"+{ours - bare:.3f} s)."]
    if validation:
        parts.append(f"Validation throughput ({validation['size']}, {validation['objects']} "
                     f"objects, one core, warm): {validation['per_second']:.0f} objects/s "
                     f"({validation['problems']} schema problems found).")
    if validation and validation["side_by_side"]:
        parts += ["", side_by_side_table(validation["size"], validation["side_by_side"])]
    parts += ["", "Targets (issues 8 and 14):",
              *targets({r.size: r for r in rows}, start, validation)]
    return "\n".join(parts)


# -- main -------------------------------------------------------------------------------------

def measure_validation(rows: list[Row], outputs: dict[str, Path], work: Path
                       ) -> dict[str, Any] | None:
    """Throughput over the objects of L when measured, else of the largest size measured: in
    process on one core, then kubeconform and validate-manifests as whole processes."""
    measured = [r.size for r in rows if r.size in outputs and r.objects]
    if not measured:
        return None
    size = "L" if "L" in measured else measured[-1]
    log(f"validation throughput on {size}")
    version = kubernetes_version(work / f"spec-{size}.yaml")
    try:
        answer = worker("validate", str(work / f"objects-{size}"), str(outputs[size]), version)
        tools = side_by_side(work / f"objects-{size}", outputs[size], version)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(error, file=sys.stderr)
        return None
    return {**answer, "size": size, "side_by_side": tools}


def bench(sizes: list[str], runs: int, work: Path, timeout: float, engines: list[str]) -> str:
    rows: list[Row] = []
    outputs: dict[str, Path] = {}
    for size in sizes:
        row, out = bench_size(size, runs, work, timeout, size in engines)
        rows.append(row)
        if out is not None:
            outputs[size] = out
    log("cold start")
    start = cold_start()
    return report(rows, runs, start, measure_validation(rows, outputs, work))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES),
                        help="comma-separated subset of S,M,L,2L (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="builds per size (median)")
    parser.add_argument("--engines", default="S,M,L",
                        help="sizes to time Helm and Kustomize on (default S,M,L; Kustomize "
                        "is quadratic in objects, so 2L takes it four times L)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per build")
    parser.add_argument("--keep", type=Path, help="keep specs and outputs in this directory")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.engines = [s.strip() for s in args.engines.split(",") if s.strip()]
    if unknown := [s for s in args.sizes + args.engines if s not in SIZES]:
        parser.error(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.worker:
        kind, *rest = args.worker
        workers = {"render": render_worker, "render-plain": render_plain_worker,
                   "validate": validate_worker}
        answer = workers[kind](*rest)
        print(json.dumps(answer))
        return 0
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        print(bench(args.sizes, args.runs, args.keep, args.timeout, args.engines))
        return 0
    with tempfile.TemporaryDirectory(prefix="modelapi-bench-") as work:
        print(bench(args.sizes, args.runs, Path(work), args.timeout, args.engines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
