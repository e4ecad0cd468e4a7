"""What every part of an import shares: the documents read (with their positions), the state
they add up to, field access that reports unknown fields, and the refusal of secret values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...problems import Path, Problem, format_path
from ...spec.loader import Positions
from ...spec.secret_values import ENV_REF, USERINFO_PASSWORD, secretish_name

CRD_GROUP = "agentic.example.com"


CRD_API_VERSION = f"{CRD_GROUP}/v1alpha1"


ROUTING_STRATEGIES = ("simple-shuffle", "least-busy", "usage-based-routing",
                      "usage-based-routing-v2", "latency-based-routing", "cost-based-routing")


# OpenAI-compatible public endpoints, for routes written without api_base.
PUBLIC_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "together_ai": "https://api.together.xyz/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "xai": "https://api.x.ai/v1",
    "perplexity": "https://api.perplexity.ai",
}


_OLLAMA_DEFAULT_BASE = "http://localhost:11434"  # LiteLLM's default for ollama/ routes


_LOCAL_HOSTS = {"localhost", "0.0.0.0", "::1", "host.docker.internal"}


_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")


_DOC_MARKER = re.compile(r"^(---|\.\.\.)(?=\s|$)")


_NOT_IMPORTED = "not imported: the spec has no field for it"


@dataclass
class _Doc:
    """One YAML document of an input file, positions in that file's coordinates."""

    data: Any
    positions: Positions
    text: str  # the whole file, to place embedded configYaml text


@dataclass
class _Import:
    """What the documents add up to; problems are collected so the user sees all at once."""

    proxy_name: str
    in_cluster: bool = False  # turn routes to unknown local servers into in-cluster ones
    apis: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[tuple[str, ...], str] = field(default_factory=dict)  # route key -> api
    reserved: set[str] = field(default_factory=set)
    agents: list[dict[str, Any]] = field(default_factory=list)
    agent_models: dict[str, list[str]] = field(default_factory=dict)  # api -> asked models
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # (api, alias) already reported as broken; (api, "") the whole api: agents that use
    # them get no second, consequential error.
    broken: set[tuple[str, str]] = field(default_factory=set)
    # Where parts of the output came from, so a problem the final validation finds in a
    # value copied through (an image, an env entry) is reported at its source line.
    agent_origins: list[tuple[_Doc, Path]] = field(default_factory=list)
    api_origins: dict[str, tuple[_Doc, Path]] = field(default_factory=dict)
    # LiteLLM modelAPI name -> its config and the model_list index of each imported model
    litellm_origins: dict[str, tuple[_Doc, list[int]]] = field(default_factory=dict)

    def note(self, doc: _Doc, at: Path, message: str) -> None:
        line, _ = doc.positions.locate(at, key=True)
        where = f"{doc.positions.file}:{line}"
        self.notes.append(f"{where}: {format_path(at)}: {message}" if at else
                          f"{where}: {message}")

    def fail(self, doc: _Doc, at: Path, message: str, hint: str = "") -> None:
        self.problems.append(doc.positions.problem(at, message, hint))

    def unique_name(self, base: str) -> str:
        stem = _kebab(base)[:30].strip("-") or "backend"
        name, n = stem, 2
        while name in self.reserved or name in self.apis:
            name, n = f"{stem}-{n}", n + 1
        return name


def _mode(doc: _Doc) -> str | None:
    mode = _get(doc.data, "spec", "mode")
    lowered = mode.lower() if isinstance(mode, str) else None
    return lowered if lowered in ("proxy", "hosted") else None


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _known_fields(state: _Import, doc: _Doc, at: Path, value: Any, known: set[str]) -> None:
    """Note every key of a mapping the import does not read."""
    if isinstance(value, dict):
        for key in value:
            if key not in known:
                state.note(doc, (*at, key), _NOT_IMPORTED)


def _secret_ref(state: _Import, doc: _Doc, at: Path, value: Any,
                secrets: dict[str, dict[str, str]], key: str) -> dict[str, str] | bool | None:
    """`os.environ/VAR` -> a SecretRef; None when unset; False after refusing a literal."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.startswith(ENV_REF):
        _refuse_secret(state, doc, at, str(at[-1]))
        return False
    var = value[len(ENV_REF):]
    if var in secrets:
        return dict(secrets[var])
    name = _kebab(var)
    if not _is_label(name):
        state.fail(doc, at, f"cannot name a Secret after the variable '{var}'",
                   "use a variable name of letters, digits and '_'")
        return False
    return {"name": name, "key": key}


def _refuse_secret(state: _Import, doc: _Doc, at: Path, what: str) -> None:
    state.fail(doc, at, f"refusing to import the secret value of '{what}'",
               "write os.environ/<VARIABLE> in the config (or valueFrom.secretKeyRef) and keep "
               "the value in a Kubernetes Secret")


def _scan_secrets(state: _Import, doc: _Doc, at: Path, value: Any) -> None:
    """Literal secret values anywhere in a LiteLLM config, including sections not imported
    (environment_variables, litellm_settings): the import refuses the whole file."""
    if isinstance(value, dict):
        for key, item in value.items():
            literal = isinstance(item, str) and item and not item.startswith(ENV_REF)
            if literal and (secretish_name(str(key)) or USERINFO_PASSWORD.search(item)):
                _refuse_secret(state, doc, (*at, key), str(key))
            else:
                _scan_secrets(state, doc, (*at, key), item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _scan_secrets(state, doc, (*at, i), item)


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


def _kebab(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")


def _is_label(text: str) -> bool:
    return len(text) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", text) is not None
