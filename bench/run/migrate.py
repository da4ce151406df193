"""One-time migration of results made before cells were keyed (schema 1 -> 2).

A schema-1 result stores its resolved config and its corpus fingerprint (sha256 or hub
revision), so its key's config and corpus parts come from the file itself. What it does not
store is the identity of the evaluation data it read: the similarity sets and the tagged
probe corpus. Those are read from the data root given to the migration, after checking that
they are the ones the cell scored (the same set names; the probe corpus its rows name), and
the result records that its key was migrated and from which data root.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import BenchError
from bench.eval import metrics, probe
from bench.run.keys import SCORED_FAMILIES, cell_key, data_identity, similarity_identity
from bench.run.results import SCHEMA, UNKEYED_SCHEMA, write_json_atomic

class _EvalDataCache:
    """Similarity sets and probe corpora of one data root, each read once."""

    def __init__(self, data_root: Path | None):
        self.data_root = data_root
        self._sets: dict[bool, list] = {}
        self._probes: dict[tuple[str, bool], dict] = {}

    def similarity(self, result: dict, path: Path) -> dict | None:
        scored = {row["benchmark"] for row in result.get("metrics", {}).get("wordsim", [])}
        if not scored:
            return None
        gensim_only = scored <= {"WS-353", "SimLex-999"} and self.data_root is None
        if gensim_only not in self._sets:
            self._sets[gensim_only] = metrics.similarity_sets(None if gensim_only else self.data_root)
        sets = self._sets[gensim_only]
        names = {sim_set.name for sim_set in sets}
        if scored != names:
            raise BenchError(f"{path}: scored the similarity sets {sorted(scored)}, the data root "
                             f"{self.data_root} has {sorted(names)}; migrate with the data root it was made with "
                             f"(--data-dir)")
        return similarity_identity(sets)

    def probe(self, result: dict) -> dict | None:
        settings = result["config"]["probe"]
        if settings.get("corpus") is None:
            return None
        key = (settings["corpus"], settings.get("strip_tags", True))
        if key not in self._probes:
            self._probes[key] = probe.load_tagged_corpus(key[0], self.data_root, key[1]).fingerprint
        return data_identity(self._probes[key])


def migrate_result(result: dict, path: Path, eval_data: _EvalDataCache) -> dict:
    """The schema-2 form of one schema-1 result (a failed cell without a config gets no key)."""
    migrated = {**result, "schema": SCHEMA}
    migrated["migrated"] = {"from": UNKEYED_SCHEMA,
                            "eval_data_root": str(eval_data.data_root) if eval_data.data_root else None}
    if "config" not in result:
        return migrated
    family = result["cell"].get("family")
    scored = family in SCORED_FAMILIES
    migrated["key"] = cell_key(family, result["config"], data_identity(result["dataset"]),
                               eval_data.probe(result) if scored else None,
                               eval_data.similarity(result, path) if scored else None)
    return migrated


def migrate_folder(folder: Path, data_root: Path | None) -> list[Path]:
    """Add keys to every schema-1 result under `folder` (recursively); returns the files
    rewritten. Every file is checked before the first is written: nothing half-migrated."""
    if not folder.is_dir():
        raise BenchError(f"results folder {folder} does not exist")
    eval_data = _EvalDataCache(data_root)
    pending = {}
    for path in sorted(folder.rglob("cells/*.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BenchError(f"{path}: not a valid JSON result ({exc})") from exc
        if isinstance(result, dict) and result.get("schema") == UNKEYED_SCHEMA:
            pending[path] = migrate_result(result, path, eval_data)
    for path, result in pending.items():
        write_json_atomic(path, result)
    return list(pending)
