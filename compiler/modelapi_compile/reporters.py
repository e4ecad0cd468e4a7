"""Report `validate-manifests` results as text, JSON, JUnit XML or GitHub annotations."""

from __future__ import annotations

import json
from collections import Counter
from xml.etree import ElementTree

from .verify.manifests import Result


def summary(results: list[Result]) -> str:
    counts = Counter(r.status for r in results)
    files = len({r.file for r in results})
    return (f"Summary: {len(results)} resource{'s' if len(results) != 1 else ''} found in "
            f"{files} file{'s' if files != 1 else ''} - Valid: {counts['valid']}, "
            f"Invalid: {counts['invalid']}, Errors: {counts['error']}, "
            f"Skipped: {counts['skipped']}")


def as_text(results: list[Result], verbose: bool = False) -> str:
    lines = []
    not_objects: dict[str, int] = {}
    for r in results:
        if r.line == 0 and r.status == "skipped":  # a chart, kustomize or build file
            if verbose:
                lines.append(f"{r.file} - skipped: {r.message}")
            else:
                not_objects[r.message] = not_objects.get(r.message, 0) + 1
            continue
        if r.line == 0:  # a path that could not be read: no document to name
            lines.append(f"{r.file} - {r.message}")
            continue
        where = f"{r.file}:{r.line} (document {r.document})"
        for warning in r.warnings:
            lines.append(f"{where} - {r.title} warning: {warning}")
        if r.status == "invalid":
            for p in r.problems:
                lines.append(f"{where} - {r.title} is invalid: "
                             + (f"{p.path}: {p.message}" if p.path else p.message))
        elif r.status == "error":
            lines.append(f"{where} - {r.title} failed validation: {r.message}")
        elif verbose:
            lines.append(f"{where} - {r.title} is {r.status}"
                         + (f": {r.message}" if r.message else ""))
    for note, count in not_objects.items():
        lines.append(f"skipped {count} file{'s' if count != 1 else ''}: {note} (-v lists them)")
    lines.append(summary(results))
    return "\n".join(lines) + "\n"


def as_json(results: list[Result]) -> str:
    counts = Counter(r.status for r in results)
    return json.dumps({
        "resources": [{
            "filename": r.file, "document": r.document, "line": r.line, "kind": r.kind,
            "name": r.name, "version": r.api_version, "status": f"status{r.status.title()}",
            "msg": r.message, "warnings": r.warnings,
            "validationErrors": [{"path": p.path, "msg": p.message} for p in r.problems],
        } for r in results],
        "summary": {"valid": counts["valid"], "invalid": counts["invalid"],
                    "errors": counts["error"], "skipped": counts["skipped"]},
    }, indent=2) + "\n"


def as_junit(results: list[Result]) -> str:
    counts = Counter(r.status for r in results)
    suites = ElementTree.Element("testsuites", name="modelapi-compile", tests=str(len(results)),
                                 failures=str(counts["invalid"]), errors=str(counts["error"]))
    by_file: dict[str, list[Result]] = {}
    for r in results:
        by_file.setdefault(r.file, []).append(r)
    for file, items in by_file.items():
        file_counts = Counter(r.status for r in items)
        suite = ElementTree.SubElement(
            suites, "testsuite", name=file, tests=str(len(items)),
            failures=str(file_counts["invalid"]), errors=str(file_counts["error"]),
            skipped=str(file_counts["skipped"]))
        for r in items:
            case = ElementTree.SubElement(suite, "testcase", classname=file,
                                          name=f"{r.title} (document {r.document})")
            if r.status == "invalid":
                failure = ElementTree.SubElement(case, "failure", message=r.message,
                                                 type="invalid")
                failure.text = "\n".join(f"{p.path}: {p.message}" for p in r.problems)
            elif r.status == "error":
                ElementTree.SubElement(case, "error", message=r.message, type="error")
            elif r.status == "skipped":
                ElementTree.SubElement(case, "skipped", message=r.message or "skipped")
    ElementTree.indent(suites)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ElementTree.tostring(suites, encoding="unicode") + "\n")


def _escape(text: str, *, property_value: bool = False) -> str:
    """GitHub workflow-command escaping."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def as_github(results: list[Result]) -> str:
    lines = []
    for r in results:
        location = f"file={_escape(r.file, property_value=True)},line={r.line}"
        for warning in r.warnings:
            lines.append(f"::warning {location}::{_escape(f'{r.title}: {warning}')}")
        if r.status in ("invalid", "error"):
            lines.append(f"::error {location}::{_escape(f'{r.title}: {r.message}')}")
    lines.append(summary(results))
    return "\n".join(lines) + "\n"


REPORTERS = {"json": as_json, "junit": as_junit, "github": as_github}
