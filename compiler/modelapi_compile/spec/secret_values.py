"""What counts as a secret value written where the spec (or a config it imports) must only
reference one: shared by validation (free-form LiteLLM settings, and every string of the
spec) and by `import`.

Every string of the spec is checked for the shapes of well-known credentials (API tokens,
JSON Web Tokens, private keys, Authorization header values, URLs with a password); the
fields where a name says what a value is (env entries, labels, annotations, nodeSelector,
`--flag value` arguments) are also checked by that name; a Git repository URL may carry no
credentials at all. A false positive is accepted only when the spec lists the exact value
under `spec.notSecrets`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

ENV_REF = "os.environ/"  # LiteLLM's reference to an environment variable
SECRET_WORDS = {"key", "token", "password", "passwd", "secret", "credential", "credentials",
                "authorization"}
USERINFO_PASSWORD = re.compile(r"://[^/@\s:]*:[^/@\s]+@")
_KEY_PREFIXES = ("sk-", "sk_", "ghp_", "xoxb-", "AKIA", "hf_", "Bearer ", "Basic ")


def secretish_name(name: str) -> bool:
    """api_key, MASTER_KEY, redis_password, aws_session_token, vertex_credentials..."""
    words = [w for w in re.split(r"[_\-.]|(?<=[a-z])(?=[A-Z])", name) if w]
    return bool(words) and words[-1].lower() in SECRET_WORDS


def secret_literal(key: str, value: Any) -> bool:
    """A literal string that is, or looks like, a secret value: under a secret-like key,
    a URL with a password, or a token with a well-known key prefix."""
    if not isinstance(value, str) or not value or value.startswith(ENV_REF):
        return False
    return (secretish_name(key) or bool(USERINFO_PASSWORD.search(value))
            or value.startswith(_KEY_PREFIXES))


def secret_paths(value: Any, path: tuple[str | int, ...] = (), key: str = ""
                 ) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(path, key) of every secret literal inside a free-form value."""
    if isinstance(value, dict):
        for child, item in value.items():
            yield from secret_paths(item, (*path, child), str(child))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from secret_paths(item, (*path, index), key)
    elif secret_literal(key, value):
        yield path, key


# Credentials recognisable by their shape wherever they are written.
CREDENTIAL_SHAPES = (
    ("an API token", re.compile(
        r"(?<![A-Za-z0-9_-])(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|sk_(?:live|test)_[A-Za-z0-9]{16,}"
        r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}"
        r"|xox[abposr]-[A-Za-z0-9-]{10,}|hf_[A-Za-z0-9]{30,}|AIza[0-9A-Za-z_-]{35}"
        r"|(?:AKIA|ASIA)[0-9A-Z]{16})")),
    ("a JSON Web Token",
     re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("an Authorization header value",
     re.compile(r"\b(?:Bearer|Basic|Token)\s+[A-Za-z0-9._~+/-]{8,}")),
    ("a URL with a password", USERINFO_PASSWORD),
)
# Env entries whose name says they hold a secret (anywhere in the name, as before).
SECRETISH = re.compile(r"(key|token|password|passwd|secret|credential)", re.IGNORECASE)
_CREDENTIAL_IN_URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]+@", re.IGNORECASE)
# Maps whose keys name their values: a secret-like key with a value other than a switch.
_SWITCHES = {"", "true", "false", "yes", "no", "on", "off", "enabled", "disabled"}
ALLOW_FIELD = "notSecrets"
NOT_A_SECRET = f"; if it is not a secret, list the exact value under spec.{ALLOW_FIELD}"

SpecPath = tuple[str | int, ...]


def credential_shape(value: str) -> str | None:
    """What kind of credential `value` looks like, or None."""
    if value.startswith(ENV_REF):
        return None
    for what, pattern in CREDENTIAL_SHAPES:
        if pattern.search(value):
            return what
    return None


def _named_map(key: Any) -> bool:
    name = str(key)
    return name in ("labels", "annotations", "nodeSelector") or name.endswith(
        ("Labels", "Annotations"))


def spec_secret_findings(data: Any, path: SpecPath = ()
                         ) -> Iterator[tuple[SpecPath, str, str]]:
    """(path, message, hint) of every string of a spec document that looks like a secret
    value, `spec.notSecrets` and values it lists aside."""
    allowed = set(_allowed_values(data))
    for where, value in _strings(data, path):
        if value in allowed:
            continue
        found = _finding(data, where, value)
        if found is not None:
            yield where, *found


def unused_allowances(data: Any) -> Iterator[tuple[SpecPath, str]]:
    """Entries of notSecrets that no finding needs: an escape that hides nothing goes."""
    entries = list(_allowance_entries(data, ()))
    if not entries:
        return
    flagged = {value for where, value in _strings(data, ())
               if _finding(data, where, value) is not None}
    for where, value in entries:
        if value not in flagged:
            yield where, value


def _finding(root: Any, where: SpecPath, value: str) -> tuple[str, str] | None:
    parent = _at(root, where[:-1])
    key, field = where[-1], (where[-2] if len(where) > 1 else "")
    in_env = len(where) > 2 and where[-3] == "env"
    if in_env and key == "value" and isinstance(parent, dict) \
            and SECRETISH.search(str(parent.get("name", ""))):
        return (f"'{parent['name']}' looks like a secret and its value is written in the spec",
                "use valueFrom: {secretKeyRef: {name: <secret>, key: <key>}}" + NOT_A_SECRET)
    if "litellm" in where and ("params" in where or "settings" in where) \
            and secret_literal(str(_nearest_key(where)), value):
        return (f"'{_nearest_key(where)}' holds what looks like a secret value",
                "secret values never go in the spec: write os.environ/<VARIABLE> and set the "
                "variable from a Secret" + NOT_A_SECRET)
    if key == "repoURL" and _CREDENTIAL_IN_URL.match(value):
        return ("the repository URL carries credentials",
                "write it without them and give the controllers a Secret "
                "(gitops.flux.secretRef; an Argo CD repository Secret)" + NOT_A_SECRET)
    if _named_map(field) and isinstance(key, str) and secretish_name(key) \
            and value.strip().lower() not in _SWITCHES:
        return (f"'{key}' looks like a secret and its value is written in the spec",
                "anyone who can read the object reads its labels and annotations: keep the "
                "value in a Secret" + NOT_A_SECRET)
    if field == "extraArgs" and isinstance(key, int):
        flag = _secret_flag(parent, key)
        if flag:
            return (f"{flag} passes what looks like a secret on the command line",
                    "read it from an environment variable set with env valueFrom."
                    "secretKeyRef (vLLM reads VLLM_API_KEY for --api-key)" + NOT_A_SECRET)
    what = credential_shape(value)
    if what:
        return (f"this looks like {what} written in the spec",
                "secret values never go in the spec: reference a Secret (env valueFrom."
                "secretKeyRef, or the field's *Secret reference)" + NOT_A_SECRET)
    return None


def _nearest_key(where: SpecPath) -> str | int:
    """The mapping key a value sits under (list items take their list's key)."""
    return next((part for part in reversed(where) if isinstance(part, str)), "")


def _secret_flag(arguments: Any, index: int) -> str | None:
    """The secret-like `--flag` whose value arguments[index] is (`--flag=v` or `--flag v`)."""
    item = arguments[index]
    if item.startswith("--") and "=" in item:
        flag, value = item.split("=", 1)
        return flag if value and secretish_name(flag.lstrip("-")) else None
    previous = arguments[index - 1] if index else None
    if (isinstance(previous, str) and previous.startswith("--") and "=" not in previous
            and not item.startswith("-") and secretish_name(previous.lstrip("-"))):
        return previous
    return None


def _at(data: Any, path: SpecPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _strings(data: Any, path: SpecPath) -> Iterator[tuple[SpecPath, str]]:
    if isinstance(data, dict):
        for key, item in data.items():
            if key != ALLOW_FIELD:
                yield from _strings(item, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _strings(item, (*path, index))
    elif isinstance(data, str):
        yield path, data


def _allowance_entries(data: Any, path: SpecPath) -> Iterator[tuple[SpecPath, str]]:
    if isinstance(data, dict):
        for key, item in data.items():
            if key == ALLOW_FIELD and isinstance(item, list):
                yield from ((((*path, key, i)), v) for i, v in enumerate(item)
                            if isinstance(v, str))
            else:
                yield from _allowance_entries(item, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _allowance_entries(item, (*path, index))


def _allowed_values(data: Any) -> Iterator[str]:
    return (value for _, value in _allowance_entries(data, ()))
