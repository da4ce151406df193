"""The `[probe]` section of a matrix: which probe tasks (bench.eval.tasks) a run's cells get.

    [probe]
    tasks = ["pos", "wsd"]      # registered task names; none: no probe
    layers = [0, 2]             # a layered model's layers to probe (unset: every layer)
    lr = 0.01                   # shared by every task: lr, weight_decay, feature_batch
    [probe.pos]                 # one table per task: its settings class's fields
    corpus = "brown-pos"
    [probe.wsd]
    max_train_per_word = 500

Before tasks had tables, `[probe]` was flat: `task = "pos" | "wsd" | "pos+wsd"`, POS's fields
bare (`corpus`, with no POS probe while it was unset) and WSD's prefixed (`wsd_corpus`). That
layout is what results store and keys hash (`ProbeConfig.flat`), and matrix files written in it
still read: `from_flat` translates them, here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from bench.errors import BenchError
from bench.eval.tasks import PROBE_TASKS, probe_task
from impl._checks import is_int, is_num, need, need_ints

SHARED = ("lr", "weight_decay", "feature_batch")  # set in [probe], read by every task's settings
_FLAT_TASKS = ("pos", "wsd", "pos+wsd")  # the values of the flat layout's `task`


@dataclass
class ProbeConfig:
    """The probe tasks a run's cells get and the settings they share; `settings` holds every
    registered task's own (its `[probe.NAME]` table, defaults where there is none), with the
    shared values filled in where its settings class has those fields."""

    tasks: tuple[str, ...] = ()
    lr: float = 1e-2  # Adam (every task's linear probes)
    weight_decay: float = 0.0
    feature_batch: int = 64  # sentences per featurize call
    # The layers of a layered model (ELMo, the transformers) to probe, 0 = the embeddings; unset:
    # every layer. The scalar mix mixes the probed layers; the report's relative depth takes
    # the highest layer probed as the top. Static rows do not read it.
    layers: list[int] | None = None
    settings: dict = field(default_factory=dict)  # task name -> its settings dataclass

    def __post_init__(self):
        need(self, isinstance(self.tasks, (tuple, list)) and all(name in PROBE_TASKS for name in self.tasks)
             and len(set(self.tasks)) == len(self.tasks), "tasks",
             f"a list of distinct probe tasks among {', '.join(PROBE_TASKS)}")
        self.tasks = tuple(name for name in PROBE_TASKS if name in self.tasks)  # registry order: one key per set
        need(self, is_num(self.lr) and self.lr > 0, "lr", "a number > 0")
        need(self, is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need_ints(self, "feature_batch")
        need(self, self.layers is None or (isinstance(self.layers, list) and self.layers != []
                                           and all(is_int(layer) and layer >= 0 for layer in self.layers)
                                           and len(set(self.layers)) == len(self.layers)),
             "layers", "a non-empty list of distinct layer numbers >= 0 (0 = the embeddings), or unset")
        need(self, isinstance(self.settings, dict) and set(self.settings) <= set(PROBE_TASKS), "settings",
             f"settings of the probe tasks {', '.join(PROBE_TASKS)}")
        self.settings = {name: self._with_shared(self.settings.get(name) or task.settings_cls())
                         for name, task in PROBE_TASKS.items()}

    def _with_shared(self, settings):
        """A task's settings with the shared values of [probe] in the fields it has of them."""
        fields = {f.name for f in dataclasses.fields(settings)}
        return dataclasses.replace(settings, **{name: getattr(self, name) for name in SHARED if name in fields})

    def flat(self) -> dict:
        """The settings as results store them and cell keys hash them (bench.run.keys): the
        shared ones, `task` ("pos+wsd"; "pos" with no corpus when no task runs) and each
        task's `ProbeTask.key_fields`."""
        block = {"task": "+".join(self.tasks) or "pos", "layers": self.layers,
                 **{name: getattr(self, name) for name in SHARED}}
        for name, task in PROBE_TASKS.items():
            block.update(task.key_fields(self.settings[name], name in self.tasks, SHARED))
        return block


def _flat_names() -> dict[str, tuple[str, str]]:
    """The flat layout's setting names -> (task, field): POS's fields bare, WSD's `wsd_`-prefixed."""
    return {**{name: ("pos", name) for name in _own_fields("pos")},
            **{f"wsd_{name}": ("wsd", name) for name in _own_fields("wsd")}}


def _own_fields(task: str) -> list[str]:
    return [f.name for f in dataclasses.fields(PROBE_TASKS[task].settings_cls) if f.name not in SHARED]


def from_flat(table: dict, where: str) -> dict:
    """A `[probe]` table in the flat layout (`task`, `corpus`, `wsd_*`) as `tasks` and task
    tables; a table without flat keys comes back as it is. A task table beside flat keys (a
    `--set probe.wsd.window=3` on an older matrix file) is merged with them, each setting set
    once. `where` names the table."""
    flat_names = _flat_names()
    flat = [key for key in table if key == "task" or key in flat_names]
    if not flat:
        return table
    if "tasks" in table:
        raise BenchError(f"{where}: sets both tasks and the old flat keys ({', '.join(flat)}); expected "
                         f"tasks = [...] and a [probe.NAME] table per task")
    task = table.get("task", "pos")
    if task not in _FLAT_TASKS:
        raise BenchError(f"{where}.task: expected one of {', '.join(map(repr, _FLAT_TASKS))}, got {task!r} "
                         f"(or tasks = [...] naming {', '.join(PROBE_TASKS)})")
    corpus = table.get("corpus")
    if task == "pos+wsd" and corpus is None:
        raise BenchError(f"{where}.corpus: expected the tagged POS corpus (e.g. \"brown-pos\") for task 'pos+wsd'")
    if task == "wsd" and corpus is not None:
        raise BenchError(f"{where}.corpus: expected it unset for task 'wsd' (corpus is the POS probe's; set "
                         f"task = \"pos+wsd\" to run both, the WSD corpus is wsd_corpus)")
    translated = {key: dict(value) if isinstance(value, dict) else value
                  for key, value in table.items() if key not in flat}
    for key in flat:
        if key == "task":
            continue
        name, setting = flat_names[key]
        task_table = translated.setdefault(name, {})
        if not isinstance(task_table, dict) or setting in task_table:
            raise BenchError(f"{where}: sets {key} and {name}.{setting}, the same setting; expected one of them")
        task_table[setting] = table[key]
    # `task = "pos"` with no corpus (the old default) probed nothing.
    translated["tasks"] = [name for name in task.split("+") if not (name == "pos" and corpus is None)]
    return translated


def in_layout_of(path: list[str], table) -> list[str]:
    """A `--set`/`unset` path into `[probe]` (probe.KEY or probe.TASK.KEY) as `table` (the
    matrix's [probe] so far) writes it: a POS or WSD table's key as its flat name in a flat
    table, a flat name as its task table's key in one with tasks or task tables; otherwise as is."""
    if not isinstance(table, dict) or path[0] != "probe":
        return path
    flat_names = _flat_names()
    is_flat = any(key == "task" or key in flat_names for key in table)
    flat_name_of = {owner: name for name, owner in flat_names.items()}  # (task, field) -> flat name
    if is_flat and len(path) == 3 and (path[1], path[2]) in flat_name_of:
        return ["probe", flat_name_of[path[1], path[2]]]
    is_nested = "tasks" in table or any(isinstance(value, dict) for value in table.values())
    if is_nested and not is_flat and len(path) == 2 and path[1] in flat_names:
        return ["probe", *flat_names[path[1]]]
    return path


def setting_class(keys: list[str], where: str) -> tuple[type, str] | None:
    """The class and field a `--set probe....` path sets: `probe.KEY` (shared, `tasks`, or a
    flat-layout key) or `probe.TASK.KEY`; None for the flat layout's `task` (`from_flat`
    checks it); one line naming `where` when there is no such setting."""
    flat_names = _flat_names()
    if len(keys) == 3:
        task, key = probe_task(keys[1], where), keys[2]
        cls = task.settings_cls
        if key in SHARED:
            raise BenchError(f"{where}: {key} is shared by every task; expected probe.{key}=VALUE")
    elif len(keys) == 2 and keys[1] in flat_names:
        name, key = flat_names[keys[1]]
        cls = PROBE_TASKS[name].settings_cls
    elif len(keys) == 2:
        cls, key = ProbeConfig, keys[1]
        if key == "task":
            return None
    else:
        raise BenchError(f"{where}: expected probe.KEY=VALUE or probe.TASK.KEY=VALUE")
    known = [f.name for f in dataclasses.fields(cls) if f.name != "settings"]
    if key not in known:
        raise BenchError(f"{where}: unknown key(s) {key} in [{'.'.join(keys[:-1])}]; expected some of "
                         f"{', '.join(sorted(known))}")
    return cls, key

