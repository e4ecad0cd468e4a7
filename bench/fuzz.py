"""Long fuzz run of the spec compiler (issue: hardening), and the hostile-input corpus.

    python bench/fuzz.py [--valid 2000] [--broken 10000]

Valid generated specs must build with full verification (strict schemas, helm lint, Helm
render == the compiler's objects, restricted pods) and build byte-identically twice; broken
ones must be refused with exit 1 and a located message, never a traceback. Hostile YAML must be
refused quickly with bounded memory. Prints one report; exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from click.testing import CliRunner  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from modelapi_compile.cli import cli  # noqa: E402
from modelapi_compile.emit import yamlout  # noqa: E402
from modelapi_compile.pipeline import compile_spec  # noqa: E402
from modelapi_compile.problems import SpecError  # noqa: E402
from modelapi_compile.spec.loader import load_bytes  # noqa: E402
from strategies import broken_specs, specs  # noqa: E402
from test_properties import LOCATED  # noqa: E402

HOSTILE: dict[str, bytes] = {
    "billion laughs (9 levels)": b"a: &a [x,x,x,x,x,x,x,x,x,x]\n" + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n".encode()
        for i in range(8)),
    "deep nesting (100k [)": b"[" * 100_000,
    "deep nesting (block maps)": b"".join(b"  " * i + b"k:\n" for i in range(2_000)),
    "deep nesting (flow, one per line)": b"a:\n" + b"[\n" * 50_000,
    "huge block scalar (7 MiB, short lines)": b"a: |\n" + b"  " + b"x" * 70 + b"\n" * 1
        + (b"  " + b"x" * 70 + b"\n") * 100_000,
    "huge scalar (2 MiB)": b"a: " + b"x" * (2 * 1024 * 1024) + b"\n",
    "huge file (9 MiB)": b"# " + b"x" * (9 * 1024 * 1024) + b"\n",
    "invalid UTF-8": b"apiVersion: \xff\xfe\n",
    "python object tag": b"a: !!python/object/apply:os.system [echo hi]\n",
    "binary tag": b"a: !!binary aGVsbG8=\n",
    "recursive alias": b"a: &a [*a]\n",
    "many documents": b"---\na: 1\n" * 10_000,
}


def run_hostile() -> list[tuple[str, float, float, str]]:
    rows = []
    for name, data in HOSTILE.items():
        tracemalloc.start()
        started = time.perf_counter()
        try:
            load_bytes(data, "hostile.yaml")
            outcome = "ACCEPTED"
        except SpecError as error:
            outcome = error.problems[0].message[:60]
        except Exception as error:  # a traceback would be a bug
            outcome = f"CRASH {type(error).__name__}"
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        rows.append((name, elapsed, peak, outcome))
    return rows


def run_valid(count: int, failures: list[str]) -> float:
    started = time.perf_counter()

    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec=specs())
    def check(spec: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "spec.yaml")
            path.write_text(yamlout.dump(spec), encoding="utf-8")
            try:
                first = compile_spec(str(path), use_helm=True)
                second = compile_spec(str(path), use_helm=True)
            except SpecError as error:
                failures.append(f"valid spec rejected: {error}\n{yamlout.dump(spec)}")
                raise
            if dict(first.files) != dict(second.files):
                failures.append("two builds differ")
                raise AssertionError("nondeterministic")

    try:
        check()
    except Exception as error:  # hypothesis re-raises the minimal failing example
        failures.append(f"valid: {type(error).__name__}: {error}")
    return time.perf_counter() - started


def run_broken(count: int, failures: list[str]) -> float:
    started = time.perf_counter()
    runner = CliRunner()

    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=broken_specs())
    def check(case: tuple[str, Any]) -> None:
        kind, spec = case
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "spec.yaml")
            path.write_text(spec if isinstance(spec, str) else yamlout.dump(spec), "utf-8")
            result = runner.invoke(cli, ["validate", "-f", str(path)])
            ok = (result.exit_code == 1 and "Traceback" not in result.output
                  and LOCATED.search(result.output))
            if not ok:
                failures.append(f"broken ({kind}) not refused cleanly: {result.output[:300]}")
                raise AssertionError(kind)

    try:
        check()
    except Exception as error:
        failures.append(f"broken: {type(error).__name__}: {error}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--valid", type=int, default=2000)
    parser.add_argument("--broken", type=int, default=10000)
    args = parser.parse_args()
    failures: list[str] = []
    hostile = run_hostile()
    broken_time = run_broken(args.broken, failures)
    valid_time = run_valid(args.valid, failures)
    print("| hostile input | refused in | peak memory | message |")
    print("|---|---|---|---|")
    for name, elapsed, peak, outcome in hostile:
        print(f"| {name} | {elapsed * 1000:.1f} ms | {peak:.1f} MiB | {outcome} |")
        if outcome == "ACCEPTED" or outcome.startswith("CRASH"):
            failures.append(f"hostile input {name}: {outcome}")
    print()
    print(f"broken specs: {args.broken} generated, refused cleanly in {broken_time:.0f} s")
    print(f"valid specs: {args.valid} generated, built and verified twice in {valid_time:.0f} s")
    for failure in failures:
        print("FAILURE:", failure)
    print("result:", "PASS" if not failures else f"FAIL ({len(failures)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
