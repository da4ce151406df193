"""A cell's probes: the run's probe tasks (bench.eval.tasks, as `[probe] tasks` names them) on
a model's static vectors and on the layers of a layered model (a biLM, a pretrained
transformer's encoder), each timed apart; their corpora, read once per run; and the check the
runner makes before writing (`check_probe_layers`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import torch
from gensim.models import KeyedVectors

from bench.errors import BenchError
from bench.eval.probe import Featurizer, mix_fields
from bench.eval.tasks import PROBE_TASKS
from bench.models.registry import ModelSpec
from bench.run.config import Matrix
from bench.timing import measure


class ProbeCorpora(NamedTuple):
    """The corpus of every task a run probes, by task name (registry order)."""

    corpora: dict

    @property
    def fingerprint(self) -> dict:
        """One identity for the cell key: a single corpus' own fingerprint (so cells that ran one
        task keep their keys), else the names and hashes joined with "+" and each other field
        from the first corpus that has it."""
        fingerprints = [corpus.fingerprint for corpus in self.corpora.values()]
        if len(fingerprints) == 1:
            return fingerprints[0]
        joined = {}
        for fingerprint in fingerprints:
            joined.update({name: value for name, value in fingerprint.items() if name not in joined})
        return {**joined, "name": "+".join(f["name"] for f in fingerprints),
                "sha256": "+".join(str(f["sha256"]) for f in fingerprints)}


def probe_corpora(matrix: Matrix, data_root: Path | None) -> ProbeCorpora | None:
    """The corpora of the matrix's probe tasks, None when it names none. A corpus that lacks its
    task's fields is refused here with one line (the runner calls this before writing)."""
    config = matrix.probe
    if not config.tasks:
        return None
    return ProbeCorpora({name: PROBE_TASKS[name].load(config.settings[name], data_root) for name in config.tasks})


def probe_metric_defs(row_names: Iterable[str]) -> dict:
    """The metric definitions of the tasks whose rows are among `row_names` (a result's metrics
    keys), as a result records them."""
    names = set(row_names)
    return {task.metric.name: dataclasses.asdict(task.metric) for task in PROBE_TASKS.values()
            if task.rows_key in names}


def static_probes(vectors: KeyedVectors, model: str, probes: ProbeCorpora, matrix: Matrix, seed: int,
                  device: torch.device, timings: dict) -> dict:
    """A static vector set's rows of every task the run probes: {rows key: rows}."""
    cell_metrics = {}
    for name, corpus in probes.corpora.items():
        task = PROBE_TASKS[name]
        with measure(device) as phase:
            probed = task.static(vectors, model, corpus, matrix.probe.settings[name], seed=seed, device=device)
        timings[task.rows_key] = phase.row(probed.tokens, device)
        cell_metrics[task.rows_key] = probed.rows
    return cell_metrics


def check_probe_layers(matrix: Matrix) -> None:
    """`[probe] layers` names only layers that every probed layered model has (read from
    their configs, not their weights; the runner calls this before writing)."""
    config = matrix.probe
    if config.layers is None or not config.tasks:
        return
    for model in matrix.models:
        spec = matrix.spec(model)
        if spec.layer_count is None:
            continue
        count = spec.layer_count(matrix.model_config(model), f"model.{model}")
        missing = [layer for layer in config.layers if layer >= count]
        if missing:
            raise BenchError(f"probe.layers: {model} has layers 0..{count - 1} (0 = the embeddings); "
                             f"it has no layer {', '.join(map(str, missing))}")


def layer_probes(model: str, featurize: Featurizer, n_layers: int, probes: ProbeCorpora, matrix: Matrix, seed: int,
                 device: torch.device, timings: dict, training: dict, phase: str = "") -> dict:
    """A layered representation's rows of every task the run probes: every layer (0 first, or
    those `[probe] layers` picks, keeping their numbers) and the task's mix of them; what a
    task records of its training goes into `training`. `phase` suffixes the timing rows (a
    cell that also probes static vectors keeps both)."""
    layers = matrix.probe.layers or list(range(n_layers))
    if max(layers) >= n_layers:  # the runner checks before writing; a model whose layer_count is wrong lands here
        raise BenchError(f"probe.layers: {model} has layers 0..{n_layers - 1}; got {layers}")
    if len(layers) < n_layers:
        featurize, n_layers = _only_layers(featurize, n_layers, layers), len(layers)
    cell_metrics = {}
    for name, corpus in probes.corpora.items():
        task = PROBE_TASKS[name]
        with measure(device) as probe_phase:
            probed = task.layers(model, featurize, n_layers, corpus, matrix.probe.settings[name], seed=seed,
                                 device=device)
        timings[f"{task.rows_key}{phase}"] = probe_phase.row(probed.tokens, device)
        cell_metrics[task.rows_key] = [_renumbered_row(row, layers) for row in probed.rows]
        training.update(probed.training or {})
    return cell_metrics


def encoder_probes(spec: ModelSpec, config, probes: ProbeCorpora | None, matrix: Matrix, seed: int,
                   device: torch.device, timings: dict, training: dict) -> dict:
    """A pretrained transformer's layer-wise probe rows (none without probes or an encoder)."""
    if probes is None or spec.encoder is None:
        return {}
    with measure(device) as load_phase:
        encoder = spec.encoder(config, device)
    timings["load_encoder"] = load_phase.row(None, device)
    training["encoder"] = {"layers": encoder.n_layers, "dim": encoder.dim,
                           "space_before_words": encoder.space_before_words}
    return layer_probes(spec.name, encoder, encoder.n_layers, probes, matrix, seed, device, timings, training,
                        phase="_layers")


def _only_layers(featurize: Featurizer, n_layers: int, layers: list[int]) -> Featurizer:
    """featurize, keeping `layers` of its n_layers: per sentence (len, len(layers) * D)."""

    def selected(sentences: list[list[str]]) -> list[torch.Tensor]:
        return [features.view(len(features), n_layers, -1)[:, layers].flatten(1) for features in featurize(sentences)]

    return selected


def _renumbered_row(row: dict, layers: list[int]) -> dict:
    """A task's row with its layer, and a mix's weights (bench.eval.probe.mix_fields), by layer
    number instead of position among the probed layers."""
    renumbered = {**row, "layer": _renumbered(row["layer"], layers)}
    if "mix_weights" in row:
        renumbered.update(mix_fields(row["mix_weights"], row["mix_gamma"], [layers[i] for i in row["mix_layers"]]))
    return renumbered


def _renumbered(layer: str, layers: list[int]) -> str:
    """A row's layer by its position among the probed layers ("0", "1", ...) -> its layer number;
    other layers ("mix", "static", a baseline's) as they are."""
    return str(layers[int(layer)]) if layer.isdigit() else layer
