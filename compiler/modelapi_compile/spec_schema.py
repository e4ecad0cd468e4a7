"""The JSON Schema of the stack spec, generated from the pydantic models in spec.py."""

from __future__ import annotations

import json
from typing import Any

from .spec import ModelStack

SCHEMA_ID = "https://modelapi.dev/schemas/modelstack.v1alpha1.json"


def spec_schema() -> dict[str, Any]:
    schema = ModelStack.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **schema}


def spec_schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=True) + "\n"
