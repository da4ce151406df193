"""The matrix runner: models x corpora x seeds, one JSON result per cell.

One loop per family; device, config and data are passed explicitly. A cell whose result
file already exists with status ok is skipped (use `force` to redo it); a cell that
raises is recorded as failed with its reason and the matrix goes on.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import torch
from gensim.models import KeyedVectors
from tqdm.auto import tqdm

from bench import metrics
from bench.config import Matrix
from bench.datasets import resolve_data_dir
from bench.errors import BenchError
from bench.models import MODELS, ModelSpec
from bench.prepared import PreparedCorpus, prepare_corpus
from bench.results import (SCHEMA, command_line, device_info, git_commit, library_versions, load_json,
                           write_json_atomic)
from bench.timing import measure


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise BenchError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise BenchError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA was requested but torch sees no GPU "
                         f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})")
    return device


def cell_path(out_dir: Path, model: str, corpus: str, seed: int) -> Path:
    safe_corpus = corpus.strip("/").replace("/", "_")
    return out_dir / "cells" / f"{model}__{safe_corpus}__seed{seed}.json"


def run_matrix(matrix: Matrix, out_dir: Path, data_dir: str | None, device: torch.device,
               force: bool = False, progress: bool = True, isolate: bool = True) -> list[Path]:
    """Run every cell; returns the result paths of cells that failed.

    With `isolate` every cell runs in a fresh worker process: its timings and peak memory
    do not depend on the cells before it (glibc keeps or returns freed memory depending on
    the process' history: our CBOW trained at 1.04M tokens/s in a fresh process and at
    0.57M on its second run in the same one), and a cell that crashes or is killed for
    memory is recorded as failed while the matrix goes on.
    """
    data_root = resolve_data_dir(data_dir)
    metrics.similarity_sets(data_root)  # bad similarity files stop the run before anything is written
    # Seed-major: a long run has every model's first seed before any second seed.
    cells = [(model, corpus, seed) for seed in matrix.seeds for corpus in matrix.corpora for model in matrix.models
             if MODELS[model].trains or seed == matrix.seeds[0]]
    # Every corpus is loaded (and its tokenization cached) before anything is written:
    # bad data stops the run with one line and no partial results.
    for corpus in matrix.corpora:
        prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab)
    write_json_atomic(out_dir / "matrix.json", {"matrix": matrix.to_dict(), "command": command_line()})
    failed = []
    for model, corpus, seed in tqdm(cells, desc=f"matrix {matrix.name}", unit="cell", disable=not progress):
        path = cell_path(out_dir, model, corpus, seed)
        if not force and path.exists() and load_json(path).get("status") == "ok":
            continue
        job = (matrix, model, corpus, seed, data_root, device, progress, command_line())
        if isolate:
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                try:
                    result = pool.submit(run_cell, *job).result()
                except BrokenProcessPool:
                    result = {"schema": SCHEMA, "cell": {"model": model, "corpus": corpus, "seed": seed,
                                                         "matrix": matrix.name}, "status": "failed",
                              "error": "the worker process died (killed, or out of memory)"}
        else:
            result = run_cell(*job)
        if result["status"] != "ok":
            failed.append(path)
        write_json_atomic(path, result)
    return failed


def run_cell(matrix: Matrix, model: str, corpus: str, seed: int, data_root: Path | None, device: torch.device,
             progress: bool, command: str) -> dict:
    """One cell, start to finish: prepare the data (from the tokenization cache), run the
    family's loop, and return the result; an exception becomes a failed result."""
    spec = MODELS[model]
    prepared = prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab, progress)
    config, train_config = matrix.model_config(model), matrix.train_config(model)
    result = _result_header(matrix, spec, config, train_config, prepared, seed, device, command)
    try:
        if spec.family == "embedding":
            result.update(run_embedding_cell(spec, config, prepared, seed, device, matrix,
                                             metrics.similarity_sets(data_root)))
        else:
            result.update(run_lm_cell(spec, config, train_config, prepared, seed, device, matrix))
    except Exception as exc:  # recorded, not hidden: the cell is marked failed with its reason
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
    return result


def _result_header(matrix: Matrix, spec: ModelSpec, config, train_config, prepared: PreparedCorpus, seed: int,
                   device: torch.device, command: str) -> dict:
    return {
        "schema": SCHEMA,
        "cell": {"model": spec.name, "family": spec.family, "corpus": prepared.name, "seed": seed,
                 "matrix": matrix.name, "description": spec.description},
        "status": "ok",
        "error": None,
        "config": {"model": dataclasses.asdict(config),
                   "train": dataclasses.asdict(train_config) if train_config is not None else None,
                   "tokenizer": dataclasses.asdict(matrix.tokenizer),
                   "vocab": dataclasses.asdict(matrix.vocab), "eval": dataclasses.asdict(matrix.eval)},
        "dataset": prepared.describe(),
        "seed": seed,
        "device": device_info(device if spec.runs_on_device else torch.device("cpu"), torch.get_num_threads()),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _phase_row(phase, tokens: int | None, device: torch.device) -> dict:
    return {"device": device.type, "wall_s": phase.wall_s,
            "tokens": tokens, "tokens_per_s": tokens / phase.wall_s if tokens and phase.wall_s > 0 else None,
            "peak_rss_mb": phase.peak_rss_mb, "peak_cuda_mb": phase.peak_cuda_mb}


def run_embedding_cell(spec: ModelSpec, config, prepared: PreparedCorpus, seed: int, device: torch.device,
                       matrix: Matrix, similarity_sets: list) -> dict:
    """Build the vectors, then score word similarity and analogies; time each phase apart."""
    train_device = device if spec.runs_on_device else torch.device("cpu")
    with measure(train_device) as train_phase:
        vectors = spec.build(prepared, config, seed, train_device)
    _check_finite(vectors, spec.name)
    epochs = getattr(config, "epochs", 0)
    timings = {"train": _phase_row(train_phase, prepared.train.n_tokens * epochs if spec.trains else None,
                                   train_device)}

    ev = matrix.eval
    with measure(device) as similarity_phase:
        wordsim = [metrics.evaluate_similarity(vectors, sim_set, oov=ev.oov, restrict_vocab=ev.restrict_vocab,
                                               case_insensitive=ev.case_insensitive) for sim_set in similarity_sets]
    timings["eval_similarity"] = _phase_row(similarity_phase, None, device)

    # Warm-up: parse the question file and run the kernels once, outside the timed region.
    metrics.evaluate_analogies(_tiny_vectors(vectors), restrict_vocab=ev.restrict_vocab,
                               case_insensitive=ev.case_insensitive, methods=ev.analogy_methods, device=device)
    with measure(device) as analogy_phase:
        analogy = metrics.evaluate_analogies(vectors, restrict_vocab=ev.restrict_vocab,
                                             case_insensitive=ev.case_insensitive, methods=ev.analogy_methods,
                                             device=device)
    timings["eval_analogy"] = _phase_row(analogy_phase, None, device)
    if ev.gensim_analogy_timing:
        # Like for like: our 3CosAdd alone against gensim's evaluator (3CosAdd only).
        from gensim.test.utils import datapath

        with measure(device) as ours_phase:
            metrics.evaluate_analogies(vectors, restrict_vocab=ev.restrict_vocab,
                                       case_insensitive=ev.case_insensitive, methods=("3cosadd",), device=device)
        timings["eval_analogy_3cosadd"] = _phase_row(ours_phase, None, device)
        with measure(torch.device("cpu")) as gensim_phase:
            vectors.evaluate_word_analogies(datapath("questions-words.txt"), restrict_vocab=ev.restrict_vocab,
                                            case_insensitive=ev.case_insensitive)
        timings["eval_analogy_gensim"] = _phase_row(gensim_phase, None, torch.device("cpu"))
    return {"metrics": {"wordsim": wordsim, "analogy": analogy},
            "metric_defs": {name: dataclasses.asdict(metrics.METRICS[name])
                            for name in ("spearman", "pearson", "analogy_accuracy")},
            "vectors": {"words": len(vectors.index_to_key), "dims": int(vectors.vector_size)},
            "timings": timings}


def run_lm_cell(spec: ModelSpec, config, train_config, prepared: PreparedCorpus, seed: int, device: torch.device,
                matrix: Matrix) -> dict:
    """Fit the LM on train (validation guides training), then score validation and test.

    Every perplexity row carries its protocol: tokenization, vocabulary rule and size,
    unknown-token rate of the scored split, whether sentence ends are scored, and the
    context the model had.
    """
    train_device = device if spec.runs_on_device else torch.device("cpu")
    with measure(train_device) as train_phase:
        trained = spec.build(prepared, config, train_config, seed, train_device)
    timings = {"train": _phase_row(train_phase, trained.train_tokens, train_device)}
    tokenizer, vocab = matrix.tokenizer, prepared.vocab.config
    protocol = {
        "tokenization": f"lowercase={tokenizer.lowercase}, pattern={tokenizer.pattern}",
        "vocab_rule": f"train words seen >= {vocab.min_count} times"
                      + (f", at most {vocab.max_size}" if vocab.max_size else "") + f", others -> {vocab.unk}",
        "vocab_size": len(prepared.vocab),
        "sentence_ends_scored": vocab.eos is not None,
    }
    rows = []
    for split in ("validation", "test"):
        if split not in prepared.streams:
            continue
        with measure(train_device) as phase:
            scored = trained.score(prepared.streams[split].ids)
        if not np.isfinite(scored["perplexity"]):
            raise FloatingPointError(f"{spec.name}: {split} perplexity is {scored['perplexity']}")
        timings[f"eval_{split}"] = _phase_row(phase, scored["scored_tokens"], train_device)
        rows.append({"split": split, **scored, **protocol, "unk_rate": prepared.unk_rates[split]})
    return {"metrics": {"perplexity": rows},
            "metric_defs": {"word_perplexity": dataclasses.asdict(metrics.METRICS["word_perplexity"])},
            "training": trained.training,
            "timings": timings}


def _check_finite(vectors: KeyedVectors, model: str) -> None:
    if not np.isfinite(vectors.vectors).all():
        raise FloatingPointError(f"{model}: the trained vectors contain NaN or inf")


def _tiny_vectors(vectors: KeyedVectors) -> KeyedVectors:
    tiny = KeyedVectors(vectors.vector_size)
    n = min(8, len(vectors.index_to_key))
    tiny.add_vectors(vectors.index_to_key[:n], vectors.vectors[:n])
    return tiny

