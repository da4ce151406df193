"""Layered configuration: dataclass defaults < matrix file < command-line `--set`.

A matrix is a small TOML file:

    description = "..."
    models = ["word2vec-cbow", "gensim-cbow"]
    corpora = ["lee"]
    seeds = 3                      # or an explicit list, e.g. [0, 7]
    [tokenizer]  lowercase = true  # TokenizerConfig fields
    [vocab]      min_count = 5     # VocabConfig fields
    [eval]       oov = "skip"      # EvalConfig fields
    [probe]      tasks = ["pos"]   # bench.eval.probe_config: probe the models' representations
    [probe.pos]  corpus = "brown-pos"  # one table per probe task (bench.eval.tasks)
    [train]      epochs = 5        # shared: applied to every model config that has the field
    [model.gensim-cbow]            # one model's own overrides
    workers = 2
    [model.my-vectors]             # a model of your own: a new name and a kind (bench.models.registry.KINDS)
    kind = "vectors"
    path = "vectors.txt"

A matrix may start from another: `extends = "elmo-more-text"` takes that matrix's settings,
and its own keys override them table by table (`read_matrix_file`).

Every key is checked, on one path for matrix files and `--set` alike (`matrix_from_dict`): an
unknown section or field, a `[train]` key that none of the matrix's models accepts, or a value
that does not fit its field's type (`typing.get_type_hints` of the config dataclass, conformed
by `bench.run.conform`) is a one-line error naming the file or the `--set` that made it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.data.vocab import TokenizerConfig, VocabConfig
from bench.errors import BenchError
from bench.eval import VECTOR_TASKS
from bench.eval.probe_config import SHARED, ProbeConfig, from_flat, in_layout_of
from bench.eval.tasks import probe_task
from bench.models.registry import MODELS, ModelSpec, user_model
from bench.run import finetune
from bench.run.conform import Blame, blamer, build, checked, class_fields

MATRIX_DIR = Path(__file__).resolve().parents[1] / "matrices"
TOP_LEVEL_KEYS = {"description", "models", "corpora", "seeds", "tokenizer", "vocab", "eval", "probe", "train",
                  "model"}


@dataclass(frozen=True)
class EvalConfig:
    similarity_sets: str = "auto"  # auto: the 13 sets of the data root, else gensim's WS-353 and SimLex-999
    oov: str = "skip"  # skip: score covered pairs; zero: missing pairs get similarity 0
    restrict_vocab: int = 300_000  # like gensim: only the most frequent words answer analogies
    case_insensitive: bool = True
    analogy_methods: tuple[str, ...] = ("3cosadd", "3cosmul")
    gensim_analogy_timing: bool = False  # also time gensim's evaluate_word_analogies on each cell
    tasks: tuple[str, ...] = VECTOR_TASKS  # some of VECTOR_TASKS: what the vectors are scored on

    def __post_init__(self):
        if self.oov not in ("skip", "zero"):
            raise BenchError(f"eval.oov must be 'skip' or 'zero', got {self.oov!r}")
        if self.similarity_sets != "auto":
            raise BenchError(f"eval.similarity_sets must be 'auto', got {self.similarity_sets!r}")
        unknown = set(self.analogy_methods) - {"3cosadd", "3cosmul"}
        if unknown:
            raise BenchError(f"eval.analogy_methods: unknown {sorted(unknown)}, expected 3cosadd and/or 3cosmul")
        if not self.tasks or set(self.tasks) - set(VECTOR_TASKS):
            raise BenchError(f"eval.tasks: expected some of {', '.join(VECTOR_TASKS)}, got {list(self.tasks)!r}")
        if self.restrict_vocab < 1:
            raise BenchError(f"eval.restrict_vocab must be >= 1, got {self.restrict_vocab}")


@dataclass
class Matrix:
    name: str
    description: str
    models: list[str]
    corpora: list[str]
    seeds: list[int]
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # no tasks: no probe
    train: dict = field(default_factory=dict)
    model_overrides: dict[str, dict] = field(default_factory=dict)

    def cells(self) -> list[tuple[str, str, int]]:
        """(model, corpus, seed) of every cell, seed-major: a long run has every model's first
        seed before any second seed. A model that does not train runs on the first seed only."""
        return [(model, corpus, seed) for seed in self.seeds for corpus in self.corpora for model in self.models
                if self.spec(model).trains or seed == self.seeds[0]]

    def spec(self, name: str) -> ModelSpec:
        """The model's spec: a built-in one, or the one its [model.NAME] `kind` defines."""
        return _spec_of(name, self.model_overrides)

    def checkpoint(self, name: str) -> str | None:
        """[model.NAME] checkpoint: a folder `run --save-models` wrote, loaded instead of training."""
        return self.model_overrides.get(name, {}).get("checkpoint")

    def model_config(self, name: str):
        """The resolved model config: defaults < variant preset < [train] < [model.NAME].

        A config class's `not_shared` fields mean something else than the [train] key of the
        same name (GloVe's `alpha` is an exponent, word2vec's a learning rate): only
        [model.NAME] sets them."""
        spec = self.spec(name)
        return self._resolve(name, spec.config_cls, spec.preset)

    def train_config(self, name: str):
        """The resolved training-loop config (models the harness trains), else None."""
        train_cls = self.spec(name).train_cls
        return None if train_cls is None else self._resolve(name, train_cls, {})

    def _resolve(self, name: str, cls: type, preset: dict):
        fields = {f.name for f in dataclasses.fields(cls)}
        values = dict(preset)
        not_shared: frozenset[str] = getattr(cls, "not_shared", frozenset())
        values.update({k: v for k, v in self.train.items() if k in fields and k not in not_shared})
        values.update({k: v for k, v in self.model_overrides.get(name, {}).items() if k in fields})
        return build(cls, values, ("model", name), blamer(f"matrix {self.name}"))

    def to_dict(self) -> dict:
        return {
            "name": self.name, "description": self.description, "models": self.models,
            "corpora": self.corpora, "seeds": self.seeds,
            "tokenizer": dataclasses.asdict(self.tokenizer), "vocab": dataclasses.asdict(self.vocab),
            "eval": dataclasses.asdict(self.eval), "probe": self.probe.flat(),
            "train": self.train, "model": self.model_overrides,
        }


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_seeds(value, origin: str) -> list[int]:
    """A count N (seeds 0..N-1) or a list of seeds; two cells of one seed would be one file."""
    if _is_int(value) and value >= 1:
        return list(range(value))
    if (isinstance(value, list) and value and all(_is_int(v) and v >= 0 for v in value)
            and len(set(value)) == len(value)):
        return value
    raise BenchError(f"{origin}: seeds: expected a count >= 1 or a list of distinct non-negative integers, "
                     f"got {value!r}")


def find_matrix(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():  # a folder named like a shipped matrix (runs/quick) is not one
        if not path.is_file():
            raise BenchError(f"matrix file {path} does not exist")
        return path
    shipped = MATRIX_DIR / f"{name_or_path}.toml"
    if not shipped.is_file():
        names = ", ".join(sorted(p.stem for p in MATRIX_DIR.glob("*.toml")))
        raise BenchError(f"unknown matrix '{name_or_path}': expected one of {names} or a .toml file")
    return shipped


def parse_assignment(text: str) -> tuple[list[str], object]:
    """`section.key=value` (or `model.NAME.key=value`) -> (path, value); value read as TOML."""
    if "=" not in text:
        raise BenchError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string
    return _setting_path(key, f"--set {text!r}", "section.key=value or model.NAME.key=value"), value


def _setting_path(key: str, where: str, expected: str) -> list[str]:
    """The path of a setting that --set or --unset names: section.key or model.NAME.key."""
    path = key.strip().split(".")
    if len(path) < 2 or (path[0] == "model" and len(path) != 3) or not all(path):
        raise BenchError(f"{where}: expected {expected}")
    return path


def read_matrix_file(path: Path, extended_by: tuple[Path, ...] = ()) -> dict:
    """A matrix file's table with the matrix it `extends` (a shipped matrix's name, or a .toml
    path relative to this file's folder) merged under it: its tables merge key by key, and
    any other value of its own (a list, a string) replaces the parent's. A matrix that
    extends another gives its own description, since it is a different run."""
    if path.resolve() in extended_by:
        chain = " -> ".join(str(p) for p in (*extended_by, path.resolve()))
        raise BenchError(f"matrix {path}: extends itself ({chain})")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"matrix {path}: not valid TOML: {exc}") from exc
    if "extends" not in raw:
        if "unset" in raw:
            raise BenchError(f"matrix {path}: unset drops settings of the matrix it extends, but it extends none; "
                             f"expected extends = \"NAME\" beside it")
        return raw
    parent = raw.pop("extends")
    unsets = raw.pop("unset", [])
    if not isinstance(unsets, list) or not all(isinstance(u, str) for u in unsets):
        raise BenchError(f"matrix {path}: unset: expected a list of settings such as \"probe.wsd_max_train_per_word\", "
                         f"got {unsets!r}")
    if not isinstance(parent, str) or not parent:
        raise BenchError(f"matrix {path}: extends: expected the name of a shipped matrix or a .toml path, "
                         f"got {parent!r}")
    if "description" not in raw:
        raise BenchError(f"matrix {path}: extends {parent!r} but has no description of its own; expected one "
                         f"saying what it changes")
    parent_path = path.parent / parent  # an absolute path stays itself
    if not parent.endswith(".toml"):
        parent_path = find_matrix(parent)
    elif not parent_path.is_file():
        raise BenchError(f"matrix {path}: extends {parent!r}, but there is no {parent_path}; expected a shipped "
                         f"matrix's name or a .toml path relative to {path.parent}")
    base = read_matrix_file(parent_path, (*extended_by, path.resolve()))
    for unset in unsets:
        where = f"matrix {path}: unset {unset!r}"
        if _setting_table(raw, unset, where)[0] is not None:
            raise BenchError(f"{where}: this file also sets {unset}; expected one or the other")
        _drop_setting(base, unset, where, f"matrix {parent_path}")
    return _merged(base, raw)


def _setting_table(raw: dict, text: str, where: str) -> tuple[dict | None, str]:
    """The table of the matrix table `raw` that holds the setting `text` (section.key or
    model.NAME.key), None where `raw` does not set it; and the setting's key in that table."""
    *sections, key = in_layout_of(_setting_path(text, where, "section.key or model.NAME.key"), raw.get("probe"))
    node: dict | None = raw
    for section in sections:
        node = node.get(section) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) and key in node else None), key


def _drop_setting(raw: dict, text: str, where: str, owner: str) -> None:
    """Removes the setting `text` from the matrix table `raw`, so its dataclass default
    applies; `owner` names the matrix that should have set it."""
    table, key = _setting_table(raw, text, where)
    if table is None:
        raise BenchError(f"{where}: {owner} does not set {text}; nothing to drop (the default already applies)")
    del table[key]


def _merged(base: dict, over: dict) -> dict:
    """base with over's values on top; tables present in both are merged the same way."""
    merged = dict(base)
    for key, value in over.items():
        both_tables = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_tables else value
    return merged


def load_matrix(name_or_path: str, assignments: Sequence[str] = (), models: list[str] | None = None,
                corpora: list[str] | None = None, seeds: int | None = None,
                vectors: list[str] | None = None, unsets: Sequence[str] = ()) -> Matrix:
    """`vectors`: files to score as extra `kind = "vectors"` rows, named as `vectors_names` says.
    `unsets`: settings of the matrix file to drop, so their dataclass defaults apply (TOML has
    no null: a cap such as probe.wsd_max_train_per_word cannot be set back to None with --set);
    applied before the `assignments`. Everything is then checked once, by `matrix_from_dict`,
    which blames each bad setting on the --set that made it or on the file."""
    path = find_matrix(name_or_path)
    raw = read_matrix_file(path)
    for unset in unsets:
        _drop_setting(raw, unset, f"--unset {unset}", f"matrix {path}")
    origins = {}
    for assignment in assignments:
        keys, value = parse_assignment(assignment)
        keys = in_layout_of(keys, raw.get("probe"))  # probe.wsd.window on a flat [probe]: wsd_window
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise BenchError(f"--set {assignment!r}: {key} is not a section")
        node[keys[-1]] = value
        origins[tuple(keys)] = f"--set {assignment}"
    declared_models = raw.get("models")
    if models:
        raw["models"] = models
    if corpora:
        raw["corpora"] = corpora
    if seeds is not None:
        raw["seeds"] = seeds
        origins[("seeds",)] = "--seeds"
    for name, vectors_path in vectors_names(vectors or [], "--vectors"):
        add_vectors_model(raw, name, vectors_path, "--vectors")
    return matrix_from_dict(raw, path.stem, str(path), declared_models, origins)


# The sections of a matrix besides train and model.NAME, with their config classes.
SECTIONS = {"tokenizer": TokenizerConfig, "vocab": VocabConfig, "eval": EvalConfig, "probe": ProbeConfig}


def _config_classes(spec: ModelSpec) -> list[type]:
    return [cls for cls in (spec.config_cls, spec.train_cls) if cls is not None]


def vectors_names(arguments: list[str], flag: str) -> list[tuple[str, str]]:
    """(row name, path) per vectors argument: `NAME=PATH` names its row; a bare path is named
    after its file stem, or, where stems repeat, after its parent folder (`run --save-models`
    saves every cell's vectors as OUT/models/<cell>/vectors.bin). Two rows of one name are a
    BenchError naming the arguments as given under `flag`."""
    named: list[tuple[str | None, str, str]] = []  # (name or None for the file's stem, path, argument as given)
    for argument in arguments:
        before, sep, path = argument.partition("=")
        if sep and before and path and "/" not in before and not Path(argument).exists():
            named.append((before, path, argument))
        else:
            named.append((None, argument, argument))
    stems = [Path(path).stem for name, path, _ in named if name is None]
    rows: list[tuple[str, str]] = []
    given: dict[str, str] = {}  # row name -> the argument that named it
    for name, path, argument in named:
        if name is None:
            name = Path(path).stem
            if stems.count(name) > 1 and Path(path).parent.name:
                name = Path(path).parent.name
        if name in given:
            raise BenchError(f"{flag} {given[name]} and {argument}: both rows would be named '{name}'; "
                             f"expected distinct names: name them NAME=PATH")
        given[name] = argument
        rows.append((name, path))
    return rows


def add_vectors_model(raw: dict, name: str, path: str, flag: str) -> str:
    """Add a vectors file to a raw matrix as a `kind = "vectors"` model called `name`
    (`vectors_names`); returns the name. `flag`: the option that gave it, for the error."""
    if name in MODELS or name in raw.get("model", {}):
        raise BenchError(f"{flag} {path}: its row would be named '{name}', which is already a model; "
                         f"name it NAME=PATH")
    raw.setdefault("model", {})[name] = {"kind": "vectors", "path": str(path)}
    raw["models"] = [*raw.get("models", []), name]
    return name


def matrix_from_dict(raw: dict, name: str, where: str, declared_models: list | None = None,
                     origins: dict[tuple[str, ...], str] | None = None) -> Matrix:
    """The one check of a matrix's settings, whatever set them. `declared_models`: the file's
    own model list where --models replaced it; the file's [train] keys are checked against it,
    so a matrix narrowed to some of its models runs (a --set train key must fit a model that
    runs). `origins`: the flag that set each setting (`load_matrix`), named by its errors."""
    blame = blamer(where, origins)
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise BenchError(f"{blame(unknown[0])}: unknown key(s) {', '.join(unknown)}; expected some of "
                         f"{', '.join(sorted(TOP_LEVEL_KEYS))}")
    for key in ("models", "corpora"):
        value = raw.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise BenchError(f"{where}.{key}: expected a non-empty list of names, got {value!r}")
    for key in ("train", "model", *SECTIONS):
        if not isinstance(raw.get(key, {}), dict):
            raise BenchError(f"{blame(key)}: {key}: expected a table, got {raw[key]!r}")
    overrides = raw.get("model", {})
    if not all(isinstance(v, dict) for v in overrides.values()):
        raise BenchError(f"{where}.model: expected [model.NAME] tables")
    defined = {model for model, values in overrides.items() if "kind" in values}
    for model in raw["models"]:
        if model not in MODELS and model not in defined:
            raise BenchError(f"unknown model '{model}': expected one of {', '.join(MODELS)}, or a model of your own "
                             f"defined by a [model.{model}] table with `kind =` (e.g. kind = \"vectors\")")
    for model, values in overrides.items():
        if "kind" in values:
            user_model(model, values, f"{blame('model', model, 'kind')}: [model.{model}]")  # a known kind, a new name
        elif model not in MODELS:
            raise BenchError(f"{blame('model', model)}: unknown model '{model}': expected one of {', '.join(MODELS)}, "
                             f"or `kind =` in [model.{model}] to define a model of your own")
        _check_model_table(model, values, _spec_of(model, overrides), blame)
    train = raw.get("train", {})
    for key, value in train.items():
        # The file's keys against the file's models; a --set's against the models that run.
        models = raw["models"]
        if ("train", key) not in (origins or {}) and isinstance(declared_models, list):
            models = declared_models
        specs = [_spec_of(m, overrides) for m in models if m in MODELS or m in defined]
        classes = [cls for spec in specs for cls in _config_classes(spec) if key in class_fields(cls)]
        if not classes:
            raise BenchError(f"{blame('train', key)}: train.{key} applies to none of the models {models}")
        for cls in classes:
            if key not in getattr(cls, "not_shared", frozenset()):  # [train] never sets those (`Matrix.model_config`)
                checked(cls, key, value, ("train",), blame)
    # A matrix's overrides for models that --models left out are simply not used.
    overrides = {model: values for model, values in overrides.items() if model in raw["models"]}
    matrix = Matrix(
        name=name,
        description=str(raw.get("description", "")),
        models=list(raw["models"]),
        corpora=list(raw["corpora"]),
        seeds=_as_seeds(raw.get("seeds", 1), blame("seeds")),
        probe=_probe_config(raw.get("probe", {}), blame),
        train=train,
        model_overrides=overrides,
        **{section: build(cls, raw.get(section, {}), (section,), blame) for section, cls in SECTIONS.items()
           if section != "probe"},
    )
    language_models = [m for m in matrix.models if matrix.spec(m).family in ("lm", "bilm")]
    if language_models and matrix.vocab.unk is None:
        raise BenchError(f"{where}.vocab.unk: the language models {', '.join(language_models)} need a closed "
                         f"vocabulary; set vocab.unk (e.g. \"<unk>\")")
    for model in matrix.models:  # resolve every config now: errors before any work
        matrix.model_config(model)
        matrix.train_config(model)
        checkpoint = matrix.checkpoint(model)
        # Only its type here: the folder is read when a run starts (bench.run.runner), so a shipped
        # matrix that loads a biLM another matrix saves still loads where that folder is missing.
        if checkpoint is not None and not isinstance(checkpoint, str):
            raise BenchError(f"{blame('model', model, 'checkpoint')}: [model.{model}] checkpoint: expected a "
                             f"folder path, got {checkpoint!r}")
    return matrix


def _check_model_table(model: str, values: dict, spec: ModelSpec, blame: Blame) -> None:
    """A [model.NAME] table's keys and their types, against the model's config classes."""
    allowed = (_field_names(spec) | ({"kind"} if "kind" in values else set())
               | ({"checkpoint"} if spec.checkpoints else set()) | finetune.settings(spec))
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise BenchError(f"{blame('model', model, unknown[0])}: unknown key(s) {', '.join(unknown)} in "
                         f"[model.{model}]; expected some of {', '.join(sorted(allowed))}")
    for key, value in values.items():
        for cls in _config_classes(spec):
            if key in class_fields(cls):
                checked(cls, key, value, ("model", model), blame)
    finetune.check_table(model, values, blame("model", model))


def _probe_config(table: dict, blame: Blame) -> ProbeConfig:
    """`[probe]` and its `[probe.TASK]` tables (an old flat table translated first)."""
    table = from_flat(table, f"{blame('probe')}: probe")
    settings = {}
    for name, values in table.items():
        if not isinstance(values, dict):
            continue
        shared = sorted(set(values) & set(SHARED))
        if shared:
            raise BenchError(f"{blame('probe', name, shared[0])}: probe.{name}: {', '.join(shared)} is shared by "
                             f"every task; expected it in [probe]")
        task = probe_task(name, f"{blame('probe', name)}: probe.{name}")
        settings[name] = build(task.settings_cls, values, ("probe", name), blame)
    shared_values = {key: value for key, value in table.items() if key not in settings}
    return build(ProbeConfig, {**shared_values, "settings": settings}, ("probe",), blame)


def _spec_of(name: str, overrides: dict) -> ModelSpec:
    values = overrides.get(name, {})
    return user_model(name, values, f"[model.{name}]") if "kind" in values else MODELS[name]


def _field_names(spec: ModelSpec) -> set[str]:
    return {name for cls in _config_classes(spec) for name in class_fields(cls)}
