"""A docker-compose file (Compose Specification, no `version`) for local development.

The wiring is the cluster's: every workload becomes a service named like its Kubernetes
Service (`<stack>-<name>`), so the in-cluster URLs the resolver already wrote into env vars
and the LiteLLM config resolve unchanged on the Compose network. What differs on a laptop:

- Secrets are `${VAR}` interpolations from the developer's environment or `.env`, one
  variable per Secret key; the header lists them. No secret value is ever written.
- Ports are published on 127.0.0.1 only; when two services listen on the same port (an
  agent and vLLM on 8000), one is published on the next free host port (the header says).
- Sidecars (Ollama's model puller) are services sharing the server's network namespace, as
  containers of one pod do, with their readiness probe as healthcheck. Dependents start
  without waiting for health, as pods do: readiness gates traffic, not start-up.
- Requests, limits and pod security settings are left to Docker's defaults: the images run
  as their own user, so named volumes (created root-owned) stay writable.
- What the cluster provides and the stack does not run, a LiteLLM proxy's PostgreSQL and
  Redis, runs here too when the spec names it by its Service name: the official images,
  reachable under that name, the proxy's DATABASE_URL pointing at the local database. An
  address outside the cluster (an IP) is not run; the header says so.

Every string from the resolved model is written with `$` doubled, because Compose
interpolates `$` everywhere (also in configs' content): spec data stays data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..emit import yamlout
from ..emit.manifests import CLAIM_TEMPLATE
from ..resolve.model import BackingService, K8s, ResolvedStack, Workload

LOOPBACK = "127.0.0.1"
SIDECAR_START_PERIOD = "3600s"
# Images known to carry a Python interpreter (the servers are Python programs), so an HTTP
# healthcheck can run without curl or wget, which these images do not all ship.
_PYTHON_COMPONENTS = ("vllm", "litellm")
# The Ollama image has neither curl nor wget; `ollama list` asks the server for /api/tags,
# the path of its readiness probe.
_OLLAMA_CHECK = ["CMD", "ollama", "list"]
_PUBLISH_ORDER = {"litellm": 0, "ollama": 1, "agent": 2, "vllm": 3}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTPE]i?|k|m)?$")
_UNITS = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
          "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
          "Ei": 2**60}
_GPU_DRIVERS = {"nvidia.com/gpu": "nvidia"}  # extended resource -> Docker device driver
_HOST_GATEWAY = "host.docker.internal"
# The servers a LiteLLM proxy uses, run locally in their official images (pinned).
POSTGRES_IMAGE = "postgres:17.6"
REDIS_IMAGE = "redis:7.4.5"
POSTGRES_USER = "litellm"  # also the database's name
POSTGRES_PASSWORD = "POSTGRES_PASSWORD"  # the variable the local database's password is in


@dataclass
class _Context:
    """What the services share: the stack, its variables, published ports, volumes."""

    resolved: ResolvedStack
    variables: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # env values replaced locally: (workload, env var) -> value (DATABASE_URL)
    overrides: dict[tuple[str, str], str] = field(default_factory=dict)
    backing: dict[str, K8s] = field(default_factory=dict)  # service name -> service
    backing_kind: dict[str, str] = field(default_factory=dict)  # service name -> PostgreSQL...
    depends: dict[str, list[str]] = field(default_factory=dict)  # workload -> backing names
    not_run: list[str] = field(default_factory=list)  # header lines
    published: dict[str, int] = field(default_factory=dict)
    volumes: dict[str, K8s] = field(default_factory=dict)
    configs: dict[str, K8s] = field(default_factory=dict)

    def fullname(self, name: str) -> str:
        return f"{self.resolved.name}-{name}"


def compose_file(resolved: ResolvedStack) -> str:
    """The compose file for one environment of the stack, header comment included."""
    context = _Context(resolved)
    workloads = resolved.values.workloads
    _backing_services(context)
    local_postgres = "PostgreSQL" in context.backing_kind.values()
    context.variables = _variables(workloads, context.overrides, resolved.backing_services,
                                   reserved={POSTGRES_PASSWORD} if local_postgres else set())
    if local_postgres:
        context.variables[("local", "PostgreSQL", "password")] = POSTGRES_PASSWORD
    context.published = _publish_ports(context)
    services: dict[str, K8s] = dict(_backing_with_secrets(context))
    for name, workload in workloads.items():
        services[context.fullname(name)] = _service(context, name, workload)
        for sidecar in workload.sidecars:
            services[f"{context.fullname(name)}-{sidecar['name']}"] = _sidecar(
                context, name, sidecar)
    document: K8s = {"services": dict(sorted(services.items()))}
    if context.volumes:
        document["volumes"] = dict(sorted(context.volumes.items()))
    if context.configs:
        document["configs"] = dict(sorted(context.configs.items()))
    if any("networks" in service for service in services.values()):
        document["networks"] = {"default": {}}  # where the aliases are (Compose's own)
    return _header(context) + yamlout.dump(document)


# --- variables and ports ---------------------------------------------------------------------


def _variables(workloads: dict[str, Workload], overrides: dict[tuple[str, str], str],
               backing: tuple[BackingService, ...] = (), reserved: set[str] | None = None
               ) -> dict[tuple[str, str, str], str]:
    """One interpolation variable per referenced Secret (or ConfigMap) key.

    Named after the Secret and key, not the env var, so that the master key the proxy
    checks and the key its agents send are one variable, as they are one Secret key. Env
    vars replaced locally (`overrides`) need none; `reserved` names are taken already.
    """
    refs: set[tuple[str, str, str]] = set()
    for name, workload in workloads.items():
        for env in [*workload.env, *(e for s in workload.sidecars for e in s.get("env", []))]:
            ref = _reference(env)
            if ref and (name, env["name"]) not in overrides:
                refs.add(ref)
    refs |= {("Secret", *service.password_secret) for service in backing
             if service.password_secret and service.in_cluster and service.host}
    names: dict[tuple[str, str, str], str] = {}
    taken: set[str] = set(reserved or ())
    for ref in sorted(refs):
        base = variable_name(ref[1], ref[2])
        name, suffix = base, 2
        while name in taken:  # `a-b`/`c` and `a`/`b-c` would otherwise share a variable
            name, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(name)
        names[ref] = name
    return names


def variable_name(secret: str, key: str) -> str:
    """`<SECRET>_<KEY>` in upper case, words shared by the end of the Secret's name and the
    start of the key written once: `hf-token`/`token` is HF_TOKEN, `litellm-master-key`/
    `master-key` LITELLM_MASTER_KEY, `groq`/`api-key` GROQ_API_KEY."""
    secret_words = [w for w in re.split(r"[^A-Z0-9]+", secret.upper()) if w]
    key_words = [w for w in re.split(r"[^A-Z0-9]+", key.upper()) if w]
    shared = max(n for n in range(min(len(secret_words), len(key_words)) + 1)
                  if n == 0 or secret_words[-n:] == key_words[:n])
    name = "_".join([*secret_words, *key_words[shared:]]) or "_"
    return name if re.match(r"^[A-Z_]", name) else f"_{name}"


def _reference(env: K8s) -> tuple[str, str, str] | None:
    source = env.get("valueFrom") or {}
    for kind, label in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
        if kind in source:
            return (label, source[kind]["name"], source[kind]["key"])
    return None


def _publish_ports(context: _Context) -> dict[str, int]:
    """Host port per workload: its own port, or the next free one when already taken.

    The proxy, Ollama and the agents choose first: 4000 and 11434 keep their usual meaning
    and agents answer where their developers expect; vLLM, reached through the proxy or by
    its clients on the Compose network, moves.
    """
    workloads = context.resolved.values.workloads
    order = sorted(workloads, key=lambda n: (_PUBLISH_ORDER[workloads[n].component], n))
    used: set[int] = set()
    published: dict[str, int] = {}
    for name in order:
        port = workloads[name].port
        while port in used:
            port += 1
        used.add(port)
        published[name] = port
    return published


# --- services --------------------------------------------------------------------------------


def _service(context: _Context, name: str, workload: Workload) -> K8s:
    service: K8s = {"image": _text(workload.image)}
    if workload.command:
        # Kubernetes `command` replaces the image's ENTRYPOINT and `args` its CMD.
        service["entrypoint"] = [_text(part) for part in workload.command]
    if workload.args:
        service["command"] = [_text(part) for part in workload.args]
    environment = _environment(context, context.fullname(name), workload.env, name)
    if environment:
        service["environment"] = environment
    service["ports"] = [f"{LOOPBACK}:{context.published[name]}:{workload.port}"]
    service.update(_storage(context, name, workload))
    if _mentions(workload, _HOST_GATEWAY):
        # Docker Desktop resolves this name; Linux engines need the mapping.
        service["extra_hosts"] = [f"{_HOST_GATEWAY}:host-gateway"]
    depends = [*_depends_on(context, name, workload), *context.depends.get(name, [])]
    if depends:
        service["depends_on"] = depends
    healthcheck = _healthcheck(workload)
    if healthcheck:
        service["healthcheck"] = healthcheck
    gpus = _gpu_devices(workload.resources)
    if gpus:
        service["deploy"] = {"resources": {"reservations": {"devices": gpus}}}
    service["stop_grace_period"] = f"{workload.termination_grace_period_seconds}s"
    service["restart"] = "unless-stopped"
    return service


def _sidecar(context: _Context, name: str, sidecar: K8s) -> K8s:
    """A pod sidecar: same network namespace as its server, so `127.0.0.1` still works."""
    server = context.fullname(name)
    service: K8s = {"image": _text(sidecar["image"])}
    if sidecar.get("command"):
        service["entrypoint"] = [_text(part) for part in sidecar["command"]]
    if sidecar.get("args"):
        service["command"] = [_text(part) for part in sidecar["args"]]
    environment = _environment(context, f"{server}-{sidecar['name']}", sidecar.get("env", []))
    if environment:
        service["environment"] = environment
    service["network_mode"] = f"service:{server}"
    service["depends_on"] = [server]
    probe = sidecar.get("readinessProbe") or {}
    if "exec" in probe:
        check = _timing(["CMD", *(_text(c) for c in probe["exec"]["command"])], probe, None)
        # A pull has no time budget in the cluster (it retries forever); give downloads an
        # hour before failed checks count, so `up --wait` does not give up on a slow link.
        check["start_period"] = SIDECAR_START_PERIOD
        service["healthcheck"] = check
    service["restart"] = "unless-stopped"
    return service


def _environment(context: _Context, container: str, env: list[K8s],
                 workload: str = "") -> dict[str, str]:
    """Env vars in order; references become `${VAR}`, pod fields their local meaning."""
    result: dict[str, str] = {}
    for item in env:
        if (workload, item["name"]) in context.overrides:
            result[item["name"]] = context.overrides[(workload, item["name"])]
            continue
        if "value" in item:
            result[item["name"]] = _text(item["value"])
            continue
        ref = _reference(item)
        if ref:
            result[item["name"]] = "${" + context.variables[ref] + "}"
            continue
        field_path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        local = {"metadata.name": container, "metadata.namespace": context.resolved.namespace}
        if field_path in local:
            result[item["name"]] = _text(local[field_path])
        # Other pod fields (pod IP, node name) have no local equivalent: left unset.
    return result


def _storage(context: _Context, name: str, workload: Workload) -> K8s:
    """Named volumes for claims, the config file as a Compose config, shm, tmpfs."""
    volumes = {v["name"]: v for v in workload.volumes}
    if workload.persistence and workload.persistence.per_replica:
        # A StatefulSet's claim template: locally, one named volume (one replica).
        volumes[CLAIM_TEMPLATE] = {"name": CLAIM_TEMPLATE, "persistentVolumeClaim": {
            "claimName": f"{context.fullname(name)}-cache"}}
    mounts: list[str] = []
    tmpfs: list[str] = []
    out: K8s = {}
    for mount in workload.volume_mounts:
        volume = volumes[mount["name"]]
        path = mount["mountPath"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            context.volumes[claim] = {}
            mounts.append(f"{claim}:{path}" + (":ro" if mount.get("readOnly") else ""))
        elif "emptyDir" in volume and volume["emptyDir"].get("medium") == "Memory":
            if path == "/dev/shm":
                size = volume["emptyDir"].get("sizeLimit")
                if size:
                    out["shm_size"] = _bytes(str(size))
            else:
                tmpfs.append(path)
        # Other emptyDirs are the container's own writable layer locally.
    if workload.config:
        config_name = f"{context.fullname(name)}-config"
        context.configs[config_name] = {"content": _text(workload.config.content)}
        out["configs"] = [{"source": config_name,
                           "target": f"{workload.config.mount_path}/{workload.config.file_name}"}]
    if mounts:
        out["volumes"] = mounts
    if tmpfs:
        out["tmpfs"] = tmpfs
    return out


def _mentions(workload: Workload, text: str) -> bool:
    values = [str(e.get("value", "")) for e in workload.env]
    content = workload.config.content if workload.config else ""
    return any(text in v for v in [*values, content])


def _depends_on(context: _Context, name: str, workload: Workload) -> list[str]:
    """The services whose in-cluster URL this workload's env or config names."""
    texts = [str(e.get("value", "")) for e in workload.env]
    if workload.config:
        texts.append(workload.config.content)
    targets = []
    for other in context.resolved.values.workloads:
        url = f"http://{context.fullname(other)}:"
        if other != name and any(url in text for text in texts):
            targets.append(context.fullname(other))
    return targets


# --- what the cluster provides: PostgreSQL and Redis ----------------------------------------


def _backing_services(context: _Context) -> None:
    """Local PostgreSQL and Redis for the proxies that use them, each once, under the host
    name the proxy connects to; the others are named in the header as not run."""
    for service in context.resolved.backing_services:
        what = {"postgres": "PostgreSQL", "redis": "Redis"}[service.kind]
        client = context.fullname(service.client)
        if not (service.in_cluster and service.host):
            where = f"{service.host or 'its address'}:{service.port}"
            context.not_run.append(f"{what} of {client} at {where} (outside the cluster): "
                                   "not run here; the proxy needs it reachable from Docker")
            continue
        name = service.host.split(".")[0]
        if service.kind == "postgres":
            context.overrides[(service.client, "DATABASE_URL")] = (
                f"postgresql://{POSTGRES_USER}:${{{POSTGRES_PASSWORD}}}@{service.host}:"
                f"{service.port}/{POSTGRES_USER}")
        if name not in context.backing:
            context.backing[name] = _backing_service(context, service)
            context.backing_kind[name] = what
        context.depends.setdefault(service.client, []).append(name)


def _backing_service(context: _Context, service: BackingService) -> K8s:
    port = str(service.port)
    result: K8s
    if service.kind == "postgres":
        volume = context.fullname("postgres-data")
        context.volumes[volume] = {}
        result = {"image": POSTGRES_IMAGE,
                  "environment": {"POSTGRES_USER": POSTGRES_USER, "POSTGRES_DB": POSTGRES_USER,
                                  "POSTGRES_PASSWORD": f"${{{POSTGRES_PASSWORD}}}"}}
        if service.port != 5432:
            result["command"] = ["postgres", "-p", port]
        result["volumes"] = [f"{volume}:/var/lib/postgresql/data"]
        result["healthcheck"] = {"test": ["CMD", "pg_isready", "-U", POSTGRES_USER, "-p", port],
                                 "interval": "5s", "timeout": "3s", "retries": 10}
    else:
        result = {"image": REDIS_IMAGE, "command": ["redis-server", "--port", port]}
        # the password variable is known once every reference is named (see compose_file)
        result["healthcheck"] = {"test": ["CMD", "redis-cli", "-p", port, "ping"],
                                 "interval": "5s", "timeout": "3s", "retries": 10}
    if service.host and service.host != service.host.split(".")[0]:
        result["networks"] = {"default": {"aliases": [service.host]}}
    result["restart"] = "unless-stopped"
    return result


def _backing_with_secrets(context: _Context) -> dict[str, K8s]:
    """The backing services, Redis with the password its clients send."""
    services = dict(context.backing)
    for service in context.resolved.backing_services:
        if service.kind != "redis" or not service.password_secret or not service.host:
            continue
        name = service.host.split(".")[0]
        if name in services and service.in_cluster:
            secret, key = service.password_secret
            variable = context.variables[("Secret", secret, key)]
            redis = dict(services[name])
            redis["command"] = [*redis["command"], "--requirepass", f"${{{variable}}}"]
            redis.pop("healthcheck", None)  # an unauthenticated ping is refused
            services[name] = redis
    return services


# --- health and devices ----------------------------------------------------------------------


def _healthcheck(workload: Workload) -> K8s | None:
    """The readiness probe, run by a tool the image is known to have; None otherwise."""
    probe = workload.probes.readiness
    if workload.component == "ollama":
        return _timing(_OLLAMA_CHECK, probe, workload.probes.startup)
    http = probe.get("httpGet")
    if workload.component not in _PYTHON_COMPONENTS or not http:
        return None  # agent images are the user's: no tool can be assumed
    url = f"http://127.0.0.1:{workload.port}{http['path']}"
    timeout = int(probe.get("timeoutSeconds", 1))
    script = f"import urllib.request; urllib.request.urlopen({url!r}, timeout={timeout})"
    return _timing(["CMD", "python3", "-c", _text(script)], probe, workload.probes.startup)


def _timing(test: list[str], probe: K8s, startup: K8s | None) -> K8s:
    check: K8s = {"test": test,
                  "interval": f"{int(probe.get('periodSeconds', 10))}s",
                  "timeout": f"{int(probe.get('timeoutSeconds', 1))}s",
                  "retries": int(probe.get("failureThreshold", 3))}
    if startup:
        # The startup probe's whole budget (vLLM: model download and load) is grace time.
        budget = int(startup.get("periodSeconds", 10)) * int(startup.get("failureThreshold", 3))
        check["start_period"] = f"{budget}s"
    return check


def _gpu_devices(resources: K8s) -> list[K8s]:
    devices = []
    for resource, driver in _GPU_DRIVERS.items():
        count = (resources.get("limits") or {}).get(resource)
        if count:
            devices.append({"driver": driver, "count": int(count), "capabilities": ["gpu"]})
    return devices


# --- text ------------------------------------------------------------------------------------


def _text(value: str) -> str:
    """Compose interpolates `$` in every string; doubling it keeps spec data literal."""
    return value.replace("$", "$$")


def _bytes(quantity: str) -> int | str:
    """A Kubernetes quantity as bytes for `shm_size`; passed through if unrecognised."""
    match = _QUANTITY.match(quantity)
    if not match or match.group(2) == "m":
        return quantity
    return int(float(match.group(1)) * _UNITS.get(match.group(2) or "", 1))


def _header(context: _Context) -> str:
    resolved = context.resolved
    environment = resolved.environment or "the spec as written"
    workloads = resolved.values.workloads
    lines = [
        f"# Local development for stack {resolved.name!r}, environment: {environment}.",
        "# Generated by `modelapi-compile compose`; edit the spec, not this file.",
        "# Services carry the Kubernetes Service names, so in-cluster URLs work unchanged.",
        "# Published on 127.0.0.1:",
    ]
    for name in workloads:
        lines.append(f"#   {context.fullname(name)}: {context.published[name]}"
                     + (f" (container port {workloads[name].port})"
                        if context.published[name] != workloads[name].port else ""))
    if context.backing:
        lines.append("# Run here for local work (in the cluster they are yours to provide), "
                     "not published:")
        for name, service in sorted(context.backing.items()):
            lines.append(f"#   {name}: {context.backing_kind[name]}, {service['image']}")
    for line in context.not_run:
        lines.append(f"# {line}")
    if context.variables:
        lines.append("# Set these in the environment or in .env beside this file "
                     "(values are never written here):")
        for (kind, name, key), variable in sorted(context.variables.items(),
                                                  key=lambda item: item[1]):
            if kind == "local":
                lines.append(f"#   {variable}: the local {name}'s {key}, any value "
                             "(letters and digits: it goes into DATABASE_URL)")
            else:
                lines.append(f"#   {variable}: {kind} {name!r}, key {key!r}")
    return "".join(_comment(line) + "\n" for line in lines)


def _comment(line: str) -> str:
    # A newline in a spec name would end the comment and start YAML; names are DNS labels,
    # but keep the header safe whatever reaches it.
    return line.replace("\r", " ").replace("\n", " ")
