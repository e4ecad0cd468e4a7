"""Every console example of the README runs, in order, in a copy of this repository, and its
output is compared with what the README shows, so a stale example fails CI.

Sybil (a maintained documentation-testing library) finds the examples: each ```console
block, whose `$ ` lines are commands (run by bash; stdout and stderr as a terminal shows
them) and whose other lines are the expected output, and each ```mermaid block preceded by
`<!-- output of: COMMAND -->`. Paths are normalised (the copy's location is removed); an
expected line `...` stands for any number of lines. `pytest --update-golden` rewrites the
blocks whose output changed, keeping the ones that still match (with their `...`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser

from conftest import REPO, kustomize_command, missing_engine

README = REPO / "README.md"
_OUTPUT_OF = re.compile(r"<!-- output of: (.+?) -->\s*$")
_COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__", "build",
                                      "deploy", ".mypy_cache", ".ruff_cache", ".pytest_cache")


@dataclass
class _Block:
    line: int  # of the opening fence in the README
    start: int  # character offsets of the block's content
    end: int
    steps: list[tuple[str, list[str]]]  # (command, expected output lines)


def _blocks(text: str) -> list[_Block]:
    blocks = []
    parsers = [CodeBlockParser(language="console"), CodeBlockParser(language="mermaid")]
    for example in Sybil(parsers=parsers).parse(README):
        source = str(example.parsed)
        content_start = text.index(source, example.start)
        if text[example.start:content_start].strip().startswith("```mermaid"):
            comment = _OUTPUT_OF.search(text[:example.start].rstrip() + "\n")
            if comment is None:
                continue  # a picture without a command is not an example
            steps = [(comment.group(1), source.splitlines())]
        else:
            steps = _steps(source)
        blocks.append(_Block(example.line, content_start, content_start + len(source), steps))
    return blocks


def _steps(source: str) -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    lines = source.splitlines()
    while lines:
        line = lines.pop(0)
        assert line.startswith("$ "), f"output before any command: {line!r}"
        command = line[2:]
        while command.endswith("\\") and lines:
            command = command[:-1] + lines.pop(0)
        output = []
        while lines and not lines[0].startswith("$ "):
            output.append(lines.pop(0))
        steps.append((command, output))
    return steps


def _run(command: str, work: Path, env: dict[str, str]) -> list[str]:
    result = subprocess.run(["bash", "-c", command], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    text = result.stdout.replace(str(work) + "/", "").replace(str(work), ".")
    return [line.rstrip() for line in text.splitlines()]


def _matches(expected: list[str], actual: list[str]) -> bool:
    pattern = "".join("(?:.*\n)*?" if line == "..." else re.escape(line) + "\n"
                      for line in expected)
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


def _environment(work: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", "HOME": str(work),
            "COLUMNS": "80"}


def test_readme_console_examples(tmp_path: Path, update_golden: bool) -> None:
    if kustomize_command() is None:
        missing_engine("kubectl or kustomize (README's validate-manifests example)")
    work = tmp_path / "repo"
    shutil.copytree(REPO, work, ignore=_COPY_IGNORE)
    env = _environment(work)
    text = README.read_text()
    blocks = _blocks(text)
    assert len(blocks) >= 8
    stale, replacements = [], []
    for block in blocks:
        written, changed = [], False
        for command, expected in block.steps:
            actual = _run(command, work, env)
            if not _matches(expected, actual):
                changed = True
                stale.append(f"README.md:{block.line}: $ {command}\n  expected:\n    "
                             + "\n    ".join(expected) + "\n  got:\n    "
                             + "\n    ".join(actual))
            written.append((command, expected if _matches(expected, actual) else actual))
        if changed:
            replacements.append((block, written))
    if update_golden and replacements:
        for block, written in sorted(replacements, key=lambda r: -r[0].start):
            mermaid = len(block.steps) == 1 and not text[block.start:].startswith("$ ")
            body = ("\n".join(written[0][1]) if mermaid else
                    "\n".join(f"$ {c}" + "".join("\n" + o for o in out) for c, out in written))
            text = text[:block.start] + body + "\n" + text[block.end:]
        README.write_text(text)
        return
    assert not stale, ("stale README examples (pytest --update-golden rewrites them):\n"
                       + "\n".join(stale))


def test_the_harness_reads_commands_outputs_and_ellipses() -> None:
    steps = _steps("$ one \\\n--flag\nout 1\nout 2\n$ two\n")
    assert steps == [("one --flag", ["out 1", "out 2"]), ("two", [])]
    assert _matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert _matches(["a", "...", "z"], ["a", "z"])
    assert not _matches(["a", "z"], ["a", "b", "z"])  # a stale example fails
    assert not _matches(["a"], [])
