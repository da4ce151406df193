"""Layered configuration: dataclass defaults < matrix file < command-line `--set`.

A matrix is a small TOML file:

    description = "..."
    models = ["word2vec-cbow", "gensim-cbow"]
    corpora = ["lee"]
    seeds = 3                      # or an explicit list, e.g. [0, 7]
    [tokenizer]  lowercase = true  # TokenizerConfig fields
    [vocab]      min_count = 5     # VocabConfig fields
    [eval]       oov = "skip"      # EvalConfig fields
    [probe]      corpus = "brown-pos"  # bench.eval.probe.ProbeConfig: POS-probe the models' representations
    [train]      epochs = 5        # shared: applied to every model config that has the field
    [model.gensim-cbow]            # one model's own overrides
    workers = 2

Every key is checked: an unknown section or field, a `[train]` key that none of the
matrix's models accepts, or a value of the wrong type is a one-line error.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.models.registry import MODELS
from bench.eval.probe import ProbeConfig
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
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # corpus None: no probe
    train: dict = field(default_factory=dict)
    model_overrides: dict[str, dict] = field(default_factory=dict)

    def model_config(self, name: str):
        """The resolved model config: defaults < variant preset < [train] < [model.NAME].

        A config class's `not_shared` fields mean something else than the [train] key of the
        same name (GloVe's `alpha` is an exponent, word2vec's a learning rate): only
        [model.NAME] sets them."""
        return self._resolve(name, MODELS[name].config_cls, MODELS[name].preset)

    def train_config(self, name: str):
        """The resolved training-loop config (models the harness trains), else None."""
        train_cls = MODELS[name].train_cls
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
            "eval": dataclasses.asdict(self.eval), "probe": dataclasses.asdict(self.probe),
            "train": self.train, "model": self.model_overrides,
        }


def _check_type(cls: type, key: str, value, where: str):
    default = next((f.default for f in dataclasses.fields(cls) if f.name == key), dataclasses.MISSING)
    if default is dataclasses.MISSING or default is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise BenchError(f"{where}.{key}: expected {expected.__name__}, got {value!r}")
    return value


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
    if path.suffix == ".toml" or path.exists():
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
    path = key.strip().split(".")
    if len(path) < 2 or (path[0] == "model" and len(path) != 3):
        raise BenchError(f"--set {text!r}: expected section.key=value or model.NAME.key=value")
    return path, value


def load_matrix(name_or_path: str, assignments: list[str] = (), models: list[str] | None = None,
                corpora: list[str] | None = None, seeds: int | None = None) -> Matrix:
    path = find_matrix(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"matrix {path}: not valid TOML: {exc}") from exc
    for assignment in assignments:
        keys, value = parse_assignment(assignment)
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
    return matrix_from_dict(raw, path.stem, str(path), declared_models)


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
    for model in raw["models"]:
        if model not in MODELS:
            raise BenchError(f"unknown model '{model}': expected one of {', '.join(MODELS)}")
    overrides = raw.get("model", {})
    for model in overrides:
        if model not in MODELS:
            raise BenchError(f"{where}: [model.{model}] names an unknown model: expected one of {', '.join(MODELS)}")
    # A matrix's overrides for models that --models left out are simply not used.
    overrides = {model: values for model, values in overrides.items() if model in raw["models"]}
    train = raw.get("train", {})
    checked_models = declared_models if isinstance(declared_models, list) else raw["models"]
    accepted = {f for m in checked_models if m in MODELS for f in _field_names(m)}
    stray = sorted(set(train) - accepted)
    if stray:
        raise BenchError(f"{where}.train: key(s) {', '.join(stray)} apply to none of the models {checked_models}")
    for model, values in overrides.items():
        unknown = sorted(set(values) - _field_names(model))
        if unknown:
            raise BenchError(f"{where}: [model.{model}] unknown key(s) {', '.join(unknown)}; "
                             f"expected some of {', '.join(sorted(_field_names(model)))}")
    matrix = Matrix(
        name=name,
        description=str(raw.get("description", "")),
        models=list(raw["models"]),
        corpora=list(raw["corpora"]),
        seeds=_as_seeds(raw.get("seeds", 1), where),
        tokenizer=_build(TokenizerConfig, raw.get("tokenizer", {}), f"{where}.tokenizer"),
        vocab=_build(VocabConfig, raw.get("vocab", {}), f"{where}.vocab"),
        eval=_build(EvalConfig, raw.get("eval", {}), f"{where}.eval"),
        probe=_build(ProbeConfig, raw.get("probe", {}), f"{where}.probe"),
        train=train,
        model_overrides=overrides,
    )
    language_models = [m for m in matrix.models if MODELS[m].family in ("lm", "bilm")]
    if language_models and matrix.vocab.unk is None:
        raise BenchError(f"{where}.vocab.unk: the language models {', '.join(language_models)} need a closed "
                         f"vocabulary; set vocab.unk (e.g. \"<unk>\")")
    for model in matrix.models:  # resolve every config now: errors before any work
        matrix.model_config(model)
        matrix.train_config(model)
    return matrix


def _field_names(model: str) -> set[str]:
    spec = MODELS[model]
    return {f.name for cls in (spec.config_cls, spec.train_cls) if cls is not None for f in dataclasses.fields(cls)}
