"""A cell's identity: its file name (model, corpus, seed) and its key, a hash of its resolved
config and of the data it read.

A cell's file is `cells/MODEL__CORPUS__seedN.json`, each of MODEL and CORPUS kept as it is when
it is a plain name (a registry name, a vectors file's stem) and otherwise written as a slug of
it plus a short hash of the exact string (`x_a_b+3f2a...` for the folder `/x/a_b`), so two
corpora never share a file: `/x/a_b` and `/x/a/b` get two hashes. `lm-lineage migrate` renames
cells made under an older naming (bench.run.migrate).

Every result carries `key = {"hash": ..., "parts": {...}}`. The parts are one digest per
config block (`config.model`, `config.train`, `config.tokenizer`, `config.vocab`,
`config.eval`, `config.probe`, `config.precision`) and per data source (`data.corpus`: the
sha256 of the corpus files or the hub revision; `data.probe`: the tagged probe corpus;
`data.similarity`: the word pairs of every similarity set scored). Paths are left out, so a
data root moved to another folder or machine keeps its keys; contents are not.

The runner skips a finished cell only when its key equals the one the current settings
give; otherwise it names, per cell, the parts and config fields that differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from bench.models import checkpoints
from bench.run import finetune

if TYPE_CHECKING:
    from bench.models.registry import ModelSpec
    from bench.run.config import Matrix

# Fingerprint fields that identify a corpus' contents (the source path does not).
_DATA_IDENTITY = ("name", "sha256", "revision", "config", "tags_stripped", "first_tokens")
_MAX_FIELDS_SHOWN = 4


# A name part kept as it is (`glove.6B.50d`, `my_vectors`, a corpus prefix `offline-mix@250000`,
# bench.data.datasets): no `__` and no `_` at its ends (so
# `__` only ever separates parts: a slug turns every run of other characters into one `_` and
# strips them from its ends) and no `+` (which only a hashed part has).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.@-]|_(?=[A-Za-z0-9.@-])){0,79}")
_NOT_IN_SLUG = re.compile(r"[^A-Za-z0-9.-]+")
# A slug keeps the end of a long path (its most telling part): with the hash, a part has at
# most 91 ASCII characters, so a cell's file name and its atomic write's temp name stay well
# under the 255 bytes a file name may have.
SLUG_CHARS = 80
NAME_HASH_CHARS = 10


def name_part(value: str) -> str:
    """`value` as one part of a cell's file name, injectively: a plain name as it is, anything
    else as a readable slug plus `+` and a hash of the exact string."""
    if _PLAIN_NAME.fullmatch(value):
        return value
    slug = _NOT_IN_SLUG.sub("_", value)[-SLUG_CHARS:].strip("._")
    return f"{slug}+{hashlib.sha256(value.encode()).hexdigest()[:NAME_HASH_CHARS]}"


def cell_file_name(model: str, corpus: str, seed: int) -> str:
    return f"{name_part(model)}__{name_part(corpus)}__seed{seed}.json"


def cell_path(out_dir: Path, model: str, corpus: str, seed: int) -> Path:
    """Where the result of one cell of a run into `out_dir` lives."""
    return out_dir / "cells" / cell_file_name(model, corpus, seed)


def digest(value) -> str:
    """A short, stable hash of a JSON-able value (dict keys sorted; tuples hash as lists)."""
    payload = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def data_identity(fingerprint: dict | None) -> dict | None:
    """The content-identifying fields of a dataset fingerprint."""
    if fingerprint is None:
        return None
    return {name: fingerprint.get(name) for name in _DATA_IDENTITY if fingerprint.get(name) is not None}


def similarity_identity(similarity_sets: list | None) -> dict | None:
    """{set name: digest of its (word1, word2, score) pairs}, None when no set is scored."""
    if not similarity_sets:
        return None
    return {sim_set.name: digest([list(pair) for pair in sim_set.pairs]) for sim_set in similarity_sets}


# The families scored on similarity sets and analogies and probed: only their cells read the
# eval and probe settings.
SCORED_FAMILIES = ("embedding", "bilm")


# Settings added after the first keyed results, with the value that does what the cells made
# before them did: at that value a setting is left out of the key, so those cells keep theirs.
_ADDED_LATER: dict[str, dict[str, object]] = {
    "probe": {"layers": None},  # unset: every layer is probed
    "model": checkpoints.MODEL_FIELDS_ADDED_LATER,  # the biLM's softmax and biLSTM settings (impl.elmo)
    "eval": {"tasks": ["similarity", "analogy"]},  # both (bench.eval.VECTOR_TASKS)
    "train": {"max_tokens": None},  # unset: no token budget (bench.train.lm.LMTrainConfig)
}


def relevant_config(config: dict, family: str, probed: bool | None = None) -> dict:
    """The config blocks that can change what a cell of `family` makes: a language model
    reads no eval or probe settings, and a cell that runs no probe reads no probe settings
    (so a new probe option does not orphan every cell that never probed). `probed`: whether
    the model's cells probe when asked (default: the scored families; a pretrained LM with
    layers to probe, `reads_probes`, does too)."""
    relevant = dict(config)
    probe = relevant.get("probe") or {}
    probes = probe.get("corpus") is not None or probe.get("task", "pos") != "pos"
    if family not in SCORED_FAMILIES:
        relevant["eval"] = None
    if not probes or not (family in SCORED_FAMILIES if probed is None else probed):
        relevant["probe"] = None
    for block, neutral in _ADDED_LATER.items():
        table = relevant.get(block)
        if isinstance(table, dict):
            relevant[block] = {name: value for name, value in table.items()
                               if not (name in neutral and _as_json(value) == neutral[name])}
    return relevant


def _as_json(value):
    """A setting as its result file stores it: tuples are JSON lists."""
    return list(value) if isinstance(value, tuple) else value


def cell_key(family: str, config: dict, corpus: dict | None, probe: dict | None, similarity: dict | None,
             probed: bool | None = None) -> dict:
    """`config`: the result's config block; the others: `data_identity`/`similarity_identity`."""
    parts = {f"config.{name}": digest(value)
             for name, value in sorted(relevant_config(config, family, probed).items())}
    parts.update({"data.corpus": digest(corpus), "data.probe": digest(probe), "data.similarity": digest(similarity)})
    return {"hash": digest(parts), "parts": parts}


def reads_similarity(spec: ModelSpec) -> bool:
    """Cells scored on the similarity sets (and analogies): the scored families."""
    return spec.family in SCORED_FAMILIES


def reads_probes(spec: ModelSpec) -> bool:
    """Cells that probe: the scored families, and pretrained LMs with layers to probe."""
    return spec.family in SCORED_FAMILIES or spec.encoder is not None


def config_block(matrix: Matrix, model: str, precision: str) -> dict:
    """The resolved config of one cell, as its result stores it and its key hashes it."""
    config, train_config = matrix.model_config(model), matrix.train_config(model)
    block = {"model": dataclasses.asdict(config),
             "train": dataclasses.asdict(train_config) if train_config is not None else None,
             "tokenizer": dataclasses.asdict(matrix.tokenizer),
             "vocab": dataclasses.asdict(matrix.vocab), "eval": dataclasses.asdict(matrix.eval),
             "probe": matrix.probe.flat(),
             "precision": precision}
    # The files a model reads (a vectors file, saved weights) made the cell as much as its
    # settings: by their sha256, a changed file is another cell. Absent for other models.
    spec = matrix.spec(model)
    if spec.files is not None:
        block["model_files"] = spec.files(config)
    checkpoint = matrix.checkpoint(model)
    if checkpoint is not None:
        block["checkpoint"] = checkpoints.identity(checkpoint, f"model.{model}")
    block.update(finetune.key_block(matrix, model))  # init_from: every seed's weights, by sha256
    return block


def expected_key(matrix: Matrix, model: str, precision: str, corpus_fingerprint: dict,
                 probe_fingerprint: dict | None, similarity_sets: list) -> dict:
    """The key of the cell these settings and this data make: `probe_fingerprint` and
    `similarity_sets`, what the cell reads of them (bench.run.cell.EvalData.select)."""
    spec = matrix.spec(model)
    return cell_key(spec.family, config_block(matrix, model, precision), data_identity(corpus_fingerprint),
                    data_identity(probe_fingerprint), similarity_identity(similarity_sets), probed=reads_probes(spec))


def _field_changes(old, new, prefix: str) -> list[str]:
    """`prefix.field old -> new` for every leaf that differs between two config blocks."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for name in sorted(set(old) | set(new)):
            changes += _field_changes(old.get(name), new.get(name), f"{prefix}.{name}")
        return changes
    if _as_stored(old) != _as_stored(new):
        return [f"{prefix} {old!r} -> {new!r}"]
    return []


def _as_stored(value):
    """A config value as a result's JSON holds it: tuples, nested too, become lists, so a setting read
    back from a cell (`[[1, 32], ...]`) equals the same setting in the live config (`((1, 32), ...)`)."""
    if isinstance(value, (list, tuple)):
        return [_as_stored(item) for item in value]
    return value


def describe_difference(old: dict, new_config: dict, new_key: dict) -> str:
    """What differs between a stored result and the cell the current settings would make,
    field by field where the config changed (`model.epochs 1 -> 3`), else by part name."""
    old_parts = (old.get("key") or {}).get("parts", {})
    differing = sorted(name for name in new_key["parts"] if old_parts.get(name) != new_key["parts"][name])
    shown = []
    for part in differing:
        if part.startswith("config."):
            block = part.removeprefix("config.")
            changes = _field_changes(old.get("config", {}).get(block), new_config.get(block), block)
            shown += changes or [f"{block} (changed)"]
        else:
            shown.append(f"{part} (other data)")
    more = len(shown) - _MAX_FIELDS_SHOWN
    return ", ".join(shown[:_MAX_FIELDS_SHOWN]) + (f" and {more} more" if more > 0 else "")
