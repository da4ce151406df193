"""One-time migrations of committed results: keys for cells made before cells were keyed
(schema 1 -> 2), and file names for cells named before names were collision-free.

A schema-1 result stores its resolved config and its corpus fingerprint (sha256 or hub
revision), so its key's config and corpus parts come from the file itself. What it does not
store is the identity of the evaluation data it read: the similarity sets and the tagged
probe corpus. Those are read from the data root given to the migration, after checking that
they are the ones the cell scored (the same set names; the probe corpus its rows name), and
the result records that its key was migrated and from which data root.

A cell whose file name is not the one bench.run.keys.cell_file_name gives its stored model,
corpus and seed is renamed to it. What `run --save-models` saved keeps its folder
(`models/<old name>/`): matrix files may name it as a checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.errors import BenchError
from bench.eval import metrics, probe
from bench.run.keys import SCORED_FAMILIES, cell_key, cell_path, data_identity, similarity_identity
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
    """Add keys to every schema-1 result under `folder` (recursively) and rename every cell
    file to its current name; returns the files written. Every file is checked before the
    first is written: nothing half-migrated, and no file replaced by another."""
    if not folder.is_dir():
        raise BenchError(f"results folder {folder} does not exist")
    eval_data = _EvalDataCache(data_root)
    pending: dict[Path, tuple[Path, dict | None]] = {}  # file -> (its new path, its new content or None: same)
    for path in sorted(folder.rglob("cells/*.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BenchError(f"{path}: not a valid JSON result ({exc})") from exc
        keyed = None
        if isinstance(result, dict) and result.get("schema") == UNKEYED_SCHEMA:
            keyed = result = migrate_result(result, path, eval_data)
        target = cell_path(path.parent.parent, *_cell_identity(result, path))
        if keyed is not None or target != path:
            pending[path] = (target, keyed)
    _check_targets(pending)
    for path, (target, keyed) in pending.items():
        if keyed is not None:
            write_json_atomic(target, keyed)
            if target != path:
                path.unlink()
        else:
            os.replace(path, target)
    return [target for target, _ in pending.values()]


def _cell_identity(result, path: Path) -> tuple[str, str, int]:
    """The (model, corpus, seed) a result file stores, which names its file."""
    cell = result.get("cell") if isinstance(result, dict) else None
    if not isinstance(cell, dict) or not all(isinstance(cell.get(key), str) for key in ("model", "corpus")) \
            or not isinstance(cell.get("seed"), int):
        raise BenchError(f"{path}: expected a result whose 'cell' names its model, corpus (strings) and seed (an int)")
    return cell["model"], cell["corpus"], cell["seed"]


def _check_targets(pending: dict[Path, tuple[Path, dict | None]]) -> None:
    """Refuse renames that would replace a file: a target that exists (another copy of the
    cell) or that two files would share."""
    claimed: dict[Path, Path] = {}
    for path, (target, _) in pending.items():
        if target == path:
            continue
        if target.exists():
            raise BenchError(f"{path}: its cell's file {target.name} exists already (two copies of one cell); "
                             f"keep one of them and migrate again")
        if target in claimed:
            raise BenchError(f"{claimed[target]} and {path}: both hold the cell named {target.name}; keep one of "
                             f"them and migrate again")
        claimed[target] = path
