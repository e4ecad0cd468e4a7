"""Problems: what the user did wrong, where, and what to do about it.

Every stage reports user errors as `Problem`s collected into a `SpecError`, so the CLI has
one place that formats them (text or JSON) and one exit status for them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

Path = tuple[str | int, ...]


def format_path(path: Path, root: str = "") -> str:
    """`("spec", "modelAPIs", 0, "name")` -> `spec.modelAPIs[0].name`."""
    text = root
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int  # 1-based; 0 when the problem has no position (a missing file)
    column: int  # 1-based
    path: str  # field path such as spec.agents[0].model
    message: str
    hint: str = field(default="", compare=False)

    def render(self, severity: str = "error") -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        what = f"{self.path}: {self.message}" if self.path else self.message
        return f"{where}: {severity}: {what}" + (f" ({self.hint})" if self.hint else "")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class SpecError(Exception):
    """One or more user errors; the CLI prints them all and exits 1."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(p.render() for p in self.problems))


def nearest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate a typo most likely meant, or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        matches = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        return lowered[matches[0]] if matches else None
    return matches[0]


STDIN = "<stdin>"  # how messages name a spec read from standard input (`-f -`)


def display_name(path: str) -> str:
    """The name of a spec path in messages: `-` is standard input."""
    return STDIN if path == "-" else path


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    guess = nearest(word, candidates)
    if guess:
        return f"did you mean '{guess}'?"
    return "known: " + ", ".join(sorted(candidates)) if candidates else ""
