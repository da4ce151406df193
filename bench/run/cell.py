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
from typing import NamedTuple

import numpy as np
import torch
from gensim.models import KeyedVectors

from bench import api
from bench.data.prepared import PreparedCorpus, prepare_corpus
from bench.errors import BenchError
from bench.eval import metrics, probe, wsd
from bench.models import checkpoints
from bench.models.registry import ModelSpec
from bench.run.config import EvalConfig, Matrix
from bench.run.keys import SCORED_FAMILIES, cell_key, data_identity, similarity_identity
from bench.run.results import SCHEMA, device_info, git_commit, library_versions
from bench.timing import measure
from bench.train import lm


MOST_FREQUENT_TAG = "most-frequent-tag"  # the model name of the POS baseline's rows


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
    built = []  # what the model's build returned
    spec = _loading_and_keeping(matrix.spec(model), matrix.checkpoint(model), built)
    prepared = prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab, progress)
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


def _loading_and_keeping(spec: ModelSpec, checkpoint: str | None, built: list) -> ModelSpec:
    """`spec` whose build loads `checkpoint` ([model.NAME] checkpoint, instead of training)
    and appends what it returns to `built`, so the cell can save it after scoring (saving
    inside the build would count in the train phase's time)."""

    def build(*args):
        trained = spec.build(*args, **({} if checkpoint is None else {"checkpoint": checkpoint}))
        built.append(trained)
        return trained

    return dataclasses.replace(spec, build=build)


class ProbeCorpora(NamedTuple):
    """The data of a run's probes: the tagged POS corpus and the word-sense corpus, each None
    when its task does not run (bench.eval.probe.ProbeConfig.task)."""

    pos: probe.TaggedCorpus | None
    wsd: wsd.SenseCorpus | None

    @property
    def fingerprint(self) -> dict:
        """One identity for the cell key: a single corpus' own fingerprint (so cells that only
        POS-probed keep their keys), else both names and hashes joined."""
        if self.wsd is None or self.pos is None:
            return (self.pos or self.wsd).fingerprint
        pos, sense = self.pos.fingerprint, self.wsd.fingerprint
        return {"name": f"{pos['name']}+{sense['name']}", "sha256": f"{pos['sha256']}+{sense['sha256']}",
                "tags_stripped": pos["tags_stripped"]}


def reads_probes(spec: ModelSpec) -> bool:
    """Cells that probe: the scored families, and pretrained LMs with layers to probe."""
    return spec.family in SCORED_FAMILIES or spec.encoder is not None


class EvalData(NamedTuple):
    """The evaluation data a cell reads besides its corpus: the similarity sets (embedding and
    biLM cells) and the probe corpora (those and the LMs with an encoder)."""

    similarity_sets: list
    probe_corpus: ProbeCorpora | None

    @classmethod
    def load(cls, matrix: Matrix, spec: ModelSpec, data_root: Path | None) -> "EvalData":
        return cls(metrics.similarity_sets(data_root) if spec.family in SCORED_FAMILIES else [],
                   probe_corpus_of(matrix, data_root) if reads_probes(spec) else None)

    def select(self, spec: ModelSpec) -> "EvalData":
        """What a cell of `spec` reads of this run's evaluation data."""
        return EvalData(self.similarity_sets if spec.family in SCORED_FAMILIES else [],
                        self.probe_corpus if reads_probes(spec) else None)


def config_block(matrix: Matrix, model: str, precision: str) -> dict:
    """The resolved config of one cell, as its result stores it and its key hashes it."""
    config, train_config = matrix.model_config(model), matrix.train_config(model)
    block = {"model": dataclasses.asdict(config),
             "train": dataclasses.asdict(train_config) if train_config is not None else None,
             "tokenizer": dataclasses.asdict(matrix.tokenizer),
             "vocab": dataclasses.asdict(matrix.vocab), "eval": dataclasses.asdict(matrix.eval),
             "probe": dataclasses.asdict(matrix.probe),
             "precision": precision}
    # The files a model reads (a vectors file, saved weights) made the cell as much as its
    # settings: by their sha256, a changed file is another cell. Absent for other models.
    spec = matrix.spec(model)
    if spec.files is not None:
        block["model_files"] = spec.files(config)
    if matrix.checkpoint(model) is not None:
        block["checkpoint"] = checkpoints.identity(matrix.checkpoint(model), f"model.{model}")
    return block


def expected_key(matrix: Matrix, model: str, precision: str, corpus_fingerprint: dict, eval_data: EvalData) -> dict:
    """The key of the cell these settings and this data make (see bench.run.keys)."""
    probe_fingerprint = eval_data.probe_corpus.fingerprint if eval_data.probe_corpus is not None else None
    spec = matrix.spec(model)
    return cell_key(spec.family, config_block(matrix, model, precision), data_identity(corpus_fingerprint),
                    data_identity(probe_fingerprint), similarity_identity(eval_data.similarity_sets),
                    probed=reads_probes(spec))


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
        "key": expected_key(matrix, spec.name, precision, prepared.fingerprint, eval_data),
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


def _phase_row(phase, tokens: int | None, device: torch.device) -> dict:
    return {"device": device.type, "wall_s": phase.wall_s,
            "tokens": tokens, "tokens_per_s": tokens / phase.wall_s if tokens and phase.wall_s > 0 else None,
            "peak_rss_mb": phase.peak_rss_mb, "peak_cuda_mb": phase.peak_cuda_mb}


def probe_corpus_of(matrix: Matrix, data_root: Path | None) -> ProbeCorpora | None:
    """The matrix's probe corpora, None when it asks for no probe. A corpus that lacks its
    task's fields is refused here with one line (the runner calls this before writing)."""
    config = matrix.probe
    if not (config.runs_pos or config.runs_wsd):
        return None
    return ProbeCorpora(probe.load_tagged_corpus(config.corpus, data_root, config.strip_tags) if config.runs_pos
                        else None,
                        wsd.load_sense_corpus(config.wsd_corpus, data_root) if config.runs_wsd else None)


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


def _wsd_rows(model: str, layers: dict[str, list[dict]], probed: dict, corpus: wsd.SenseCorpus,
              config: probe.ProbeConfig, **extra) -> list[dict]:
    """wsd_probe rows: per layer probed (or wsd.BAG_OF_CONTEXT), one per method and word ("all":
    micro-averaged), then the model-free references on the same instances (most frequent
    sense, per word and per target form, and naive Bayes: every probing cell adds them; the
    report drops the copies). The caps travel with every row."""
    common = {"probe_corpus": corpus.name, "eval_split": "test", "train_instances": probed["train_instances"],
              "eval_instances": probed["eval_instances"], "max_train_per_word": config.wsd_max_train_per_word,
              "max_eval_per_word": config.wsd_max_eval_per_word}
    rows = [{"model": model, "layer": layer, **row, **common, **extra}
            for layer, layer_rows in layers.items() for row in layer_rows]
    rows += [{"model": row["method"], "layer": "-", **row, **common} for row in probed["baselines"]]
    return rows


def _static_probes(vectors: KeyedVectors, name: str, probes: ProbeCorpora, matrix: Matrix, seed: int,
                   device: torch.device, timings: dict) -> dict:
    """A static vector set's probe rows: POS on each token's own vector, WSD on the bag of context."""
    cell_metrics = {}
    if probes.pos is not None:
        with measure(device) as probe_phase:
            probed = probe.run_probe(probe.static_featurizer(vectors), probes.pos, matrix.probe, seed=seed,
                                     device=device)
        timings["pos_probe"] = _phase_row(probe_phase, probed["train_tokens"] + probed["eval_tokens"], device)
        scored_sentences = probe.probe_splits(probes.pos, matrix.probe, "test")[1].tokens
        cell_metrics["pos_probe"] = _probe_rows(name, {"static": probed["accuracy"]}, probed, probes.pos,
                                                coverage=probe.static_coverage(vectors, scored_sentences))
    if probes.wsd is not None:
        with measure(device) as probe_phase:
            probed = wsd.run_static_probe(vectors, probes.wsd, matrix.probe, seed=seed, device=device)
        timings["wsd_probe"] = _phase_row(probe_phase, None, device)
        cell_metrics["wsd_probe"] = _wsd_rows(name, {wsd.BAG_OF_CONTEXT: probed["rows"]}, probed, probes.wsd,
                                              matrix.probe, window=matrix.probe.wsd_window)
    return cell_metrics


def _only_layers(featurize: probe.Featurizer, n_layers: int, layers: list[int]) -> probe.Featurizer:
    """featurize, keeping `layers` of its n_layers: per sentence (len, len(layers) * D)."""

    def selected(sentences: list[list[str]]) -> list[torch.Tensor]:
        return [features.view(len(features), n_layers, -1)[:, layers].flatten(1) for features in featurize(sentences)]

    return selected


def _renumbered(by_layer: dict, layers: list[int]) -> dict:
    """Results keyed by position among the probed layers ("0", "1", ..., "mix") -> by layer number."""
    return {(str(layers[int(key)]) if key.isdigit() else key): value for key, value in by_layer.items()}


def check_probe_layers(matrix: Matrix) -> None:
    """`[probe] layers` names only layers that every probed layered model has (read from
    their configs, not their weights; the runner calls this before writing)."""
    config = matrix.probe
    if config.layers is None or not (config.runs_pos or config.runs_wsd):
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


def _layer_probes(name: str, featurize: probe.Featurizer, n_layers: int, probes: ProbeCorpora, matrix: Matrix,
                  seed: int, device: torch.device, timings: dict, training: dict, phase: str = "") -> dict:
    """A layered representation's probe rows: every layer (0 first) and a learned scalar mix of
    them, on POS and WSD as the matrix asks; the POS mix weights go into `training`. `phase`
    suffixes the timing rows (a cell that also probes static vectors keeps both)."""
    layers = matrix.probe.layers or list(range(n_layers))
    if max(layers) >= n_layers:  # the runner checks before writing; a model whose layer_count is wrong lands here
        raise BenchError(f"probe.layers: {name} has layers 0..{n_layers - 1}; got {layers}")
    if len(layers) < n_layers:
        featurize, n_layers = _only_layers(featurize, n_layers, layers), len(layers)
    cell_metrics = {}
    if probes.pos is not None:
        with measure(device) as probe_phase:
            probed = probe.run_layer_probes(featurize, n_layers, probes.pos, matrix.probe, seed=seed, device=device)
        probed["layers"] = _renumbered(probed["layers"], layers)
        timings[f"pos_probe{phase}"] = _phase_row(probe_phase, probed["train_tokens"] + probed["eval_tokens"], device)
        cell_metrics["pos_probe"] = _probe_rows(name, probed["layers"], probed, probes.pos,
                                                max_train_sentences=matrix.probe.max_train_sentences,
                                                max_eval_sentences=matrix.probe.max_eval_sentences)
        training["probe_scalar_mix"] = {"weights": probed["mix_weights"], "gamma": probed["mix_gamma"]}
    if probes.wsd is not None:
        with measure(device) as probe_phase:
            probed = wsd.run_layer_probes(featurize, n_layers, probes.wsd, matrix.probe, seed=seed, device=device)
        probed["layers"] = _renumbered(probed["layers"], layers)
        timings[f"wsd_probe{phase}"] = _phase_row(probe_phase, None, device)
        cell_metrics["wsd_probe"] = _wsd_rows(name, probed["layers"], probed, probes.wsd, matrix.probe)
    return cell_metrics


def _encoder_probes(spec: ModelSpec, config, probes: ProbeCorpora | None, matrix: Matrix, seed: int,
                    device: torch.device, timings: dict, training: dict) -> dict:
    """A pretrained transformer's layer-wise probe rows (none without probes or an encoder)."""
    if probes is None or spec.encoder is None:
        return {}
    with measure(device) as load_phase:
        encoder = spec.encoder(config, device)
    timings["load_encoder"] = _phase_row(load_phase, None, device)
    training["encoder"] = {"layers": encoder.n_layers, "dim": encoder.dim,
                           "space_before_words": encoder.space_before_words}
    return _layer_probes(spec.name, encoder, encoder.n_layers, probes, matrix, seed, device, timings, training,
                         phase="_layers")


PROBE_METRICS = ("pos_accuracy", "wsd_accuracy")


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
    timings = {"train": _phase_row(train_phase, prepared.train.n_tokens * epochs if spec.trains else None,
                                   train_device)}
    scored = _vector_metrics(vectors, matrix.eval, similarity_sets, device, prepared.progress)
    timings.update(scored["timings"])
    cell_metrics = {"wordsim": scored["wordsim"], "analogy": scored["analogy"]}
    training = {}
    if probe_corpus is not None:
        static = _static_probes(vectors, spec.name, probe_corpus, matrix, seed, device, timings)
        layered = _encoder_probes(spec, config, probe_corpus, matrix, seed, device, timings, training)
        # The static rows and the layers' share each metric list, told apart by their layer.
        cell_metrics.update({key: static.get(key, []) + layered.get(key, []) for key in {*static, *layered}})
    return {"metrics": cell_metrics,
            "metric_defs": {name: dataclasses.asdict(metrics.METRICS[name])
                            for name in ("spearman", "pearson", "analogy_accuracy", *PROBE_METRICS)},
            "vectors": {"words": len(vectors.index_to_key), "dims": int(vectors.vector_size)},
            **({"training": training} if training else {}),
            "timings": timings}


def _vector_metrics(vectors: KeyedVectors, ev: EvalConfig, similarity_sets: list, device: torch.device,
                    progress: bool = False) -> dict:
    """Word similarity and analogies (those of `ev.tasks`) of one set of vectors: {"wordsim",
    "analogy", "timings"}; a task left out has no rows and no timing. `progress`: the
    analogies' bar."""
    timings, wordsim, analogy = {}, [], []
    if "similarity" in ev.tasks:
        with measure(device) as similarity_phase:
            wordsim = api.vector_rows(vectors, similarity_sets, ev, device, tasks=("similarity",))["wordsim"]
        timings["eval_similarity"] = _phase_row(similarity_phase, None, device)
    if "analogy" not in ev.tasks:
        return {"wordsim": wordsim, "analogy": analogy, "timings": timings}

    # Warm-up: parse the question file and run the kernels once, outside the timed region.
    metrics.evaluate_analogies(_tiny_vectors(vectors), restrict_vocab=ev.restrict_vocab,
                               case_insensitive=ev.case_insensitive, methods=ev.analogy_methods, device=device)
    with measure(device) as analogy_phase:
        analogy = api.vector_rows(vectors, [], ev, device, tasks=("analogy",), progress=progress)["analogy"]
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
        timings, training = {}, {}
        cell_metrics = {"perplexity": [],
                        **_encoder_probes(spec, config, probe_corpus, matrix, seed, device, timings, training)}
        return {"metrics": cell_metrics,
                "metric_defs": {name: dataclasses.asdict(metrics.METRICS[name]) for name in PROBE_METRICS},
                "training": training, "timings": timings}
    with measure(train_device) as train_phase:
        if _trained_by_lm_loops(spec):
            trained = spec.build(prepared, config, train_config, seed, train_device, precision)
        else:
            trained = spec.build(prepared, config, train_config, seed, train_device)
    timings = {"train": _phase_row(train_phase, trained.train_tokens, train_device)}
    rows = []
    for split in ("validation", "test"):
        if split not in prepared.streams:
            continue
        with measure(train_device) as phase:
            scored = trained.score(split)
        timings[f"eval_{split}"] = _phase_row(phase, scored["scored_tokens"], train_device)
        # An open-vocabulary model's score states its own tokenization, vocabulary and unknown rate.
        try:
            rows.append(api.perplexity_row(prepared, split, scored))
        except FloatingPointError as exc:
            raise FloatingPointError(f"{spec.name}: {exc}") from exc
    probed = _encoder_probes(spec, config, probe_corpus, matrix, seed, device, timings, trained.training)
    return {"metrics": {"perplexity": rows, **probed},
            "metric_defs": {name: dataclasses.asdict(metrics.METRICS[name])
                            for name in ("word_perplexity", *(PROBE_METRICS if probed else ()))},
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
    timings = {"train": _phase_row(train_phase, trained.train_tokens, device)}
    protocol = api.lm_protocol(prepared)
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
        scored = _vector_metrics(kv, matrix.eval, similarity_sets, device, prepared.progress)
        cell_metrics["wordsim"] += [{"model": name, **row} for row in scored["wordsim"]]
        cell_metrics["analogy"] += [{"model": name, **row} for row in scored["analogy"]]
        timings.update({f"{phase}_{name}": row for phase, row in scored["timings"].items()})

    if probe_corpus is not None:
        cell_metrics.update(_layer_probes(spec.name, trained.featurize, trained.n_layers, probe_corpus, matrix, seed,
                                          device, timings, trained.training))
    return {"metrics": cell_metrics,
            "metric_defs": {name: dataclasses.asdict(metrics.METRICS[name])
                            for name in ("word_perplexity", "spearman", "pearson", "analogy_accuracy",
                                         *PROBE_METRICS)},
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
