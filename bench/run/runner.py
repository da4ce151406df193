"""The matrix runner: models x corpora x seeds, one JSON result per cell.

One loop per family; device, config and data are passed explicitly. A cell whose result
file already exists with status ok is skipped (use `force` to redo it); a cell that
raises is recorded as failed with its reason and the matrix goes on.

An executor runs the cells: `LocalExecutor` (the default: one at a time on this machine,
each in a fresh worker process) or `RayExecutor` (Ray tasks on a cluster). Either way
this process writes every result, so the files, resuming and `force` do not depend on it.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import socket
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch
from gensim.models import KeyedVectors
from tqdm.auto import tqdm

from bench import lm, metrics, probe
from bench.config import EvalConfig, Matrix
from bench.datasets import resolve_data_dir
from bench.errors import BenchError
from bench.models import MODELS, ModelSpec
from bench.prepared import PreparedCorpus, prepare_corpus
from bench.results import (SCHEMA, check_run_folder, command_line, device_info, git_commit, library_versions,
                           load_json, remove_stale_temp_files, write_json_atomic)
from bench.timing import measure
from bench.vocab import CACHE_ENV

# A Ray task's process gets the environment of its node, not ours: these carry this run's
# hub access (--allow-hub) and tokenization cache to the cells.
RAY_CELL_ENVIRONMENT = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", CACHE_ENV)
MOST_FREQUENT_TAG = "most-frequent-tag"  # the model name of the POS baseline's rows


def _parse_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise BenchError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise BenchError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = _parse_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA was requested but torch sees no GPU "
                         f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """The run's --precision: fp32, or bf16 autocast, which only a CUDA device gets."""
    if name not in lm.PRECISIONS:
        raise BenchError(f"--precision {name!r}: expected {' or '.join(lm.PRECISIONS)}")
    if name == "bf16" and device.type != "cuda":
        raise BenchError(f"--precision bf16: bfloat16 autocast is for CUDA devices and this run's device is "
                         f"{device}; use --device cuda or --precision fp32")
    return name


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


def _failed_result(job: CellJob, reason: str) -> dict:
    """The result of a cell whose worker never returned one."""
    return {"schema": SCHEMA, "cell": {"model": job.model, "corpus": job.corpus, "seed": job.seed,
                                       "matrix": job.matrix.name},
            "status": "failed", "error": reason}


class LocalExecutor:
    """The default: one cell at a time on this machine.

    With `isolate` every cell runs in a fresh worker process: its timings and peak memory
    do not depend on the cells before it (glibc keeps or returns freed memory depending on
    the process' history: our CBOW trained at 1.04M tokens/s in a fresh process and at
    0.57M on its second run in the same one), and a cell that crashes or is killed for
    memory is recorded as failed while the matrix goes on. Without it (debugging) the
    cells run in this process.
    """

    def __init__(self, isolate: bool = True):
        self.isolate = isolate

    def resolve_device(self, name: str) -> torch.device:
        return resolve_device(name)

    def run(self, jobs: dict[Path, CellJob]) -> Iterator[tuple[Path, dict]]:
        """(result path, result) of every job, in order, each as soon as it is done."""
        for path, job in jobs.items():
            yield path, self._run_one(job)

    def _run_one(self, job: CellJob) -> dict:
        if not self.isolate:
            return run_cell(*job)
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                return pool.submit(run_cell, *job).result()
            except BrokenProcessPool:
                return _failed_result(job, "the worker process died (killed, or out of memory)")

    def close(self) -> None:
        """Nothing to release: each worker process ends with its cell."""


class RayExecutor:
    """Cells as Ray tasks on a Ray cluster, all submitted at once.

    `address`: HOST:PORT or ray://HOST:PORT of a running cluster, "auto" (the cluster
    `ray start` made on this machine, or $RAY_ADDRESS) or "local" (a private one for this
    run, stopped at `close`). Each task asks for `cpus_per_cell` CPUs, and one GPU when the
    cell's model runs on a CUDA device; Ray sets the task's threads and CUDA_VISIBLE_DEVICES
    from that. As with the local executor, each cell gets a fresh worker process and a
    worker that dies is a failed cell, not retried (a re-run redoes it). The results come
    back to this process, which writes them. Every node needs this project installed at
    the same versions, and the data root and corpus folders at the same paths.
    """

    def __init__(self, address: str, cpus_per_cell: float):
        try:
            import ray
        except ImportError as exc:
            raise BenchError("--executor ray needs Ray: pip install 'lm-lineage[ray]'") from exc
        if cpus_per_cell <= 0:
            raise BenchError(f"--ray-cpus must be > 0, got {cpus_per_cell}")
        _check_reachable(address)
        env_vars = {name: os.environ[name] for name in RAY_CELL_ENVIRONMENT if name in os.environ}
        try:
            # log_to_driver=False: the cells' progress bars and logs stay in Ray's worker logs
            # instead of interleaving here; a failed cell's reason is in its result.
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     runtime_env={"env_vars": env_vars})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BenchError(f"--ray-address {address}: {_first_line(exc)}") from exc
        self.address = address
        self.cpus_per_cell = cpus_per_cell

    def resolve_device(self, name: str) -> torch.device:
        """Like `resolve_device`, but the cells run on the cluster: its GPUs count, not this machine's."""
        import ray

        has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
        if name == "auto":
            return torch.device("cuda" if has_gpu else "cpu")
        device = _parse_device(name)
        if device.type != "cuda":
            return device
        if device.index not in (None, 0):
            raise BenchError(f"--device {name}: with --executor ray each cell uses the GPU Ray assigns it, which "
                             f"it sees as cuda:0; use --device cuda")
        if not has_gpu:
            raise BenchError(f"--device {name}: CUDA was requested but the Ray cluster ({self.address}) has no GPU")
        return torch.device("cuda")

    def run(self, jobs: dict[Path, CellJob]) -> Iterator[tuple[Path, dict]]:
        """(result path, result) of every job, in the order the tasks finish."""
        import ray

        # max_calls=1: a fresh worker process per cell; max_retries=0: a dead worker is a failed cell.
        remote_cell = ray.remote(max_calls=1, max_retries=0)(run_cell)
        pending = {}
        for path, job in jobs.items():
            gpus = 1 if job.device.type == "cuda" and MODELS[job.model].runs_on_device else 0
            # The workers do not share this process' working directory.
            task_job = job._replace(data_root=job.data_root.resolve() if job.data_root else None)
            pending[remote_cell.options(num_cpus=self.cpus_per_cell, num_gpus=gpus).remote(*task_job)] = (path, job)
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            path, job = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else exc
                result = _failed_result(job, f"the Ray task failed: {type(cause).__name__}: {_first_line(cause)}")
            yield path, result

    def close(self) -> None:
        """Disconnect; a cluster ends this run's unfinished tasks then, and a "local" one stops."""
        import ray

        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ray.init keeps retrying an address where no cluster answers (over five minutes with
    Ray 2.60); one TCP connect says so in seconds."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BenchError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT, auto or local")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BenchError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc})") from exc


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def cell_path(out_dir: Path, model: str, corpus: str, seed: int) -> Path:
    safe_corpus = corpus.strip("/").replace("/", "_")
    return out_dir / "cells" / f"{model}__{safe_corpus}__seed{seed}.json"


def run_matrix(matrix: Matrix, out_dir: Path, data_dir: str | None, device: torch.device,
               force: bool = False, progress: bool = True, executor: LocalExecutor | RayExecutor | None = None,
               precision: str = "fp32") -> list[Path]:
    """Run every cell with `executor` (default: a LocalExecutor); returns the result paths
    of cells that failed. `precision` is the run's, checked by `resolve_precision`."""
    check_run_folder(out_dir)  # results of another schema are neither resumed nor overwritten
    executor = executor if executor is not None else LocalExecutor()
    data_root = resolve_data_dir(data_dir)
    metrics.similarity_sets(data_root)  # bad similarity files stop the run before anything is written
    # Seed-major: a long run has every model's first seed before any second seed.
    cells = [(model, corpus, seed) for seed in matrix.seeds for corpus in matrix.corpora for model in matrix.models
             if MODELS[model].trains or seed == matrix.seeds[0]]
    # Every corpus is loaded (and its tokenization cached) before anything is written:
    # bad data stops the run with one line and no partial results.
    for corpus in matrix.corpora:
        prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab)
    _probe_corpus(matrix, data_root)  # so is the probe's tagged corpus: a corpus without tags is refused here
    for model in matrix.models:  # so are pretrained weights (their config is read, not the weights)
        if MODELS[model].check is not None:
            MODELS[model].check(matrix.model_config(model), f"model.{model}")
    remove_stale_temp_files(out_dir)
    remove_stale_temp_files(out_dir / "cells")
    write_json_atomic(out_dir / "matrix.json", {"matrix": matrix.to_dict(), "command": command_line()})
    jobs = {}
    for model, corpus, seed in cells:
        path = cell_path(out_dir, model, corpus, seed)
        if not force and path.exists() and load_json(path).get("status") == "ok":
            continue
        jobs[path] = CellJob(matrix, model, corpus, seed, data_root, device, progress, command_line(), precision)
    failed = []
    for path, result in tqdm(executor.run(jobs), total=len(cells), initial=len(cells) - len(jobs),
                             desc=f"matrix {matrix.name}", unit="cell", disable=not progress):
        if result["status"] != "ok":
            failed.append(path)
        write_json_atomic(path, result)
    return failed


def run_cell(matrix: Matrix, model: str, corpus: str, seed: int, data_root: Path | None, device: torch.device,
             progress: bool, command: str, precision: str = "fp32") -> dict:
    """One cell, start to finish: prepare the data (from the tokenization cache), run the
    family's loop, and return the result; an exception becomes a failed result."""
    spec = MODELS[model]
    prepared = prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab, progress)
    config, train_config = matrix.model_config(model), matrix.train_config(model)
    result = _result_header(matrix, spec, config, train_config, prepared, seed, device, command, precision)
    try:
        if spec.family == "embedding":
            result.update(run_embedding_cell(spec, config, prepared, seed, device, matrix,
                                             metrics.similarity_sets(data_root), _probe_corpus(matrix, data_root)))
        elif spec.family == "bilm":
            result.update(run_bilm_cell(spec, config, train_config, prepared, seed, device, matrix, precision,
                                        metrics.similarity_sets(data_root), _probe_corpus(matrix, data_root)))
        else:
            result.update(run_lm_cell(spec, config, train_config, prepared, seed, device, matrix, precision))
    except Exception as exc:  # recorded, not hidden: the cell is marked failed with its reason
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
    return result


def _trained_by_lm_loops(spec: ModelSpec) -> bool:
    """bf16 autocast lives in bench.lm's training and evaluation loops, so it reaches the LMs
    they train. Every other model runs in fp32: word2vec and GloVe update fp32 tables by
    hand (autocast's bf16 products could not be added into them), gensim and Kneser-Ney
    are not torch, and the pretrained models are only read."""
    return spec.train_cls is lm.LMTrainConfig


def _result_header(matrix: Matrix, spec: ModelSpec, config, train_config, prepared: PreparedCorpus, seed: int,
                   device: torch.device, command: str, precision: str) -> dict:
    return {
        "schema": SCHEMA,
        "cell": {"model": spec.name, "family": spec.family, "corpus": prepared.name, "seed": seed,
                 "matrix": matrix.name, "description": spec.description},
        "status": "ok",
        "error": None,
        "config": {"model": dataclasses.asdict(config),
                   "train": dataclasses.asdict(train_config) if train_config is not None else None,
                   "tokenizer": dataclasses.asdict(matrix.tokenizer),
                   "vocab": dataclasses.asdict(matrix.vocab), "eval": dataclasses.asdict(matrix.eval),
                   "probe": dataclasses.asdict(matrix.probe),
                   "precision": precision},
        "dataset": prepared.describe(),
        "seed": seed,
        "device": {**device_info(device if spec.runs_on_device else torch.device("cpu"), torch.get_num_threads()),
                   "precision": precision if _trained_by_lm_loops(spec) else "fp32"},  # this cell's forward passes
        "versions": library_versions(),
        "git_commit": git_commit(),
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _phase_row(phase, tokens: int | None, device: torch.device) -> dict:
    return {"device": device.type, "wall_s": phase.wall_s,
            "tokens": tokens, "tokens_per_s": tokens / phase.wall_s if tokens and phase.wall_s > 0 else None,
            "peak_rss_mb": phase.peak_rss_mb, "peak_cuda_mb": phase.peak_cuda_mb}


def _probe_corpus(matrix: Matrix, data_root: Path | None) -> probe.TaggedCorpus | None:
    """The matrix's tagged probe corpus, None when it asks for no probe."""
    if matrix.probe.corpus is None:
        return None
    return probe.load_tagged_corpus(matrix.probe.corpus, data_root, matrix.probe.strip_tags)


def _probe_rows(model: str, accuracies: dict[str, float], probed: dict, corpus: probe.TaggedCorpus,
                **extra) -> list[dict]:
    """pos_probe rows: one per layer probed, then the most-frequent-tag-per-word baseline on
    the same sentences (every probing cell adds it; the report drops the copies)."""
    common = {"probe_corpus": corpus.name, "eval_split": "test", "tags_stripped": corpus.fingerprint["tags_stripped"],
              **{key: probed[key] for key in ("n_tags", "train_tokens", "eval_tokens", "unseen_tag_rate",
                                              "majority_tag_accuracy")}}
    rows = [{"model": model, "layer": layer, "accuracy": accuracy, **common, **extra}
            for layer, accuracy in accuracies.items()]
    rows.append({"model": MOST_FREQUENT_TAG, "layer": "per-word", "accuracy": probed["most_frequent_tag_accuracy"],
                 **common})
    return rows


def run_embedding_cell(spec: ModelSpec, config, prepared: PreparedCorpus, seed: int, device: torch.device,
                       matrix: Matrix, similarity_sets: list, probe_corpus: probe.TaggedCorpus | None = None) -> dict:
    """Build the vectors, then score word similarity and analogies and, with a probe corpus,
    POS-probe the vectors (one static vector per word type); time each phase apart."""
    train_device = device if spec.runs_on_device else torch.device("cpu")
    with measure(train_device) as train_phase:
        vectors = spec.build(prepared, config, seed, train_device)
    _check_finite(vectors, spec.name)
    epochs = getattr(config, "epochs", 0)
    timings = {"train": _phase_row(train_phase, prepared.train.n_tokens * epochs if spec.trains else None,
                                   train_device)}
    scored = _vector_metrics(vectors, matrix.eval, similarity_sets, device)
    timings.update(scored["timings"])
    cell_metrics = {"wordsim": scored["wordsim"], "analogy": scored["analogy"]}
    if probe_corpus is not None:
        with measure(device) as probe_phase:
            probed = probe.run_probe(probe.static_featurizer(vectors), probe_corpus, matrix.probe, seed=seed,
                                     device=device)
        timings["pos_probe"] = _phase_row(probe_phase, probed["train_tokens"] + probed["eval_tokens"], device)
        scored_sentences = probe.probe_splits(probe_corpus, matrix.probe, "test")[1].tokens
        cell_metrics["pos_probe"] = _probe_rows(spec.name, {"static": probed["accuracy"]}, probed, probe_corpus,
                                                coverage=probe.static_coverage(vectors, scored_sentences))
    return {"metrics": cell_metrics,
            "metric_defs": {name: dataclasses.asdict(metrics.METRICS[name])
                            for name in ("spearman", "pearson", "analogy_accuracy", "pos_accuracy")},
            "vectors": {"words": len(vectors.index_to_key), "dims": int(vectors.vector_size)},
            "timings": timings}


def _vector_metrics(vectors: KeyedVectors, ev: EvalConfig, similarity_sets: list, device: torch.device) -> dict:
    """Word similarity and analogies of one set of vectors: {"wordsim", "analogy", "timings"}."""
    timings = {}
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
    return {"wordsim": wordsim, "analogy": analogy, "timings": timings}


def _lm_protocol(matrix: Matrix, prepared: PreparedCorpus) -> dict:
    """The protocol fields every perplexity row carries (the scored split adds its unknown rate and context)."""
    tokenizer, vocab = matrix.tokenizer, prepared.vocab.config
    return {
        "tokenization": f"lowercase={tokenizer.lowercase}, pattern={tokenizer.pattern}",
        "vocab_rule": f"train words seen >= {vocab.min_count} times"
                      + (f", at most {vocab.max_size}" if vocab.max_size else "") + f", others -> {vocab.unk}",
        "vocab_size": len(prepared.vocab),
        "sentence_ends_scored": vocab.eos is not None,
    }


def run_lm_cell(spec: ModelSpec, config, train_config, prepared: PreparedCorpus, seed: int, device: torch.device,
                matrix: Matrix, precision: str) -> dict:
    """Fit the LM on train (validation guides training), then score validation and test.

    Every perplexity row carries its protocol: tokenization, vocabulary rule and size,
    unknown-token rate of the scored split, whether sentence ends are scored, and the
    context the model had.
    """
    train_device = device if spec.runs_on_device else torch.device("cpu")
    with measure(train_device) as train_phase:
        if _trained_by_lm_loops(spec):
            trained = spec.build(prepared, config, train_config, seed, train_device, precision)
        else:
            trained = spec.build(prepared, config, train_config, seed, train_device)
    timings = {"train": _phase_row(train_phase, trained.train_tokens, train_device)}
    protocol = _lm_protocol(matrix, prepared)
    rows = []
    for split in ("validation", "test"):
        if split not in prepared.streams:
            continue
        with measure(train_device) as phase:
            scored = trained.score(split)
        if not np.isfinite(scored["perplexity"]):
            raise FloatingPointError(f"{spec.name}: {split} perplexity is {scored['perplexity']}")
        timings[f"eval_{split}"] = _phase_row(phase, scored["scored_tokens"], train_device)
        # An open-vocabulary model's score states its own tokenization, vocabulary and unknown rate.
        rows.append({"split": split, **protocol, "unk_rate": prepared.unk_rates[split], **scored})
    return {"metrics": {"perplexity": rows},
            "metric_defs": {"word_perplexity": dataclasses.asdict(metrics.METRICS["word_perplexity"])},
            "training": trained.training,
            "timings": timings}


def run_bilm_cell(spec: ModelSpec, config, train_config, prepared: PreparedCorpus, seed: int, device: torch.device,
                  matrix: Matrix, precision: str, similarity_sets: list,
                  probe_corpus: probe.TaggedCorpus | None) -> dict:
    """Train the biLM once, then read every row from that one model (each row names its model):

    - perplexity of validation and test for NAME-forward, NAME-backward and NAME-mean, with
      the protocol fields of `run_lm_cell` (bench.bilm states the sentence-level context);
    - word similarity and analogies of two type-level vector sets: NAME, each vocabulary
      word's contextual vectors averaged over its train occurrences, and NAME-token, the
      token encoder's vectors of the vocabulary plus every similarity-set word;
    - with a probe corpus, the POS probe of every layer (0 = token encoder) and of their
      learned scalar mix ("mix"), plus the most-frequent-tag baseline.
    """
    with measure(device) as train_phase:
        trained = spec.build(prepared, config, train_config, seed, device, precision)
    timings = {"train": _phase_row(train_phase, trained.train_tokens, device)}
    protocol = _lm_protocol(matrix, prepared)
    perplexity = []
    for split in ("validation", "test"):
        if split not in prepared.streams:
            continue
        with measure(device) as phase:
            scored = trained.score(split)
        timings[f"eval_{split}"] = _phase_row(phase, scored["mean"]["scored_tokens"], device)
        for direction, row in scored.items():
            if not np.isfinite(row["perplexity"]):
                raise FloatingPointError(f"{spec.name}-{direction}: {split} perplexity is {row['perplexity']}")
            perplexity.append({"model": f"{spec.name}-{direction}", "split": split, **protocol,
                               "unk_rate": prepared.unk_rates[split], **row})

    similarity_words = [word for sim_set in similarity_sets for a, b, _ in sim_set.pairs for word in (a, b)]
    with measure(device) as vectors_phase:
        vectors = {spec.name: trained.contextual_vectors(),
                   f"{spec.name}-token": trained.token_vectors(similarity_words)}
    timings["type_vectors"] = _phase_row(vectors_phase, prepared.train.n_tokens, device)
    cell_metrics = {"perplexity": perplexity, "wordsim": [], "analogy": []}
    for name, kv in vectors.items():
        _check_finite(kv, name)
        scored = _vector_metrics(kv, matrix.eval, similarity_sets, device)
        cell_metrics["wordsim"] += [{"model": name, **row} for row in scored["wordsim"]]
        cell_metrics["analogy"] += [{"model": name, **row} for row in scored["analogy"]]
        timings.update({f"{phase}_{name}": row for phase, row in scored["timings"].items()})

    if probe_corpus is not None:
        with measure(device) as probe_phase:
            probed = probe.run_layer_probes(trained.featurize, trained.n_layers, probe_corpus, matrix.probe,
                                            seed=seed, device=device)
        timings["pos_probe"] = _phase_row(probe_phase, probed["train_tokens"] + probed["eval_tokens"], device)
        cell_metrics["pos_probe"] = _probe_rows(spec.name, probed["layers"], probed, probe_corpus)
        trained.training["probe_scalar_mix"] = {"weights": probed["mix_weights"], "gamma": probed["mix_gamma"]}
    return {"metrics": cell_metrics,
            "metric_defs": {name: dataclasses.asdict(metrics.METRICS[name])
                            for name in ("word_perplexity", "spearman", "pearson", "analogy_accuracy", "pos_accuracy")},
            "training": trained.training,
            "vectors": {name: {"words": len(kv.index_to_key), "dims": int(kv.vector_size)}
                        for name, kv in vectors.items()},
            "timings": timings}


def _check_finite(vectors: KeyedVectors, model: str) -> None:
    if not np.isfinite(vectors.vectors).all():
        raise FloatingPointError(f"{model}: the trained vectors contain NaN or inf")


def _tiny_vectors(vectors: KeyedVectors) -> KeyedVectors:
    tiny = KeyedVectors(vectors.vector_size)
    n = min(8, len(vectors.index_to_key))
    tiny.add_vectors(vectors.index_to_key[:n], vectors.vectors[:n])
    return tiny

