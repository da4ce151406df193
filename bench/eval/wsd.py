"""Word-sense probe: which sense of an ambiguous word does a frozen representation pick out?

Data: `senseval2` (the Senseval-2 "line / hard / serve / interest" contexts as NLTK ships
them, see the data README): one instance a jsonl line, {"word": the ambiguous word,
"tokens": [...], "head": the index of the target token, "sense": its sense label}, lower
case, 80/20 train/test split stratified by (word, sense). A registry name (`senseval2`),
another local corpus (which is refused unless its lines have those fields) or a folder
holding train.jsonl and test.jsonl.

For each of the four words apart, classifiers are fit on the train instances of that word
and scored on its test instances; accuracy per word and micro-averaged over the four
("all": correct over every test instance). Methods on a representation of the target token:

- `centroid`: Peters et al. 2018's WSD method (sec. 5.3): each sense is the average
  representation of its train instances, a test instance takes the nearest sense by cosine.
  The vectors are centred on the word's train mean first: transformer layers share one
  dominant direction (Ethayarajh 2019) that would otherwise swamp every cosine.
- `linear`: the softmax regression of bench.eval.probe (features standardized on train),
  per layer and, for a layered model, through the learned scalar mixes of its layers (plain
  and layer-normalised, bench.eval.probe.MIXES), whose weights its rows carry.

Reference rows that need no model: `most-frequent-sense` (every test instance of a word gets
its most frequent train sense) and `naive-bayes` (the classical WSD baseline: multinomial
naive Bayes over the context words of the instance, add-one smoothing, no embeddings). Static
word vectors get a `bag-of-context` row: the mean of the static vectors of the words within
+-k of the target (the target itself left out). A static vector of the target word alone is
the same in every context, so a classifier on it gives every occurrence of a word form the
same sense: it can do no better than the most frequent sense of each form, which
`most_frequent_sense(..., by_form=True)` measures without running it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from gensim.models import KeyedVectors

from bench.data.datasets import _sha256_files, corpus_folder
from bench.errors import BenchError
from bench.eval.probe import (
    MIXES,
    Featurizer,
    MixedLinearProbe,
    _static_row,
    extract_features,
    fit_linear_probe,
    mean_mix_fields,
    mix_fields,
    need_caps,
)
from impl._checks import is_num, need, need_ints

FIELDS = ("word", "tokens", "head", "sense")
SPLIT_FILES = {"train": "train.jsonl", "test": "test.jsonl"}
ALL_WORDS = "all"  # the `word` of a micro-averaged row
MFS, MFS_FORM, NAIVE_BAYES = "most-frequent-sense", "most-frequent-sense-per-form", "naive-bayes"
BAG_OF_CONTEXT = "bag-of-context"  # the `layer` of static vectors' rows
SAMPLE_SEED = 0  # the caps' per-word sample: fixed, so every model and seed sees the same instances


@dataclass
class WsdSettings:
    """The word-sense probe's settings: the `[probe.wsd]` table, with the `[probe]` keys every
    task shares (`lr`, `weight_decay`, `feature_batch`; bench.eval.probe_config)."""

    corpus: str = "senseval2"  # registry name or folder of {word, tokens, head, sense} jsonl lines
    window: int = 5  # bag-of-context rows: the static vectors of the words within +-k of the target
    max_train_per_word: int | None = None  # a fixed random n train instances per word (SAMPLE_SEED), else all
    max_eval_per_word: int | None = None  # the same for the test instances
    epochs: int = 50  # the linear probe: a few thousand instances per word need more passes than POS
    batch_size: int = 64  # instances per step
    lr: float = 1e-2  # Adam
    weight_decay: float = 0.0
    feature_batch: int = 64  # sentences per featurize call

    def __post_init__(self):
        need(self, isinstance(self.corpus, str) and self.corpus != "", "corpus", "a corpus name or folder")
        need_ints(self, "window", "epochs", "batch_size", "feature_batch")
        need_caps(self, "max_train_per_word", "max_eval_per_word")
        need(self, is_num(self.lr) and self.lr > 0, "lr", "a number > 0")
        need(self, is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")


@dataclass
class SenseSplit:
    words: list[str]  # the ambiguous word of each instance (hard, interest, line, serve)
    tokens: list[list[str]]
    heads: list[int]  # index of the target token in its tokens
    senses: list[str]

    def __len__(self) -> int:
        return len(self.words)

    def take(self, indices: list[int]) -> "SenseSplit":
        return SenseSplit([self.words[i] for i in indices], [self.tokens[i] for i in indices],
                          [self.heads[i] for i in indices], [self.senses[i] for i in indices])

    def by_word(self) -> dict[str, list[int]]:
        """Instance indices per word, words in order of first appearance."""
        groups: dict[str, list[int]] = {}
        for i, word in enumerate(self.words):
            groups.setdefault(word, []).append(i)
        return groups

    def forms(self) -> list[str]:
        """The target token of each instance (served, lines, ...)."""
        return [tokens[head] for tokens, head in zip(self.tokens, self.heads)]


@dataclass
class SenseCorpus:
    name: str
    splits: dict[str, SenseSplit]  # train and test
    fingerprint: dict


def _read_split(path: Path, name: str) -> SenseSplit:
    """One split file, every line checked; the first bad line is one BenchError naming file and line."""
    words, tokens, heads, senses = [], [], [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"corpus '{name}': {path} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchError(f"{where} is not JSON ({exc.msg})") from exc
            missing = [f"'{field}'" for field in FIELDS if not isinstance(row, dict) or field not in row]
            if missing:
                raise BenchError(f"{where} has no {', '.join(missing)} field(s); a word-sense probe needs "
                                 f"{', '.join(FIELDS)} on every line")
            words_of, head = row["tokens"], row["head"]
            if not isinstance(words_of, list) or not words_of or not all(isinstance(w, str) for w in words_of):
                raise BenchError(f"{where}: 'tokens' must be a non-empty list of strings")
            if not isinstance(head, int) or isinstance(head, bool) or not 0 <= head < len(words_of):
                raise BenchError(f"{where}: 'head' {head!r} is outside its sentence of {len(words_of)} tokens "
                                 f"(expected an index 0..{len(words_of) - 1})")
            words.append(str(row["word"]))
            tokens.append(words_of)
            heads.append(head)
            senses.append(str(row["sense"]))
    if not words:
        raise BenchError(f"corpus '{name}': {path} holds no instances")
    return SenseSplit(words, tokens, heads, senses)


def load_sense_corpus(name: str, data_dir: str | Path | None = None) -> SenseCorpus:
    """A registry name (senseval2) or a folder with train.jsonl and test.jsonl of
    {word, tokens, head, sense} lines."""
    folder = corpus_folder(name, data_dir, "word-sense", "sense",
                           f"train.jsonl and test.jsonl of {{{', '.join(FIELDS)}}} lines")
    paths = {split: folder / file for split, file in SPLIT_FILES.items()}
    absent = [str(path) for path in paths.values() if not path.is_file()]
    if absent:
        raise BenchError(f"corpus '{name}': no {', '.join(absent)}; a word-sense corpus needs train.jsonl and "
                         f"test.jsonl")
    splits = {split: _read_split(path, name) for split, path in paths.items()}
    unseen = sorted(set(splits["test"].words) - set(splits["train"].words))
    if unseen:
        raise BenchError(f"corpus '{name}': test word(s) {', '.join(unseen)} have no train instances")
    return SenseCorpus(name, splits, {"name": name, "source": str(folder),
                                      "sha256": _sha256_files(list(paths.values()))})


def cap_per_word(split: SenseSplit, limit: int | None) -> SenseSplit:
    """At most `limit` instances of each word: a fixed random sample (SAMPLE_SEED), file order kept."""
    if limit is None:
        return split
    rng = np.random.default_rng(SAMPLE_SEED)
    kept: list[int] = []  # instance indices
    for indices in split.by_word().values():
        kept += indices if len(indices) <= limit else rng.choice(indices, size=limit, replace=False).tolist()
    return split.take(sorted(kept))


def probe_splits(corpus: SenseCorpus, config: WsdSettings) -> tuple[SenseSplit, SenseSplit]:
    """The train and test instances every row of a run is computed on (the configured caps)."""
    return (cap_per_word(corpus.splits["train"], config.max_train_per_word),
            cap_per_word(corpus.splits["test"], config.max_eval_per_word))


def _accuracy_rows(method: str, correct: dict[str, int], totals: dict[str, int]) -> list[dict]:
    """One row per word and the micro-average ("all") over every test instance."""
    rows = [{"method": method, "word": word, "accuracy": correct[word] / totals[word], "correct": correct[word],
             "instances": totals[word]} for word in totals]
    n = sum(totals.values())
    rows.append({"method": method, "word": ALL_WORDS, "accuracy": sum(correct.values()) / n,
                 "correct": sum(correct.values()), "instances": n})
    return rows


def most_frequent_sense(train: SenseSplit, test: SenseSplit, by_form: bool = False) -> list[dict]:
    """Every test instance of a word gets the word's most frequent train sense (ties: first
    seen in train). by_form: of its target word form instead (served, lines), falling back
    to the word's when the form is unseen: the best any classifier of the target token's
    static vector can do on the train distribution."""
    def best(keys: list[str]) -> dict[str, str]:
        counts: dict[str, Counter] = {}
        for key, sense in zip(keys, train.senses):
            counts.setdefault(key, Counter())[sense] += 1
        return {key: c.most_common(1)[0][0] for key, c in counts.items()}

    per_word = best(train.words)
    per_form = best([f"{w}\t{f}" for w, f in zip(train.words, train.forms())]) if by_form else {}
    correct: Counter[str] = Counter()  # per word
    totals: Counter[str] = Counter()
    for word, form, sense in zip(test.words, test.forms(), test.senses):
        guess = per_form.get(f"{word}\t{form}", per_word[word])
        correct[word] += guess == sense
        totals[word] += 1
    return _accuracy_rows(MFS_FORM if by_form else MFS, correct, dict(totals))


def context_words(tokens: list[str], head: int) -> list[str]:
    """The words of the instance other than the target token."""
    return tokens[:head] + tokens[head + 1:]


def naive_bayes(train: SenseSplit, test: SenseSplit) -> list[dict]:
    """Multinomial naive Bayes per word over the context words of each instance.

    score(s) = log P(s) + sum over context tokens w of log (count(w, s) + 1) / (count(s) + |V|),
    V = the context words seen with the word in train (test words outside V are skipped);
    the highest score wins (ties: the sense first seen in train)."""
    correct: Counter[str] = Counter()  # per word
    totals: Counter[str] = Counter()
    train_groups, test_groups = train.by_word(), test.by_word()
    for word, test_indices in test_groups.items():
        indices = train_groups[word]
        senses = list(dict.fromkeys(train.senses[i] for i in indices))
        vocabulary = {w: j for j, w in enumerate(dict.fromkeys(
            w for i in indices for w in context_words(train.tokens[i], train.heads[i])))}
        counts = np.zeros((len(senses), len(vocabulary)))  # (S, V)
        priors = np.zeros(len(senses))  # (S,)
        for i in indices:
            s = senses.index(train.senses[i])
            priors[s] += 1
            for w in context_words(train.tokens[i], train.heads[i]):
                counts[s, vocabulary[w]] += 1
        log_likelihood = np.log(counts + 1) - np.log(counts.sum(1, keepdims=True) + len(vocabulary))  # (S, V)
        log_prior = np.log(priors / priors.sum())  # (S,)
        for i in test_indices:
            seen = [vocabulary[w] for w in context_words(test.tokens[i], test.heads[i]) if w in vocabulary]
            scores = log_prior + log_likelihood[:, seen].sum(1)  # (S,)
            correct[word] += senses[int(np.argmax(scores))] == test.senses[i]
            totals[word] += 1
    return _accuracy_rows(NAIVE_BAYES, correct, dict(totals))


def bag_of_context(kv: KeyedVectors, split: SenseSplit, window: int) -> torch.Tensor:
    """(n, D) float32: per instance, the mean of the static vectors of the words within
    +-window of the target (the target left out; a word is looked up as is, else lower-cased,
    as the POS probe does); zeros where none of them has a vector."""
    table = torch.from_numpy(np.asarray(kv.vectors, dtype=np.float32))  # (V, D)
    out = torch.zeros(len(split), kv.vector_size)
    for i, (tokens, head) in enumerate(zip(split.tokens, split.heads)):
        nearby = tokens[max(0, head - window):head] + tokens[head + 1:head + 1 + window]
        rows = [row for row in (_static_row(kv, word) for word in nearby) if row >= 0]
        if rows:
            out[i] = table[rows].mean(0)
    return out


def nearest_centroid(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor) -> torch.Tensor:
    """Predicted class ids (M,): the sense centroid of highest cosine similarity.

    train_x (N, D), train_y (N,) ids 0..S-1 (every id present), test_x (M, D). Both sides are
    centred on the train mean first (see the module docstring)."""
    mean = train_x.mean(0)  # (D,)
    n_classes = int(train_y.max()) + 1
    sums = torch.zeros(n_classes, train_x.shape[1], dtype=train_x.dtype).index_add_(0, train_y, train_x - mean)
    centroids = sums / torch.bincount(train_y, minlength=n_classes).unsqueeze(1).to(train_x.dtype)  # (S, D)
    similarity = F.normalize(test_x - mean, dim=1) @ F.normalize(centroids, dim=1).T  # (M, S)
    return similarity.argmax(1)


def _sense_ids(train: SenseSplit, test: SenseSplit, train_idx: list[int], test_idx: list[int]):
    """Sense labels of one word's instances as class ids (senses in order of first appearance
    in train); a test sense unseen in train is -1, always an error."""
    senses = {s: j for j, s in enumerate(dict.fromkeys(train.senses[i] for i in train_idx))}
    return (torch.tensor([senses[train.senses[i]] for i in train_idx]),
            torch.tensor([senses.get(test.senses[i], -1) for i in test_idx]))


def score_features(train_x: torch.Tensor, test_x: torch.Tensor, train: SenseSplit, test: SenseSplit,
                   config: WsdSettings, *, seed: int, device: torch.device | str,
                   methods: tuple[str, ...] = ("centroid", "linear"), mix_layer_norm: bool = False) -> list[dict]:
    """Accuracy rows (per word and "all") of each method on features of the target tokens.

    train_x (N, D) / test_x (M, D) are rows of train / test; (N, L+1, D) layers are fit by
    the linear probe through a scalar mix (methods must then be ("linear",); `mix_layer_norm`:
    ELMo's layer-normalised mix, bench.eval.probe.MIXES). A mix's rows carry its weights
    (bench.eval.probe.mix_fields, layers numbered 0..L): each word's its own mix's, the
    "all" row their mean over the words."""
    layered = train_x.dim() == 3
    if layered and methods != ("linear",):
        raise ValueError(f"layered features are probed by the linear method alone, not {methods}")
    correct: dict[str, Counter[str]] = {method: Counter() for method in methods}  # method -> per word
    totals: dict[str, int] = {}
    mixes: dict[str, dict] = {}  # word -> its mix's fields
    train_groups = train.by_word()
    for word, test_idx in test.by_word().items():
        train_idx = train_groups[word]
        train_y, test_y = _sense_ids(train, test, train_idx, test_idx)
        totals[word] = len(test_idx)
        if "centroid" in methods:
            predicted = nearest_centroid(train_x[train_idx], train_y, test_x[test_idx])
            correct["centroid"][word] = int((predicted == test_y).sum())
        if "linear" in methods:
            accuracy, fitted = fit_linear_probe(train_x[train_idx], train_y, test_x[test_idx], test_y,
                                                epochs=config.epochs, lr=config.lr, seed=seed, device=device,
                                                weight_decay=config.weight_decay, batch_size=config.batch_size,
                                                mix_layer_norm=mix_layer_norm)
            correct["linear"][word] = round(accuracy * len(test_idx))
            if isinstance(fitted, MixedLinearProbe):
                mixes[word] = mix_fields(*fitted.weights(), list(range(train_x.shape[1])))
    rows = [row for method in methods for row in _accuracy_rows(method, correct[method], totals)]
    if mixes:
        mixes[ALL_WORDS] = mean_mix_fields(list(mixes.values()))
        rows = [{**row, **mixes[row["word"]]} for row in rows]
    return rows


def references(train: SenseSplit, test: SenseSplit) -> dict:
    """The rows and sizes every probing cell reports beside its own (the report keeps one copy)."""
    return {"baselines": most_frequent_sense(train, test) + naive_bayes(train, test)
            + most_frequent_sense(train, test, by_form=True),
            "train_instances": len(train), "eval_instances": len(test)}


def run_static_probe(kv: KeyedVectors, corpus: SenseCorpus, config: WsdSettings, *, seed: int,
                     device: torch.device | str) -> dict:
    """Bag-of-context rows of one set of static word vectors, with the references."""
    train, test = probe_splits(corpus, config)
    rows = score_features(bag_of_context(kv, train, config.window), bag_of_context(kv, test, config.window),
                          train, test, config, seed=seed, device=device)
    return {"rows": rows, **references(train, test)}


def run_layer_probes(featurize: Featurizer, n_layers: int, corpus: SenseCorpus, config: WsdSettings, *, seed: int,
                     device: torch.device | str) -> dict:
    """Centroid and linear rows for every layer of a layered representation, and a linear
    probe through each learned scalar mix of the layers (bench.eval.probe.MIXES: "mix" and the
    layer-normalised "mix-ln"), whose rows carry its weights.

    featurize returns one (len, n_layers * D) tensor per sentence, layer 0 first (as
    bench.eval.probe.run_layer_probes takes it); only the target token's row is kept.
    Returns {"layers": {"0": rows, ..., "mix": rows, "mix-ln": rows}, the references and sizes}."""
    train, test = probe_splits(corpus, config)
    features = {}
    for name, split in (("train", train), ("test", test)):
        flat = extract_features(featurize, split.tokens, config.feature_batch, positions=split.heads)  # (n, L*D)
        if flat.shape[1] % n_layers:
            raise ValueError(f"featurize returned {flat.shape[1]} features, not a multiple of {n_layers} layers")
        features[name] = flat.view(len(split), n_layers, -1)  # (n, n_layers, D)
    layers = {str(layer): score_features(features["train"][:, layer], features["test"][:, layer], train, test, config,
                                         seed=seed, device=device)
              for layer in range(n_layers)}
    for name, layer_norm in MIXES.items():
        layers[name] = score_features(features["train"], features["test"], train, test, config, seed=seed,
                                      device=device, methods=("linear",), mix_layer_norm=layer_norm)
    return {"layers": layers, **references(train, test)}
