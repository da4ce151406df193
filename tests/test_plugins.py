"""Plugins load lazily, and a broken one is one line for the command that needs it (issue 26).

A command that runs built-in models never imports a plugin; `lm-lineage list` lists what
works and names each broken plugin in one line; a lookup of a name that is not built in
raises the broken plugins' line, since that model may be theirs.
"""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.errors import BenchError
from bench.models import plugins, registry

REPO = Path(__file__).resolve().parents[1]


def _entry(name: str, load) -> SimpleNamespace:
    """An entry point of PLUGIN_GROUP as importlib.metadata gives it, `load()` returning the plugin's function."""
    return SimpleNamespace(name=name, value=f"{name}_module:spec", load=load, dist=SimpleNamespace(name=f"{name}-dist"))


def _exits():
    raise SystemExit(3)


def _models(monkeypatch, entries) -> plugins.Models:
    """A fresh MODELS over `entries`, counting how often the installed plugins are read."""
    reads = []
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: reads.append(group) or entries)
    models = plugins.Models(registry.BUILT_IN, registry.KINDS)
    models.reads = reads
    return models


def test_built_in_models_never_load_the_plugins(monkeypatch):
    models = _models(monkeypatch, [_entry("broken", _exits)])
    assert "kn3" in models and models["word2vec-sg"].family == "embedding"
    assert models.reads == []


def test_a_plugin_is_loaded_once_for_a_name_that_is_not_built_in(monkeypatch):
    spec = {"name": "my-vectors", "kind": "vectors", "path": "v.txt"}
    models = _models(monkeypatch, [_entry("good", lambda: lambda: spec)])
    assert models["my-vectors"].preset == {"path": "v.txt"}
    assert "my-vectors" in models and "no-such-model" not in models
    assert models["my-vectors"].description.endswith("(plugin good-dist)")
    assert models.reads == [plugins.PLUGIN_GROUP]


def test_a_broken_plugin_is_left_out_and_named_in_one_line(monkeypatch):
    spec = {"name": "my-vectors", "kind": "vectors", "path": "v.txt"}
    clash = {"name": "kn3", "kind": "vectors", "path": "v.txt"}
    models = _models(monkeypatch, [_entry("broken", _exits), _entry("good", lambda: lambda: spec),
                                   _entry("clash", lambda: lambda: clash)])
    assert "my-vectors" in models  # the working plugin still loads
    assert list(models) == [*registry.BUILT_IN, "my-vectors"]  # a listing leaves the broken ones out
    assert models.plugin_errors == [
        f"plugin 'broken' (broken_module:spec, entry-point group {plugins.PLUGIN_GROUP}) fails: SystemExit: 3",
        f"plugin 'clash' (clash_module:spec, entry-point group {plugins.PLUGIN_GROUP}): its model 'kn3' is "
        f"already a model; expected a new name"]
    with pytest.raises(BenchError) as error:
        models["not-built-in"]  # which may be the broken plugin's model: the command cannot go on
    assert "plugin 'broken'" in str(error.value) and "\n" not in str(error.value)
    assert models["kn3"] is registry.BUILT_IN["kn3"]


def _site_with_exiting_plugin(tmp_path: Path) -> Path:
    """An installed distribution whose plugin module raises SystemExit when imported."""
    site = tmp_path / "site"
    info = site / "exiting_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: exiting-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lm_lineage.models]\nexiting = exiting_plugin:spec\n")
    (site / "exiting_plugin.py").write_text("raise SystemExit('the plugin gave up')\n")
    return site


def _cli(*argv: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_list_still_works_beside_a_plugin_that_exits_at_import(tmp_path):
    listed = _cli("list", site=_site_with_exiting_plugin(tmp_path), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "  kn3 " in listed.stdout and "matrices:" in listed.stdout
    [line] = listed.stderr.strip().splitlines()
    assert line == ("lm-lineage: warning: plugin 'exiting' (exiting_plugin:spec, entry-point group lm_lineage.models) "
                    "fails: SystemExit: the plugin gave up")


def test_a_run_that_needs_a_model_not_built_in_names_the_broken_plugin(tmp_path):
    ran = _cli("run", "--models", "exiting-model", "--out", str(tmp_path / "out"),
               site=_site_with_exiting_plugin(tmp_path), cwd=tmp_path)
    assert ran.returncode == 2
    [line] = ran.stderr.strip().splitlines()
    assert line.startswith("lm-lineage: error: plugin 'exiting' (exiting_plugin:spec") and "SystemExit" in line
    assert not (tmp_path / "out").exists()
