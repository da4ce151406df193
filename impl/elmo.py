"""ELMo: the bidirectional language model of Peters, Neumann, Iyyer, Gardner, Clark, Lee &
Zettlemoyer (2018), "Deep contextualized word representations", and the task-specific
weighting of its layers.

A character CNN gives every token string a context-independent vector x_k; a forward and a
backward LSTM LM read the sentence in opposite directions on top of it, sharing the token
encoder and the softmax:

    x_k = highway(CNN(chars(t_k)))            h_{k,0} = [x_k ; x_k]
    forward:  h>_{k,j} = LSTM>_j(h>_{k,j-1}, h>_{k-1,j})    P(t_{k+1} | t_1..t_k) = softmax(W h>_{k,L} + b)
    backward: h<_{k,j} = LSTM<_j(h<_{k,j-1}, h<_{k+1,j})    P(t_{k-1} | t_k..t_N) = softmax(W h<_{k,L} + b)
    ELMo_k = gamma * sum_j s_j h_{k,j},   s = softmax(w),   h_{k,j} = [h>_{k,j} ; h<_{k,j}]

As in the paper each LSTM layer is an LSTMP (Sak et al. 2014): `hidden` cells whose output
is projected to `projection_dim`, the size of x_k, so layer outputs have the token
encoder's size and layer j >= 2 adds a residual connection from layer j-1. With
hidden == projection_dim there is no projection. The token encoder follows Kim, Jernite,
Sontag & Rush (2016): UTF-8 bytes between begin/end-of-word markers, convolutions of
several widths max-pooled over the word, relu, highway layers, a linear projection.

What differs from the paper (scaled down to a 2-core CPU machine):
- sizes: the paper has 2048 character filters (widths 1-7), 4096 LSTM cells projected
  to 512, 50 characters per token and a 793k-word softmax trained on the 1B Word
  Benchmark; the defaults here are 512 filters (widths 1-5), 512 cells projected to
  128, 20 bytes per token and a full softmax over the caller's vocabulary;
- the paper trains on 20-token windows of a stream with the LSTM states carried across
  batches; here every row is one sentence (`batch_char_ids` adds <S> and </S>) read from a
  zero state, so right padding is allowed and skipped by the backward LM;
- no cell or projection clipping (bilm-tf clips both at 3);
- the paper trains with a sampled softmax (8192 samples); here `softmax_samples = 0` (the
  default) trains the full softmax, and K > 0 trains the sampled softmax of Jean, Cho,
  Memisevic & Bengio (2015) over K candidates drawn with replacement from a log-uniform
  (Zipfian) proposal over the softmax ids ranked by frequency (`frequency_order`; the
  harness ranks <S>, </S> and <unk>, which a vocabulary lists last, by their counts too;
  `impl._softmax.sampled_softmax_loss`). On Brown's ~14k-word softmax, 1024 samples make a step about
  twice as fast but leave validation perplexity 14% higher after 100k tokens (issue 27,
  results/README.md), so the full softmax stays the default. Evaluation (`.eval()`) always
  scores the full softmax;
- the char-CNN encodes each distinct word of a batch once (`CharCNN.forward`; the same
  vectors and gradients as encoding every position);
- the full softmax's loss is made without the (B, T, V) logits (`impl._softmax.softmax_cross_entropy_sum`):
  at the scored positions only (90% of a Brown batch's, padding and each row's last
  position left out), 256 at a time, the gradient softmax - onehot made in the same pass
  while the block is in cache: the same loss and gradients as the logits' cross-entropy,
  a step about 1.2x as fast on Brown (issue 27). By default (`softmax_precision = "bf16"`)
  its three training matmuls run in bfloat16, fp32 sums: 1.5x the old step's tokens per
  CPU second, validation perplexity after 300k tokens 0.4% lower than the fp32 logits';
- `softmax_cutoffs` (c1, c2, ...) replaces the full softmax by the adaptive softmax of Grave,
  Joulin, Cissé, Grangier & Jégou (2017), `torch.nn.AdaptiveLogSoftmaxWithLoss`, over the ids
  ranked by train frequency (`frequency_order`, saved with the weights as `adaptive_rank`):
  a head over the c1 most frequent words and one entry per tail cluster, each cluster behind
  a projection to D / div_value^i. It is a normalized distribution, trained and scored as it
  is (in fp32), not an estimate of the full softmax;
- on a CPU each biLSTM layer of both directions runs as one `impl._lstmp.lstmp_pair` call:
  nn.LSTM's arithmetic (outputs and gradients agree to float rounding), both directions side
  by side and a hand-written backward pass whose weight gradients are one matmul over all
  positions instead of one per step: a Brown step 1.15x as fast (issue 27). On a GPU the
  two nn.LSTMs run (cuDNN);
- `lstm_precision = "bf16"` runs the biLSTM's matmuls in bfloat16 in training (on a GPU under
  autocast, which keeps the gates and the cell state in bf16 too; on a CPU those stay fp32);
  evaluation and the probes' features stay fp32;
- the training loss is the mean of the two directions' cross-entropies (the paper sums
  the log-likelihoods), so it is on the scale of one LM's loss.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from impl._checks import check_int, is_bool, is_int, is_num, need, need_ints
from impl._lstmp import lstmp_pair
from impl._softmax import (
    IGNORE,
    log_uniform_log_prob,
    log_uniform_sample,
    sampled_softmax_loss,
    softmax_cross_entropy_sum,
)

# Sentence-boundary tokens; `char_ids` gives them their own characters, so no word collides.
BOS, EOS = "<S>", "</S>"
# Character ids: 0 pads a word (and an all-zero word pads a sentence), byte b is b + 1, then
# the markers. An all-zero row therefore never is a real word, which starts with BOW_CHAR.
PAD_CHAR, BOW_CHAR, EOW_CHAR, BOS_CHAR, EOS_CHAR = 0, 257, 258, 259, 260
CHAR_VOCAB = 261
PRECISIONS = ("fp32", "bf16")  # ELMoConfig.softmax_precision and lstm_precision: their training matmuls


@dataclass
class ELMoConfig:
    char_dim: int = 16  # character embedding dimensions
    max_chars: int = 20  # characters per token including the two markers; longer words are cut
    filters: tuple[tuple[int, int], ...] = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256))  # (width, count)
    highway_layers: int = 2
    projection_dim: int = 128  # D: token vectors and LSTM layer outputs, per direction
    hidden: int = 512  # LSTM cells per direction per layer; projected to projection_dim when larger
    layers: int = 2  # biLSTM layers L
    dropout: float = 0.1  # on every LSTM layer's input and on the top layer's output
    # Training softmax: 0 = full; K > 0 = sampled over K log-uniform candidates per batch (the
    # softmax is then no longer the largest cost of a step; evaluation stays exact).
    softmax_samples: int = 0
    # The training softmax's matmuls: "bf16" (2.3x fp32's speed on a CPU with AVX512-BF16, the same
    # validation perplexity per token read on Brown: issue 27) or "fp32" (exact; for a CPU without
    # bf16 matmuls). `softmax_cross_entropy_sum`; evaluation (.eval()) computes in fp32 whatever this is,
    # and the sampled and adaptive softmaxes (softmax_samples, softmax_cutoffs) in fp32 too.
    softmax_precision: str = "bf16"
    # () = the full softmax over the V softmax ids. Cutoffs (c1, c2, ...) = the adaptive softmax
    # of Grave et al. (2017) over the ids ranked by train frequency: a head over the c1 most
    # frequent words plus one entry per tail cluster, and the clusters [c1, c2), [c2, ...), ...
    # each behind a projection to D / div_value^i. An exact distribution (evaluation scores it as
    # it is), computed in fp32, several times cheaper than the full softmax.
    softmax_cutoffs: tuple[int, ...] = ()
    softmax_div_value: float = 4.0
    # The biLSTM in training: "fp32", or "bf16": its matmuls in bfloat16 (on a GPU under autocast,
    # the gate arithmetic and cell state too; a Brown step with the adaptive softmax 1.1x faster,
    # validation perplexity 1.0% higher after 1.6M tokens: issue 27). Evaluation runs it in fp32.
    lstm_precision: str = "fp32"

    def __post_init__(self):
        # Lists from a config file become the tuples the default uses.
        self.filters = tuple(tuple(f) for f in self.filters)
        self.softmax_cutoffs = tuple(self.softmax_cutoffs)
        need_ints(self, "char_dim", "projection_dim", "hidden", "layers")
        need_ints(self, "highway_layers", "softmax_samples", minimum=0)
        need(self, is_int(self.max_chars) and self.max_chars >= 3, "max_chars", "an int >= 3 (markers plus one byte)")
        pairs_ok = all(len(f) == 2 and all(is_int(n) and n >= 1 for n in f) for f in self.filters)
        need(self, bool(self.filters) and pairs_ok, "filters", "a non-empty list of (width >= 1, count >= 1) int pairs")
        need(self, max(width for width, _ in self.filters) <= self.max_chars, "filters",
             f"every filter width <= max_chars={self.max_chars}")
        need(self, self.projection_dim <= self.hidden, "projection_dim", f"<= hidden={self.hidden}")
        need(self, is_num(self.dropout) and 0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)")
        for field in ("softmax_precision", "lstm_precision"):
            need(self, getattr(self, field) in PRECISIONS, field, f"one of {', '.join(PRECISIONS)}")
        cutoffs = self.softmax_cutoffs
        need(self, all(is_int(c) and c >= 1 for c in cutoffs) and list(cutoffs) == sorted(set(cutoffs)),
             "softmax_cutoffs", "strictly increasing ints >= 1 (or [] for the full softmax)")
        need(self, is_num(self.softmax_div_value) and self.softmax_div_value >= 1, "softmax_div_value", "a number >= 1")
        need(self, not (cutoffs and self.softmax_samples), "softmax_samples",
             "0 with softmax_cutoffs (the adaptive softmax is not sampled)")


def char_ids(words: list[str], max_chars: int) -> torch.Tensor:
    """Character ids (n_words, max_chars): BOW, the word's UTF-8 bytes (+1), EOW, then 0s.

    Bytes past max_chars - 2 are dropped, so the EOW marker is always there. BOS and EOS
    are one special character each between the markers.
    """
    check_int("max_chars", max_chars, minimum=3)
    ids = torch.zeros(len(words), max_chars, dtype=torch.long)
    for i, word in enumerate(words):
        if word == BOS:
            chars = [BOS_CHAR]
        elif word == EOS:
            chars = [EOS_CHAR]
        else:
            chars = [b + 1 for b in word.encode("utf-8")[:max_chars - 2]]
        row = [BOW_CHAR, *chars, EOW_CHAR]
        ids[i, :len(row)] = torch.tensor(row)
    return ids


def batch_char_ids(sentences: list[list[str]], max_chars: int, boundaries: bool = True) -> torch.Tensor:
    """Sentences as one right-padded batch (B, T, max_chars); padding words are all 0.

    boundaries: wrap each sentence in <S> ... </S> (then T = longest sentence + 2), as ELMo
    does both in training and when computing representations.
    """
    if boundaries:
        sentences = [[BOS, *words, EOS] for words in sentences]
    length = max((len(words) for words in sentences), default=0)
    batch = torch.zeros(len(sentences), length, max_chars, dtype=torch.long)
    for b, words in enumerate(sentences):
        batch[b, :len(words)] = char_ids(words, max_chars)
    return batch


def bilm_targets(word_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of both LMs from softmax ids (B, T) with IGNORE at padding positions.

    targets_fwd[:, t] = word_ids[:, t + 1] and targets_bwd[:, t] = word_ids[:, t - 1]; the
    position past either end is IGNORE, so with <S> ... </S> rows each LM scores every
    word plus one boundary token. A padding position scores nothing: shifted right, a
    row's last word would otherwise become the backward target of the padding after it.
    """
    ignore = torch.full_like(word_ids[:, :1], IGNORE)  # (B, 1)
    targets_bwd = torch.cat([ignore, word_ids[:, :-1]], 1)  # (B, T)
    targets_bwd = targets_bwd.masked_fill(word_ids == IGNORE, IGNORE)
    return torch.cat([word_ids[:, 1:], ignore], 1), targets_bwd


class Highway(nn.Module):
    """y = t * relu(W_H x + b_H) + (1 - t) * x,  t = sigmoid(W_T x + b_T)  (Srivastava et al. 2015)."""

    def __init__(self, dim: int, layers: int):
        super().__init__()
        linears = [nn.Linear(dim, 2 * dim) for _ in range(layers)]
        for layer in linears:
            # b_T = -2 starts each layer close to carrying x through (Kim et al. 2016).
            nn.init.constant_(layer.bias[dim:], -2.0)
        self.layers = nn.ModuleList(linears)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            transform, gate = layer(x).chunk(2, dim=-1)  # each (..., dim)
            t = torch.sigmoid(gate)
            x = t * F.relu(transform) + (1 - t) * x
        return x


class CharCNN(nn.Module):
    """The context-independent token encoder: char ids (..., max_chars) -> (..., projection_dim)."""

    def __init__(self, config: ELMoConfig):
        super().__init__()
        self.embed = nn.Embedding(CHAR_VOCAB, config.char_dim, padding_idx=PAD_CHAR)
        # bilm-tf initializes the character table uniformly in +-1; the padding row stays 0.
        with torch.no_grad():
            self.embed.weight.uniform_(-1.0, 1.0)
            self.embed.weight[PAD_CHAR] = 0.0
        self.convs = nn.ModuleList(nn.Conv1d(config.char_dim, count, width) for width, count in config.filters)
        n_filters = sum(count for _, count in config.filters)
        self.highway = Highway(n_filters, config.highway_layers)
        self.proj = nn.Linear(n_filters, config.projection_dim)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """A word's vector depends on its characters only, so each distinct word of the input
        is encoded once and copied to its positions: a batch of sentences repeats its frequent
        words (and the padding word) many times. The gradient of the copies sums into the one
        encoding, so the result and its gradient are those of encoding every position."""
        lead, n_chars = chars.shape[:-1], chars.shape[-1]
        words, position_word = torch.unique(chars.reshape(-1, n_chars), dim=0, return_inverse=True)  # (U, C), (N,)
        x = self.embed(words).transpose(1, 2)  # (U, char_dim, max_chars)
        # Each filter's best match anywhere in the word: (U, count) per width.
        pooled = torch.cat([conv(x).amax(dim=-1) for conv in self.convs], dim=-1)  # (U, n_filters)
        vectors = self.proj(self.highway(F.relu(pooled)))  # (U, D)
        return vectors[position_word].view(*lead, -1)  # (..., D)


def _reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first lengths[b] steps of every row of x (B, T, ...); padding stays in place.

    Its own inverse, so it maps the backward LM's input to reading order and its output back.
    """
    steps = torch.arange(x.shape[1], device=x.device)  # (T,)
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # (B, T)
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index]


class ELMo(nn.Module):
    """The biLM: shared char-CNN token encoder, forward and backward LSTMP stacks, shared softmax."""

    proposal_order: torch.Tensor  # (V,) buffer: frequency rank -> softmax id
    proposal_rank: torch.Tensor  # (V,) buffer: softmax id -> frequency rank
    softmax: nn.Linear | nn.AdaptiveLogSoftmaxWithLoss
    adaptive_rank: torch.Tensor  # (V,) buffer with softmax_cutoffs: softmax id -> the adaptive softmax's class

    def __init__(self, config: ELMoConfig, vocab_size: int, frequency_order: torch.Tensor | None = None):
        """frequency_order: the softmax ids (V,) from the most frequent target to the least, the
        order the sampled softmax's log-uniform proposal assumes (default: the ids themselves;
        not saved with the weights), and the adaptive softmax's classes (saved with them: its
        clusters are part of the model)."""
        super().__init__()
        check_int("vocab_size", vocab_size)
        self.config = config
        self.vocab_size = vocab_size
        order = torch.arange(vocab_size) if frequency_order is None else frequency_order.long()
        if not torch.equal(order.sort().values, torch.arange(vocab_size)):
            raise ValueError(f"frequency_order must be a permutation of the {vocab_size} softmax ids")
        self.register_buffer("proposal_order", order, persistent=False)  # (V,) frequency rank -> softmax id
        self.register_buffer("proposal_rank", torch.argsort(order), persistent=False)  # (V,) softmax id -> rank
        self.token_encoder = CharCNN(config)
        self.forward_lstms = nn.ModuleList(self._lstmp() for _ in range(config.layers))
        self.backward_lstms = nn.ModuleList(self._lstmp() for _ in range(config.layers))
        self.drop = nn.Dropout(config.dropout)
        # Shared by both directions.
        if config.softmax_cutoffs:
            if config.softmax_cutoffs[-1] >= vocab_size:
                raise ValueError(f"ELMoConfig.softmax_cutoffs={list(config.softmax_cutoffs)}: expected every "
                                 f"cutoff < the {vocab_size} softmax ids")
            self.softmax = nn.AdaptiveLogSoftmaxWithLoss(config.projection_dim, vocab_size, list(config.softmax_cutoffs),
                                                         div_value=config.softmax_div_value, head_bias=True)
            self.register_buffer("adaptive_rank", self.proposal_rank.clone())  # (V,) softmax id -> class
        else:
            self.softmax = nn.Linear(config.projection_dim, vocab_size)

    def _lstmp(self) -> nn.LSTM:
        cfg = self.config
        proj = cfg.projection_dim if cfg.projection_dim < cfg.hidden else 0  # nn.LSTM needs proj_size < hidden
        lstm = nn.LSTM(cfg.projection_dim, cfg.hidden, batch_first=True, proj_size=proj)
        # Forget-gate bias 1 (Gers et al. 2000), as in impl/rnn.py: the two biases add up.
        # Gates are stacked (input, forget, cell, output) along dim 0.
        with torch.no_grad():
            lstm.get_parameter("bias_ih_l0")[cfg.hidden:2 * cfg.hidden] = 1.0
            lstm.get_parameter("bias_hh_l0")[cfg.hidden:2 * cfg.hidden] = 0.0
        return lstm

    def word_vectors(self, words: list[str]) -> torch.Tensor:
        """Context-independent vectors (n_words, D) of any strings, seen in training or not."""
        device = self.token_encoder.proj.weight.device
        return self.token_encoder(char_ids(words, self.config.max_chars).to(device))

    def _lstm_in_bf16(self) -> bool:
        """lstm_precision = "bf16" applies in training only; otherwise the caller's autocast (a
        bf16 run of the harness) decides the biLSTM's precision."""
        return self.training and self.config.lstm_precision == "bf16"

    def _biLSTM(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every layer's output (B, T, D) of each direction, in reading order, from x (B, T, D).
        The backward LM reads each row's real words last to first; its outputs are flipped back
        so position k holds the state after reading t_N .. t_k."""
        x_backward = _reverse_padded(x, lengths)
        if self._pairs_on(x.device):
            pairs = self._pair_stack(torch.stack([x, x_backward]))  # layers of (2, B, T, D)
            forward, backward = [pair[0] for pair in pairs], [pair[1] for pair in pairs]
        else:  # cuDNN's LSTM on a GPU; torch's own kernel without a projection
            forward, backward = self._stack(self.forward_lstms, x), self._stack(self.backward_lstms, x_backward)
        return forward, [_reverse_padded(h, lengths) for h in backward]

    def _pairs_on(self, device: torch.device) -> bool:
        """Whether the biLSTM runs as `impl._lstmp` pairs: on a CPU, for LSTMP layers (with a projection)."""
        return device.type == "cpu" and self.config.projection_dim < self.config.hidden

    def _pair_stack(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's output (2, B, T, D) of both directions, reading x (2, B, T, D): layer j of
        the forward and the backward LM as one `impl._lstmp` call, nn.LSTM's arithmetic laid out
        for a CPU."""
        if self._lstm_in_bf16():
            dtype = torch.bfloat16
        elif torch.is_autocast_enabled(x.device.type):  # the caller's autocast (a harness run with --precision)
            dtype = torch.get_autocast_dtype(x.device.type)
        else:
            dtype = x.dtype
        pairs = zip(self.forward_lstms, self.backward_lstms)
        return self._residual_stack(pairs, x, lambda pair, x: lstmp_pair(x, pair[0], pair[1], dtype))  # in x's dtype

    def _residual_stack(self, layers, x: torch.Tensor, run: Callable) -> list[torch.Tensor]:
        """Each layer's output, run(layer, dropout(input)) plus, from the second layer on, its
        input (the paper's residual connection), reading x."""
        outputs = []
        for j, layer in enumerate(layers):
            out = run(layer, self.drop(x))
            x = out + x if j > 0 else out
            outputs.append(x)
        return outputs

    def _stack(self, lstms: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output (B, T, D) of one direction, reading x (B, T, D) left to right."""
        bf16 = self._lstm_in_bf16()

        def run(lstm: nn.Module, x: torch.Tensor) -> torch.Tensor:
            precision = torch.autocast(x.device.type, torch.bfloat16) if bf16 else contextlib.nullcontext()
            with warnings.catch_warnings(), precision:
                # oneDNN has no LSTM with projections, so torch runs its own kernel and says so on
                # every process's first call: a fact about the backend, not a fault of this run.
                warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
                out, _ = lstm(x)  # (B, T, D), from a zero state; bf16 under autocast
            # Back to the residual stream's dtype; without bf16 the caller's autocast decides.
            return out.to(x.dtype) if bf16 else out

        return self._residual_stack(lstms, x, run)

    def _layers(self, chars: torch.Tensor):
        """Token vectors x (B, T, D) and each direction's layer outputs, all in reading order."""
        present = chars[..., 0] != PAD_CHAR  # (B, T): real words start with BOW_CHAR
        lengths = present.sum(dim=1)  # (B,)
        if not torch.equal(present, torch.arange(chars.shape[1], device=chars.device) < lengths[:, None]):
            raise ValueError("padding words (all-zero char ids) must come after every real word of a row")
        x = self.token_encoder(chars)  # (B, T, D)
        forward, backward = self._biLSTM(x, lengths)
        return x, forward, backward

    def forward(self, chars: torch.Tensor, targets_fwd: torch.Tensor | None = None,
                targets_bwd: torch.Tensor | None = None, *, logits: bool = False) -> dict:
        """chars: (B, T, max_chars) char ids, rows right-padded with all-0 words;
        targets_fwd / targets_bwd: (B, T) softmax ids of t_{k+1} / t_{k-1} (IGNORE = not
        scored; see `bilm_targets`) or None.

        Returns loss_fwd and loss_bwd, the mean cross-entropy over scored positions (None
        without targets), made by `softmax_cross_entropy_sum` at the scored positions only;
        loss, the mean of the losses given (None if neither); logits_fwd and logits_bwd
        (B, T, V) with logits=True, else None: training and scoring need only the losses,
        and the (B, T, V) logits were the largest cost of a step. In training mode with
        softmax_samples = K > 0 the losses are sampled-softmax estimates over one draw of K
        candidates shared by both directions, and logits=True is refused.
        """
        _, forward, backward = self._layers(chars)
        tops = {"fwd": (self.drop(forward[-1]), targets_fwd), "bwd": (self.drop(backward[-1]), targets_bwd)}
        out: dict = {}
        sampled = self.training and self.config.softmax_samples > 0
        if sampled and logits:
            raise ValueError("a training-mode biLM with a sampled softmax makes no logits; call .eval() first")
        for name, (top, _) in tops.items():
            out[f"logits_{name}"] = self._logits(top) if logits else None  # (B, T, V)
        if sampled:
            assert isinstance(self.softmax, nn.Linear), "ELMoConfig refuses softmax_samples with softmax_cutoffs"
            ranks = log_uniform_sample(self.config.softmax_samples, self.vocab_size, chars.device)  # (K,)
            samples = self.proposal_order[ranks]  # (K,) softmax ids
            log_expected = math.log(self.config.softmax_samples) + log_uniform_log_prob(
                self.proposal_rank, self.vocab_size)  # (V,), per softmax id
            for name, (top, targets) in tops.items():
                out[f"loss_{name}"] = None if targets is None else sampled_softmax_loss(
                    top, targets, self.softmax.weight, self.softmax.bias, samples, log_expected)
        else:
            for name, (top, targets) in tops.items():
                out[f"loss_{name}"] = None if targets is None else self._nll_sum(top, targets) / (targets != IGNORE).sum()
        losses = [loss for loss in (out["loss_fwd"], out["loss_bwd"]) if loss is not None]
        out["loss"] = sum(losses) / len(losses) if losses else None
        return out

    def _nll_sum(self, top: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The summed cross-entropy of the (full or adaptive) softmax at the scored positions:
        top (B, T, D), targets (B, T) softmax ids with IGNORE where nothing is scored."""
        if isinstance(self.softmax, nn.Linear):
            bf16 = self.training and self.config.softmax_precision == "bf16"
            return softmax_cross_entropy_sum(top, targets, self.softmax.weight, self.softmax.bias,
                                             torch.bfloat16 if bf16 else None)
        scored = targets != IGNORE
        # fp32 whatever the caller's autocast: the adaptive softmax mixes dtypes under it.
        with torch.autocast(top.device.type, enabled=False):
            return -self.softmax(top[scored].float(), self.adaptive_rank[targets[scored]]).output.sum()

    def _logits(self, top: torch.Tensor) -> torch.Tensor:
        """(..., V) logits over the softmax ids of top (..., D); for the adaptive softmax its
        log-probabilities, which are logits of the same distribution."""
        if isinstance(self.softmax, nn.Linear):
            return self.softmax(top)
        with torch.autocast(top.device.type, enabled=False):
            log_probs = self.softmax.log_prob(top.reshape(-1, top.shape[-1]).float())  # (N, V) by class
        return log_probs[:, self.adaptive_rank].view(*top.shape[:-1], -1)

    def representations(self, chars: torch.Tensor) -> torch.Tensor:
        """All L + 1 layers (L+1, B, T, 2D): [x ; x], then [forward_j ; backward_j] per layer.

        Dropout follows the module's mode: call .eval() for frozen features.
        """
        x, forward, backward = self._layers(chars)
        layers = [torch.cat([x, x], dim=-1)] + [torch.cat(pair, dim=-1) for pair in zip(forward, backward)]
        return torch.stack(layers)


class ScalarMix(nn.Module):
    """gamma * sum_j softmax(w)_j layers[j]: the paper's task-specific weighting of the layers.

    w starts at 0 (equal weights) and gamma at 1. With `layer_norm` (bilm-tf's and AllenNLP's
    `do_layer_norm`), each layer is first normalised to mean 0 and variance 1 over all its
    non-padding positions and units together (one mean and one variance per layer and batch, no
    learned scale or shift): without it a layer whose activations are larger can win or lose
    the softmax by its scale alone, so its weight says less about what the layer holds.
    """

    LAYER_NORM_EPS = 1e-12  # as AllenNLP's ScalarMix: guards a constant layer, not a rescaling

    def __init__(self, n_layers: int, layer_norm: bool = False):
        super().__init__()
        check_int("n_layers", n_layers)
        if not is_bool(layer_norm):
            raise ValueError(f"layer_norm={layer_norm!r}: expected a bool")
        self.layer_norm = layer_norm
        self.weights = nn.Parameter(torch.zeros(n_layers))  # w
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, layers: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """layers: (L+1, ..., D) -> (..., D); mask: (...) bool, True at real positions (None: all
        real), read by the layer normalization only."""
        if layers.shape[0] != self.weights.shape[0]:
            raise ValueError(f"expected {self.weights.shape[0]} layers along dim 0, got {layers.shape[0]}")
        if self.layer_norm:
            layers = self._normalised(layers, mask)
        s = torch.softmax(self.weights, dim=0)  # (L+1,)
        return self.gamma * torch.tensordot(s, layers, dims=1)

    def _normalised(self, layers: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Each layer (L+1, ..., D) minus its mean over the masked positions and units, over its standard deviation."""
        if mask is None:
            mask = torch.ones(layers.shape[1:-1], dtype=torch.bool, device=layers.device)
        if mask.shape != layers.shape[1:-1]:
            raise ValueError(f"mask of shape {tuple(mask.shape)} for layers of shape {tuple(layers.shape)}; "
                             f"expected {tuple(layers.shape[1:-1])}")
        weight = mask.unsqueeze(-1).to(layers.dtype).expand(layers.shape[1:])  # (..., D): 1 at real units
        count = weight.sum().clamp_min(1)  # units counted per layer
        dims = tuple(range(1, layers.dim()))
        mean = (layers * weight).sum(dim=dims, keepdim=True) / count  # (L+1, 1, ..., 1)
        variance = (((layers - mean) * weight) ** 2).sum(dim=dims, keepdim=True) / count
        return (layers - mean) / torch.sqrt(variance + self.LAYER_NORM_EPS)
