"""What counts as a secret value written where the spec (or a config it imports) must only
reference one: shared by validation of free-form LiteLLM settings and by `import`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

ENV_REF = "os.environ/"  # LiteLLM's reference to an environment variable
SECRET_WORDS = {"key", "token", "password", "passwd", "secret", "credential", "credentials",
                "authorization"}
USERINFO_PASSWORD = re.compile(r"://[^/@\s:]+:[^/@\s]+@")
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
