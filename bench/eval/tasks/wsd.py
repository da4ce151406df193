"""The word-sense probe as a task: per ambiguous word, nearest sense centroid and a linear probe
on the target token's representation (bench.eval.wsd), beside model-free references."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from gensim.models import KeyedVectors

from bench.eval import wsd
from bench.eval.metrics import METRICS
from bench.eval.probe import Featurizer
from bench.eval.tasks import ProbeRun, ProbeTask


class WsdTask(ProbeTask):
    name = "wsd"
    description = ("word-sense probe (senseval2): sense centroids and a linear probe per word, beside "
                   "most-frequent-sense and naive Bayes")
    metric = METRICS["wsd_accuracy"]
    settings_cls = wsd.WsdSettings

    def load(self, settings: wsd.WsdSettings, data_root: Path | None) -> wsd.SenseCorpus:
        return wsd.load_sense_corpus(settings.corpus, data_root)

    def static(self, vectors: KeyedVectors, model: str, corpus: wsd.SenseCorpus, settings: wsd.WsdSettings, *,
               seed: int, device: torch.device) -> ProbeRun:
        """The bag of context (wsd.BAG_OF_CONTEXT): a target word's own static vector is the
        same in every sense, so its neighbours' vectors stand in for it."""
        probed = wsd.run_static_probe(vectors, corpus, settings, seed=seed, device=device)
        return ProbeRun(_rows(model, {wsd.BAG_OF_CONTEXT: probed["rows"]}, probed, corpus, settings,
                              window=settings.window))

    def layers(self, model: str, featurize: Featurizer, n_layers: int, corpus: wsd.SenseCorpus,
               settings: wsd.WsdSettings, *, seed: int, device: torch.device) -> ProbeRun:
        probed = wsd.run_layer_probes(featurize, n_layers, corpus, settings, seed=seed, device=device)
        return ProbeRun(_rows(model, probed["layers"], probed, corpus, settings))

    def key_fields(self, settings: wsd.WsdSettings, runs: bool, shared: tuple[str, ...]) -> dict:
        """Every own field as `wsd_FIELD`, also where WSD does not run: the layout keyed before
        tasks had tables, so those cells keep their keys."""
        return {f"wsd_{name}": value for name, value in dataclasses.asdict(settings).items() if name not in shared}


def _rows(model: str, layers: dict[str, list[dict]], probed: dict, corpus: wsd.SenseCorpus,
          settings: wsd.WsdSettings, **extra) -> list[dict]:
    """wsd_probe rows: per layer probed (or wsd.BAG_OF_CONTEXT), one per method and word ("all":
    micro-averaged), then the model-free references on the same instances (most frequent
    sense, per word and per target form, and naive Bayes: every probing cell adds them; the
    report drops the copies). The caps travel with every row."""
    common = {"probe_corpus": corpus.name, "eval_split": "test", "train_instances": probed["train_instances"],
              "eval_instances": probed["eval_instances"], "max_train_per_word": settings.max_train_per_word,
              "max_eval_per_word": settings.max_eval_per_word}
    rows = [{"model": model, "layer": layer, **row, **common, **extra}
            for layer, layer_rows in layers.items() for row in layer_rows]
    rows += [{"model": row["method"], "layer": "-", **row, **common} for row in probed["baselines"]]
    return rows


TASK = WsdTask()
