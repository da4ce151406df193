"""One cell of a matrix (model x corpus x seed), start to finish: prepare the data, build the
model through its one contract (bench.models.contract: `build(ctx) -> Trained`), score what
the built model can do, and return its result dict.

What a cell scores follows from what the model declares, never from its family: perplexity
of validation and test (ScoresText), word similarity and analogies of its vectors (HasVectors)
or of the vector sets it derives (HasTypeVectors), and with probe corpora its static vectors,
its layers (HasLayers) and a pretrained transformer's encoder (the spec's `encoder`).

`run_cell` never raises for a model's failure: the exception becomes a failed result with its
reason, so an executor can run cells anywhere (a worker process, a Ray task) and the runner
records every outcome.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from gensim.models import KeyedVectors

from bench.data.prepared import PreparedCorpus, prepare_corpus
from bench.eval import metrics
from bench.models import checkpoints
from bench.models.contract import BuildContext, HasLayers, HasTypeVectors, HasVectors, ScoresText, Trained, row_name
from bench.models.registry import ModelSpec
from bench.run import api, finetune
from bench.run.config import EvalConfig, Matrix
from bench.run.keys import config_block, expected_key, reads_probes, reads_similarity
from bench.run.probes import ProbeCorpora, encoder_probes, layer_probes, probe_corpora, probe_metric_defs, static_probes
from bench.run.results import SCHEMA, device_info, git_commit, library_versions
from bench.timing import measure


class CellJob(NamedTuple):
    """One cell's work, `run_cell(*job)`: picklable for a worker process or a Ray task."""

    matrix: Matrix
    model: str
    corpus: str
    seed: int
    data_root: Path | None
    device: torch.device
    progress: bool
    command: str
    precision: str
    save_dir: Path | None = None  # run --save-models: where this cell's trained model goes


def run_cell(matrix: Matrix, model: str, corpus: str, seed: int, data_root: Path | None, device: torch.device,
             progress: bool, command: str, precision: str = "fp32", save_dir: Path | None = None) -> dict:
    """One cell, start to finish: prepare the data (from the tokenization cache), build the
    model, score it, and return the result; an exception becomes a failed result. With
    `save_dir`, what the cell trained is saved there (bench.models.checkpoints), after scoring:
    saving is no part of the timed training."""
    spec = matrix.spec(model)
    prepared = prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab, progress)
    start = finetune.init_from(matrix, model, seed)
    if start is not None:  # the corpus read with the saved biLM's vocabulary: its softmax predicts those ids
        prepared = finetune.through_vocab(prepared, *finetune.pretrained_vocab(start, matrix.tokenizer, matrix.vocab,
                                                                                data_root, f"model.{model}"))
    eval_data = EvalData.load(matrix, spec, data_root)
    result = _result_header(matrix, spec, prepared, eval_data, seed, device, command, precision)
    try:
        if "model_files" in result["config"]:  # a model's own files are data it reads: their sha256 identify the row
            result["dataset"]["model_files"] = result["config"]["model_files"]
        ctx = BuildContext(prepared, matrix.model_config(model), matrix.train_config(model), seed,
                           _model_device(spec, device), _model_precision(spec, precision),
                           **_saved_weights(matrix, model, seed))
        trained, timings = build_timed(spec, ctx)
        result.update(score_trained(spec, trained, ctx, matrix, eval_data, device, timings))
        if save_dir is not None and spec.trains:
            saved = checkpoints.save_trained(trained, spec.name, ctx.config, prepared, save_dir)
            if saved is not None:
                result["saved"] = saved
    except Exception as exc:  # recorded, not hidden: the cell is marked failed with its reason
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
    return result


def _saved_weights(matrix: Matrix, model: str, seed: int) -> dict[str, str]:
    """What the model's build loads, as BuildContext fields: {"checkpoint": FOLDER} (loaded,
    nothing trained; so is an `init_from` with finetune = false), {"init_from": FOLDER}
    (loaded, then trained) or {}."""
    start = finetune.init_from(matrix, model, seed)
    if start is not None:
        return {"init_from" if finetune.finetunes(matrix, model) else "checkpoint": start}
    checkpoint = matrix.checkpoint(model)
    return {} if checkpoint is None else {"checkpoint": checkpoint}


class EvalData(NamedTuple):
    """The evaluation data a cell reads besides its corpus: the similarity sets (embedding and
    biLM cells) and the probe corpora (those and the LMs with an encoder)."""

    similarity_sets: list
    probe_corpus: ProbeCorpora | None

    @classmethod
    def load(cls, matrix: Matrix, spec: ModelSpec, data_root: Path | None) -> "EvalData":
        return cls(metrics.similarity_sets(data_root) if reads_similarity(spec) else [],
                   probe_corpora(matrix, data_root) if reads_probes(spec) else None)

    @property
    def probe_fingerprint(self) -> dict | None:
        return self.probe_corpus.fingerprint if self.probe_corpus is not None else None

    def select(self, spec: ModelSpec) -> "EvalData":
        """What a cell of `spec` reads of this run's evaluation data."""
        return EvalData(self.similarity_sets if reads_similarity(spec) else [],
                        self.probe_corpus if reads_probes(spec) else None)


def _model_device(spec: ModelSpec, device: torch.device) -> torch.device:
    """Where the model runs: the run's device, or the CPU for a CPU-only library (gensim, numpy n-grams)."""
    return device if spec.runs_on_device else torch.device("cpu")


def _model_precision(spec: ModelSpec, precision: str) -> str:
    """The precision of the model's forward passes: the run's for a spec with `autocast` (bf16
    autocast lives in bench.train.lm's training and evaluation loops), fp32 for every other:
    word2vec and GloVe update fp32 tables by hand (autocast's bf16 products could not be added
    into them), gensim and Kneser-Ney are not torch, and the pretrained models are only read."""
    return precision if spec.autocast else "fp32"


def _result_header(matrix: Matrix, spec: ModelSpec, prepared: PreparedCorpus, eval_data: EvalData, seed: int,
                   device: torch.device, command: str, precision: str) -> dict:
    return {
        "schema": SCHEMA,
        "cell": {"model": spec.name, "family": spec.family, "corpus": prepared.name, "seed": seed,
                 "matrix": matrix.name, "description": spec.description},
        "key": expected_key(matrix, spec.name, precision, prepared.fingerprint, eval_data.probe_fingerprint,
                            eval_data.similarity_sets),
        "status": "ok",
        "error": None,
        "config": config_block(matrix, spec.name, precision),
        "dataset": prepared.describe(),
        "seed": seed,
        "device": {**device_info(_model_device(spec, device), torch.get_num_threads()),
                   "precision": _model_precision(spec, precision)},  # this cell's forward passes
        "versions": library_versions(),
        "git_commit": git_commit(),
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def build_timed(spec: ModelSpec, ctx: BuildContext) -> tuple[Trained, dict]:
    """The model built, and its "train" timing row; the spec's warm-up (a fresh checkout compiles
    word2vec's kernel) runs before the clock starts."""
    if spec.warm_up is not None:
        spec.warm_up(ctx.config, ctx.device)
    with measure(ctx.device) as train_phase:
        trained = spec.build(ctx)
    if not isinstance(trained, Trained):
        raise TypeError(f"{spec.name}: its build returned {type(trained).__name__}; expected a Trained "
                        f"(bench.models.contract), with a training record and train_tokens")
    return trained, {"train": train_phase.row(trained.train_tokens, ctx.device)}


def score_trained(spec: ModelSpec, trained: Trained, ctx: BuildContext, matrix: Matrix, eval_data: EvalData,
                  device: torch.device, timings: dict) -> dict:
    """Everything the cell reads from a built model, by what it can do (module docstring), each
    phase timed apart into `timings`: {"metrics", "metric_defs", "timings"}, with "vectors" when
    vectors were scored and "training" when there is a record. Perplexity runs where the model
    runs (`ctx.device`); the vector metrics and probes run on the run's `device`.

    A model with one reading or vector set gives rows without a model field (the cell names
    it); one with several names each row's (`row_name`: elmo-forward, elmo-token)."""
    cell_metrics: dict[str, list] = {}
    training = dict(trained.training)  # the probes add what they train
    described = None  # the scored vector sets' sizes
    if isinstance(trained, ScoresText):
        cell_metrics["perplexity"] = _perplexity_rows(spec.name, trained, ctx.prepared, ctx.device, timings)
    vector_sets = None
    if isinstance(trained, HasVectors):
        vector_sets = {"": trained.vectors}
    elif isinstance(trained, HasTypeVectors):
        words = [word for sim_set in eval_data.similarity_sets for a, b, _ in sim_set.pairs for word in (a, b)]
        with measure(ctx.device) as vectors_phase:
            vector_sets = trained.type_vectors(words)
        timings["type_vectors"] = vectors_phase.row(ctx.prepared.train.n_tokens, ctx.device)
    if vector_sets is not None:
        scored, described = _vector_set_rows(spec.name, vector_sets, matrix.eval, eval_data.similarity_sets, device,
                                             ctx.progress, timings)
        cell_metrics.update(scored)
    if eval_data.probe_corpus is not None:
        cell_metrics.update(_probe_rows(spec, trained, ctx, matrix, eval_data.probe_corpus, device, timings, training))
    return {"metrics": cell_metrics,
            "metric_defs": metric_defs(cell_metrics),
            **({"vectors": described} if described is not None else {}),
            **({"training": training} if training else {}),
            "timings": timings}


def _perplexity_rows(model: str, trained: ScoresText, prepared: PreparedCorpus, device: torch.device,
                     timings: dict) -> list[dict]:
    """Perplexity of validation and test (those the corpus has), every row with its protocol:
    tokenization, vocabulary rule and size, unknown-token rate of the scored split, whether
    sentence ends are scored, and the context the model had (an open-vocabulary model states
    its own tokenization, vocabulary and unknown rate)."""
    rows = []
    for split in ("validation", "test"):
        if split not in prepared.streams:
            continue
        with measure(device) as phase:
            readings = trained.perplexity(split)
        first = next(iter(readings.values()))  # every reading scores the same tokens
        timings[f"eval_{split}"] = phase.row(first["scored_tokens"], device)
        for reading, scored in readings.items():
            name = row_name(model, reading)
            try:
                row = api.perplexity_row(prepared, split, scored)
            except FloatingPointError as exc:
                raise FloatingPointError(f"{name}: {exc}") from exc
            rows.append({"model": name, **row} if len(readings) > 1 else row)
    return rows


def _vector_set_rows(model: str, vector_sets: dict[str, KeyedVectors], ev: EvalConfig, similarity_sets: list,
                     device: torch.device, progress: bool, timings: dict) -> tuple[dict, dict]:
    """({"wordsim", "analogy"} rows, the sets' sizes) of a model's vector sets; with several,
    each row, timing and size is named after its set."""
    several = len(vector_sets) > 1
    rows: dict[str, list] = {"wordsim": [], "analogy": []}
    described = {}
    for reading, vectors in vector_sets.items():
        name = row_name(model, reading)
        _check_finite(vectors, name)
        scored = _vector_metrics(vectors, ev, similarity_sets, device, progress)
        for key in rows:
            rows[key] += [{"model": name, **row} if several else row for row in scored[key]]
        timings.update({f"{phase}_{name}" if several else phase: row for phase, row in scored["timings"].items()})
        described[name] = {"words": len(vectors.index_to_key), "dims": int(vectors.vector_size)}
    return rows, described if several else described[model]


def _probe_rows(spec: ModelSpec, trained: Trained, ctx: BuildContext, matrix: Matrix, probes: ProbeCorpora,
                device: torch.device, timings: dict, training: dict) -> dict[str, list]:
    """The rows of every probe task the run names: of the model's static vectors (POS: one vector
    per word type; WSD: the bag of context), of its layers and their mix, and of a pretrained
    transformer's encoder, loaded apart from the build. Static and layer rows share each
    metric list, told apart by their layer."""
    parts = []
    if isinstance(trained, HasVectors):
        parts.append(static_probes(trained.vectors, spec.name, probes, matrix, ctx.seed, device, timings))
    if isinstance(trained, HasLayers):
        parts.append(layer_probes(spec.name, trained.featurize, trained.n_layers, probes, matrix, ctx.seed, device,
                                  timings, training))
    parts.append(encoder_probes(spec, ctx.config, probes, matrix, ctx.seed, device, timings, training))
    merged: dict[str, list] = {}
    for part in parts:
        for key, rows in part.items():
            merged[key] = merged.get(key, []) + rows
    return merged


def _vector_metrics(vectors: KeyedVectors, ev: EvalConfig, similarity_sets: list, device: torch.device,
                    progress: bool = False) -> dict:
    """Word similarity and analogies (those of `ev.tasks`) of one set of vectors: {"wordsim",
    "analogy", "timings"}; a task left out has no rows and no timing. `progress`: the
    analogies' bar."""
    timings: dict[str, dict] = {}  # phase -> its timing row
    wordsim: list[dict] = []
    analogy: list[dict] = []
    if "similarity" in ev.tasks:
        with measure(device) as similarity_phase:
            wordsim = api.vector_rows(vectors, similarity_sets, ev, device, tasks=("similarity",))["wordsim"]
        timings["eval_similarity"] = similarity_phase.row(None, device)
    if "analogy" not in ev.tasks:
        return {"wordsim": wordsim, "analogy": analogy, "timings": timings}

    # Warm-up: parse the question file and run the kernels once, outside the timed region.
    metrics.evaluate_analogies(_tiny_vectors(vectors), restrict_vocab=ev.restrict_vocab,
                               case_insensitive=ev.case_insensitive, methods=ev.analogy_methods, device=device)
    with measure(device) as analogy_phase:
        analogy = api.vector_rows(vectors, [], ev, device, tasks=("analogy",), progress=progress)["analogy"]
    timings["eval_analogy"] = analogy_phase.row(None, device)
    if ev.gensim_analogy_timing:
        # Like for like: our 3CosAdd alone against gensim's evaluator (3CosAdd only).
        from gensim.test.utils import datapath

        with measure(device) as ours_phase:
            metrics.evaluate_analogies(vectors, restrict_vocab=ev.restrict_vocab,
                                       case_insensitive=ev.case_insensitive, methods=("3cosadd",), device=device)
        timings["eval_analogy_3cosadd"] = ours_phase.row(None, device)
        with measure(torch.device("cpu")) as gensim_phase:
            vectors.evaluate_word_analogies(datapath("questions-words.txt"), restrict_vocab=ev.restrict_vocab,
                                            case_insensitive=ev.case_insensitive)
        timings["eval_analogy_gensim"] = gensim_phase.row(None, torch.device("cpu"))
    return {"wordsim": wordsim, "analogy": analogy, "timings": timings}


def metric_defs(cell_metrics: dict[str, list[dict]]) -> dict[str, dict]:
    """What each metric of the cell's rows means (direction, unit, aggregation), as the result
    records it: those of the registered metrics (bench.eval.metrics) and of the probe tasks
    whose rows the cell holds; a name with no rows defines nothing."""
    held = [name for name, rows in cell_metrics.items() if rows]
    return {**metrics.metric_defs(held), **probe_metric_defs(held)}


def _check_finite(vectors: KeyedVectors, model: str) -> None:
    if not np.isfinite(vectors.vectors).all():
        raise FloatingPointError(f"{model}: the trained vectors contain NaN or inf")


def _tiny_vectors(vectors: KeyedVectors) -> KeyedVectors:
    tiny = KeyedVectors(vectors.vector_size)
    n = min(8, len(vectors.index_to_key))
    tiny.add_vectors(vectors.index_to_key[:n], vectors.vectors[:n])
    return tiny
