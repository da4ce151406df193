"""The biLM family (impl.elmo): train one ELMo, then read its two LMs, its type-level
vectors and its layers.

Data. The biLM reads a split one line at a time, a line being a sentence (brown and
brown-pos have one sentence a line; empty lines are skipped). The char-CNN reads the
sentence's raw tokenizer words (case and rare words kept), wrapped in <S> ... </S>; the
shared softmax predicts ids of the matrix vocabulary (on brown, Bengio's rule: train words
seen at least min_count times, others -> <unk>) plus one id for <S> and one for </S>
(the vocabulary's own sentence-end symbol plays </S> when it has one, vocab.eos).

Training (`train_bilm`): batches of `batch_size` sentences of similar length (sentences
are shuffled, then sorted by length within pools of `POOL_BATCHES` batches, and the
batches are shuffled, so a padded batch wastes little work); loss = the mean of the
forward and backward LMs' cross-entropies (impl.elmo; with `softmax_samples` > 0 their
sampled-softmax estimates, so the history's train_loss is that estimate, not comparable
with a full softmax's, while validation always scores the full softmax; with
`softmax_cutoffs` the adaptive softmax, trained and scored as the distribution it is); Adam or SGD,
gradient clipping, lr decay, early stopping on validation and the time and token budgets
of `bench.train.lm.fit` (`LMTrainConfig`; a token is a sentence's word, <S> and </S> not
counted; its `bptt` and `eval_batch_size` do not apply: a sentence is read whole, and
evaluation batches `batch_size` sentences, which does not change the result); dropout per
`ELMoConfig`. Validation picks the epoch by the elmo-mean perplexity.

Evaluation protocol (`evaluate_bilm`), sentence level: every sentence is read alone from
a zero state, so no context crosses a sentence boundary.
- forward: a word's context is <S> and the words before it in its sentence;
- backward: a word's context is </S> and the words after it in its sentence;
- each direction scores every word of the split (unknown words as <unk>), and the
  boundary it predicts last (</S> forward, <S> backward) only when the vocabulary has a
  sentence-end symbol: under the brown-lm protocol (no vocab.eos) exactly the tokens the
  other LMs score are scored, with less context (theirs crosses sentence boundaries);
- perplexity = exp(nll_sum / scored_tokens), natural log; elmo-mean = exp of the mean of
  the two log-perplexities (their geometric mean), over the same scored tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from gensim.models import KeyedVectors
from tqdm import tqdm

from bench.data.prepared import PreparedCorpus
from bench.errors import BenchError
from bench.train import lm
from impl._checks import is_int, need
from impl.elmo import BOS, EOS, IGNORE, ELMo, ELMoConfig, batch_char_ids, bilm_targets, char_ids

# Batches whose sentences are sorted by length together: large enough that neighbours in
# length share a batch, small enough that the batch order stays random.
POOL_BATCHES = 50
DIRECTIONS = ("forward", "backward")


@dataclass
class BiLMConfig(ELMoConfig):
    """The biLM's architecture (ELMoConfig) plus what the harness derives from it."""

    type_vector_layer: int = 1  # the biLSTM layer whose vectors, averaged over a word's occurrences, are `elmo`'s

    def __post_init__(self):
        super().__post_init__()
        need(self, is_int(self.type_vector_layer) and 1 <= self.type_vector_layer <= self.layers, "type_vector_layer",
             f"a biLSTM layer 1..{self.layers}")


@dataclass
class Sentence:
    rows: np.ndarray  # (n,) the words' rows in the char table (the tokenizer's type ids)
    ids: np.ndarray  # (n,) the words' softmax ids (vocabulary ids, <unk> for the rest)


class BiLMData:
    """A prepared corpus as the biLM reads it: sentences, a char-id table, the softmax ids."""

    def __init__(self, prepared: PreparedCorpus, max_chars: int):
        vocab = prepared.vocab
        if vocab.unk_id is None:
            raise BenchError("the biLM needs a closed vocabulary: set vocab.unk (e.g. \"<unk>\")")
        self.unk_id: int = vocab.unk_id  # out-of-vocabulary words read as this id
        self.prepared = prepared
        self.bos_id = len(vocab)
        self.eos_id = vocab.eos_id if vocab.eos_id is not None else len(vocab) + 1
        self.softmax_size = max(self.bos_id, self.eos_id) + 1
        self.score_ends = vocab.eos_id is not None
        types = prepared.tokenized.types
        # Rows: every corpus type, then <S>, </S> and an all-zero padding word.
        self.bos_row, self.eos_row, self.pad_row = len(types), len(types) + 1, len(types) + 2
        self.char_table = torch.cat([char_ids([*types, BOS, EOS], max_chars),
                                     torch.zeros(1, max_chars, dtype=torch.long)])  # (n_types + 3, max_chars)
        self._splits: dict[str, list[Sentence]] = {}

    def sentences(self, split: str) -> list[Sentence]:
        if split not in self._splits:
            stream = self.prepared.tokenized.splits[split]
            ids = self.prepared.vocab.type_to_id[stream.ids.astype(np.int64)]  # (N,), -1 outside the vocabulary
            ids = np.where(ids >= 0, ids, self.unk_id)
            bounds = stream.offsets.tolist()
            self._splits[split] = [Sentence(stream.ids[a:b].astype(np.int64), ids[a:b])
                                   for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        return self._splits[split]

    def frequency_order(self) -> torch.Tensor:
        """The softmax ids (softmax_size,) by decreasing count as a training target in the train
        split, ties by id: the words' (<unk> for the unknown ones) and <S> and </S> once per
        sentence. The vocabulary lists <unk> last and <S>, </S> come after it, yet on Brown
        they are among the most frequent targets; the sampled softmax's proposal needs them
        where their counts put them (impl.elmo.ELMo)."""
        sentences = self.sentences("train")
        counts = np.bincount(np.concatenate([s.ids for s in sentences]), minlength=self.softmax_size)  # (V,)
        counts[self.bos_id] += len(sentences)
        counts[self.eos_id] += len(sentences)
        return torch.from_numpy(np.argsort(-counts, kind="stable"))

    def batch(self, sentences: list[Sentence]) -> tuple[torch.Tensor, torch.Tensor]:
        """chars (B, T, max_chars) of <S> words </S> right-padded with all-0 words, and the
        softmax ids (B, T) of the same positions, IGNORE at padding; T = longest + 2."""
        length = max(len(s.rows) for s in sentences) + 2
        rows = np.full((len(sentences), length), self.pad_row, dtype=np.int64)
        ids = np.full((len(sentences), length), IGNORE, dtype=np.int64)
        for b, sentence in enumerate(sentences):
            n = len(sentence.rows)
            rows[b, 0], rows[b, 1:n + 1], rows[b, n + 1] = self.bos_row, sentence.rows, self.eos_row
            ids[b, 0], ids[b, 1:n + 1], ids[b, n + 1] = self.bos_id, sentence.ids, self.eos_id
        return self.char_table[torch.from_numpy(rows)], torch.from_numpy(ids)

    def targets(self, ids: torch.Tensor, scoring: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Both LMs' targets (B, T); when scoring without sentence ends, the boundary
        predictions (</S> forward, <S> backward) are IGNORE too."""
        forward, backward = bilm_targets(ids)
        if scoring and not self.score_ends:
            forward = forward.masked_fill(forward == self.eos_id, IGNORE)
            backward = backward.masked_fill(backward == self.bos_id, IGNORE)
        return forward, backward


def length_batches(lengths: list[int], batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Indices of sentences in batches of similar length.

    With rng (training): shuffled, sorted by length within pools of POOL_BATCHES batches,
    batches in random order. Without (evaluation): sorted by length, longest first, so the
    largest batch comes first and memory peaks at once.
    """
    sizes = np.asarray(lengths)
    if rng is None:
        order = np.argsort(-sizes, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(sizes))
    pool = batch_size * POOL_BATCHES
    order = np.concatenate([chunk[np.argsort(sizes[chunk], kind="stable")]
                            for chunk in np.split(order, range(pool, len(order), pool))])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _train_epoch(model: ELMo, data: BiLMData, config: lm.LMTrainConfig, device: torch.device,
                 optimizer: torch.optim.Optimizer, rng: np.random.Generator, budget_spent: Callable[[int], bool],
                 progress: bool, precision: str):
    """One pass over the train sentences, asking budget_spent(words read so far) after every
    step (`bench.train.lm.fit`). Returns (loss tensor sum, words, finished)."""
    sentences = data.sentences("train")
    loss_sum = torch.zeros((), device=device)
    words = 0
    for batch in tqdm(length_batches([len(s.rows) for s in sentences], config.batch_size, rng), desc="train",
                      unit="batch", disable=not progress, leave=False):
        chosen = [sentences[i] for i in batch]
        chars, ids = data.batch(chosen)
        targets = data.targets(ids.to(device), scoring=False)
        with lm.autocast(device, precision):
            loss = model(chars.to(device), *targets)["loss"]
        lm._step(model, loss, optimizer, config.clip)
        n_words = sum(len(s.rows) for s in chosen)
        loss_sum += loss.detach() * n_words  # a per-word average over the epoch, weighted by batch size in words
        words += n_words
        if budget_spent(words):
            return loss_sum, words, False
    return loss_sum, words, True


@torch.no_grad()
def evaluate_bilm(model: ELMo, data: BiLMData, split: str, device: torch.device, *, batch_size: int,
                  precision: str = "fp32") -> dict[str, dict]:
    """Perplexity of a split under the protocol in the module docstring.

    Returns {"forward", "backward", "mean"}, each {perplexity, nll_sum (nats),
    scored_tokens, context}; the mean's nll_sum is the mean of the two directions'.
    """
    was_training = model.training
    model.eval()
    sentences = data.sentences(split)
    nll = {direction: torch.zeros((), dtype=torch.float64, device=device) for direction in DIRECTIONS}
    scored = 0
    for batch in length_batches([len(s.rows) for s in sentences], batch_size, None):
        chars, ids = data.batch([sentences[i] for i in batch])
        forward, backward = data.targets(ids.to(device), scoring=True)  # (B, T) each
        with lm.autocast(device, precision):
            out = model(chars.to(device), forward, backward)
        # The losses are means over the scored positions, the same count in both directions.
        count = int((forward != IGNORE).sum())
        nll["forward"] += out["loss_fwd"].double() * count
        nll["backward"] += out["loss_bwd"].double() * count
        scored += count
    model.train(was_training)
    ends = ("; the sentence boundary it predicts last is scored" if data.score_ends
            else "; sentence boundaries not scored")
    contexts = {"forward": f"sentence level: <S> and the previous words of the same sentence, from a zero state{ends}",
                "backward": f"sentence level: </S> and the following words of the same sentence, read right to "
                            f"left from a zero state{ends}"}
    rows: dict[str, dict] = {}  # direction (and "mean") -> its perplexity row
    for direction in DIRECTIONS:
        total = nll[direction].item()
        rows[direction] = {"perplexity": math.exp(total / scored), "nll_sum": total, "scored_tokens": scored,
                           "context": contexts[direction]}
    mean_nll = (rows["forward"]["nll_sum"] + rows["backward"]["nll_sum"]) / 2
    rows["mean"] = {"perplexity": math.exp(mean_nll / scored), "nll_sum": mean_nll, "scored_tokens": scored,
                    "context": "exp of the mean of the forward and backward log-perplexities (same tokens scored)"}
    return rows


def train_bilm(model: ELMo, data: BiLMData, config: lm.LMTrainConfig, device: torch.device, *, seed: int,
               progress: bool = False, precision: str = "fp32") -> dict:
    """Train on the train sentences, pick the epoch by validation elmo-mean perplexity
    (`bench.train.lm.fit`). seed drives the sentence order and dropout; the caller seeds the
    initialization. Returns fit's record."""
    if "validation" not in data.prepared.tokenized.splits:
        raise BenchError(f"corpus '{data.prepared.name}' has no validation split, which guides the biLM's training")
    rng = np.random.default_rng(seed)

    def run_epoch(optimizer, budget_spent):
        return _train_epoch(model, data, config, device, optimizer, rng, budget_spent, progress, precision)

    def validate() -> dict:
        return evaluate_bilm(model, data, "validation", device, batch_size=config.batch_size,
                             precision=precision)["mean"]

    return lm.fit(model, run_epoch, validate, config, device, seed=seed, progress=progress)


class TrainedBiLM:
    """A trained biLM and what the harness reads from it: the elmo build's result, which meets
    bench.models.contract's ScoresText, HasTypeVectors, HasLayers and HasModule by its members."""

    def __init__(self, model: ELMo, data: BiLMData, config: BiLMConfig, train_config: lm.LMTrainConfig,
                 device: torch.device, precision: str, training: dict):
        self.model = model.eval()
        self.data = data
        self.config = config
        self.batch_size = train_config.batch_size
        self.device = device
        self.precision = precision
        self.training = training
        self.train_tokens = sum(row["train_tokens"] for row in training["history"])
        self.n_layers = config.layers + 1  # the token layer, then one per biLSTM layer
        specials = {data.prepared.vocab.config.unk, data.prepared.vocab.config.eos}
        self.words = [word for word in data.prepared.vocab.words if word not in specials]  # most frequent first

    @property
    def module(self) -> ELMo:
        """The network, as `run --save-models` saves it."""
        return self.model

    def perplexity(self, split: str) -> dict[str, dict]:
        """Forward, backward and mean perplexity of a split (see `evaluate_bilm`), by reading."""
        return evaluate_bilm(self.model, self.data, split, self.device, batch_size=self.batch_size,
                             precision=self.precision)

    def type_vectors(self, extra_words: list[str]) -> dict[str, KeyedVectors]:
        """The two type-level vector sets, by name: the contextual vectors ("", the model's own
        rows) and the token encoder's ("token"), which also covers `extra_words`."""
        return {"": self.contextual_vectors(), "token": self.token_vectors(extra_words)}

    @torch.no_grad()
    def contextual_vectors(self) -> KeyedVectors:
        """Each vocabulary word's layer-`type_vector_layer` vectors [forward ; backward]
        averaged over its occurrences in the train split: (n_words, 2D)."""
        layer = self.config.type_vector_layer
        sums = torch.zeros(self.data.softmax_size, 2 * self.config.projection_dim, dtype=torch.float64,
                           device=self.device)  # (V, 2D), summed over occurrences; rows are softmax ids
        counts = torch.zeros(self.data.softmax_size, dtype=torch.float64, device=self.device)  # (V,)
        sentences = self.data.sentences("train")
        for batch in length_batches([len(s.rows) for s in sentences], self.batch_size, None):
            chars, ids = self.data.batch([sentences[i] for i in batch])
            ids = ids.to(self.device)  # (B, T)
            with lm.autocast(self.device, self.precision):
                vectors = self.model.representations(chars.to(self.device))[layer]  # (B, T, 2D)
            words = (ids >= 0) & (ids != self.data.bos_id) & (ids != self.data.eos_id)  # (B, T): no boundary, no pad
            sums.index_add_(0, ids[words], vectors[words].double())
            counts.index_add_(0, ids[words], torch.ones_like(ids[words], dtype=torch.float64))
        softmax_id = {word: i for i, word in enumerate(self.data.prepared.vocab.words)}
        rows = torch.tensor([softmax_id[word] for word in self.words], dtype=torch.long, device=self.device)
        averaged = (sums[rows] / counts[rows, None].clamp_min(1)).float().cpu().numpy()  # (n_words, 2D)
        return _keyed_vectors(self.words, averaged)

    def _as_trained(self, words: list[str]) -> list[str]:
        """words as the biLM's tokenizer wrote its training text: lower-cased when it lower-cased
        (such a biLM has never read a capital letter), else unchanged."""
        return [word.lower() for word in words] if self.data.prepared.tokenized.tokenizer.lowercase else list(words)

    @torch.no_grad()
    def token_vectors(self, extra_words: list[str]) -> KeyedVectors:
        """The token encoder's context-free vectors (n, D) of the vocabulary words, then of
        extra_words not among them (the char-CNN reads any string, so evaluation words that
        the corpus lacks get a vector too). Extra words are read as the biLM read its training
        text: lower-cased if it was, so `Israel` gets the vector of `israel`, the string it
        could have seen."""
        known = set(self.words)
        extra = self._as_trained(extra_words)
        words = self.words + list(dict.fromkeys(word for word in extra if word not in known))
        parts = []
        for start in range(0, len(words), 4096):
            with lm.autocast(self.device, self.precision):
                parts.append(self.model.word_vectors(words[start:start + 4096]).float().cpu())  # (b, D)
        return _keyed_vectors(words, torch.cat(parts).numpy())

    @torch.no_grad()
    def featurize(self, sentences: list[list[str]]) -> list[torch.Tensor]:
        """Every layer of every word, side by side: one (len, (L+1) * 2D) tensor per sentence,
        layer 0 ([x ; x], the token encoder) first. Sentences are wrapped in <S> ... </S> as
        in training; the boundaries' own vectors are dropped. A biLM whose training text was
        lower-cased has never read a capital letter, so it reads the words lower-cased too."""
        sentences = [self._as_trained(words) for words in sentences]
        chars = batch_char_ids(sentences, self.config.max_chars).to(self.device)  # (B, T + 2, max_chars)
        with lm.autocast(self.device, self.precision):
            layers = self.model.representations(chars)  # (L+1, B, T + 2, 2D)
        side_by_side = layers.permute(1, 2, 0, 3).flatten(2)  # (B, T + 2, (L+1) * 2D)
        return [side_by_side[b, 1:len(words) + 1] for b, words in enumerate(sentences)]


def _keyed_vectors(words: list[str], vectors: np.ndarray) -> KeyedVectors:
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, vectors)
    return kv


def build_elmo(prepared: PreparedCorpus, config: BiLMConfig, train_config: lm.LMTrainConfig, seed: int,
               device: torch.device, precision: str) -> TrainedBiLM:
    """The bilm family's build: the biLM trained on the prepared corpus."""
    data = BiLMData(prepared, config.max_chars)
    torch.manual_seed(seed)  # the initialization; train_bilm seeds the sentence order and dropout
    model = ELMo(config, data.softmax_size, data.frequency_order()).to(device)
    record = train_bilm(model, data, train_config, device, seed=seed, progress=prepared.progress,
                        precision=precision)
    record["parameters"] = sum(p.numel() for p in model.parameters())
    record["softmax_size"] = data.softmax_size
    return TrainedBiLM(model, data, config, train_config, device, precision, record)
