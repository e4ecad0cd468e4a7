"""modelapi-compile: one stack spec in, a Helm chart, Kustomize overlays and GitOps
manifests out. The public API is `build`, `validate_spec` and `SpecError`."""

__version__ = "0.1.0"
