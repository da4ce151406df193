"""The claims ledger: the reading note's ten claims, each with a verdict computed from result rows.

A reader asks the note's questions ("does skip-gram beat CBOW on large corpora?"); the ledger
answers them at the top of the report and from `lm-lineage claims`, recomputed from the
committed rows every time, never typed in. Each `Claim` is declarative: its id, the claim in
one sentence, the note's section, and one `Check` per part the rows can settle (claim 2 has
a vanishing and an exploding half). A check names the rows it reads, the report section (and
figure) behind it, and the rule that turns those rows into a `Verdict`:

- holds / does not hold / mixed (holds in k of n seeds): the rule's condition tested seed by
  seed, with the effect as mean ± sd over those seeds and, where the claim depends on it, the
  scale it was measured at (tokens read, model size);
- not run: no rows yet, with the command that would make them and why it has not run.
"""


from __future__ import annotations

from typing import Callable

import pandas as pd

from bench.eval.metrics import TABLES
from bench.report import corpus_size
from bench.report.claim_rules import (
    ELMO_MATRIX,
    FINETUNE_MATRIX,
    MIX_MATRIX,
    clipping_prevents_divergence,
    contextual_beats_static_ceiling,
    exploding_gradients,
    finetuning_helps,
    gated_cells_keep_gradients,
    gated_cells_keep_gradients_trained,
    glove_combines_both,
    layer_orderings,
    mix_centre_higher_for_word_sense,
    mix_layer_two_for_word_sense,
    nnlm_beats_ngrams,
    scalar_mix_adapts,
    skipgram_wins_with_size,
    svd_vectors_work,
    word2vec_fast_and_stable,
)
from bench.report.markup import anchor
from bench.report.studies import MIX_FIGURE, MIX_SECTION
from bench.report.verdicts import NOT_RUN, Check, Claim, Rows, Verdict

CLAIMS = (
    Claim(1, "Bengio's NNLM beats n-gram models, and mixing it with an n-gram model helps further.",
          "Bengio et al. 2003: the neural LM",
          (Check("", "brown-lm: test perplexity of kn3, kn5, nnlm-mlp*, nnlm-mix", nnlm_beats_ngrams,
                 TABLES["perplexity"].heading, "test perplexity per model"),)),
    Claim(2, "Plain RNNs suffer from vanishing and exploding gradients; LSTM and GRU fix the vanishing.",
          "RNN and LSTM language models",
          (Check("vanishing", "gradient_flow.csv: |d loss_t / d h_(t-k)| of rnn, lstm (gru)",
                 gated_cells_keep_gradients,
                 "Gradient flow: |d loss_t / d h_(t-k)| in freshly initialized recurrent LMs",
                 "gradient norm against distance k"),
           Check("exploding", "gradient-flow/gradient_regimes.csv: the Elman RNN's gradient norm against steps back "
                              "at recurrent spectral radii 0.5, 1, 1.5, 2, freshly initialized", exploding_gradients),
           Check("clipping", "gradient-flow/clipping.csv: an Elman RNN LM on Brown at SGD lr 1.0, with and without "
                             "gradient-norm clipping", clipping_prevents_divergence),
           Check("vanishing, after training", "gradient-flow/gradient_regimes.csv: the same networks and lstm, gru "
                                              "after 100 Adam steps on Brown", gated_cells_keep_gradients_trained))),
    Claim(3, "Word2Vec trains fast and its results do not swing from run to run.", "Word2Vec",
          (Check("", "standard-vectors: Spearman ρ and train tokens/s of word2vec-cbow, -sg; brown-lm: nnlm-mlp* "
                     "train tokens/s", word2vec_fast_and_stable,
                 "Cost (training tokens/s, wall time, peak memory; quality is reported apart)",
                 "training tokens/s per model"),)),
    Claim(4, "CBOW suits smaller corpora; skip-gram does better on large ones.", "Word2Vec",
          (Check("", "corpus-size: Spearman ρ (WS-353, SimLex-999, MEN, RW) of ours and gensim's CBOW and skip-gram "
                     "per offline-mix prefix", skipgram_wins_with_size, corpus_size.HEADING,
                 corpus_size.SIMILARITY_FIGURE),)),
    Claim(5, "Co-occurrence vectors are huge and sparse; SVD gives dense vectors that work.",
          "Count-based vectors and SVD",
          (Check("", "standard-all: Spearman ρ of svd-ppmi and word2vec-sg", svd_vectors_work,
                 TABLES["wordsim"].heading,
                 "Spearman ρ per model and set"),)),
    Claim(6, "GloVe combines the advantages of global matrix factorisation (LSA) and local context windows "
             "(word2vec).", "GloVe",
          (Check("", "standard-all, glove-parity: Spearman ρ (MEN, WS-353) of glove, svd-ppmi, gensim-sg",
                 glove_combines_both, "GloVe settings against skip-gram (means over seeds)"),)),
    Claim(7, "Static vectors give a word one vector whatever its sense; ELMo's contextual vectors handle "
             "polysemy.", "ELMo",
          (Check("", f"{ELMO_MATRIX}: WSD accuracy (linear, micro-averaged) of elmo's layers and the most frequent "
                     f"sense per form", contextual_beats_static_ceiling,
                 TABLES["wsd_probe"].heading,
                 "probe accuracy against relative depth"),)),
    Claim(8, "For word-sense tasks ELMo's scalar mix weights layer 2 most; for POS and syntax, layer 1.", "ELMo",
          (Check("orderings", f"{ELMO_MATRIX}: POS and WSD accuracy (linear) of layers 1 and 2", layer_orderings,
                 TABLES["wsd_probe"].heading,
                 "probe accuracy against relative depth"),
           Check("weights, centre of gravity",
                 f"{ELMO_MATRIX}, {MIX_MATRIX}: E[layer] of the learned scalar-mix weights (plain and "
                 f"layer-normalised) of the POS and WSD probes (linear)",
                 mix_centre_higher_for_word_sense, MIX_SECTION, MIX_FIGURE),
           Check("weights, layer 2 over 1", f"{ELMO_MATRIX}: the weight of elmo's layer 2 against layer 1 in the "
                                            f"same mixes", mix_layer_two_for_word_sense, MIX_SECTION, MIX_FIGURE))),
    Claim(9, "ELMo is pre-trained on a large corpus, then fine-tuned on the downstream task's corpus.", "ELMo",
          (Check("", f"{FINETUNE_MATRIX}: WSD accuracy (linear probe of the scalar mix, micro-averaged) of a Brown "
                     f"biLM before and after fine-tuning on senseval2's train text, and of a biLM trained on that "
                     f"text alone for the same budget", finetuning_helps,
                 TABLES["wsd_probe"].heading,
                 "probe accuracy against relative depth"),)),
    Claim(10, "The scalar mix adapts ELMo's output to each downstream task.", "ELMo",
          (Check("", f"{ELMO_MATRIX}: POS and WSD accuracy (linear) of the scalar mix and of each layer",
                 scalar_mix_adapts,
                 TABLES["pos_probe"].heading,
                 "POS probe accuracy per layer and model"),)),
)


Judged = list[tuple[Claim, list[tuple[Check, Verdict]]]]  # each claim with each check's verdict


def judge(rows: Rows) -> Judged:
    return [(claim, [(check, check.rule(rows)) for check in claim.checks]) for claim in CLAIMS]


def _joined(checks: list[tuple[Check, Verdict]], part: Callable[[Check, Verdict], str]) -> str:
    """One cell of the ledger: each check's part, prefixed by the check's name when there are several."""
    shown = [(check.name, part(check, verdict)) for check, verdict in checks]
    if len(shown) == 1:
        return shown[0][1]
    return "; ".join(f"{name}: {text}" for name, text in shown if text)


def _behind(check: Check, verdict: Verdict) -> str:
    """The rows a check reads and a link to the report section (and figure) behind it; not run:
    the command that would make the rows and why it has not run."""
    if verdict.outcome == NOT_RUN:
        return f"{verdict.text()}; it would read {check.reads}"
    if not check.section:
        return check.reads
    figure = f", figure “{check.figure}”" if check.figure else ""
    return f"{check.reads}; [{check.section.split(' (')[0].split(':')[0]}]({anchor(check.section)}){figure}"


def ledger(judged: Judged) -> pd.DataFrame:
    """One row per claim: each check's verdict, the claim, the effect and the scale. The
    verdict comes before the claim, so the first columns a reader sees answer the question."""
    return pd.DataFrame([{"#": claim.id, "verdict": _joined(checks, lambda c, v: v.summary()), "claim": claim.claim,
                          "effect (mean ± sd over seeds)": _joined(checks, lambda c, v: v.effect),
                          "measured at": _joined(checks, lambda c, v: v.scale)}
                         for claim, checks in judged])


def behind(judged: Judged) -> list[str]:
    """One item per claim: the note's section, the rows its checks read and the report section
    (and figure) behind each verdict, or the command that would run a check not run."""
    return [f"- {claim.id} ({claim.section}): {_joined(checks, _behind)}" for claim, checks in judged]


def claims_section(rows: Rows) -> list:
    """The report's opening section: the ledger, before any other table."""
    judged = judge(rows)
    return ["## Claims ledger: the note's claims and what these results say", "",
            "Every verdict is computed from the result rows (bench.report.claims), never typed in: holds, does not "
            "hold, or mixed (holds in k of n seeds), with the effect as mean ± sd over seeds, or not run.", "",
            ledger(judged), "",
            "Behind each verdict (the note's section): the rows read and the report section and figure, or the "
            "command that would run a check not run yet:", "",
            *behind(judged), ""]


def print_ledger(rows: Rows) -> None:
    """`lm-lineage claims`: each claim with its verdict (a check not run: its command), effect and
    scale, a few lines each."""
    for claim, checks in judge(rows):
        print(f"{claim.id:>2}. {claim.claim}")
        for label, part in (("verdict", lambda c, v: v.text()), ("effect", lambda c, v: v.effect),
                            ("measured at", lambda c, v: v.scale)):
            value = _joined(checks, part)
            if value:
                print(f"    {label}: {value}")
