"""Linear part-of-speech probes on frozen word representations.

A probe asks how much of a linguistic property a representation makes linearly readable
(Peters et al. 2018, sec. 5.3, probe ELMo's layers for POS; Belinkov et al. 2017): a softmax
regression is trained on the frozen vector of every token of a tagged corpus and scored by
tagging accuracy on held-out sentences. One probe serves every kind of representation
through a `featurize(sentences) -> one (len, D) tensor per sentence` callable: ELMo layers
(contextual) and static word vectors (`static_featurizer`, one vector per word type).

The corpus is `brown-pos` (tokens and Brown tags, one sentence a line). Brown tags carry
suffixes that are not parts of speech: `-TL` (word in a title), `-HL` (in a headline),
`-NC` (cited word), stacked as in `NN-TL-HL`; `strip_tag` removes them (the full tag set is
`[probe.pos] strip_tags = false`). Other marks stay: `FW-` (foreign word), `*` (negation)
and `+` (contractions such as `PPSS+BER`).

Two references put an accuracy in context: the majority tag (every token gets the most
frequent train tag) and the most-frequent-tag-per-word baseline (unknown words get the
majority tag). Test tokens whose tag never occurs in train count as errors everywhere.

A layered representation (ELMo's L + 1 layers) is probed layer by layer and through a
scalar mix of its layers (`run_layer_probes`): the mix weights are learned with the probe,
as Peters et al. learn them with the task model, and the features are extracted once. Two
mixes are learned: "mix" on the layers as every other probe sees them (each dimension
standardized on train, so no layer is larger than another) and "mix-ln" on the raw layers
through ELMo's own `do_layer_norm` (`ScalarMix(layer_norm=True)`: one mean and variance per
layer). Their rows carry what the mix learned (`mix_fields`): the weights s_l, gamma, Tenney
et al.'s (2019) centre of gravity E[layer] = sum_l l * s_l and s_2 - s_1, the weight of layer
2 against layer 1 that the reading note's claim is about.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from gensim.models import KeyedVectors

from bench.data.datasets import SPLITS, corpus_folder, load_folder_dataset
from bench.errors import BenchError
from impl._checks import is_bool, is_int, is_num, need, need_ints
from impl.elmo import ScalarMix

# Suffixes of the Brown tag set that mark where a word stands, not what it is.
TAG_SUFFIXES = ("-TL", "-HL", "-NC")
TOKENS_FIELD, TAGS_FIELD = "tokens", "tags"

Featurizer = Callable[[list[list[str]]], list[torch.Tensor]]


@dataclass
class PosSettings:
    """The POS probe's settings: the `[probe.pos]` table, with the `[probe]` keys every task
    shares (`lr`, `weight_decay`, `feature_batch`; bench.eval.probe_config). Every cap takes
    the same slice for every model of a run, so their rows compare."""

    corpus: str = "brown-pos"  # registry name or folder of {tokens, tags} jsonl splits
    strip_tags: bool = True  # drop -TL/-HL/-NC (the probe then has fewer, purely syntactic classes)
    epochs: int = 10
    batch_size: int = 1024  # tokens per step
    max_train_sentences: int | None = None  # the first n train sentences only (features cost memory)
    max_eval_sentences: int | None = None  # the first n sentences of the scored split only
    lr: float = 1e-2  # Adam
    weight_decay: float = 0.0
    feature_batch: int = 64  # sentences per featurize call

    def __post_init__(self):
        need(self, isinstance(self.corpus, str) and self.corpus != "", "corpus", "a corpus name or folder")
        need(self, is_bool(self.strip_tags), "strip_tags", "a bool")
        need_ints(self, "epochs", "batch_size", "feature_batch")
        need_caps(self, "max_train_sentences", "max_eval_sentences")
        need(self, is_num(self.lr) and self.lr > 0, "lr", "a number > 0")
        need(self, is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")


def need_caps(settings, *fields: str) -> None:
    """`need` an int >= 1 or None in each of `fields` (a cap left unset takes everything)."""
    for name in fields:
        value = getattr(settings, name)
        need(settings, value is None or (is_int(value) and value >= 1), name, "an int >= 1, or unset")


@dataclass
class TaggedSplit:
    tokens: list[list[str]]  # one list of words per sentence
    tags: list[list[str]]  # aligned with tokens

    @property
    def n_tokens(self) -> int:
        return sum(len(words) for words in self.tokens)


@dataclass
class TaggedCorpus:
    name: str
    splits: dict[str, TaggedSplit]
    fingerprint: dict


def strip_tag(tag: str, strip: bool = True) -> str:
    """Remove the -TL, -HL and -NC suffixes, repeatedly (`NN-TL-HL` -> `NN`, `---HL` -> `--`)."""
    while strip:
        for suffix in TAG_SUFFIXES:
            if tag.endswith(suffix) and len(tag) > len(suffix):
                tag = tag[:-len(suffix)]
                break
        else:
            break
    return tag


def load_tagged_corpus(name: str, data_dir: str | Path | None = None, strip: bool = True) -> TaggedCorpus:
    """A registry name (brown-pos) or a folder of jsonl splits, each line {tokens: [...], tags: [...]}."""
    folder = corpus_folder(name, data_dir, "tagged", TAGS_FIELD,
                           f"{{'{TOKENS_FIELD}': [...], '{TAGS_FIELD}': [...]}} jsonl splits")
    loaded, _, sha256 = load_folder_dataset(folder, name)
    splits = {}
    for split in SPLITS:
        if split not in loaded:
            continue
        columns = loaded[split].column_names
        missing = [f"'{field}'" for field in (TOKENS_FIELD, TAGS_FIELD) if field not in columns]
        if missing:
            raise BenchError(f"corpus '{name}': split '{split}' has no {' or '.join(missing)} field "
                             f"(columns: {', '.join(columns)}); a tagging probe needs token and tag lists")
        tokens, tags = loaded[split][TOKENS_FIELD], loaded[split][TAGS_FIELD]
        for row, (words, labels) in enumerate(zip(tokens, tags)):
            if not isinstance(words, list) or not isinstance(labels, list) or len(words) != len(labels):
                raise BenchError(f"corpus '{name}': {split} row {row} needs equally long '{TOKENS_FIELD}' and "
                                 f"'{TAGS_FIELD}' lists")
        splits[split] = TaggedSplit(tokens, [[strip_tag(tag, strip) for tag in labels] for labels in tags])
    if "train" not in splits:
        raise BenchError(f"corpus '{name}': no train split in {folder}")
    return TaggedCorpus(name, splits, {"name": name, "source": str(folder), "sha256": sha256,
                                       "tags_stripped": strip})


def majority_tag_baseline(train_tags: list[list[str]], test_tags: list[list[str]]) -> float:
    """Accuracy of tagging every test token with the single most frequent train tag."""
    majority = Counter(tag for tags in train_tags for tag in tags).most_common(1)[0][0]
    flat = [tag for tags in test_tags for tag in tags]
    return sum(tag == majority for tag in flat) / len(flat)


def most_frequent_tag_baseline(train_tokens: list[list[str]], train_tags: list[list[str]],
                               test_tokens: list[list[str]], test_tags: list[list[str]]) -> float:
    """Accuracy of tagging each test word with its most frequent train tag (case-sensitive).

    Ties go to the tag seen first in train; words unseen in train get the overall most
    frequent train tag.
    """
    per_word: dict[str, Counter] = {}
    overall: Counter = Counter()
    for words, tags in zip(train_tokens, train_tags):
        for word, tag in zip(words, tags):
            per_word.setdefault(word, Counter())[tag] += 1
            overall[tag] += 1
    majority = overall.most_common(1)[0][0]
    best = {word: counts.most_common(1)[0][0] for word, counts in per_word.items()}
    pairs = [(word, tag) for words, tags in zip(test_tokens, test_tags) for word, tag in zip(words, tags)]
    return sum(best.get(word, majority) == tag for word, tag in pairs) / len(pairs)


def tag_index(train_tags: list[list[str]]) -> dict[str, int]:
    """Train tags to class ids, most frequent first (ties: first seen)."""
    counts = Counter(tag for tags in train_tags for tag in tags)
    return {tag: i for i, (tag, _) in enumerate(counts.most_common())}


def encode_tags(tags: list[list[str]], index: dict[str, int]) -> torch.Tensor:
    """Flat class ids (N,) in reading order; -1 for a tag outside the index (always an error)."""
    return torch.tensor([index.get(tag, -1) for sentence in tags for tag in sentence], dtype=torch.long)


def extract_features(featurize: Featurizer, sentences: list[list[str]], batch_size: int = 64,
                     positions: list[int] | None = None) -> torch.Tensor:
    """Features (N, D) float32 on the CPU for every token, in reading order; with
    `positions` (one token index per sentence), only that token's: (len(sentences), D).

    featurize gets batch_size sentences at a time and must return one (len(sentence), D)
    tensor per sentence; it runs under torch.no_grad, so the representation stays frozen.
    Batches are made of sentences of similar length (a padded batch then wastes little
    work on padding); the rows come back in the order of `sentences`. Keeping one token
    per sentence (the WSD probe's target) keeps a large model's many layers in memory.
    """
    if not sentences:
        raise ValueError("no sentences to featurize")
    if positions is not None and len(positions) != len(sentences):
        raise ValueError(f"{len(positions)} positions for {len(sentences)} sentences")
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    chunks: list[torch.Tensor | None] = [None] * len(sentences)
    dim = None
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            indices = order[start:start + batch_size]
            batch = [sentences[i] for i in indices]
            outputs = featurize(batch)
            if len(outputs) != len(batch):
                raise ValueError(f"featurize returned {len(outputs)} tensors for {len(batch)} sentences")
            for i, words, vectors in zip(indices, batch, outputs):
                dim = vectors.shape[-1] if dim is None else dim
                if tuple(vectors.shape) != (len(words), dim):
                    raise ValueError(f"featurize returned shape {tuple(vectors.shape)} for a sentence of "
                                     f"{len(words)} words; expected ({len(words)}, {dim})")
                if positions is None:
                    chunks[i] = vectors.detach().float().cpu()
                else:  # a copy: a view would keep the whole batch's features alive
                    chunks[i] = vectors[positions[i]:positions[i] + 1].detach().float().cpu().clone()  # (1, D)
    return torch.cat([chunk for chunk in chunks if chunk is not None])  # all filled: `order` visits every index


def _static_row(kv: KeyedVectors, word: str) -> int:
    """The row of word in kv, else of its lower-cased form, else -1."""
    index = kv.key_to_index.get(word)
    if index is None:
        index = kv.key_to_index.get(word.lower(), -1)
    return index


def static_featurizer(kv: KeyedVectors) -> Featurizer:
    """Featurize with one vector per word type: kv[word], else kv[word.lower()], else zeros."""
    # The zero row at the end is what -1 (not found) picks.
    table = torch.cat([torch.from_numpy(np.asarray(kv.vectors, dtype=np.float32)),
                       torch.zeros(1, kv.vector_size)])  # (n_words + 1, D)

    def featurize(sentences: list[list[str]]) -> list[torch.Tensor]:
        return [table[torch.tensor([_static_row(kv, word) for word in words], dtype=torch.long)]
                for words in sentences]

    return featurize


def static_coverage(kv: KeyedVectors, sentences: list[list[str]]) -> float:
    """Fraction of tokens that `static_featurizer` finds (exactly or lower-cased)."""
    rows = [_static_row(kv, word) for words in sentences for word in words]
    return sum(row >= 0 for row in rows) / len(rows)


MIXES = {"mix": False, "mix-ln": True}  # the `layer` of a scalar mix's rows -> does it normalise each layer first


class MixedLinearProbe(nn.Module):
    """A scalar mix of the layers (b, L+1, D) -> (b, D), then a softmax regression.

    Still linear in the features: the mix only ties the weights given to each layer's copy
    of a dimension to one learned scale per layer (`layer_norm`: each layer normalised over
    the batch first, see ScalarMix).
    """

    def __init__(self, n_layers: int, dim: int, n_classes: int, layer_norm: bool = False):
        super().__init__()
        self.mix = ScalarMix(n_layers, layer_norm=layer_norm)
        self.linear = nn.Linear(dim, n_classes)

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        return self.linear(self.mix(layers.transpose(0, 1)))  # ScalarMix wants the layers first: (L+1, b, D)

    def weights(self) -> tuple[list[float], float]:
        """The learned softmax-normalised layer weights s_l and gamma."""
        return torch.softmax(self.mix.weights.detach(), 0).tolist(), self.mix.gamma.item()


def mix_fields(weights: list[float], gamma: float, layers: list[int]) -> dict:
    """What a scalar-mix row records: the weights s_l of `layers` (their layer numbers, 0 = the
    embeddings), gamma, the centre of gravity E[layer] = sum_l l * s_l (Tenney et al. 2019) and
    s_2 - s_1 (None unless layers 1 and 2 are both mixed)."""
    if len(weights) != len(layers):
        raise ValueError(f"{len(weights)} mix weights for {len(layers)} layers")
    by_layer = dict(zip(layers, weights))
    return {"mix_layers": list(layers), "mix_weights": list(weights), "mix_gamma": gamma,
            "mix_centre": sum(layer * weight for layer, weight in by_layer.items()),
            "mix_s2_minus_s1": by_layer[2] - by_layer[1] if {1, 2} <= set(by_layer) else None}


def mean_mix_fields(mixes: list[dict]) -> dict:
    """`mix_fields` of the mean weights and gamma of several mixes over the same layers (the WSD
    probe's per-word mixes: its micro-averaged row)."""
    layers = mixes[0]["mix_layers"]
    if any(mix["mix_layers"] != layers for mix in mixes):
        raise ValueError("mixes over different layers cannot be averaged")
    return mix_fields(np.mean([mix["mix_weights"] for mix in mixes], axis=0).tolist(),
                      float(np.mean([mix["mix_gamma"] for mix in mixes])), layers)


def train_linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                       test_labels: torch.Tensor, *, epochs: int, lr: float, seed: int, device: torch.device | str,
                       weight_decay: float = 0.0, batch_size: int = 1024) -> float:
    """Test accuracy of a softmax regression trained on frozen features.

    train_features (N, D), train_labels (N,) class ids >= 0; test_labels may hold -1
    (a tag unseen in train), which counts as an error. Features are standardized with the
    train mean and standard deviation first (an affine map, so the probe stays linear) so
    that one lr suits representations of any scale. Mini-batch Adam over shuffled tokens.
    Features (N, L+1, D) are layers, each standardized on its own, that a
    `MixedLinearProbe` mixes.
    """
    return fit_linear_probe(train_features, train_labels, test_features, test_labels, epochs=epochs, lr=lr,
                            seed=seed, device=device, weight_decay=weight_decay, batch_size=batch_size)[0]


def fit_linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                     test_labels: torch.Tensor, *, epochs: int, lr: float, seed: int, device: torch.device | str,
                     weight_decay: float = 0.0, batch_size: int = 1024,
                     mix_layer_norm: bool = False) -> tuple[float, nn.Module]:
    """`train_linear_probe`, also returning the trained probe (a mixed probe's weights are read off it).

    `mix_layer_norm`: layers (N, L+1, D) are not standardized but each normalised as a whole by
    the mix (ELMo's do_layer_norm, on each batch's statistics: the "mix-ln" of MIXES)."""
    if train_labels.min() < 0:
        raise ValueError("train_labels must be class ids >= 0")
    if mix_layer_norm and train_features.dim() != 3:
        raise ValueError("mix_layer_norm needs layered features (N, L+1, D)")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    if mix_layer_norm:  # the mix normalises each layer itself
        mean, std = torch.zeros(()), torch.ones(())
    else:
        mean = train_features.mean(dim=0)  # (D,) or (L+1, D)
        std = train_features.std(dim=0).clamp_min(1e-6)  # constant features stay 0, not NaN
    n_classes = int(train_labels.max()) + 1
    if train_features.dim() == 3:
        probe: nn.Module = MixedLinearProbe(train_features.shape[1], train_features.shape[2], n_classes,
                                            layer_norm=mix_layer_norm).to(device)
    else:
        probe = nn.Linear(train_features.shape[1], n_classes).to(device)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        order = torch.randperm(len(train_labels), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            x = ((train_features[batch] - mean) / std).to(device)  # (b, D) or (b, L+1, D)
            loss = F.cross_entropy(probe(x), train_labels[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test_labels), batch_size):
            x = ((test_features[start:start + batch_size] - mean) / std).to(device)
            predicted = probe(x).argmax(dim=-1).cpu()  # (b,)
            correct += int((predicted == test_labels[start:start + batch_size]).sum())
    return correct / len(test_labels), probe


def probe_splits(corpus: TaggedCorpus, config: PosSettings, eval_split: str) -> tuple[TaggedSplit, TaggedSplit]:
    """The train and scored sentences, cut to the configured slices."""
    if eval_split not in corpus.splits:
        raise BenchError(f"corpus '{corpus.name}' has no '{eval_split}' split")
    train, test = corpus.splits["train"], corpus.splits[eval_split]
    if config.max_train_sentences is not None:
        train = TaggedSplit(train.tokens[:config.max_train_sentences], train.tags[:config.max_train_sentences])
    if config.max_eval_sentences is not None:
        test = TaggedSplit(test.tokens[:config.max_eval_sentences], test.tags[:config.max_eval_sentences])
    return train, test


def _references(train: TaggedSplit, test: TaggedSplit, index: dict[str, int], test_labels: torch.Tensor) -> dict:
    """Both baselines and the sizes, on the sentences the probe sees."""
    return {
        "most_frequent_tag_accuracy": most_frequent_tag_baseline(train.tokens, train.tags, test.tokens, test.tags),
        "majority_tag_accuracy": majority_tag_baseline(train.tags, test.tags),
        "n_tags": len(index),
        "train_tokens": train.n_tokens,
        "eval_tokens": len(test_labels),
        "unseen_tag_rate": float((test_labels < 0).float().mean()),
    }


def run_probe(featurize: Featurizer, corpus: TaggedCorpus, config: PosSettings, *, seed: int,
              device: torch.device | str, eval_split: str = "test") -> dict:
    """Probe accuracy of one representation on corpus (trained on train, scored on eval_split),
    with both baselines computed on the same sentences."""
    train, test = probe_splits(corpus, config, eval_split)
    index = tag_index(train.tags)
    train_labels, test_labels = encode_tags(train.tags, index), encode_tags(test.tags, index)
    accuracy = train_linear_probe(
        extract_features(featurize, train.tokens, config.feature_batch), train_labels,
        extract_features(featurize, test.tokens, config.feature_batch), test_labels,
        epochs=config.epochs, lr=config.lr, seed=seed, device=device, weight_decay=config.weight_decay,
        batch_size=config.batch_size)
    return {"accuracy": accuracy, **_references(train, test, index, test_labels)}


def run_layer_probes(featurize: Featurizer, n_layers: int, corpus: TaggedCorpus, config: PosSettings, *, seed: int,
                     device: torch.device | str, eval_split: str = "test") -> dict:
    """Probe accuracy of every layer of a layered representation and of its two learned scalar
    mixes (MIXES: plain and layer-normalised).

    featurize returns one (len, n_layers * D) tensor per sentence: the layers side by side,
    layer 0 first. Every probe gets the same seed, sentences and settings. Returns
    {"layers": {"0": accuracy, ..., "mix": accuracy, "mix-ln": accuracy}, "mixes": {"mix":
    mix_fields, "mix-ln": mix_fields} (layers numbered 0..n_layers - 1), and the baselines and
    sizes of `run_probe`}.
    """
    train, test = probe_splits(corpus, config, eval_split)
    index = tag_index(train.tags)
    train_labels, test_labels = encode_tags(train.tags, index), encode_tags(test.tags, index)
    train_layers = extract_features(featurize, train.tokens, config.feature_batch)  # (N, n_layers * D)
    test_layers = extract_features(featurize, test.tokens, config.feature_batch)  # (M, n_layers * D)
    if train_layers.shape[1] % n_layers:
        raise ValueError(f"featurize returned {train_layers.shape[1]} features, not a multiple of {n_layers} layers")
    train_layers = train_layers.view(len(train_labels), n_layers, -1)  # (N, n_layers, D): views, no copies
    test_layers = test_layers.view(len(test_labels), n_layers, -1)  # (M, n_layers, D)
    settings: dict[str, Any] = dict(epochs=config.epochs, lr=config.lr, seed=seed, device=device,
                                    weight_decay=config.weight_decay, batch_size=config.batch_size)
    accuracies = {str(layer): train_linear_probe(train_layers[:, layer], train_labels, test_layers[:, layer],
                                                 test_labels, **settings)
                  for layer in range(n_layers)}
    mixes = {}
    for name, layer_norm in MIXES.items():
        accuracies[name], mixed = fit_linear_probe(train_layers, train_labels, test_layers, test_labels,
                                                   mix_layer_norm=layer_norm, **settings)
        assert isinstance(mixed, MixedLinearProbe), "3-D features train a mixed probe"
        mixes[name] = mix_fields(*mixed.weights(), list(range(n_layers)))
    return {"layers": accuracies, "mixes": mixes, **_references(train, test, index, test_labels)}
