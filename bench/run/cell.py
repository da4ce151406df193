"""One cell of a matrix (model x corpus x seed), start to finish: prepare the data, run the
family's loop (embedding, LM or biLM), score it, and return its result dict.

`run_cell` never raises for a model's failure: the exception becomes a failed result with its
reason, so an executor can run cells anywhere (a worker process, a Ray task) and the runner
records every outcome.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from gensim.models import KeyedVectors

from bench.data.prepared import PreparedCorpus, prepare_corpus
from bench.eval import metrics
from bench.models import checkpoints
from bench.models.registry import ModelSpec
from bench.run import api, finetune
from bench.run.config import EvalConfig, Matrix
from bench.run.keys import SCORED_FAMILIES, config_block, expected_key, reads_probes
from bench.run.probes import ProbeCorpora, encoder_probes, layer_probes, probe_corpora, probe_metric_defs, static_probes
from bench.run.results import SCHEMA, device_info, git_commit, library_versions
from bench.timing import measure
from bench.train import lm


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
    """One cell, start to finish: prepare the data (from the tokenization cache), run the
    family's loop, and return the result; an exception becomes a failed result. With
    `save_dir`, what the cell trained is saved there (bench.models.checkpoints)."""
    built: list[Any] = []  # what the model's build returned (its type depends on the family)
    spec = _loading_and_keeping(matrix.spec(model), _saved_weights(matrix, model, seed), built)
    prepared = prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab, progress)
    start = finetune.init_from(matrix, model, seed)
    if start is not None:  # the corpus read with the saved biLM's vocabulary: its softmax predicts those ids
        prepared = finetune.through_vocab(prepared, *finetune.pretrained_vocab(start, matrix.tokenizer, matrix.vocab,
                                                                                data_root, f"model.{model}"))
    config, train_config = matrix.model_config(model), matrix.train_config(model)
    eval_data = EvalData.load(matrix, spec, data_root)
    result = _result_header(matrix, spec, prepared, eval_data, seed, device, command, precision)
    try:
        if "model_files" in result["config"]:  # a model's own files are data it reads: their sha256 identify the row
            result["dataset"]["model_files"] = result["config"]["model_files"]
        if spec.family == "embedding":
            result.update(run_embedding_cell(spec, config, prepared, seed, device, matrix,
                                             eval_data.similarity_sets, eval_data.probe_corpus))
        elif spec.family == "bilm":
            result.update(run_bilm_cell(spec, config, train_config, prepared, seed, device, matrix, precision,
                                        eval_data.similarity_sets, eval_data.probe_corpus))
        else:
            result.update(run_lm_cell(spec, config, train_config, prepared, seed, device, matrix, precision,
                                      eval_data.probe_corpus))
        if save_dir is not None and spec.trains and built:
            saved = checkpoints.save_trained(built[0], spec.name, config, prepared, save_dir)
            if saved is not None:
                result["saved"] = saved
    except Exception as exc:  # recorded, not hidden: the cell is marked failed with its reason
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
    return result


def _saved_weights(matrix: Matrix, model: str, seed: int) -> dict[str, str]:
    """What the model's build loads: {"checkpoint": FOLDER} (loaded, nothing trained; so is an
    `init_from` with finetune = false), {"init_from": FOLDER} (loaded, then trained) or {}."""
    start = finetune.init_from(matrix, model, seed)
    if start is not None:
        return {"init_from" if finetune.finetunes(matrix, model) else "checkpoint": start}
    checkpoint = matrix.checkpoint(model)
    return {} if checkpoint is None else {"checkpoint": checkpoint}


def _loading_and_keeping(spec: ModelSpec, loads: dict[str, str], built: list) -> ModelSpec:
    """`spec` whose build loads the saved weights `loads` names (`_saved_weights`) and appends
    what it returns to `built`, so the cell can save it after scoring (saving inside the build
    would count in the train phase's time)."""

    def build(*args):
        trained = spec.build(*args, **loads)
        built.append(trained)
        return trained

    return dataclasses.replace(spec, build=build)


class EvalData(NamedTuple):
    """The evaluation data a cell reads besides its corpus: the similarity sets (embedding and
    biLM cells) and the probe corpora (those and the LMs with an encoder)."""

    similarity_sets: list
    probe_corpus: ProbeCorpora | None

    @classmethod
    def load(cls, matrix: Matrix, spec: ModelSpec, data_root: Path | None) -> "EvalData":
        return cls(metrics.similarity_sets(data_root) if spec.family in SCORED_FAMILIES else [],
                   probe_corpora(matrix, data_root) if reads_probes(spec) else None)

    @property
    def probe_fingerprint(self) -> dict | None:
        return self.probe_corpus.fingerprint if self.probe_corpus is not None else None

    def select(self, spec: ModelSpec) -> "EvalData":
        """What a cell of `spec` reads of this run's evaluation data."""
        return EvalData(self.similarity_sets if spec.family in SCORED_FAMILIES else [],
                        self.probe_corpus if reads_probes(spec) else None)


def _trained_by_lm_loops(spec: ModelSpec) -> bool:
    """bf16 autocast lives in bench.train.lm's training and evaluation loops, so it reaches the LMs
    they train. Every other model runs in fp32: word2vec and GloVe update fp32 tables by
    hand (autocast's bf16 products could not be added into them), gensim and Kneser-Ney
    are not torch, and the pretrained models are only read."""
    return spec.train_cls is lm.LMTrainConfig


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
        "device": {**device_info(device if spec.runs_on_device else torch.device("cpu"), torch.get_num_threads()),
                   "precision": precision if _trained_by_lm_loops(spec) else "fp32"},  # this cell's forward passes
        "versions": library_versions(),
        "git_commit": git_commit(),
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_embedding_cell(spec: ModelSpec, config, prepared: PreparedCorpus, seed: int, device: torch.device,
                       matrix: Matrix, similarity_sets: list, probe_corpus: ProbeCorpora | None = None) -> dict:
    """Build the vectors, then score word similarity and analogies and, with probe corpora,
    probe the vectors (POS: one static vector per word type; WSD: the bag of context) and,
    for a pretrained transformer, its every layer; time each phase apart."""
    train_device = device if spec.runs_on_device else torch.device("cpu")
    if spec.warm_up is not None:  # setup out of the timed region (a fresh checkout compiles word2vec's kernel)
        spec.warm_up(config, train_device)
    with measure(train_device) as train_phase:
        vectors = spec.build(prepared, config, seed, train_device)
    _check_finite(vectors, spec.name)
    epochs = getattr(config, "epochs", 0)
    timings = {"train": train_phase.row(prepared.train.n_tokens * epochs if spec.trains else None,
                                   train_device)}
    scored = _vector_metrics(vectors, matrix.eval, similarity_sets, device, prepared.progress)
    timings.update(scored["timings"])
    cell_metrics = {"wordsim": scored["wordsim"], "analogy": scored["analogy"]}
    training: dict[str, dict] = {}  # what encoder_probes trains, by name
    if probe_corpus is not None:
        static = static_probes(vectors, spec.name, probe_corpus, matrix, seed, device, timings)
        layered = encoder_probes(spec, config, probe_corpus, matrix, seed, device, timings, training)
        # The static rows and the layers' share each metric list, told apart by their layer.
        cell_metrics.update({key: static.get(key, []) + layered.get(key, []) for key in {*static, *layered}})
    return {"metrics": cell_metrics,
            "metric_defs": metric_defs(cell_metrics),
            "vectors": {"words": len(vectors.index_to_key), "dims": int(vectors.vector_size)},
            **({"training": training} if training else {}),
            "timings": timings}


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


def run_lm_cell(spec: ModelSpec, config, train_config, prepared: PreparedCorpus, seed: int, device: torch.device,
                matrix: Matrix, precision: str, probe_corpus: ProbeCorpora | None = None) -> dict:
    """Fit the LM on train (validation guides training), then score validation and test;
    with probe corpora, a pretrained transformer's layers are probed too.

    Every perplexity row carries its protocol: tokenization, vocabulary rule and size,
    unknown-token rate of the scored split, whether sentence ends are scored, and the
    context the model had. A pretrained LM on a corpus without validation and test splits
    has nothing to score and is not loaded for it (only its probes run).
    """
    train_device = device if spec.runs_on_device else torch.device("cpu")
    if not spec.trains and not {"validation", "test"} & set(prepared.streams):
        timings: dict[str, dict] = {}  # phase -> its timing row
        training: dict[str, dict] = {}
        cell_metrics = {"perplexity": [],
                        **encoder_probes(spec, config, probe_corpus, matrix, seed, device, timings, training)}
        return {"metrics": cell_metrics,
                "metric_defs": metric_defs(cell_metrics),
                "training": training, "timings": timings}
    with measure(train_device) as train_phase:
        if _trained_by_lm_loops(spec):
            trained = spec.build(prepared, config, train_config, seed, train_device, precision)
        else:
            trained = spec.build(prepared, config, train_config, seed, train_device)
    timings = {"train": train_phase.row(trained.train_tokens, train_device)}
    rows = []
    for split in ("validation", "test"):
        if split not in prepared.streams:
            continue
        with measure(train_device) as phase:
            scored = trained.score(split)
        timings[f"eval_{split}"] = phase.row(scored["scored_tokens"], train_device)
        # An open-vocabulary model's score states its own tokenization, vocabulary and unknown rate.
        try:
            rows.append(api.perplexity_row(prepared, split, scored))
        except FloatingPointError as exc:
            raise FloatingPointError(f"{spec.name}: {exc}") from exc
    probed = encoder_probes(spec, config, probe_corpus, matrix, seed, device, timings, trained.training)
    cell_metrics = {"perplexity": rows, **probed}
    return {"metrics": cell_metrics,
            "metric_defs": metric_defs(cell_metrics),
            "training": trained.training,
            "timings": timings}


def run_bilm_cell(spec: ModelSpec, config, train_config, prepared: PreparedCorpus, seed: int, device: torch.device,
                  matrix: Matrix, precision: str, similarity_sets: list,
                  probe_corpus: ProbeCorpora | None) -> dict:
    """Train the biLM once, then read every row from that one model (each row names its model):

    - perplexity of validation and test for NAME-forward, NAME-backward and NAME-mean, with
      the protocol fields of `run_lm_cell` (bench.train.bilm states the sentence-level context);
    - word similarity and analogies of two type-level vector sets: NAME, each vocabulary
      word's contextual vectors averaged over its train occurrences, and NAME-token, the
      token encoder's vectors of the vocabulary plus every similarity-set word;
    - with probe corpora, the POS and WSD probes of every layer (0 = token encoder) and of
      their learned scalar mix ("mix"), plus the model-free baselines.
    """
    with measure(device) as train_phase:
        trained = spec.build(prepared, config, train_config, seed, device, precision)
    timings = {"train": train_phase.row(trained.train_tokens, device)}
    protocol = api.lm_protocol(prepared)
    perplexity = []
    for split in ("validation", "test"):
        if split not in prepared.streams:
            continue
        with measure(device) as phase:
            scored = trained.score(split)
        timings[f"eval_{split}"] = phase.row(scored["mean"]["scored_tokens"], device)
        for direction, row in scored.items():
            if not np.isfinite(row["perplexity"]):
                raise FloatingPointError(f"{spec.name}-{direction}: {split} perplexity is {row['perplexity']}")
            perplexity.append({"model": f"{spec.name}-{direction}", "split": split, **protocol,
                               "unk_rate": prepared.unk_rates[split], **row})

    similarity_words = [word for sim_set in similarity_sets for a, b, _ in sim_set.pairs for word in (a, b)]
    with measure(device) as vectors_phase:
        vectors = {spec.name: trained.contextual_vectors(),
                   f"{spec.name}-token": trained.token_vectors(similarity_words)}
    timings["type_vectors"] = vectors_phase.row(prepared.train.n_tokens, device)
    cell_metrics = {"perplexity": perplexity, "wordsim": [], "analogy": []}
    for name, kv in vectors.items():
        _check_finite(kv, name)
        scored = _vector_metrics(kv, matrix.eval, similarity_sets, device, prepared.progress)
        cell_metrics["wordsim"] += [{"model": name, **row} for row in scored["wordsim"]]
        cell_metrics["analogy"] += [{"model": name, **row} for row in scored["analogy"]]
        timings.update({f"{phase}_{name}": row for phase, row in scored["timings"].items()})

    if probe_corpus is not None:
        cell_metrics.update(layer_probes(spec.name, trained.featurize, trained.n_layers, probe_corpus, matrix, seed,
                                         device, timings, trained.training))
    return {"metrics": cell_metrics,
            "metric_defs": metric_defs(cell_metrics),
            "training": trained.training,
            "vectors": {name: {"words": len(kv.index_to_key), "dims": int(kv.vector_size)}
                        for name, kv in vectors.items()},
            "timings": timings}


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
