"""The part-of-speech probe as a task: a linear probe per token on a tagged corpus
(bench.eval.probe), scored on the test split, beside the most-frequent-tag-per-word baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from gensim.models import KeyedVectors

from bench.eval import probe
from bench.eval.metrics import METRICS
from bench.eval.tasks import ProbeRun, ProbeTask

MOST_FREQUENT_TAG = "most-frequent-tag"  # the model name of the baseline's rows
_SIZES = ("n_tags", "train_tokens", "eval_tokens", "unseen_tag_rate", "majority_tag_accuracy")


class PosTask(ProbeTask):
    name = "pos"
    description = "linear part-of-speech probe per token (brown-pos), beside the most-frequent-tag baseline"
    metric = METRICS["pos_accuracy"]
    settings_cls = probe.PosSettings

    def load(self, settings: probe.PosSettings, data_root: Path | None) -> probe.TaggedCorpus:
        return probe.load_tagged_corpus(settings.corpus, data_root, settings.strip_tags)

    def static(self, vectors: KeyedVectors, model: str, corpus: probe.TaggedCorpus, settings: probe.PosSettings, *,
               seed: int, device: torch.device) -> ProbeRun:
        """One vector per word type (bench.eval.probe.static_featurizer); rows carry its coverage."""
        probed = probe.run_probe(probe.static_featurizer(vectors), corpus, settings, seed=seed, device=device)
        scored_sentences = probe.probe_splits(corpus, settings, "test")[1].tokens
        rows = _rows(model, {"static": probed["accuracy"]}, probed, corpus,
                     coverage=probe.static_coverage(vectors, scored_sentences))
        return ProbeRun(rows, tokens=probed["train_tokens"] + probed["eval_tokens"])

    def layers(self, model: str, featurize: probe.Featurizer, n_layers: int, corpus: probe.TaggedCorpus,
               settings: probe.PosSettings, *, seed: int, device: torch.device) -> ProbeRun:
        """Every layer and their learned scalar mixes, each mix's row with its weights (probe.mix_fields)."""
        probed = probe.run_layer_probes(featurize, n_layers, corpus, settings, seed=seed, device=device)
        rows = _rows(model, probed["layers"], probed, corpus, max_train_sentences=settings.max_train_sentences,
                     max_eval_sentences=settings.max_eval_sentences)
        rows = [{**row, **probed["mixes"][row["layer"]]} if row["layer"] in probed["mixes"] else row for row in rows]
        return ProbeRun(rows, tokens=probed["train_tokens"] + probed["eval_tokens"])

    def key_fields(self, settings: probe.PosSettings, runs: bool, shared: tuple[str, ...]) -> dict:
        """POS's own fields without a prefix, in every probing cell's key, and the corpus None
        where POS does not run: the layout keyed before tasks had tables ([probe] corpus unset
        was no POS probe), so those cells keep their keys."""
        fields = {name: value for name, value in dataclasses.asdict(settings).items() if name not in shared}
        return {**fields, "corpus": settings.corpus if runs else None}


def _rows(model: str, accuracies: dict[str, float], probed: dict, corpus: probe.TaggedCorpus, **extra) -> list[dict]:
    """pos_probe rows: one per layer probed, then the most-frequent-tag-per-word baseline on
    the same sentences (every probing cell adds it; the report drops the copies)."""
    common = {"probe_corpus": corpus.name, "eval_split": "test", "tags_stripped": corpus.fingerprint["tags_stripped"],
              **{key: probed[key] for key in _SIZES}}
    rows = [{"model": model, "layer": layer, "accuracy": accuracy, **common, **extra}
            for layer, accuracy in accuracies.items()]
    rows.append({"model": MOST_FREQUENT_TAG, "layer": "per-word", "accuracy": probed["most_frequent_tag_accuracy"],
                 **common})
    return rows


TASK = PosTask()
