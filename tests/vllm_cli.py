"""A model of `vllm serve`'s argument parsing (v0.11): the flags the compiler writes, with
vLLM's own arities, types, choices and bounds; unknown flags and refused values are errors
(exit_on_error=False raises argparse.ArgumentError). The values come from vLLM's argument
and config definitions: EngineArgs (vllm/engine/arg_utils.py), ModelDType and LoadFormat,
CacheConfig.gpu_memory_utilization (0 < u <= 1), LoRAConfig.max_loras (>= 1) and
MaxLoRARanks (vllm/config/lora.py)."""

from __future__ import annotations

import argparse
import json
from typing import Any

VLLM_DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_LOAD_FORMATS = ("auto", "pt", "safetensors", "npcache", "dummy", "tensorizer",
                     "sharded_state", "gguf", "bitsandbytes", "mistral", "runai_streamer",
                     "runai_streamer_sharded", "fastsafetensors")


class _LoraModules(argparse.Action):
    """vLLM's LoRAParserAction: each value is `name=path` or a JSON object."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        modules = {}
        for item in values:
            if item.lstrip().startswith("{"):
                loaded = json.loads(item)
                modules[loaded["name"]] = loaded["path"]
            else:
                name, sep, path = item.partition("=")
                if not sep or not name or not path:
                    parser.error(f"invalid LoRA module {item!r}: expected name=path")
                modules[name] = path
        setattr(namespace, self.dest, modules)


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _utilization(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return value


def vllm_serve_parser() -> argparse.ArgumentParser:
    """The flags of `vllm serve` (v0.11) that the compiler writes, with vLLM's arities,
    types, choices and bounds."""
    parser = argparse.ArgumentParser(prog="vllm serve", exit_on_error=False)
    parser.add_argument("model_tag")
    parser.add_argument("--served-model-name", nargs="+")
    parser.add_argument("--port", type=int)
    parser.add_argument("--tensor-parallel-size", type=_at_least_one)
    parser.add_argument("--max-model-len", type=_at_least_one)
    parser.add_argument("--dtype", choices=VLLM_DTYPES)
    parser.add_argument("--gpu-memory-utilization", type=_utilization)
    parser.add_argument("--quantization")
    parser.add_argument("--load-format", choices=VLLM_LOAD_FORMATS)
    parser.add_argument("--enable-lora", action=argparse.BooleanOptionalAction)
    parser.add_argument("--lora-modules", nargs="+", action=_LoraModules)
    parser.add_argument("--max-loras", type=_at_least_one)
    parser.add_argument("--max-lora-rank", type=int, choices=VLLM_LORA_RANKS)
    return parser
