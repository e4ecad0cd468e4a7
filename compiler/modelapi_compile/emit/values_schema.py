"""values.schema.json of the chart: the resolved model's chart values as JSON Schema, with
the keys a component's workloads may share written once under componentDefaults."""

from __future__ import annotations

import json
from typing import Any

from ..resolve.model import ChartValues

# Workload keys that may move to componentDefaults: never null, so a null that Helm drops
# from an environment's values can never uncover a default by accident.
SHAREABLE = ("strategy", "resources", "probes", "podSecurityContext", "securityContext",
             "volumes", "volumeMounts", "sidecars", "command", "terminationGracePeriodSeconds")


def values_schema() -> dict[str, Any]:
    schema = ChartValues.model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    workload = schema["$defs"]["Workload"]
    workload["required"] = [k for k in workload.get("required", []) if k not in SHAREABLE]
    schema["$defs"]["ComponentDefaults"] = {
        "type": "object", "additionalProperties": False,
        "description": "keys every workload of a component shares",
        "properties": {k: v for k, v in workload["properties"].items() if k in SHAREABLE},
    }
    schema["properties"]["componentDefaults"] = {
        "type": "object", "description": "shared workload keys, per component",
        "additionalProperties": {"$ref": "#/$defs/ComponentDefaults"},
    }
    return schema


def values_schema_text() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=True) + "\n"
