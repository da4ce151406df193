"""Every layer of a pretrained transformers model, one vector per word: features for the probes.

`LayeredEncoder(model, tokenizer, ...)` is a featurizer (bench.eval.probe's contract): given
sentences as word lists it returns, per sentence, a (len, n_layers * D) tensor, the layers
side by side, layer 0 first. Layer 0 is the embedding output and layer i the output of
block i (transformers' `output_hidden_states`: num_hidden_layers + 1 states; a Llama-style
model's last state is taken after its final norm, as transformers returns it). A word's
vector in a layer is the mean of its subword states there.

Subwords come from the fast tokenizer with `is_split_into_words=True`, whose `word_ids()`
maps each subword to its word. Where a tokenizer's subwords carry the space before a word
(byte-level BPE such as GPT-2's and SmolLM2's, "Ġcat" against "cat"), pre-split words would
each be read as if they began the text; every word after the first then gets a leading
space, so the model reads exactly the subwords of the words joined by single spaces (the text
bench.models.pretrained_lm scores). WordPiece (BERT, MiniLM) marks no spaces and needs none.

Special tokens: an encoder gets its tokenizer's own ([CLS] ... [SEP]); a causal LM is given
`start_token` first (its document separator), as bench.models.pretrained_lm reads text. A
word the tokenizer turns into no subword at all (BERT drops control and zero-width
characters) is read as the tokenizer's unknown token, so every word gets a vector.

`load_encoder(source, ...)` builds one from a transformers model folder, or a folder and a
GGUF file in it (transformers dequantizes the GGUF; needs `gguf` and `accelerate`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence

import torch

from bench.errors import BenchError
from bench.models import baselines, pretrained_lm
from bench.models.contract import BuildContext, TrainedVectors


def pool_words(hidden: torch.Tensor, word_ids: Sequence[int | None], n_words: int) -> torch.Tensor:
    """Mean of each word's subword states: hidden (L, T, D), word_ids (T,) (None for special
    tokens and padding) -> (L, n_words, D). Every word 0..n_words-1 must own a subword."""
    ids = torch.tensor([-1 if w is None else w for w in word_ids], device=hidden.device)  # (T,)
    real = ids >= 0
    counts = torch.bincount(ids[real], minlength=n_words)  # (n_words,)
    if len(counts) != n_words or bool((counts == 0).any()):
        raise ValueError(f"word_ids cover words {sorted(set(ids[real].tolist()))}; expected every word "
                         f"0..{n_words - 1} to own at least one subword")
    sums = torch.zeros(hidden.shape[0], n_words, hidden.shape[2], dtype=hidden.dtype, device=hidden.device)
    sums.index_add_(1, ids[real], hidden[:, real])  # (L, n_words, D)
    return sums / counts.to(hidden.dtype)[None, :, None]


class LayeredEncoder:
    """A featurizer over every hidden layer of a transformers model (see the module docstring).

    model: a transformers model that accepts `output_hidden_states=True`; tokenizer: its fast
    tokenizer; start_token: read before every sentence instead of the tokenizer's special
    tokens (a causal LM's document separator), None to let the tokenizer add its own.
    """

    def __init__(self, model, tokenizer, device: torch.device | str, start_token: str | None = None):
        if not tokenizer.is_fast:
            raise ValueError("LayeredEncoder needs a fast tokenizer (word_ids() maps subwords to words)")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.n_layers = model.config.num_hidden_layers + 1  # the embeddings, then one per block
        self.dim = model.config.hidden_size
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.start_id = None
        if start_token is not None:
            self.start_id = tokenizer.convert_tokens_to_ids(start_token)
            if start_token not in tokenizer.get_vocab():
                raise ValueError(f"start_token {start_token!r} is not a token of the tokenizer")
        # Byte-level BPE and SentencePiece put the preceding space into the subword ("Ġx", "▁x").
        plain = tokenizer("x", add_special_tokens=False)["input_ids"]
        self.space_before_words = tokenizer(" x", add_special_tokens=False)["input_ids"] != plain

    def _tokenize(self, words: list[list[str]]):
        return self.tokenizer(words, is_split_into_words=True, add_special_tokens=self.start_id is None)

    def _encode(self, sentences: list[list[str]]):
        """The tokenizer's encoding of the batch, every word owning at least one subword."""
        words = [[w if i == 0 or not self.space_before_words else " " + w for i, w in enumerate(sentence)]
                 for sentence in sentences]
        encoded = self._tokenize(words)
        for attempt in ("as is", "with the unknown token"):
            bare = {b: set(range(len(sentence))) - {w for w in encoded.word_ids(b) if w is not None}
                    for b, sentence in enumerate(words)}
            if not any(bare.values()):
                return encoded
            if attempt == "with the unknown token":
                raise ValueError(f"the tokenizer gives no subword to words {sorted(bare.items())[:3]} even as its "
                                 f"unknown token {self.tokenizer.unk_token!r}")
            words = [[self.tokenizer.unk_token if i in bare[b] else w for i, w in enumerate(sentence)]
                     for b, sentence in enumerate(words)]
            encoded = self._tokenize(words)

    @torch.no_grad()
    def layers(self, sentences: list[list[str]]) -> list[torch.Tensor]:
        """Per sentence, (n_layers, len, D) float32 on the CPU."""
        encoded = self._encode(sentences)
        ids = [list(row) for row in encoded["input_ids"]]
        word_ids = [list(encoded.word_ids(b)) for b in range(len(sentences))]
        if self.start_id is not None:
            ids = [[self.start_id, *row] for row in ids]
            word_ids = [[None, *row] for row in word_ids]
        longest = max(len(row) for row in ids)
        if self.max_positions is not None and longest > self.max_positions:
            raise ValueError(f"a sentence of {longest} subwords is longer than the model's {self.max_positions} "
                             f"positions")
        # Right padding with id 0, masked out: a causal model's real tokens keep positions 0..n-1.
        input_ids = torch.zeros(len(ids), longest, dtype=torch.long)  # (B, T)
        mask = torch.zeros(len(ids), longest, dtype=torch.long)  # (B, T)
        for b, row in enumerate(ids):
            input_ids[b, :len(row)] = torch.tensor(row)
            mask[b, :len(row)] = 1
        hidden = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                            output_hidden_states=True).hidden_states  # n_layers x (B, T, D)
        stacked = torch.stack(hidden).float()  # (n_layers, B, T, D)
        return [pool_words(stacked[:, b, :len(word_ids[b])], word_ids[b], len(sentence)).cpu()
                for b, sentence in enumerate(sentences)]

    def __call__(self, sentences: list[list[str]]) -> list[torch.Tensor]:
        """The featurizer: per sentence (len, n_layers * D), the layers side by side, layer 0 first."""
        return [layers.permute(1, 0, 2).flatten(1) for layers in self.layers(sentences)]


def load_encoder(source: str, device: torch.device | str, *, gguf_file: str | None = None,
                 start_token: str | None = None, dtype: torch.dtype = torch.float32) -> LayeredEncoder:
    """A LayeredEncoder of the model folder `source` (with gguf_file: the GGUF in it).

    Loads the base model (no LM head: only hidden states are read). transformers' GGUF
    dequantization draws its own progress bar on stderr, which is kept quiet; errors still
    come as exceptions."""
    import transformers
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    with contextlib.redirect_stderr(io.StringIO()):
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
        model = transformers.AutoModel.from_pretrained(source, gguf_file=gguf_file, dtype=dtype)
    return LayeredEncoder(model, tokenizer, device, start_token)


# --- the registry's hooks for models read through this module ---------------------------------
# `minilm` and the `hf-encoder` kind: a transformers encoder whose word vectors are scored
# (baselines.encoder_word_vectors) and whose layers are probed; a pretrained causal LM's layers.


def _encoder_source(config: baselines.HFEncoderConfig, where: str = "model") -> str:
    """What `from_pretrained` reads: a folder or hub id (`package:folder` resolved)."""
    folder = pretrained_lm.package_path(config.source, where)
    return str(folder) if folder else config.source


def encoder_vectors(ctx: BuildContext) -> TrainedVectors:
    """The build of an encoder's word vectors: scored over the corpus vocabulary, like the models trained on it."""
    vectors = baselines.encoder_word_vectors(_encoder_source(ctx.config), ctx.prepared.vocab.words, ctx.config,
                                             ctx.device, ctx.progress)
    return TrainedVectors(vectors, train_tokens=None)


def encoder_layers(config: baselines.HFEncoderConfig, device: torch.device) -> LayeredEncoder:
    """Every layer of the encoder, one vector per word (mean of its subwords), for the probes."""
    return load_encoder(_encoder_source(config), device)


def check_encoder(config: baselines.HFEncoderConfig, where: str):
    """Read the encoder's configuration (not its weights) before a run writes anything."""
    from transformers import AutoConfig

    if not config.source:
        raise BenchError(f"{where}.source: expected a transformers model folder or a hub id (with --allow-hub)")
    try:
        return AutoConfig.from_pretrained(_encoder_source(config, where))
    except Exception as exc:  # hub, file and format errors come in many types: one line
        lines = str(exc).strip().splitlines()
        raise BenchError(f"{where}.source {config.source!r}: transformers cannot read it ({type(exc).__name__}: "
                         f"{lines[0] if lines else ''}); expected a model folder, or a hub id with "
                         f"--allow-hub") from exc


def encoder_layer_count(config: baselines.HFEncoderConfig, where: str) -> int:
    return check_encoder(config, where).num_hidden_layers + 1  # the embeddings, then one per block


def causal_lm_layers(name: str) -> Callable:
    """A pretrained causal LM's embeddings and blocks, reading its source as the perplexity rows do."""

    def encoder(config: pretrained_lm.PretrainedLMConfig, device: torch.device) -> LayeredEncoder:
        folder, gguf_file = pretrained_lm.resolve_source(config.source, f"model.{name}")
        return load_encoder(folder, device, gguf_file=gguf_file, start_token=config.start_token,
                            dtype=getattr(torch, config.dtype))

    return encoder
