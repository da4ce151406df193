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

Every key is checked: an unknown section or field, a `[train]` key that none of the
matrix's models accepts, or a value of the wrong type is a one-line error.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.models import checkpoints
from bench.models.registry import MODELS, ModelSpec, user_model
from bench.eval.probe_config import SHARED, ProbeConfig, from_flat, in_layout_of, setting_class
from bench.eval.tasks import probe_task
from bench.data.vocab import TokenizerConfig, VocabConfig

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

    def __post_init__(self):
        if self.oov not in ("skip", "zero"):
            raise BenchError(f"eval.oov must be 'skip' or 'zero', got {self.oov!r}")
        if self.similarity_sets != "auto":
            raise BenchError(f"eval.similarity_sets must be 'auto', got {self.similarity_sets!r}")
        unknown = set(self.analogy_methods) - {"3cosadd", "3cosmul"}
        if unknown:
            raise BenchError(f"eval.analogy_methods: unknown {sorted(unknown)}, expected 3cosadd and/or 3cosmul")
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
        not_shared = getattr(cls, "not_shared", frozenset())
        values.update({k: v for k, v in self.train.items() if k in fields and k not in not_shared})
        values.update({k: v for k, v in self.model_overrides.get(name, {}).items() if k in fields})
        return _build(cls, values, f"model.{name}")

    def to_dict(self) -> dict:
        return {
            "name": self.name, "description": self.description, "models": self.models,
            "corpora": self.corpora, "seeds": self.seeds,
            "tokenizer": dataclasses.asdict(self.tokenizer), "vocab": dataclasses.asdict(self.vocab),
            "eval": dataclasses.asdict(self.eval), "probe": self.probe.flat(),
            "train": self.train, "model": self.model_overrides,
        }


_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}


def _check_type(cls: type, key: str, value, where: str):
    """`value` checked against the field's type: its annotation when that is a union of
    scalars (`int | str`, e.g. threads = "auto" or 2), else the type of its default."""
    field_ = next((f for f in dataclasses.fields(cls) if f.name == key), None)
    if field_ is None or field_.default is dataclasses.MISSING or field_.default is None:
        return value
    annotation = field_.type if isinstance(field_.type, str) else ""
    names = [name.strip() for name in annotation.split("|")]
    if len(names) > 1 and all(name in _SCALARS for name in names):
        if any(_is_instance(value, _SCALARS[name]) for name in names):
            return value
        raise BenchError(f"{where}.{key}: expected {' or '.join(names)}, got {value!r}")
    expected = type(field_.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    if not _is_instance(value, expected):
        raise BenchError(f"{where}.{key}: expected {expected.__name__}, got {value!r}")
    return value


def _is_instance(value, expected: type) -> bool:
    return isinstance(value, expected) and not (expected in (int, float) and isinstance(value, bool))


def _build(cls: type, values: dict, where: str):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise BenchError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(fields))}")
    checked = {k: _check_type(cls, k, v, where) for k, v in values.items()}
    try:
        return cls(**checked)
    except ValueError as exc:  # impl configs validate themselves with ValueError
        raise BenchError(f"{where}: {exc}") from exc


def _as_seeds(value, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    raise BenchError(f"{where}.seeds: expected a count >= 1 or a list of integers, got {value!r}")


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
    node = raw
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


def load_matrix(name_or_path: str, assignments: list[str] = (), models: list[str] | None = None,
                corpora: list[str] | None = None, seeds: int | None = None,
                vectors: list[str] | None = None, unsets: list[str] = ()) -> Matrix:
    """`vectors`: files to score as extra `kind = "vectors"` rows, each named after its file stem.
    `unsets`: settings of the matrix file to drop, so their dataclass defaults apply (TOML has
    no null: a cap such as probe.wsd_max_train_per_word cannot be set back to None with --set);
    applied before the `assignments`."""
    path = find_matrix(name_or_path)
    raw = read_matrix_file(path)
    for unset in unsets:
        _drop_setting(raw, unset, f"--unset {unset}", f"matrix {path}")
    for assignment in assignments:
        keys, value = parse_assignment(assignment)
        keys = in_layout_of(keys, raw.get("probe"))  # probe.wsd.window on a flat [probe]: wsd_window
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise BenchError(f"--set {assignment!r}: {key} is not a section")
        node[keys[-1]] = value
    declared_models = raw.get("models")
    if models:
        raw["models"] = models
    if corpora:
        raw["corpora"] = corpora
    if seeds is not None:
        raw["seeds"] = seeds
    for vectors_path in vectors or ():
        add_vectors_model(raw, vectors_path)
    for assignment in assignments:  # once the model list is final: a train key must fit a model that runs
        _check_assignment(assignment, raw)
    return matrix_from_dict(raw, path.stem, str(path), declared_models)


# The sections a --set may name besides train and model.NAME, with their config classes.
SECTIONS = {"tokenizer": TokenizerConfig, "vocab": VocabConfig, "eval": EvalConfig, "probe": ProbeConfig}


def _check_assignment(text: str, raw: dict) -> None:
    """One --set checked against what it sets (its section, key and the value's type), so a
    typo is blamed on --set rather than on the matrix file it was merged into. `raw`: the
    matrix with every --set, --models and --vectors applied."""
    keys, value = parse_assignment(text)
    where, key = f"--set {text}", keys[-1]
    overrides = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    if keys[0] == "probe":
        found = setting_class(keys, where)
        if found is None:  # the flat layout's task: checked with its table (bench.eval.probe_config.from_flat)
            return
        classes, key = [found[0]], found[1]
    elif keys[0] in SECTIONS:
        if len(keys) != 2:
            raise BenchError(f"{where}: expected {keys[0]}.KEY=VALUE")
        classes = [SECTIONS[keys[0]]]
        if key not in _class_fields(classes[0]):
            raise BenchError(f"{where}: unknown key(s) {key} in [{keys[0]}]; expected some of "
                             f"{', '.join(sorted(_class_fields(classes[0])))}")
    elif keys[0] == "train":
        if len(keys) != 2:
            raise BenchError(f"{where}: expected train.KEY=VALUE")
        models = [m for m in raw.get("models") or () if isinstance(m, str) and _is_model(m, overrides)]
        classes = [cls for m in models for cls in _config_classes(_spec_of(m, overrides)) if key in _class_fields(cls)]
        if not classes:
            raise BenchError(f"{where}: train.{key} applies to none of the models {models}")
    elif keys[0] == "model":
        name = keys[1]
        if not _is_model(name, overrides):
            raise BenchError(f"{where}: unknown model '{name}': expected one of {', '.join(MODELS)}, or a model "
                             f"of your own defined with model.{name}.kind")
        spec = _spec_of(name, overrides)
        if key == "kind" or (key == "checkpoint" and spec.checkpoints):  # checked with the rest of the model's table
            return
        classes = [cls for cls in _config_classes(spec) if key in _class_fields(cls)]
        if not classes:
            expected = sorted(_field_names(spec))
            raise BenchError(f"{where}: unknown key(s) {key} for model '{name}'; expected some of {', '.join(expected)}")
    else:
        raise BenchError(f"{where}: unknown section '{keys[0]}'; expected one of {', '.join(SECTIONS)}, train "
                         f"or model.NAME")
    for cls in classes:
        _check_type(cls, key, value, f"{where}: {'.'.join(keys[:-1])}")


def _is_model(name: str, overrides: dict) -> bool:
    return name in MODELS or (isinstance(overrides.get(name), dict) and "kind" in overrides[name])


def _config_classes(spec: ModelSpec) -> list[type]:
    return [cls for cls in (spec.config_cls, spec.train_cls) if cls is not None]


def _class_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def add_vectors_model(raw: dict, path: str) -> str:
    """Add a vectors file to a raw matrix as a `kind = "vectors"` model named after its file
    stem (`glove.6B.50d.txt` -> `glove.6B.50d`); returns the name."""
    name = Path(path).stem
    if name in MODELS or name in raw.get("model", {}):
        raise BenchError(f"--vectors {path}: its row would be named '{name}', which is already a model; "
                         f"rename the file")
    raw.setdefault("model", {})[name] = {"kind": "vectors", "path": str(path)}
    raw["models"] = [*raw.get("models", []), name]
    return name


def matrix_from_dict(raw: dict, name: str, where: str, declared_models: list | None = None) -> Matrix:
    """`declared_models`: the file's own model list where --models replaced it; the file's
    [train] keys are checked against it, so a matrix narrowed to some of its models runs."""
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise BenchError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(TOP_LEVEL_KEYS))}")
    for key in ("models", "corpora"):
        value = raw.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise BenchError(f"{where}.{key}: expected a non-empty list of names, got {value!r}")
    overrides = raw.get("model", {})
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise BenchError(f"{where}.model: expected [model.NAME] tables")
    defined = {model for model, values in overrides.items() if "kind" in values}
    for model in raw["models"]:
        if model not in MODELS and model not in defined:
            raise BenchError(f"unknown model '{model}': expected one of {', '.join(MODELS)}, or a model of your own "
                             f"defined by a [model.{model}] table with `kind =` (e.g. kind = \"vectors\")")
    for model, values in overrides.items():
        if "kind" in values:
            user_model(model, values, f"{where}: [model.{model}]")  # a known kind and a new name
        elif model not in MODELS:
            raise BenchError(f"{where}: [model.{model}] names an unknown model: expected one of {', '.join(MODELS)}, "
                             f"or `kind =` to define a model of your own")
    # A matrix's overrides for models that --models left out are simply not used.
    overrides = {model: values for model, values in overrides.items() if model in raw["models"]}
    train = raw.get("train", {})
    checked_models = declared_models if isinstance(declared_models, list) else raw["models"]
    accepted = {f for m in checked_models if m in MODELS or m in defined
                for f in _field_names(_spec_of(m, raw.get("model", {})))}
    stray = sorted(set(train) - accepted)
    if stray:
        raise BenchError(f"{where}.train: key(s) {', '.join(stray)} apply to none of the models {checked_models}")
    for model, values in overrides.items():
        spec = _spec_of(model, overrides)
        allowed = (_field_names(spec) | ({"kind"} if model in defined else set())
                   | ({"checkpoint"} if spec.checkpoints else set()))
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise BenchError(f"{where}: [model.{model}] unknown key(s) {', '.join(unknown)}; "
                             f"expected some of {', '.join(sorted(allowed))}")
    matrix = Matrix(
        name=name,
        description=str(raw.get("description", "")),
        models=list(raw["models"]),
        corpora=list(raw["corpora"]),
        seeds=_as_seeds(raw.get("seeds", 1), where),
        tokenizer=_build(TokenizerConfig, raw.get("tokenizer", {}), f"{where}.tokenizer"),
        vocab=_build(VocabConfig, raw.get("vocab", {}), f"{where}.vocab"),
        eval=_build(EvalConfig, raw.get("eval", {}), f"{where}.eval"),
        probe=_probe_config(raw.get("probe", {}), f"{where}.probe"),
        train=train,
        model_overrides=overrides,
    )
    language_models = [m for m in matrix.models if matrix.spec(m).family in ("lm", "bilm")]
    if language_models and matrix.vocab.unk is None:
        raise BenchError(f"{where}.vocab.unk: the language models {', '.join(language_models)} need a closed "
                         f"vocabulary; set vocab.unk (e.g. \"<unk>\")")
    for model in matrix.models:  # resolve every config now: errors before any work
        matrix.model_config(model)
        matrix.train_config(model)
        checkpoint = matrix.checkpoint(model)
        if checkpoint is not None:
            if not isinstance(checkpoint, str):
                raise BenchError(f"{where}: [model.{model}] checkpoint: expected a folder path, got {checkpoint!r}")
            checkpoints.check_matches(checkpoint, model, matrix.model_config(model), f"{where}: [model.{model}]")
    return matrix


def _probe_config(table, where: str) -> ProbeConfig:
    """`[probe]` and its `[probe.TASK]` tables (an old flat table translated first)."""
    if not isinstance(table, dict):
        raise BenchError(f"{where}: expected a table")
    table = from_flat(table, where)
    settings = {}
    for name, values in table.items():
        if not isinstance(values, dict):
            continue
        shared = sorted(set(values) & set(SHARED))
        if shared:
            raise BenchError(f"{where}.{name}: {', '.join(shared)} is shared by every task; expected it in [probe]")
        settings[name] = _build(probe_task(name, f"{where}.{name}").settings_cls, values, f"{where}.{name}")
    return _build(ProbeConfig, {**{key: value for key, value in table.items() if key not in settings},
                                "settings": settings}, where)


def _spec_of(name: str, overrides: dict) -> ModelSpec:
    values = overrides.get(name, {})
    return user_model(name, values, f"[model.{name}]") if "kind" in values else MODELS[name]


def _field_names(spec: ModelSpec) -> set[str]:
    return {name for cls in _config_classes(spec) for name in _class_fields(cls)}
