"""The keys the pinned LiteLLM release knows in litellm_params, litellm_settings,
router_settings and general_settings.

The list is package data (litellm_keys.json), made by tools/litellm_keys.py from the source
of the LiteLLM the `[test]` extra installs (the release of the pinned image);
tests/test_litellm_keys.py makes it again and compares. A key LiteLLM does not know is
almost always a typo that LiteLLM would ignore in silence (`stream_timout`, `rmp`), so the
spec's free-form `settings` and `params` are checked against it; `allowUnknownKeys` lets a
key through that a newer LiteLLM image takes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal

from ..problems import Path, Problem, format_path, nearest
from .loader import Positions

Section = Literal["litellm_params", "litellm_settings", "router_settings", "general_settings"]


@cache
def _data() -> dict[str, Any]:
    text = resources.files("modelapi_compile.spec").joinpath("litellm_keys.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def release() -> str:
    """The LiteLLM version the key list was made from."""
    return str(_data()["litellm"])


@cache
def known_keys(section: Section) -> frozenset[str]:
    return frozenset(_data()[section])


def unknown_key_problems(values: Mapping[str, Any], section: Section, at: Path,
                         positions: Positions, allowed: frozenset[str],
                         escape: Path) -> Iterator[Problem]:
    """A problem at each key of `values` (the spec's map at `at`) that LiteLLM does not
    know and `allowed` (the spec's allowUnknownKeys at `escape`) does not list."""
    known = known_keys(section)
    for key in values:
        if key in known or key in allowed:
            continue
        guess = nearest(key, sorted(known))
        fix = f"did you mean '{guess}'? or, " if guess else ""
        yield positions.problem(
            (*at, key), f"LiteLLM {release()} has no {section} key '{key}'",
            f"{fix}for a key newer than LiteLLM {release()}, list it in "
            f"{format_path(escape)}", key=True)
