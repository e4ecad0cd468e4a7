"""modelapi-compile: one stack spec in, a Helm chart, Kustomize overlays and GitOps
manifests out. The public API is `build`, `validate_spec` and `SpecError`."""

__version__ = "0.1.0"

# When the process began importing the tool: a build's progress display counts its half
# second from here, so interpreter and import time are not hidden from the user.
import time as _time

STARTED = _time.monotonic()
