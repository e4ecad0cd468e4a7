"""The keys the installed LiteLLM release knows, as the compiler's package data.

    python tools/litellm_keys.py > compiler/modelapi_compile/spec/litellm_keys.json

Run it where the `[test]` extra is installed (the LiteLLM of the pinned image);
tests/test_litellm_keys.py runs it again and compares, so the shipped list cannot drift
from the pinned release. Each list is read from LiteLLM's own source:

- `litellm_params`: the fields of `GenericLiteLLMParams` and `LiteLLM_Params`
  (litellm/types/router.py), the parameters of `litellm.completion` and `litellm.embedding`
  (the router passes litellm_params on to them), and the keys the router reads from a
  deployment's litellm_params (router.py, utils.py, router_utils/, router_strategy/).
- `litellm_settings`: the proxy sets every key on the `litellm` module except the ones its
  config loader handles itself (proxy/proxy_server.py), so the module's top-level variables
  (litellm/__init__.py, and the data it imports by name), those handled keys, and the keys
  the proxy reads from the section.
- `router_settings`: the parameters of `Router.__init__`.
- `general_settings`: the fields of `ConfigGeneralSettings` (proxy/_types.py) and the keys
  the proxy reads from the section.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path


def _public(names: Iterable[str]) -> set[str]:
    return {name for name in names if not name.startswith("_")}


def _sources(root: Path, *parts: str) -> Iterator[str]:
    for part in parts:
        path = root / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            yield file.read_text(encoding="utf-8")


def _read_keys(texts: Iterable[str], section: str) -> set[str]:
    """String keys read from a `section` dict: `section.get("k")`, `section["k"]`,
    `x.get("section", {}).get("k")`, `x["section"].get("k")`."""
    holder = rf'(?:\b{section}|\[\s*"{section}"\s*\]|\.get\(\s*"{section}"[^()]*\))'
    pattern = re.compile(holder + r'(?:\.get\(\s*|\[\s*)"([A-Za-z_][A-Za-z0-9_]*)"')
    return {key for text in texts for key in pattern.findall(text)}


def _module_variables(init: Path) -> set[str]:
    """Names assigned at the top level of a module (inside top-level if/try too)."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                if isinstance(node, ast.Try):
                    for handler in node.handlers:
                        visit(handler.body)
                    visit(node.finalbody)

    visit(ast.parse(init.read_text(encoding="utf-8")).body)
    return {name for name in _public(names) if name[:1].islower()}


def _module_data(module: object) -> set[str]:
    """The module's attributes that hold data (not modules, classes or functions): what
    it defines and what it imports by name, such as request_timeout from litellm.constants."""
    return {name for name, value in vars(module).items()
            if name[:1].islower() and not inspect.ismodule(value) and not callable(value)}


def _handled_settings(proxy_server: str) -> set[str]:
    """The keys the proxy's config loader compares against in its litellm_settings loop."""
    tree = ast.parse(proxy_server)
    keys: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
                and isinstance(node.iter.func, ast.Attribute)
                and isinstance(node.iter.func.value, ast.Name)
                and node.iter.func.value.id == "litellm_settings"):
            for inner in ast.walk(node):
                if (isinstance(inner, ast.Compare) and isinstance(inner.left, ast.Name)
                        and inner.left.id == "key"):
                    for right in inner.comparators:
                        values = right.elts if isinstance(right, ast.Set | ast.Tuple
                                                                  | ast.List) else [right]
                        keys.update(v.value for v in values if isinstance(v, ast.Constant)
                                    and isinstance(v.value, str))
    return keys


def _weights(simple_shuffle: str) -> set[str]:
    """The litellm_params keys simple-shuffle weighs deployments by (a loop over names)."""
    found = re.search(r"for weight_by in \[([^\]]*)\]", simple_shuffle)
    return set(re.findall(r'"(\w+)"', found.group(1))) if found else set()


def collect() -> dict[str, object]:
    import litellm
    from litellm.proxy._types import ConfigGeneralSettings
    from litellm.router import Router
    from litellm.types.router import GenericLiteLLMParams, LiteLLM_Params

    root = Path(litellm.__file__).parent
    router_texts = list(_sources(root, "router.py", "utils.py", "router_utils",
                                 "router_strategy"))
    proxy_texts = list(_sources(root, "proxy"))
    proxy_server = (root / "proxy" / "proxy_server.py").read_text(encoding="utf-8")

    params = set(GenericLiteLLMParams.model_fields) | set(LiteLLM_Params.model_fields)
    for function in (litellm.completion, litellm.embedding):
        params |= {name for name, p in inspect.signature(function).parameters.items()
                   if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    params |= _read_keys(router_texts, "litellm_params")
    params |= _weights((root / "router_strategy" / "simple_shuffle.py").read_text())

    settings = (_module_variables(root / "__init__.py") | _module_data(litellm)
                | _handled_settings(proxy_server)
                | _read_keys(proxy_texts, "litellm_settings"))
    router = {name for name in inspect.signature(Router.__init__).parameters
              if name != "self"}
    general = set(ConfigGeneralSettings.model_fields) | _read_keys(proxy_texts,
                                                                   "general_settings")
    return {
        "litellm": metadata.version("litellm"),
        "litellm_params": sorted(_public(params)),
        "litellm_settings": sorted(_public(settings)),
        "router_settings": sorted(_public(router)),
        "general_settings": sorted(_public(general)),
    }


def render(keys: dict[str, object]) -> str:
    return json.dumps(keys, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(collect()))
