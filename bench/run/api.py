"""Score objects already in memory, as a run scores its cells: the Python API.

Users reach for gensim's `kv.evaluate_word_pairs`, WEB's `evaluate_similarity` or MTEB's
`run(model)`; these are the suite's equivalents, returning a pandas DataFrame:

- `evaluate_vectors(kv_or_mapping)`: a gensim KeyedVectors, or any mapping word -> vector,
  on the similarity sets (one row per set, with the pairs it covers) and the Google analogies
  (one row per method);
- `evaluate_lm_perplexity(module, prepared)`: a torch language model on a prepared corpus'
  validation and test splits, under the protocol of `bench.train.lm.evaluate_perplexity`.

A run's cells score through `vector_rows` and `perplexity_row` below, so the numbers of the
API, of `run` and of `eval-vectors` come from one code path.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from gensim.models import KeyedVectors

from bench.errors import BenchError
from bench.eval import VECTOR_TASKS, metrics
from bench.run.config import EvalConfig

TASKS = VECTOR_TASKS
# The columns of `evaluate_vectors`' frame: one row per similarity set or analogy method.
VECTOR_COLUMNS = ["task", "benchmark", "score", "metric", "items", "covered", "coverage"]


def check_tasks(tasks) -> tuple[str, ...]:
    """`tasks` as a tuple of known task names; anything else is a BenchError naming them."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    unknown = [task for task in tasks if task not in TASKS]
    if unknown or not tasks:
        raise BenchError(f"tasks {', '.join(map(repr, tasks)) or '(none)'}: expected some of {', '.join(TASKS)}")
    return tasks


def as_keyed_vectors(vectors: KeyedVectors | Mapping) -> KeyedVectors:
    """A KeyedVectors as is; a mapping word -> vector (all of one length) as KeyedVectors in
    the mapping's order, which is the frequency order analogies' `restrict_vocab` assumes."""
    if isinstance(vectors, KeyedVectors):
        return vectors
    if not isinstance(vectors, Mapping) or not vectors:
        raise BenchError(f"expected a gensim KeyedVectors or a non-empty mapping word -> vector, "
                         f"got {type(vectors).__name__}{' (empty)' if isinstance(vectors, Mapping) else ''}")
    words = list(vectors)
    rows = [np.asarray(vectors[word], dtype=np.float32).ravel() for word in words]
    dims = {len(row) for row in rows}
    if len(dims) != 1 or not all(isinstance(word, str) for word in words):
        raise BenchError(f"expected string words and vectors of one length, got lengths {sorted(dims)}")
    kv = KeyedVectors(dims.pop())
    kv.add_vectors(words, np.stack(rows))  # (words, dim)
    return kv


def vector_rows(kv: KeyedVectors, similarity_sets: list, ev: EvalConfig, device: torch.device | str = "cpu",
                tasks=TASKS, progress: bool = False) -> dict[str, list[dict]]:
    """The result rows of one set of vectors, as a cell stores them: {"wordsim": one row per
    similarity set, "analogy": one row per method and section kind}; a task left out is [].
    `progress`: a bar over the analogy batches."""
    tasks = check_tasks(tasks)
    wordsim = [metrics.evaluate_similarity(kv, sim_set, oov=ev.oov, restrict_vocab=ev.restrict_vocab,
                                           case_insensitive=ev.case_insensitive) for sim_set in similarity_sets]
    analogy = (metrics.evaluate_analogies(kv, restrict_vocab=ev.restrict_vocab, case_insensitive=ev.case_insensitive,
                                          methods=ev.analogy_methods, device=device, progress=progress)
               if "analogy" in tasks else [])
    return {"wordsim": wordsim if "similarity" in tasks else [], "analogy": analogy}


def vector_frame(rows: dict[str, list[dict]]) -> pd.DataFrame:
    """`vector_rows` as one table (VECTOR_COLUMNS): Spearman rho per similarity set over the
    pairs covered, 3CosAdd/3CosMul accuracy over the analogy questions covered."""
    table = [{"task": "similarity", "benchmark": row["benchmark"], "score": row["spearman"], "metric": "spearman",
              "items": row["pairs"], "covered": row["pairs"] - row["oov_pairs"]} for row in rows["wordsim"]]
    table += [{"task": "analogy", "benchmark": f"google-{row['method']}", "score": row["accuracy"],
               "metric": "analogy_accuracy", "items": row["questions"],
               "covered": row["questions"] - row["oov_questions"]}
              for row in rows["analogy"] if row["section"] == "total"]
    frame = pd.DataFrame(table, columns=VECTOR_COLUMNS)
    frame["coverage"] = frame["covered"] / frame["items"]
    return frame


def evaluate_vectors(vectors: KeyedVectors | Mapping, data_dir: str | Path | None = None, tasks=TASKS, *,
                     ev: EvalConfig | None = None, device: torch.device | str = "cpu") -> pd.DataFrame:
    """Score word vectors as a run scores a cell: the similarity sets of `data_dir` (its
    wordsim/EN-*.txt; None: gensim's WS-353 and SimLex-999) and the Google analogies, under
    `ev` (default: the suite's EvalConfig: out-of-vocabulary pairs skipped, case folded,
    the first 300k words answer analogies). Returns a frame of VECTOR_COLUMNS."""
    tasks = check_tasks(tasks)
    sets = metrics.similarity_sets(None if data_dir is None else Path(data_dir)) if "similarity" in tasks else []
    return vector_frame(vector_rows(as_keyed_vectors(vectors), sets, ev or EvalConfig(), device, tasks))


def lm_protocol(prepared) -> dict:
    """The protocol fields every perplexity row carries: how the text became ids."""
    tokenizer, vocab = prepared.tokenized.tokenizer, prepared.vocab.config
    return {
        "tokenization": f"lowercase={tokenizer.lowercase}, pattern={tokenizer.pattern}",
        "vocab_rule": f"train words seen >= {vocab.min_count} times"
                      + (f", at most {vocab.max_size}" if vocab.max_size else "") + f", others -> {vocab.unk}",
        "vocab_size": len(prepared.vocab),
        "sentence_ends_scored": vocab.eos is not None,
    }


def perplexity_row(prepared, split: str, scored: dict) -> dict:
    """One perplexity row of a cell: the split, its protocol and unknown-word rate, and the
    scores (`evaluate_perplexity`'s perplexity, nll_sum, scored_tokens, context)."""
    if not np.isfinite(scored["perplexity"]):
        raise FloatingPointError(f"{split} perplexity is {scored['perplexity']}")
    return {"split": split, **lm_protocol(prepared), "unk_rate": prepared.unk_rates[split], **scored}


def evaluate_lm_perplexity(module: torch.nn.Module, prepared, splits=("validation", "test"), *,
                           device: torch.device | str = "cpu", bptt: int = 35, batch_size: int = 1) -> pd.DataFrame:
    """Perplexity of a torch LM on the splits of a prepared corpus (`bench.data.prepared.
    prepare_corpus`), whose vocabulary ids the module reads; one row per split.

    The module follows bench.train.lm's contract (`context_kind` "window" with `context_size`,
    or "recurrent" with `init_state`); the protocol is the suite's: every token scored, a
    recurrent model's state carried across the split from `start_id` (batch_size 1).
    """
    from bench.models.language_models import start_id
    from bench.train.lm import evaluate_perplexity

    missing = [split for split in splits if split not in prepared.streams]
    if missing:
        raise BenchError(f"corpus {prepared.name}: no split {', '.join(missing)}; it has {', '.join(prepared.streams)}")
    device = torch.device(device)
    recurrent = getattr(module, "context_kind", None) == "recurrent"
    rows = [perplexity_row(prepared, split,
                           evaluate_perplexity(module, prepared.streams[split].ids, device, start_id=start_id(prepared),
                                               bptt=bptt, batch_size=batch_size if recurrent else 1024))
            for split in splits]
    return pd.DataFrame(rows)
