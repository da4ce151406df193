"""Probe tasks, one module each, registered by name: `pos` (part of speech, bench.eval.probe)
and `wsd` (word sense, bench.eval.wsd).

A task is a `ProbeTask`: its settings (a dataclass: the matrix's `[probe.NAME]` table, plus
the keys every task shares from `[probe]`), how it loads its corpus, and the rows it makes of
a static vector set and of a layered representation's layers. Every module of this package
that defines `TASK` is registered when the package is imported, so a new probe task is one
module here (and its test); `[probe] tasks` names the ones a run probes
(bench.eval.probe_config), and the cell runs them through bench.run.probes.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path

import torch
from gensim.models import KeyedVectors

from bench.errors import BenchError
from bench.eval.metrics import Metric
from bench.eval.probe import Featurizer


@dataclass
class ProbeRun:
    """What one task's probe of one representation gives the cell."""

    rows: list[dict]  # the result's `metrics[task.rows_key]` rows
    tokens: int | None = None  # tokens featurized, for the timing row's rate (None: not counted)
    training: dict | None = None  # added to the result's `training` (e.g. the scalar mix's weights)


class ProbeTask(abc.ABC):
    """One probe task. A subclass sets the class attributes and implements `load`, `static`
    and `layers`; the cell times each call and files its rows under `rows_key`. Its metric
    goes into every probing cell's `metric_defs`.

    The settings a result stores and its key hashes are one flat table (`key_fields`): a
    task's own fields prefixed with `NAME_`, present where the task runs. POS and WSD keep the
    layout their results were keyed with before tasks were registered (bench.eval.probe_config).
    """

    name: str  # as `[probe] tasks` names it; also its `[probe.NAME]` table
    description: str  # one line for `lm-lineage list`
    metric: Metric  # what its rows' accuracy means (the result's metric_defs)
    settings_cls: type  # a dataclass with defaults for every field

    @property
    def rows_key(self) -> str:
        """The result's metrics key of its rows, and the name of its timing rows."""
        return f"{self.name}_probe"

    @abc.abstractmethod
    def load(self, settings, data_root: Path | None):
        """The task's corpus (any object with `name` and a `fingerprint` dict holding `name` and
        `sha256`), read once per run; one BenchError line when it is missing or malformed."""

    @abc.abstractmethod
    def static(self, vectors: KeyedVectors, model: str, corpus, settings, *, seed: int,
               device: torch.device) -> ProbeRun:
        """The rows of one set of static word vectors."""

    @abc.abstractmethod
    def layers(self, model: str, featurize: Featurizer, n_layers: int, corpus, settings, *, seed: int,
               device: torch.device) -> ProbeRun:
        """The rows of every layer of a layered representation ("0" .. str(n_layers - 1), and
        "mix" where it learns a scalar mix of them); featurize returns one (len, n_layers * D)
        tensor per sentence, layer 0 first. The cell renumbers the layers it picked."""

    def key_fields(self, settings, runs: bool, shared: tuple[str, ...]) -> dict:
        """The task's part of the flat probe settings results store and keys hash: its own
        fields (not the `shared` ones) as `NAME_FIELD`, none where it does not run (so
        registering a task leaves every other cell's key as it was)."""
        if not runs:
            return {}
        return {f"{self.name}_{name}": value for name, value in dataclasses.asdict(settings).items()
                if name not in shared}


PROBE_TASKS: dict[str, ProbeTask] = {}


def register(task: ProbeTask) -> ProbeTask:
    """Add a task to the registry (a task module's `TASK` is added on import of this package)."""
    if task.name in PROBE_TASKS:
        raise ValueError(f"probe task '{task.name}' is registered twice")
    PROBE_TASKS[task.name] = task
    return task


def probe_task(name: str, where: str) -> ProbeTask:
    """The registered task `name`, or one line naming `where` it was asked for and the tasks there are."""
    if name not in PROBE_TASKS:
        raise BenchError(f"{where}: unknown probe task '{name}'; expected one of {', '.join(PROBE_TASKS)}")
    return PROBE_TASKS[name]


def _register_task_modules() -> None:
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if module_info.name.startswith("_"):  # a helper shared by task modules, not a task
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        if not isinstance(getattr(module, "TASK", None), ProbeTask):
            raise TypeError(f"{module.__name__}: a probe task module defines TASK, a ProbeTask")
        register(module.TASK)


_register_task_modules()
