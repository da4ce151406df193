"""Plugins: models an installed package adds through the entry-point group `lm_lineage.models`
(PLUGIN_GROUP), and `Models`, the mapping bench.models.registry.MODELS is: the built-in
models, then the plugins'.

Each entry point names a function that takes no arguments and returns a ModelSpec (its build
follows bench.models.contract), or a dict: with `kind`, a model of that kind whose other keys
are its fixed settings (`{"name": "my-lm", "kind": "torch-lm", "module": "pkg:Class"}`), else
ModelSpec's fields. They load lazily, the first time `Models` is asked for a name that is not
built in (or listed whole), so a command that runs built-in models never imports one. A
plugin that fails (on import, even with SystemExit, or with a bad spec) is left out and
recorded as one line in `Models.plugin_errors`: `lm-lineage list` shows it, and a lookup of a
name that is not built in raises it (BenchError), since that model may be the broken plugin's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from importlib import metadata

from bench.errors import BenchError
from bench.models.contract import ModelSpec

PLUGIN_GROUP = "lm_lineage.models"
_SPEC_FIELDS = {f.name for f in dataclasses.fields(ModelSpec)}


def load_plugins(taken: Mapping[str, ModelSpec], kinds: Mapping[str, ModelSpec]) -> tuple[dict[str, ModelSpec],
                                                                                          list[str]]:
    """The models of every installed entry point of PLUGIN_GROUP, by name, and one line per
    plugin that failed (it is left out; the others still load). `taken`: the built-in names;
    `kinds`: the specs a plugin's `kind` names."""
    found: dict[str, ModelSpec] = {}
    errors: list[str] = []
    for entry in metadata.entry_points(group=PLUGIN_GROUP):
        where = f"plugin '{entry.name}' ({entry.value}, entry-point group {PLUGIN_GROUP})"
        try:
            made = entry.load()()
        except (Exception, SystemExit) as exc:  # anything the plugin raises on import or call, exit included
            errors.append(f"{where} fails: {type(exc).__name__}: {exc}")
            continue
        try:
            spec = _plugin_spec(made, where, kinds)
        except BenchError as exc:
            errors.append(str(exc))
            continue
        if spec.name in taken or spec.name in found:
            errors.append(f"{where}: its model '{spec.name}' is already a model; expected a new name")
            continue
        dist = getattr(entry, "dist", None)
        found[spec.name] = dataclasses.replace(
            spec, description=f"{spec.description} (plugin {dist.name if dist else entry.name})")
    return found, errors


def _plugin_spec(made, where: str, kinds: Mapping[str, ModelSpec]) -> ModelSpec:
    if isinstance(made, ModelSpec):
        return made
    if not isinstance(made, dict) or not isinstance(made.get("name"), str):
        raise BenchError(f"{where}: returned {type(made).__name__}; expected a ModelSpec or a dict with a 'name'")
    if "kind" in made:
        kind, name = made["kind"], made["name"]
        if kind not in kinds:
            raise BenchError(f"{where}: kind {kind!r}; expected one of {', '.join(kinds)}")
        template = kinds[kind]
        settings = {key: value for key, value in made.items() if key not in ("name", "kind", "description")}
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(template.config_cls)})
        if unknown:
            raise BenchError(f"{where}: unknown setting(s) {', '.join(unknown)} for kind {kind!r}")
        return dataclasses.replace(template, name=name, preset=settings,
                                   description=made.get("description", template.description))
    unknown = sorted(set(made) - _SPEC_FIELDS)
    if unknown:
        raise BenchError(f"{where}: unknown ModelSpec field(s) {', '.join(unknown)}")
    try:
        return ModelSpec(**made)
    except TypeError as exc:
        raise BenchError(f"{where}: not a model spec ({exc})") from exc


class Models(Mapping[str, ModelSpec]):
    """The built-in models, then the plugins', loaded on first need (module docstring)."""

    def __init__(self, built_in: dict[str, ModelSpec], kinds: Mapping[str, ModelSpec]):
        self.built_in = built_in
        self.kinds = kinds
        self._plugins: dict[str, ModelSpec] | None = None
        self._errors: list[str] = []

    def _load(self) -> dict[str, ModelSpec]:
        if self._plugins is None:
            self._plugins, self._errors = load_plugins(self.built_in, self.kinds)
        return self._plugins

    @property
    def plugins(self) -> dict[str, ModelSpec]:
        """The working plugins' models (loading the plugins if not yet done)."""
        return self._load()

    @property
    def plugin_errors(self) -> list[str]:
        """One line per installed plugin that failed to load (loading the plugins if not yet done)."""
        self._load()
        return self._errors

    def __getitem__(self, name: str) -> ModelSpec:
        if name in self.built_in:
            return self.built_in[name]
        if name in self.plugins:
            return self.plugins[name]
        self._raise_broken_plugins()
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if name in self.built_in or name in self.plugins:
            return True
        self._raise_broken_plugins()
        return False

    def __iter__(self) -> Iterator[str]:
        yield from self.built_in
        yield from self.plugins

    def __len__(self) -> int:
        return len(self.built_in) + len(self.plugins)

    def _raise_broken_plugins(self) -> None:
        """A name that is neither built in nor a working plugin's may be a broken plugin's."""
        if self.plugin_errors:
            raise BenchError("; ".join(self.plugin_errors))

