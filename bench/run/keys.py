"""A cell's identity is what made it: a hash of its resolved config and of the data it read.

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

import hashlib
import json

# Fingerprint fields that identify a corpus' contents (the source path does not).
_DATA_IDENTITY = ("name", "sha256", "revision", "config", "tags_stripped")
_MAX_FIELDS_SHOWN = 4


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
_ADDED_LATER = {
    "probe": {"layers": None},  # unset: every layer is probed
    "model": {"softmax_samples": 0},  # the biLM's full training softmax (impl.elmo)
    "eval": {"tasks": ["similarity", "analogy"]},  # both (bench.eval.VECTOR_TASKS)
}


def relevant_config(config: dict, family: str, probed: bool | None = None) -> dict:
    """The config blocks that can change what a cell of `family` makes: a language model
    reads no eval or probe settings, and a cell that runs no probe reads no probe settings
    (so a new probe option does not orphan every cell that never probed). `probed`: whether
    the model's cells probe when asked (default: the scored families; a pretrained LM with
    layers to probe, bench.run.cell.reads_probes, does too)."""
    relevant = dict(config)
    probe = relevant.get("probe") or {}
    probes = probe.get("corpus") is not None or probe.get("task", "pos") != "pos"
    if family not in SCORED_FAMILIES:
        relevant["eval"] = None
    if not probes or not (family in SCORED_FAMILIES if probed is None else probed):
        relevant["probe"] = None
    for block, neutral in _ADDED_LATER.items():
        if isinstance(relevant.get(block), dict):
            relevant[block] = {name: value for name, value in relevant[block].items()
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


def _field_changes(old, new, prefix: str) -> list[str]:
    """`prefix.field old -> new` for every leaf that differs between two config blocks."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for name in sorted(set(old) | set(new)):
            changes += _field_changes(old.get(name), new.get(name), f"{prefix}.{name}")
        return changes
    if old != new and not (isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)) and list(old) == list(new)):
        return [f"{prefix} {old!r} -> {new!r}"]
    return []


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
