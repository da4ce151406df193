"""Perplexity per word of held-out text: the `perplexity` rows of the language models
(`PerplexityRow`, `TABLE`). The number comes from bench.train.lm's evaluation loop (or a
model's own scorer); bench.run.api.perplexity_row adds the protocol every row carries."""

from __future__ import annotations

from dataclasses import dataclass

from bench.eval.metrics._schema import Metric, RowTable, measured, stored

WORD_PERPLEXITY = Metric("word_perplexity", "lower", "perplexity per word",
                         "exp of the mean negative log-likelihood per word of held-out text")


@dataclass(kw_only=True)
class PerplexityRow:
    """One split scored by one language model, with the protocol it was scored under."""

    model: str | None = None  # where a cell scores several models (the biLM's directions), the row's own
    split: str  # "validation" or "test"
    perplexity: float = measured(WORD_PERPLEXITY)
    scored_tokens: int
    vocab_size: int
    unk_rate: float  # of the scored split: unknown words are scored as the `<unk>` symbol
    sentence_ends_scored: bool
    context: str  # what the model saw of the text before each word
    tokenization: str | None = stored()
    vocab_rule: str | None = stored()
    nll_sum: float | None = stored()


TABLE = RowTable("perplexity", PerplexityRow, title="Perplexity", score="per word")
