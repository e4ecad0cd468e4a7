"""Split overlays (gitops.overlayParts): a folder `shared` and N parts per overlay, each a
kustomization that Argo CD (one source each, one Application) and Flux (one Kustomization
each) render on its own, so Kustomize's quadratic cost is paid per part. These tests read
the folders the way the controllers do: each rendered alone by the real Kustomize, Flux's
dependsOn order and garbage collection, Argo CD's sources and sync waves."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cluster_models import argocd_sync, deleted_by
from conftest import CASES, ENGINES, render_spec
from modelapi_compile.cli import cli
from modelapi_compile.emit import kustomize as overlays
from modelapi_compile.resolve.model import NAME_LABEL

Obj = dict[str, Any]
PLATFORM = CASES / "valid" / "platform.yaml"
STACK = "platform"
PARTS = 3
FLUX = "kustomize.toolkit.fluxcd.io"


def split_spec(parts: int = PARTS, *, prune: bool = True) -> str:
    """The issue-13 platform stack (StatefulSets with claims per replica, Ollama, agents,
    monitoring, Argo CD and Flux on Kustomize) with its overlays split."""
    text = PLATFORM.read_text()
    flux = "    flux: {enabled: true, source: kustomize}\n"
    assert flux in text
    held = "    flux: {enabled: true, source: kustomize, prune: false}\n"
    split = f"    overlayParts: {parts}\n" if parts > 1 else ""
    return text.replace(flux, (flux if prune else held) + split)


def build(tmp_path: Path, text: str, name: str = "out") -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(text)
    out = tmp_path / name
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm"])
    assert result.exit_code == 0, result.output
    return out


def environments(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "overlays").iterdir() if p.name != "base")


def folders(out: Path, env: str) -> list[str]:
    listed = yaml.safe_load((out / "overlays" / env / "kustomization.yaml").read_text())
    return list(listed["resources"])


def key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


@pytest.fixture(scope="module")
def split_build(tmp_path_factory: pytest.TempPathFactory, kustomize: Any
                ) -> tuple[Path, dict[str, dict[str, list[Obj]]]]:
    """The split build and, per environment, every folder rendered on its own."""
    out = build(tmp_path_factory.mktemp("split"), split_spec())
    rendered = {env: {folder: kustomize(out / "overlays" / env / folder)
                      for folder in folders(out, env)}
                for env in ["base", *environments(out)]}
    return out, rendered


def test_split_overlays_render_what_helm_renders(tmp_path: Path, helm: Any,
                                                 kustomize: Any) -> None:
    rendered = render_spec(split_spec(), tmp_path, helm, kustomize)
    assert set(ENGINES) == set(rendered)
    for env, objects in rendered["helm"].items():
        ours = sorted(map(key, rendered["kustomize"][env]))
        # the overlay adds its Namespace; Helm's is created by the controller
        assert sorted(k for k in ours if k[0] != "Namespace") == sorted(map(key, objects)), env
    assert len(list((tmp_path / "out" / "overlays" / "gke").glob("part-*"))) == PARTS


def test_every_object_is_in_exactly_one_folder(split_build: Any, kustomize: Any) -> None:
    out, rendered = split_build
    for env, by_folder in rendered.items():
        whole = Counter(map(key, kustomize(out / "overlays" / env)))
        parts = Counter(key(o) for objects in by_folder.values() for o in objects)
        assert parts == whole, env
        assert max(whole.values()) == 1, env
        assert folders(out, env) == ["shared", *(f"part-{i}" for i in range(1, PARTS + 1))]


def test_a_workload_and_what_it_needs_are_applied_before_or_with_it(split_build: Any) -> None:
    """A part never waits on another part: every object of a workload is in one folder, and
    what its pods need (Namespace, ServiceAccount, ConfigMaps, Secrets an ExternalSecret
    makes, claims) is in that folder or in shared, which every controller applies first."""
    _, rendered = split_build
    for env, by_folder in rendered.items():
        home: dict[str, set[str]] = {}
        where = {key(o): folder for folder, objects in by_folder.items() for o in objects}
        for folder, objects in by_folder.items():
            for obj in objects:
                name = (obj["metadata"].get("labels") or {}).get(NAME_LABEL)
                if name:
                    home.setdefault(name, set()).add(folder)
                else:
                    assert folder == "shared", (env, key(obj))
                if obj["kind"] in ("Namespace", "ServiceAccount"):
                    assert folder == "shared", (env, key(obj))
                for needed in needs(obj):
                    if needed in where:  # Secrets made outside the stack are not rendered
                        assert where[needed] in (folder, "shared"), (env, key(obj), needed)
        assert all(len(found) == 1 for found in home.values()), (env, home)
        assert sum(1 for f in by_folder if f != "shared" and by_folder[f]) >= 2, env


def needs(obj: Obj) -> list[tuple[str, str]]:
    """The objects a workload's pods cannot start without."""
    template = obj.get("spec", {}).get("template", {}).get("spec")
    if obj["kind"] not in ("Deployment", "StatefulSet") or template is None:
        return []
    found = [("ServiceAccount", template.get("serviceAccountName", "default"))]
    for volume in template.get("volumes") or []:
        if "configMap" in volume:
            found.append(("ConfigMap", volume["configMap"]["name"]))
        if "persistentVolumeClaim" in volume:
            found.append(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
        if "secret" in volume:
            found.append(("ExternalSecret", volume["secret"]["secretName"]))
    for container in template.get("containers", []) + template.get("initContainers", []):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                found.append(("ExternalSecret", ref["name"]))
    return found


def flux_kustomizations(out: Path, env: str) -> list[Obj]:
    text = (out / "gitops" / "flux" / f"{STACK}-{env}.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def flux_order(kustomizations: list[Obj]) -> list[str]:
    """The order Flux reconciles them in on a fresh cluster: a Kustomization waits until
    every dependsOn is Ready (and with wait: true, Ready means its workloads are)."""
    pending = {k["metadata"]["name"]: {d["name"] for d in k["spec"].get("dependsOn", [])}
               for k in kustomizations}
    order: list[str] = []
    while pending:
        ready = sorted(name for name, deps in pending.items() if deps <= set(order))
        assert ready, f"dependsOn never settles: {pending}"
        order += ready
        for name in ready:
            del pending[name]
    return order


def before(name: str, by_name: dict[str, Obj]) -> set[str]:
    """The Kustomizations Flux has made Ready before it applies `name`: its dependsOn,
    transitively. Flux reconciles everything else concurrently, in any order."""
    found: set[str] = set()
    pending = [d["name"] for d in by_name[name]["spec"].get("dependsOn", [])]
    while pending:
        dependency = pending.pop()
        if dependency not in found:
            found.add(dependency)
            pending += [d["name"] for d in by_name[dependency]["spec"].get("dependsOn", [])]
    return found


def test_flux_applies_the_shared_folder_first_and_each_part_alone(split_build: Any) -> None:
    out, rendered = split_build
    for env in environments(out):
        # those that apply a folder of the overlay (the others only health-check models)
        kustomizations = [k for k in flux_kustomizations(out, env)
                          if "/overlays/" in k["spec"]["path"]]
        by_name = {k["metadata"]["name"]: k for k in kustomizations}
        assert flux_order(kustomizations)[0] == f"{STACK}-{env}"  # shared keeps the name
        folder_of = {}
        for name, k in by_name.items():
            folder_of[name] = k["spec"]["path"].rsplit("/", 1)[1]
            assert k["spec"]["path"] == f"./clusters/platform/overlays/{env}/{folder_of[name]}"
        stack_objects = {key(o) for objects in rendered[env].values() for o in objects}
        for name, k in by_name.items():
            available = {key(o) for n in {name, *before(name, by_name)}
                         for o in rendered[env][folder_of[n]]}
            for obj in rendered[env][folder_of[name]]:
                namespace = ("Namespace", k["spec"]["targetNamespace"])
                assert namespace in available or obj["kind"] == "Namespace", (name, key(obj))
                missing = [n for n in needs(obj)
                           if n in stack_objects and n not in available]
                assert missing == [], (name, key(obj), missing)
        assert sorted(folder_of.values()) == sorted(folders(out, env))


def test_argocd_renders_each_folder_alone_and_syncs_them_as_one_application(
        split_build: Any) -> None:
    out, rendered = split_build
    for env in environments(out):
        app = yaml.safe_load((out / "gitops" / "argocd" / f"{STACK}-{env}.yaml").read_text()
                             .split("---\n", 1)[1])
        assert "source" not in app["spec"]
        paths = [s["path"] for s in app["spec"]["sources"]]
        assert paths == [f"clusters/platform/overlays/{env}/{f}" for f in folders(out, env)]
        # one repo-server call per source, each with its own timeout
        assert all((out / p.removeprefix("clusters/platform/") / "kustomization.yaml")
                   .is_file() for p in paths)
        # one sync over every source: waves and WaitForFirstConsumer claims across folders
        everything = [o for objects in rendered[env].values() for o in objects]
        assert argocd_sync(everything) == []


def test_workloads_stay_in_their_part_when_others_come_and_go(tmp_path: Path) -> None:
    before = build(tmp_path, split_spec(), "before")
    text = split_spec().replace("  agents:\n", "  agents:\n"
                                "    - {name: newcomer, image: ghcr.io/example/newcomer:1.0.0, "
                                "modelAPI: gateway, model: small,\n"
                                "       apiKeySecret: {name: newcomer-key, key: key}}\n", 1)
    after = build(tmp_path, text, "after")
    moved = []
    for env in environments(before):
        old = {p.name: p.parent.name for p in (before / "overlays" / env).rglob("*.yaml")
               if p.name != "kustomization.yaml"}
        new = {p.name: p.parent.name for p in (after / "overlays" / env).rglob("*.yaml")
               if p.name != "kustomization.yaml"}
        assert any("newcomer" in name for name in set(new) - set(old)), env
        moved += [(env, name) for name in old.keys() & new.keys() if old[name] != new[name]]
    assert moved == []


def flux_garbage(old: dict[str, set[tuple[str, str]]], new: dict[str, set[tuple[str, str]]],
                 order: list[str], prune: dict[str, bool],
                 objects: dict[tuple[str, str], Obj]) -> set[tuple[str, str]]:
    """Flux's garbage collection when objects move between Kustomizations (same revision):
    each Kustomization, in dependsOn order, applies its objects (taking them over: it
    writes its own owner labels) and then deletes what left its inventory, but only objects
    still labelled with its name, and never those whose prune annotation is disabled.
    Returns what was deleted (and only recreated when their new owner applies)."""
    owner = {obj: name for name, inventory in old.items() for obj in inventory}
    deleted: set[tuple[str, str]] = set()
    for name in order:
        for obj in new.get(name, set()):
            owner[obj] = name
        if not prune[name]:
            continue
        for obj in old.get(name, set()) - new.get(name, set()):
            if owner.get(obj) == name and deleted_by("flux", objects[obj]):
                deleted.add(obj)
    return deleted


def inventories(out: Path, env: str, rendered: dict[str, list[Obj]]
                ) -> tuple[dict[str, set[tuple[str, str]]], list[str], dict[str, bool]]:
    kustomizations = flux_kustomizations(out, env)
    inventory: dict[str, set[tuple[str, str]]] = {}
    for k in kustomizations:
        if "/overlays/" not in k["spec"]["path"]:
            inventory[k["metadata"]["name"]] = set()  # health checks only: applies nothing
            continue
        folder = k["spec"]["path"].rsplit("/", 1)[1]
        objects = rendered.get(folder, rendered.get(""))
        assert objects is not None
        inventory[k["metadata"]["name"]] = set(map(key, objects))
    prune = {k["metadata"]["name"]: bool(k["spec"]["prune"]) for k in kustomizations}
    return inventory, flux_order(kustomizations), prune


def test_splitting_under_flux_keeps_every_workload_when_prune_is_off_first(
        tmp_path: Path, kustomize: Any) -> None:
    """The recipe of docs/internals.md: a new overlayParts moves workloads between
    Kustomizations, and the shared one (`<stack>-<env>`, first by dependsOn) would delete
    them before their new part applies them; with gitops.flux.prune false for that one
    commit nothing is deleted, and turning it back on deletes nothing either."""
    one = build(tmp_path, split_spec(1), "one")
    held = build(tmp_path, split_spec(prune=False), "held")
    final = build(tmp_path, split_spec(), "final")
    for env in environments(one):
        whole = {"": kustomize(one / "overlays" / env)}
        objects = {key(o): o for o in whole[""]}
        old, _, _ = inventories(one, env, whole)
        parts = {f: kustomize(held / "overlays" / env / f) for f in folders(held, env)}
        new, order, prune = inventories(held, env, parts)
        assert not any(prune.values())
        assert flux_garbage(old, new, order, prune, objects) == set()
        unsafe = flux_garbage(old, new, order, dict.fromkeys(prune, True), objects)
        assert any(kind == "Deployment" for kind, _ in unsafe), env  # why the recipe exists
        after, order, prune = inventories(final, env, parts)
        assert all(prune.values()) and after == new
        assert flux_garbage(new, after, order, prune, objects) == set()


def test_changes_note_and_base_line_up_with_the_parts(split_build: Any) -> None:
    out, _ = split_build
    base = {p.relative_to(out / "overlays" / "base") for p in (out / "overlays" / "base")
            .rglob("*.yaml")}
    for env in environments(out):
        folder = out / "overlays" / env
        note = (folder / "CHANGES.md").read_text()
        for line in note.splitlines():
            if line.startswith("- Added: "):
                assert (folder / line.rsplit("`", 2)[1]).is_file(), line
        ours = {p.relative_to(folder) for p in folder.rglob("*.yaml")}
        # `diff -r overlays/base overlays/<env>` lines the same objects up, part by part
        assert len(ours & base) >= len(base) - 2, env


def test_the_warning_names_the_parts_that_fit_the_budget() -> None:
    budget = overlays.largest_renderable_overlay(overlays.PART_RENDER_SECONDS)
    assert overlays.render_seconds(budget) <= overlays.PART_RENDER_SECONDS
    assert overlays.parts_needed(5833) == 3  # the L benchmark's largest overlay
    assert overlays.render_seconds(5833 / 3) <= overlays.PART_RENDER_SECONDS
    slow = overlays.slow_overlay_warning("prod", 9000, ["Flux"])
    assert slow is not None and "gitops.overlayParts: 4" in slow[1]
    split = overlays.slow_overlay_warning("prod", 5000, ["Flux"], parts=2)
    assert split is not None and "a folder of overlays/prod" in split[0]
    assert "gitops.overlayParts: 4" in split[1]
    assert overlays.slow_overlay_warning("prod", 2000, ["Flux"], parts=4) is None
