"""JSON schemas shipped with modelapi-compile (the spec, GitOps and monitoring kinds)."""
