"""What a new user meets in the first hour: honest exit codes, summaries, JSON results,
refusals that protect files, and editor support that resolves offline."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import jsonschema
import yaml
from click.testing import CliRunner

from conftest import CASES, REPO
from modelapi_compile.cli import cli

EXAMPLE = str(REPO / "examples" / "agentic.yaml")
IMPORT = CASES / "import"


def _modeline_target(spec: Path) -> Path:
    first = spec.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, first
    assert "://" not in match.group(1)  # nothing serves a URL; a file beside the spec does
    return spec.parent / match.group(1)


def test_init_and_import_modeline_points_at_a_schema_written_beside(tmp_path: Path) -> None:
    spec = tmp_path / "stack.yaml"
    assert CliRunner().invoke(cli, ["init", "-o", str(spec)]).exit_code == 0
    schema_file = _modeline_target(spec)
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(yaml.safe_load(spec.read_text()), schema)  # the editor's view
    with_errors = yaml.safe_load(spec.read_text())
    with_errors["spec"]["agents"][0]["replicas"] = "two"
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(with_errors))

    imported = tmp_path / "sub" / "imported.yaml"
    imported.parent.mkdir()
    result = CliRunner().invoke(cli, ["import", str(IMPORT / "litellm-config.yaml"),
                                      "-o", str(imported)])
    assert result.exit_code == 0, result.output
    jsonschema.validate(yaml.safe_load(imported.read_text()),
                        json.loads(_modeline_target(imported).read_text()))


def test_a_foreign_file_named_like_the_schema_is_left_alone(tmp_path: Path) -> None:
    foreign = tmp_path / "modelstack.v1alpha1.json"
    foreign.write_text('{"mine": true}\n')
    result = CliRunner().invoke(cli, ["init", "-o", str(tmp_path / "stack.yaml")])
    assert result.exit_code == 0
    assert foreign.read_text() == '{"mine": true}\n'
    assert "left alone" in result.output


# --- 1: another stack's build is never lost silently; summaries count what changed ------------


def _init(tmp_path: Path, name: str, *extra: str) -> Path:
    spec = tmp_path / f"{name}.yaml"
    result = CliRunner().invoke(cli, ["init", "-o", str(spec), "--name", name, *extra])
    assert result.exit_code == 0, result.output
    return spec


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _build(spec: Path | str, out: Path, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm",
                                    *extra])


def test_building_another_stack_into_an_owned_folder_is_refused_naming_both(
        tmp_path: Path) -> None:
    out = tmp_path / "gitrepo"
    assert _build(EXAMPLE, out).exit_code == 0
    before = _files(out)
    other = _init(tmp_path, "shop", "--gitops", "flux")
    refused = _build(other, out)
    assert refused.exit_code == 1
    assert "stack 'agentic' from agentic.yaml" in refused.output
    assert "stack 'shop' from shop.yaml" in refused.output and "--force" in refused.output
    assert _files(out) == before  # nothing touched
    forced = _build(other, out, "--force")
    assert forced.exit_code == 0, forced.output
    assert "replaced (--force)" in forced.output
    assert not (out / "charts" / "agentic").exists() and (out / "charts" / "shop").is_dir()


def test_the_same_stack_from_another_spec_file_is_refused_too(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(EXAMPLE, out).exit_code == 0
    copy = tmp_path / "copy-of-agentic.yaml"
    copy.write_text(Path(EXAMPLE).read_text())
    refused = _build(copy, out)
    assert refused.exit_code == 1 and "agentic.yaml" in refused.output
    assert "copy-of-agentic.yaml" in refused.output


def test_every_summary_says_files_added_changed_and_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _build(EXAMPLE, out)
    total = len(_files(out))
    assert first.stdout.strip() == (f"wrote {out}: {total} files; {total} added, 0 changed, "
                                    "0 removed")
    spec = tmp_path / "agentic.yaml"
    text = Path(EXAMPLE).read_text()
    start, end = text.index("    - name: tinyllama-agent"), text.index("  environments:")
    spec.write_text(text[:start] + text[end:])  # one agent fewer
    second = _build(spec, out)
    summary = re.fullmatch(r"wrote \S+: (\d+) files; 0 added, (\d+) changed, (\d+) removed\n",
                           second.stdout)
    assert summary, second.output
    assert int(summary[1]) == len(_files(out)) and int(summary[2]) > 0 and int(summary[3]) > 2
    again = _build(spec, out)
    assert again.stdout.endswith("; 0 added, 0 changed, 0 removed\n")


# --- 2: import never overwrites silently ------------------------------------------------------


def test_import_refuses_an_existing_file_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "stack.yaml"
    target.write_text("mine\n")
    args = ["import", str(IMPORT / "litellm-config.yaml"), "-o", str(target)]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and str(target) in refused.output
    assert "--force" in refused.output and target.read_text() == "mine\n"
    forced = CliRunner().invoke(cli, [*args, "--force"])
    assert forced.exit_code == 0 and target.read_text().startswith("# yaml-language-server")


# --- 3: user mistakes are never called bugs ---------------------------------------------------


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    """Inputs a user gets wrong. Tests run as root here, for whom chmod 000 does not make a
    file unreadable; /proc/self/mem is a file every process fails to read at offset 0
    (EIO), so the unreadable case is a real read error for root and others alike; a
    chmod-000 file is added when not root."""
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "folder").mkdir()
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    inputs = {"missing": tmp_path / "missing.yaml", "directory": tmp_path / "folder",
              "empty": tmp_path / "empty.yaml", "unreadable": Path("/proc/self/mem"),
              "not UTF-8": tmp_path / "latin1.yaml",
              "under a file": tmp_path / "empty.yaml" / "spec.yaml"}
    if os.geteuid() != 0:
        locked = tmp_path / "locked.yaml"
        locked.write_text("apiVersion: x\n")
        locked.chmod(0)
        inputs["permission denied"] = locked
    return inputs


INPUT_COMMANDS: dict[str, Any] = {
    "validate": lambda f, o: ["validate", "-f", f],
    "build": lambda f, o: ["build", "-f", f, "-o", o, "--no-helm"],
    "build --check": lambda f, o: ["build", "-f", f, "-o", o, "--no-helm", "--check"],
    "diff": lambda f, o: ["diff", "-f", f, "-o", o, "--no-helm"],
    "template": lambda f, o: ["template", "-f", f, "--env", "dev"],
    "validate-manifests": lambda f, o: ["validate-manifests", f],
    "compose": lambda f, o: ["compose", "-f", f, "--env", "dev"],
    "graph": lambda f, o: ["graph", "-f", f],
    "explain": lambda f, o: ["explain", "-f", f, "--env", "dev", "spec.namespace"],
    "import": lambda f, o: ["import", f, "-o", o + ".yaml"],
    "simulate": lambda f, o: ["simulate", "-f", f, "--env", "dev"],
    "verify": lambda f, o: ["verify", "--server", "-f", f, "--env", "dev"],
}
OUTPUT_COMMANDS: dict[str, Any] = {
    "build -o": lambda o: ["build", "-f", EXAMPLE, "-o", o, "--no-helm"],
    "init -o": lambda o: ["init", "-o", o],
    "compose -o": lambda o: ["compose", "-f", EXAMPLE, "--env", "dev", "-o", o],
    "import -o": lambda o: ["import", str(IMPORT / "litellm-config.yaml"), "-o", o],
}


def test_no_subcommand_exits_3_on_missing_unreadable_folder_or_empty_input(
        tmp_path: Path) -> None:
    inputs = _bad_inputs(tmp_path)
    seen = set()
    for command, make in INPUT_COMMANDS.items():
        seen.add(make("f", "o")[0])
        for kind, path in inputs.items():
            if command == "validate-manifests" and kind in ("directory", "empty"):
                expected = {0}  # no manifests in an empty folder or file: kubeconform's 0
            else:
                expected = {1}
            result = CliRunner().invoke(cli, make(str(path), str(tmp_path / "out")))
            where = f"{command} with a {kind} input"
            assert result.exit_code in expected, f"{where}: {result.output}"
            assert "internal error" not in result.output and "Traceback" not in result.output
            if result.exit_code == 1 and kind != "not UTF-8":
                assert str(path) in result.output, f"{where} does not name the path"
    for command, make in OUTPUT_COMMANDS.items():
        seen.add(make("o")[0])
        for kind in ("under a file", "directory"):
            target = str(inputs[kind] if kind == "under a file" else tmp_path / "folder")
            if command == "build -o" and kind == "directory":
                continue  # a folder is what build writes into
            result = CliRunner().invoke(cli, make(target))
            assert result.exit_code in (1, 2), f"{command} into {kind}: {result.output}"
    for command in ("schema", "completion"):
        seen.add(command)
        assert CliRunner().invoke(cli, [command, "--no-such-flag"]).exit_code == 2
    assert seen == set(cli.commands)  # every subcommand was tried


def test_a_bad_option_value_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["validate-manifests", "overlays",
                                      "--kubernetes-version", "latest"])
    assert result.exit_code == 2, result.output
    assert "'latest' is not a Kubernetes version" in result.output
    assert "internal error" not in result.output


def test_debug_works_after_the_subcommand(monkeypatch: Any) -> None:
    import modelapi_compile.spec.validate as validate_module

    def broken(path: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(validate_module, "load_spec", broken)
    quiet = CliRunner().invoke(cli, ["validate", "-f", EXAMPLE])
    assert quiet.exit_code == 3 and "Traceback" not in quiet.output
    for args in (["--debug", "validate", "-f", EXAMPLE], ["validate", "-f", EXAMPLE, "--debug"]):
        loud = CliRunner().invoke(cli, args)
        assert loud.exit_code == 3 and "Traceback" in loud.output, args


# --- 5: Ctrl-C --------------------------------------------------------------------------------


def test_ctrl_c_during_the_write_exits_130_and_the_next_build_completes_it(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(EXAMPLE, out).exit_code == 0
    spec = tmp_path / "agentic.yaml"
    spec.write_text(Path(EXAMPLE).read_text().replace("replicas: 3", "replicas: 4"))
    command = [sys.executable, "-m", "modelapi_compile", "build", "-f", str(spec), "-o",
               str(out), "--no-helm"]
    # "slow:move": each move pauses, so the SIGINT lands before the write can finish
    env = {**os.environ, "MODELAPI_COMPILE_TRACE_WRITES": "slow:move"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True,
                               stdout=subprocess.DEVNULL)
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("modelapi-compile: step move"):
            process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read()
    assert process.wait() == 130
    assert f"interrupted while switching {out}" in rest
    assert "the next `build` completes the switch" in rest and "Aborted" not in rest
    check = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm",
                                     "--check"])
    assert check.exit_code == 1 and "interrupted while switching" in check.output
    assert _build(spec, out).exit_code == 0  # completes the switch, then builds
    check = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm",
                                     "--check"])
    assert check.exit_code == 0, check.output


def test_build_help_says_check_writes_nothing() -> None:
    text = " ".join(CliRunner().invoke(cli, ["build", "--help"]).output.split())
    assert "holds a write an interrupted build left" in text and "writes nothing" in text


# --- 7: JSON results and GitHub annotations ---------------------------------------------------


def test_build_check_diff_init_and_import_give_json_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    built = json.loads(_build(EXAMPLE, out, "--format", "json").output)
    assert built["command"] == "build" and built["changed"] == built["removed"] == []
    assert "charts/agentic/values.yaml" in built["added"] and built["warnings"] == []
    assert built["files"] == len(_files(out))
    values = out / "charts" / "agentic" / "values-prod.yaml"
    values.write_text(values.read_text() + "# drift\n")
    check = _build(EXAMPLE, out, "--check", "--format", "json")
    assert check.exit_code == 1
    result = json.loads(check.stdout)
    assert result["drift"] is True and result["changed"] == ["charts/agentic/values-prod.yaml"]
    diff = json.loads(CliRunner().invoke(cli, ["diff", "-f", EXAMPLE, "-o", str(out),
                                               "--no-helm", "--format", "json"]).output)
    assert diff["changed"] == ["charts/agentic/values-prod.yaml"] and diff["added"] == []
    spec = tmp_path / "s.yaml"
    init = json.loads(CliRunner().invoke(cli, ["init", "-o", str(spec), "--format",
                                               "json"]).output)
    assert init["written"] == str(spec) and init["added"] == [str(spec)]
    assert init["next"].endswith("-o deploy/agentic")
    imported = CliRunner().invoke(cli, ["import", str(IMPORT / "litellm-config.yaml"), "-o",
                                        str(tmp_path / "i.yaml"), "--output", "json"])
    notes = json.loads(imported.output)["notes"]
    assert any("OpenAI-compatible endpoint" in note for note in notes)


def test_check_output_github_annotates_each_drifted_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(EXAMPLE, out).exit_code == 0
    values = out / "charts" / "agentic" / "values-prod.yaml"
    values.write_text(values.read_text() + "# drift\n")
    (out / "overlays" / "base" / "service-agentic-ollama.yaml").unlink()
    result = _build(EXAMPLE, out, "--check", "--output", "github")
    assert result.exit_code == 1
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 2
    assert any(f"file={values}," in a and "differs from the spec" in a for a in annotations)
    assert any("service-agentic-ollama.yaml is missing" in a for a in annotations)


# --- 12: small but visible --------------------------------------------------------------------


def test_counts_are_pluralised(tmp_path: Path) -> None:
    spec = _init(tmp_path, "solo", "--backends", "ollama")
    text = spec.read_text()
    spec.write_text(text[:text.index("  environments:")] if "  environments:" in text else text)
    result = CliRunner().invoke(cli, ["validate", "-f", str(spec)])
    assert result.exit_code == 0, result.output
    assert "(1 modelAPI, 1 agent; environment: default)" in result.output


def test_every_option_and_command_has_a_whole_help_text() -> None:
    for name, command in cli.commands.items():
        short = command.get_short_help_str(limit=200)
        assert short and not short.endswith(("...", "e.g.", "e.g")), name
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"{name} {param.opts[0]} has no help"


def test_env_is_optional_when_the_spec_has_one_environment(tmp_path: Path) -> None:
    spec = _init(tmp_path, "solo", "--backends", "ollama")
    text = spec.read_text()
    spec.write_text(text[:text.index("  environments:")])
    for args in (["template", "-f", str(spec)], ["compose", "-f", str(spec)],
                 ["explain", "-f", str(spec), "spec.namespace"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
    several = CliRunner().invoke(cli, ["template", "-f", EXAMPLE])
    assert several.exit_code == 2 and "dev, prod" in several.output


def test_progress_shows_the_stage_in_progress_once_half_a_second_passed() -> None:
    import io

    from modelapi_compile.cli.common import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    timers: list[tuple[float, Any]] = []

    class Timer:
        def __init__(self, delay: float, action: Any) -> None:
            timers.append((delay, action))

        def cancel(self) -> None:
            pass

    terminal = Terminal()
    progress = Progress(terminal, timer=Timer)
    progress("load and validate")  # a long first stage: nothing else would show it
    assert terminal.getvalue() == ""
    ((delay, fire),) = timers
    assert 0.4 < delay <= 0.5
    fire()
    assert terminal.getvalue().endswith("modelapi-compile: load and validate...")
    progress.done()
    fire()  # a late timer after the build is done writes nothing
    assert terminal.getvalue().endswith("\r\033[K")
    # the half second counts from the process start: imports that took longer leave none
    import time

    Progress(Terminal(), timer=Timer, started=time.monotonic() - 2)
    assert timers[-1][0] == 0.0


# --- 6: interactive init ----------------------------------------------------------------------


def test_interactive_init_re_asks_each_bad_answer_and_suggests_the_gitops_path(
        tmp_path: Path, monkeypatch: Any) -> None:
    import modelapi_compile.cli.side_commands as cli_module

    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    monkeypatch.chdir(tmp_path)  # the GitOps repository's root
    answers = "Bad Name\nshop\ntgi,ollama\nollama,litellm\nflux\n"
    result = CliRunner().invoke(cli, ["init", "-o", "stack.yaml"], input=answers)
    assert result.exit_code == 0, result.output
    assert result.output.count("Stack name") == 2 and "'Bad Name' must be" in result.output
    assert result.output.count("Backends") == 2 and "unknown: tgi" in result.output
    spec = yaml.safe_load((tmp_path / "stack.yaml").read_text())
    assert spec["metadata"]["name"] == "shop"
    suggested = result.output.strip().splitlines()[-1].split("next: ")[1]
    assert suggested == f"modelapi-compile build -f stack.yaml -o {spec['spec']['gitops']['path']}"
    built = CliRunner().invoke(cli, [*suggested.split()[1:], "--no-helm"])
    assert built.exit_code == 0, built.output
    out = tmp_path / spec["spec"]["gitops"]["path"]
    flux_paths = [document["spec"]["path"]
                  for flux_file in (out / "gitops" / "flux").glob("shop-*.yaml")
                  for document in yaml.safe_load_all(flux_file.read_text())
                  if document and document["kind"] == "Kustomization"]
    # dev and prod point at overlays the build wrote, and their Ollama rollouts at the
    # folder of health checks
    assert sorted(flux_paths) == ["./deploy/shop/gitops/flux/rollouts"] * 2 + [
        "./deploy/shop/overlays/dev", "./deploy/shop/overlays/prod"]
    assert all((tmp_path / path / "kustomization.yaml").is_file() for path in flux_paths)


# --- 10: diff --semantic ----------------------------------------------------------------------


def test_semantic_diff_shows_differing_list_items_and_keeps_bookkeeping_out(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(EXAMPLE, out).exit_code == 0
    same = CliRunner().invoke(cli, ["diff", "-f", EXAMPLE, "-o", str(out), "--no-helm",
                                    "--semantic"])
    assert same.exit_code == 0 and same.output.startswith("No changes")
    spec = tmp_path / "agentic.yaml"
    text = Path(EXAMPLE).read_text()
    start, end = text.index("    - name: tinyllama-agent"), text.index("  environments:")
    text = (text[:start] + text[end:]).replace("value: info", "value: warning")
    spec.write_text(text.replace("maxModelLen: 2048", "maxModelLen: 4096"))
    args = ["diff", "-f", str(spec), "-o", str(out), "--no-helm", "--semantic"]
    lines = CliRunner().invoke(cli, args).output.splitlines()
    # a long list shows the item that went, whole, instead of two equal-looking cut lists
    assert '    resources: - "deployment-agentic-tinyllama-agent.yaml"' in lines
    assert not any(line.endswith("...") for line in lines)
    # named items are matched by name and compared field by field
    assert ('    spec.template.spec.containers[agent].env[LOG_LEVEL].value: '
            '"info" -> "warning"') in lines
    assert any(line.endswith(': - "2048"') for line in lines)
    assert any(line.endswith(': + "4096"') for line in lines)
    assert not any(".modelapi-compile.json" in line or "README.md" in line for line in lines)
    everything = CliRunner().invoke(cli, [*args, "--bookkeeping"]).output
    assert "~ .modelapi-compile.json (text)" in everything
    assert "~ charts/agentic/README.md (text)" in everything


# --- 4: every problem at once -----------------------------------------------------------------


def test_one_validate_reports_field_reference_and_patch_errors_together(tmp_path: Path) -> None:
    case = CASES / "invalid" / "every-problem-at-once.yaml"
    result = CliRunner().invoke(cli, ["validate", "-f", str(case), "--format", "json"])
    assert result.exit_code == 1
    found = {(p["path"], p["line"]) for p in json.loads(result.output)["problems"]}
    assert found == {
        ("spec.modelAPIs[0].ollama.imgae", 10),  # field error
        ("spec.agents[0].modelAPI", 15),  # reference error on a field that parsed
        ("spec.agents[0].replicas", 17),  # field error in the same item
        ("spec.environments[0].patch.agents[0].name", 22),  # patch error
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(case.read_text().replace("name: helpr", "name: helper\n"
                                             "            modelAPI: nowhere"))
    merged = CliRunner().invoke(cli, ["validate", "-f", str(spec), "--format", "json"])
    paths = {p["path"] for p in json.loads(merged.output)["problems"]}
    # the environment's merged spec is checked too, its reference error located in the patch
    assert "spec.agents[0].modelAPI" in paths and "spec.modelAPIs[0].ollama.imgae" in paths
    # ... under the path written there
    found = {(p["path"], p["line"]) for p in json.loads(merged.output)["problems"]
             if p["path"].endswith("agents[0].modelAPI")}
    assert found == {("spec.agents[0].modelAPI", 15),
                     ("spec.environments[0].patch.agents[0].modelAPI", 23)}


def test_items_set_aside_for_field_errors_are_not_reported_again_as_missing(
        tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    # vllm-hosted loses its required model: the proxy route, the fallback and the agent
    # that use it must not be reported as dangling references on top of that.
    spec.write_text(Path(EXAMPLE).read_text().replace(
        "        model: TinyLlama/TinyLlama-1.1B-Chat-v1.0\n", "", 1))
    result = CliRunner().invoke(cli, ["validate", "-f", str(spec), "--format", "json"])
    problems = json.loads(result.output)["problems"]
    assert result.exit_code == 1 and len(problems) == 1, problems
    assert problems[0]["message"] == "required field 'model' is missing"


# --- 8: explain shows what applies ------------------------------------------------------------


def test_explain_shows_the_environments_namespace() -> None:
    result = CliRunner().invoke(cli, ["explain", "-f", EXAMPLE, "--env", "dev",
                                      "spec.namespace"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("spec.namespace (dev): agentic-dev\n")
    assert "environments[dev].namespace" in result.output


def test_defaults_shown_are_the_defaults_applied() -> None:
    """For every section a model fills in by default, the defaults the JSON schema (and so
    docs/reference.md) states are the values the compiler applies."""
    from pydantic import BaseModel

    from modelapi_compile.spec.model import ModelStack
    from modelapi_compile.spec.schema import spec_schema
    from modelapi_compile.spec.validate import _model_in

    definitions = spec_schema()["$defs"]
    checked = 0

    def walk(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
        nonlocal checked
        for field in model.model_fields.values():
            sub = _model_in(field.annotation)
            if sub is None or sub in seen:
                continue
            default = (field.default_factory() if field.default_factory is not None  # type: ignore[call-arg]
                       else field.default)
            if isinstance(default, BaseModel):
                applied = default.model_dump(by_alias=True, mode="json")
                for name, schema in definitions[sub.__name__]["properties"].items():
                    if "default" in schema:
                        assert applied[name] == schema["default"], (sub.__name__, name)
                        checked += 1
            walk(sub, seen | {sub})

    walk(ModelStack, {ModelStack})
    assert checked > 20
    assert definitions["OllamaGpu"]["properties"]["count"]["default"] == 0
    assert definitions["Gpu"]["properties"]["count"]["default"] == 1
    ollama = CliRunner().invoke(cli, ["explain", "-f", EXAMPLE, "--env", "prod",
                                      "spec.modelAPIs[ollama].ollama.gpu.count"])
    assert ollama.output.startswith("spec.modelAPIs[ollama].ollama.gpu.count (prod): 0\n")
    assert "set by: default" in ollama.output
    reference = (REPO / "docs" / "reference.md").read_text()
    ollama_gpu = reference[reference.index("#### OllamaGpu"):]
    assert "| `count` | integer | 0 |" in ollama_gpu[:ollama_gpu.index("####", 5)]


# --- 9: validate-manifests on a build folder --------------------------------------------------


def test_validate_manifests_on_a_build_folder_skips_chart_and_kustomize_files_with_a_note(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(EXAMPLE, out).exit_code == 0
    result = CliRunner().invoke(cli, ["validate-manifests", str(out), "--strict"])
    assert result.exit_code == 0, result.output
    assert "Invalid: 0, Errors: 0" in result.output
    assert "a Helm chart file, not a manifest" in result.output
    assert "a Kustomize file, not a manifest" in result.output
    report = json.loads(CliRunner().invoke(cli, ["validate-manifests", str(out), "--format",
                                                 "json"]).output)
    by_file = {Path(r["filename"]).relative_to(out).as_posix(): r for r in report["resources"]}
    skipped = {name for name, r in by_file.items() if r["status"] == "statusSkipped"}
    assert {"charts/agentic/templates/workload.yaml", "charts/agentic/values.yaml",
            "charts/agentic/Chart.yaml", "overlays/base/kustomization.yaml",
            "overlays/dev/kustomization.yaml",
            ".modelapi-compile.json"} <= skipped
    # every object of the base overlay and of the GitOps folder was validated
    base = {p.relative_to(out).as_posix() for p in (out / "overlays" / "base").glob("*.yaml")}
    assert {n for n in base if not n.endswith("kustomization.yaml")} <= {
        name for name, r in by_file.items() if r["status"] == "statusValid"}
    # what the overlays render validates too
    from conftest import kustomize_command

    command = kustomize_command()
    if command is not None:
        rendered = subprocess.run([*command, str(out / "overlays" / "dev")], text=True,
                                  capture_output=True, check=True).stdout
        piped = CliRunner().invoke(cli, ["validate-manifests", "-", "--strict"], input=rendered)
        assert piped.exit_code == 0 and "Skipped: 0" in piped.output, piped.output
