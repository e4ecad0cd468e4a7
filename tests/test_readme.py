"""Every console example of the README and of every docs/*.md runs, in order, in a copy of
this repository (a fresh copy per file), and its output is compared with what the file
shows, so a stale example fails CI.

Sybil (a maintained documentation-testing library) finds the examples: each ```console
block, whose `$ ` lines are commands (run by bash; stdout and stderr as a terminal shows
them) and whose other lines are the expected output, and each ```mermaid block preceded by
`<!-- output of: COMMAND -->`. Paths are normalised (the copy's location is removed); an
expected line `...` stands for any number of lines. `pytest --update-golden` rewrites the
blocks whose output changed, keeping the ones that still match (with their `...`).

The README itself stays short (at most 400 lines) and keeps the sections a newcomer needs;
every relative link of these files points at a file and heading that exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser

from conftest import REPO, kustomize_command, missing_engine

README = REPO / "README.md"
DOCUMENTS = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 400
README_SECTIONS = ("## Install", "## Quick start", "## Concepts", "## A complete example",
                   "## The output, and how Argo CD or Flux picks it up",
                   "## The Secrets to create", "## Local development", "## Read on")
_OUTPUT_OF = re.compile(r"<!-- output of: (.+?) -->\s*$")
_COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__", "build",
                                      "deploy", ".mypy_cache", ".ruff_cache", ".pytest_cache")


@dataclass
class _Block:
    line: int  # of the opening fence in the README
    start: int  # character offsets of the block's content
    end: int
    steps: list[tuple[str, list[str]]]  # (command, expected output lines)


def _blocks(document: Path) -> list[_Block]:
    text = document.read_text()
    blocks = []
    parsers = [CodeBlockParser(language="console"), CodeBlockParser(language="mermaid")]
    for example in Sybil(parsers=parsers).parse(document):
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


def _name(document: Path) -> str:
    return document.relative_to(REPO).as_posix()


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_console_examples(document: Path, tmp_path: Path, update_golden: bool) -> None:
    blocks = _blocks(document)
    if not blocks:
        return  # nothing to run in this file
    if kustomize_command() is None:
        missing_engine("kubectl or kustomize (the validate-manifests example)")
    work = tmp_path / "repo"
    shutil.copytree(REPO, work, ignore=_COPY_IGNORE)
    env = _environment(work)
    text = document.read_text()
    stale, replacements = [], []
    for block in blocks:
        written, changed = [], False
        for command, expected in block.steps:
            actual = _run(command, work, env)
            if not _matches(expected, actual):
                changed = True
                stale.append(f"{_name(document)}:{block.line}: $ {command}\n  expected:\n    "
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
        document.write_text(text)
        return
    assert not stale, (f"stale examples in {_name(document)} (pytest --update-golden "
                       "rewrites them):\n" + "\n".join(stale))


def test_the_examples_are_found() -> None:
    counts = {_name(d): len(_blocks(d)) for d in DOCUMENTS}
    assert counts["README.md"] >= 5
    assert counts["docs/usage.md"] >= 5
    assert sum(counts.values()) >= 11


# --- the README's size and shape, and links ------------------------------------------------


def test_the_readme_is_short_and_has_the_sections_a_newcomer_needs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, len(text.splitlines())
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert all(section in headings for section in README_SECTIONS), headings
    concepts = text[text.index("## Concepts"):text.index("## A complete example")]
    for term in ("**modelAPI**", "**backend**", "**route name**", "**`servedModelName`**"):
        assert term in concepts, term
    for doc in ("docs/usage.md", "docs/reference.md", "docs/production.md",
                "docs/internals.md", "docs/limits.md", "docs/performance.md",
                "docs/changelog.md", "docs/development.md"):
        assert f"]({doc})" in text, doc


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_points_at_a_file_and_heading_that_exist() -> None:
    checked = 0
    for document in DOCUMENTS:
        text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
        for target in _LINK.findall(text):
            if re.match(r"^[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (document.parent / path).resolve() if path else document
            assert file.exists(), f"{_name(document)}: {target}"
            if anchor and file.suffix == ".md":
                headings = [_slug(line.lstrip("#")) for line in file.read_text().splitlines()
                            if line.startswith("#")]
                assert anchor in headings, f"{_name(document)}: {target}"
            checked += 1
    assert checked >= 15


# --- the README's example and Secrets --------------------------------------------------------


def test_the_readmes_example_is_a_valid_spec_of_the_example_file(tmp_path: Path) -> None:
    from modelapi_compile.spec.validate import load_spec

    text = README.read_text()
    section = text[text.index("## A complete example"):text.index("## The output")]
    spec = tmp_path / "readme.yaml"
    spec.write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    trimmed = load_spec(str(spec))
    full = load_spec(str(REPO / "examples" / "agentic.yaml"))
    assert [e.name for e in trimmed.environments] == [e.name for e in full.environments]
    names = [[a.name for a in s.stack.spec.model_apis] + [a.name for a in s.stack.spec.agents]
             for s in (trimmed, full)]
    assert names[0] == names[1]


def test_the_readmes_secrets_are_the_ones_the_example_reads() -> None:
    from modelapi_compile.resolve.stack import resolve
    from modelapi_compile.spec.validate import load_spec

    text = README.read_text()
    section = text[text.index("## The Secrets to create"):text.index("## Local development")]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| ([a-z0-9-]+) ", section, re.MULTILINE)
    listed = {(secret, key, reader) for secret, key, reader in rows}
    read = set()
    for stack in resolve(load_spec(str(REPO / "examples" / "agentic.yaml"))).values():
        for name, workload in stack.values.workloads.items():
            for item in workload.env:
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    read.add((ref["name"], ref["key"], name))
    assert listed == read
    assert f"reads {['zero', 'one', 'two', 'three', 'four', 'five', 'six'][len(listed)]}" in \
        section


def test_the_harness_reads_commands_outputs_and_ellipses() -> None:
    steps = _steps("$ one \\\n--flag\nout 1\nout 2\n$ two\n")
    assert steps == [("one --flag", ["out 1", "out 2"]), ("two", [])]
    assert _matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert _matches(["a", "...", "z"], ["a", "z"])
    assert not _matches(["a", "z"], ["a", "b", "z"])  # a stale example fails
    assert not _matches(["a"], [])


def test_the_known_limits_name_every_accepted_api_server_warning() -> None:
    """tests/test_control_plane.py accepts only the warnings docs/limits.md names."""
    source = (REPO / "tests" / "test_control_plane.py").read_text()
    accepted = source.split("KNOWN_WARNINGS", 1)[1].split(")\n", 1)[0]
    names = re.findall(r'"([a-z0-9.-]+\.[a-z]+)"', accepted)
    assert names
    limits = (REPO / "docs" / "limits.md").read_text()
    for name in names:
        assert name in limits, name
