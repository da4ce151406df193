"""One rule per check of the claims ledger: each reads the result rows (`Rows`) and returns the
`Verdict` on its part of a claim, or `not run` with the command that would make its rows.

Each "# --- claim N" section holds a claim's rules and the thresholds they test; the table
that names them, `bench.report.claims.CLAIMS`, says which claim and report section each settles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.eval import diagnostics
from bench.eval.wsd import ALL_WORDS
from bench.report import corpus_size
from bench.report.corpus_size import SG_CBOW_PAIRS, SIZE_BENCHMARKS, corpus_sizes
from bench.report.verdicts import (
    NOT_RUN,
    Rows,
    Verdict,
    by_seed,
    data_size,
    effect,
    mean_spearman,
    outcome,
    tokens,
    tokens_read,
)

# Claims 3 and 5 score word vectors on the three sets the parity table reads (bench.report.render).
SIMILARITY_SETS = ("WS-353-ALL", "SIMLEX-999", "MEN-TR-3k")


# --- claim 1: Bengio et al.'s NNLM against n-grams -------------------------------------------------

def nnlm_beats_ngrams(rows: Rows) -> Verdict:
    test = rows.of("perplexity", "brown-lm")
    test = test[test["split"] == "test"].pivot_table(index="seed", columns="model", values="perplexity")
    ngrams = [m for m in ("kn3", "kn5") if m in test]
    nnlms = [m for m in test if m.startswith("nnlm-mlp")]
    if not ngrams or not nnlms or "nnlm-mix" not in test:
        return Verdict(NOT_RUN, command="lm-lineage run --matrix brown-lm --out results/brown-lm",
                       why="no test perplexity of kn3/kn5, nnlm-mlp* and nnlm-mix in brown-lm")
    ngram, nnlm, mix = test[ngrams].min(axis=1), test[nnlms].min(axis=1), test["nnlm-mix"]
    return by_seed((nnlm < ngram) & (mix < nnlm),
                   [effect("best NNLM / best KN test perplexity", nnlm / ngram, 3, signed=False),
                    effect("mixture / best NNLM", mix / nnlm, 3, signed=False)],
                   scale=data_size(rows.cells("brown-lm")))


# --- claim 2: vanishing gradients --------------------------------------------------------------------

# A gradient has vanished when, k steps back, it is under this fraction of its value
# one step back; a gated cell keeps it alive when its fraction is at least KEPT_FACTOR times
# the Elman RNN's.
VANISHED = 1e-3
KEPT_FACTOR = 100.0


def gated_cells_keep_gradients(rows: Rows) -> Verdict:
    flow = rows.gradient_flow
    if flow is None or "rnn" not in set(flow["model"]):
        return Verdict(NOT_RUN, command="lm-lineage gradient-flow --out results",
                       why="no gradient_flow.csv with an `rnn` row at the top of the results folder")
    far = int(flow["k"].max())
    norms = flow[flow["k"].isin([1, far])].pivot_table(index=["seed", "model"], columns="k", values="grad_norm")
    kept = (norms[far] / norms[1]).unstack("model")  # (seeds, models): fraction left k steps back
    gated = [m for m in ("lstm", "gru") if m in kept]
    if not gated:
        return Verdict(NOT_RUN, command="lm-lineage gradient-flow --out results",
                       why="gradient_flow.csv holds no lstm or gru rows")
    rnn = kept["rnn"]
    holds = (rnn < VANISHED) & (kept[gated].ge(KEPT_FACTOR * rnn, axis=0).all(axis=1))
    return by_seed(holds, [effect(f"log10 rnn gradient left at k={far}", np.log10(rnn), 1),
                           *[effect(f"log10 {m} / rnn gradient left at k={far}", np.log10(kept[m] / rnn), 1)
                             for m in gated]],
                   scale=f"freshly initialized LMs, k = 1..{far}")


# --- claim 2: both regimes (gradient-flow --regime-seeds, bench.eval.diagnostics) -------------------

REGIMES_COMMAND = "lm-lineage gradient-flow --out results/gradient-flow --regime-seeds 2"


def _from_diagnostic(verdict: diagnostics.Verdict, name: str, digits: int, scale: str,
                     signed: bool = True) -> Verdict:
    """A diagnostics verdict (holds in `seeds_holding` of `seeds`, effect mean and sd) as a ledger one."""
    k, n = verdict.seeds_holding, verdict.seeds
    spread = "" if n == 1 or not np.isfinite(verdict.sd) else f" ± {verdict.sd:.{digits}f}"
    sign = "+" if signed else ""
    return Verdict(outcome(k, n), k, n, "seed", f"{name} {verdict.effect:{sign}.{digits}f}{spread}", scale)


def _regimes_not_run(file: str) -> Verdict:
    return Verdict(NOT_RUN, command=REGIMES_COMMAND, why=f"no gradient-flow/{file} under the results folder")


def exploding_gradients(rows: Rows) -> Verdict:
    """Below spectral radius 1 the Elman RNN's gradient shrinks per step back, above 1 it grows
    (bench.eval.diagnostics.explodes_above_one, at initialization)."""
    if rows.regimes is None:
        return _regimes_not_run("gradient_regimes.csv")
    return _from_diagnostic(diagnostics.explodes_above_one(rows.regimes, state="init"),
                            "smallest growth factor per step back above radius 1", 2,
                            f"freshly initialized Elman RNNs, k = 1..{int(rows.regimes['k'].max())}", signed=False)


def clipping_prevents_divergence(rows: Rows) -> Verdict:
    """The unclipped run diverges and the clipped one does not (diagnostics.clipping_prevents_divergence)."""
    if rows.clipping is None:
        return _regimes_not_run("clipping.csv")
    steps = rows.clipping["step"].nunique()  # per run: every run records the same steps
    return _from_diagnostic(diagnostics.clipping_prevents_divergence(rows.clipping),
                            "final loss without − with clipping, nats/token", 1,
                            f"Brown, {steps} SGD steps at lr {rows.clipping['lr'].iloc[0]:g}")


def gated_cells_keep_gradients_trained(rows: Rows) -> Verdict:
    """After a short training, LSTM and GRU keep at least 100x more gradient 50 steps back than
    the best Elman RNN of the vanishing regime (diagnostics.gated_cells_keep_gradients)."""
    if rows.regimes is None:
        return _regimes_not_run("gradient_regimes.csv")
    trained = rows.regimes[rows.regimes["state"] == "trained"]
    steps = int(trained["train_steps"].max()) if not trained.empty else 0
    return _from_diagnostic(diagnostics.gated_cells_keep_gradients(rows.regimes, k=50, state="trained"),
                            "log10 gated / Elman RNN (radius < 1) gradient left at k=50", 1,
                            f"after {steps} Adam steps on Brown")


# --- claim 3: word2vec is fast and stable -------------------------------------------------------------

# Word2vec is "fast" when it trains at least this many times the tokens/s of the
# NNLM it replaced, and "stable" when every seed's Spearman ρ lies within STABLE_RHO of the
# mean over seeds (the tolerance of the ours-against-gensim parity target).
FAST_FACTOR = 10.0
STABLE_RHO = 0.02


def word2vec_fast_and_stable(rows: Rows) -> Verdict:
    models = ("word2vec-cbow", "word2vec-sg")
    wordsim = rows.of("wordsim", "standard-vectors")
    wordsim = wordsim[wordsim["model"].isin(models) & wordsim["benchmark"].isin(SIMILARITY_SETS)]
    train = rows.frames["throughput"][rows.frames["throughput"]["phase"] == "train"]
    nnlm = train[(train["matrix"] == "brown-lm") & train["model"].str.startswith("nnlm-mlp")]["tokens_per_s"]
    ours = train[(train["matrix"] == "standard-vectors") & train["model"].isin(models)]
    if wordsim["model"].nunique() < len(models) or nnlm.dropna().empty or ours.empty:
        return Verdict(NOT_RUN, command="lm-lineage run --matrix standard-vectors --out results/standard-vectors",
                       why="needs word2vec-cbow and -sg in standard-vectors and the nnlm-mlp* rows of brown-lm")
    spread = wordsim.groupby(["model", "benchmark"])["spearman"].transform(lambda rho: (rho - rho.mean()).abs())
    stable = (spread <= STABLE_RHO).groupby(wordsim["seed"]).all()
    speed = ours.groupby("seed")["tokens_per_s"].min() / nnlm.median()  # the slower of CBOW and SG
    sd = wordsim.groupby(["model", "benchmark"])["spearman"].std(ddof=1)
    return by_seed(stable & (speed >= FAST_FACTOR),
                   [effect("train tokens/s / the NNLM's", speed, 0, signed=False),
                    effect("largest sd of ρ over seeds", pd.Series([sd.max()]), 3, signed=False)],
                   scale=data_size(rows.cells("standard-vectors")))


# --- claim 4: CBOW on small corpora, skip-gram on large ones --------------------------------------------

CORPUS_SIZE_COMMAND = "lm-lineage run --matrix corpus-size --out results/corpus-size"


def skipgram_wins_with_size(rows: Rows) -> Verdict:
    """Per implementation (ours, gensim's) and seed: SG − CBOW mean ρ at the smallest prefix below
    0 and at the largest above 0, the note's claim; effect: SG − CBOW at each size."""
    sizes = corpus_sizes(rows.cells(corpus_size.MATRIX))
    wordsim = rows.of("wordsim", corpus_size.MATRIX).merge(sizes, on=["model", "corpus", "seed", "matrix"])
    scores = mean_spearman(wordsim, tuple(SIZE_BENCHMARKS)).pivot_table(
        index=["seed", "size"], columns="model", values="spearman")
    pairs = [(sg, cbow) for sg, cbow in SG_CBOW_PAIRS if {sg, cbow} <= set(scores)]
    if not pairs or scores.index.get_level_values("size").nunique() < 2:
        return Verdict(NOT_RUN, command=CORPUS_SIZE_COMMAND,
                       why="not run yet: about 40 minutes of 2 idle cores, the matrix's description says")
    # (seed, size) x implementation: SG − CBOW mean ρ
    gaps = pd.DataFrame({sg: scores[sg] - scores[cbow] for sg, cbow in pairs})
    smallest, largest = gaps.index.get_level_values("size").min(), gaps.index.get_level_values("size").max()
    small, large = gaps.xs(smallest, level="size").stack(), gaps.xs(largest, level="size").stack()
    effects = [effect(f"SG − CBOW ρ at {tokens(size)}", gaps.xs(size, level="size").stack(), 3)
               for size in sorted(set(gaps.index.get_level_values("size")))]
    return by_seed((small < 0) & (large > 0), effects, unit="implementation × seed",
                   scale=f"offline-mix prefixes of {tokens(smallest)} to {tokens(largest)}")


# --- claim 5: SVD of the counts ---------------------------------------------------------------------------

def svd_vectors_work(rows: Rows) -> Verdict:
    scores = mean_spearman(rows.of("wordsim", "standard-all"), SIMILARITY_SETS).pivot_table(
        index="seed", columns="model", values="spearman")
    if not {"svd-ppmi", "word2vec-sg"} <= set(scores):
        return Verdict(NOT_RUN, command="lm-lineage run --matrix standard-all --out results/standard-all",
                       why="no svd-ppmi and word2vec-sg rows in standard-all")
    svd = [r for r in rows.cells("standard-all") if r["cell"]["model"] == "svd-ppmi"]
    shape = f"{svd[0]['vectors']['words']:,}-word count rows cut to {svd[0]['vectors']['dims']} dims" if svd else ""
    gap = scores["svd-ppmi"] - scores["word2vec-sg"]
    return by_seed(gap >= 0, [effect("svd-ppmi − word2vec-sg mean ρ", gap, 3)],
                   scale=f"{data_size(svd)}; {shape}")


# --- claim 6: GloVe against both families --------------------------------------------------------------------

# GloVe "combines the advantages" of both families when its mean ρ on MEN and
# WS-353 is within GLOVE_RHO of the better of them (the tolerance of the project's GloVe target).
GLOVE_SETS = ("MEN-TR-3k", "WS-353-ALL")
GLOVE_RHO = 0.03
GLOVE_MATRICES = ("standard-all", "glove-parity")


def glove_combines_both(rows: Rows) -> Verdict:
    """Per run (matrix, seed): GloVe's mean ρ within GLOVE_RHO of the best of PPMI-SVD
    (the matrix factorisation) and gensim's skip-gram (the local windows) on the same tokens."""
    frames = [mean_spearman(rows.of("wordsim", matrix), GLOVE_SETS) for matrix in GLOVE_MATRICES]
    scores = pd.concat(frames).pivot_table(index=["matrix", "seed"], columns="model", values="spearman")
    references = [m for m in ("svd-ppmi", "gensim-sg") if m in scores]
    if "glove" not in scores or not references:
        return Verdict(NOT_RUN, command="lm-lineage run --matrix standard-all --out results/standard-all",
                       why="no glove with svd-ppmi or gensim-sg rows in " + " or ".join(GLOVE_MATRICES))
    scores = scores.dropna(subset=["glove"])
    gap = scores["glove"] - scores[references].max(axis=1)
    cells = [r for m in GLOVE_MATRICES for r in rows.cells(m) if r["cell"]["model"] == "glove"]
    windows = sorted({r["config"]["model"]["window"] for r in cells})
    best = f"glove − best of {', '.join(references)} mean ρ"
    return by_seed(gap >= -GLOVE_RHO, [effect(best, gap, 3)], unit="matrix × seed",
                   scale=f"{data_size(cells)}; window {'/'.join(map(str, windows))}")


# --- claims 7, 8 and 10: ELMo's layers --------------------------------------------------------------------

ELMO_MATRIX = "elmo-seeds-wsd"


def _elmo_probes(rows: Rows) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(seed x layer) accuracies in percent of the biLM of ELMO_MATRIX: POS (linear) and WSD
    (linear, micro-averaged); empty frames without them."""
    pos = rows.of("pos_probe", ELMO_MATRIX)
    wsd = rows.of("wsd_probe", ELMO_MATRIX)
    wsd = wsd[(wsd["word"] == ALL_WORDS) & (wsd["method"] == "linear")]
    return tuple(frame[frame["model"] == "elmo"].pivot_table(index="seed", columns="layer", values="accuracy") * 100
                 for frame in (pos, wsd))


def _elmo_scale(rows: Rows) -> str:
    """The biLM's training corpus and the tokens it read."""
    bilms = [r for r in rows.cells(ELMO_MATRIX) if r["cell"]["model"] == "elmo"]
    return "; ".join(f"{corpus} biLM, {tokens_read(bilms)}" for corpus in sorted({r["cell"]["corpus"] for r in bilms}))


ELMO_COMMAND = f"lm-lineage run --matrix {ELMO_MATRIX} --out results/{ELMO_MATRIX}"


def _missing_elmo(pos: pd.DataFrame, wsd: pd.DataFrame, layers: tuple[str, ...]) -> bool:
    return any(not set(layers) <= set(frame) for frame in (pos, wsd))


def contextual_beats_static_ceiling(rows: Rows) -> Verdict:
    """The best ELMo layer against the most frequent sense per word form: the most a classifier
    on one static vector per word can reach, since it gives each form one sense."""
    _, wsd = _elmo_probes(rows)
    ceiling = rows.of("wsd_probe", ELMO_MATRIX)
    ceiling = ceiling[(ceiling["word"] == ALL_WORDS) & (ceiling["model"] == "most-frequent-sense-per-form")]
    layers = [layer for layer in wsd if layer.isdigit()]
    if not layers or ceiling.empty:
        return Verdict(NOT_RUN, command=ELMO_COMMAND, why=f"no WSD rows of elmo and its references in {ELMO_MATRIX}")
    static = ceiling.set_index("seed")["accuracy"] * 100
    gap = wsd[layers].max(axis=1) - static.reindex(wsd.index)
    return by_seed(gap > 0, [effect("best layer − most frequent sense per form, points", gap, 1)],
                   scale=_elmo_scale(rows))


def layer_orderings(rows: Rows) -> Verdict:
    """Peters et al.'s orderings by probe accuracy: layer 2 over 1 for word sense, 1 over 2 for POS."""
    pos, wsd = _elmo_probes(rows)
    if _missing_elmo(pos, wsd, ("1", "2")):
        return Verdict(NOT_RUN, command=ELMO_COMMAND, why=f"no POS and WSD rows of elmo's layers 1, 2 in {ELMO_MATRIX}")
    wsd_gap, pos_gap = wsd["2"] - wsd["1"], pos["1"] - pos["2"]
    return by_seed((wsd_gap > 0) & (pos_gap > 0),
                   [effect("WSD L2 − L1, points", wsd_gap, 2), effect("POS L1 − L2, points", pos_gap, 2)],
                   scale=_elmo_scale(rows))


def scalar_mix_adapts(rows: Rows) -> Verdict:
    """Per task, the learned scalar mix at least as accurate as the task's best single layer."""
    pos, wsd = _elmo_probes(rows)
    if _missing_elmo(pos, wsd, ("mix",)):
        return Verdict(NOT_RUN, command=ELMO_COMMAND, why=f"no scalar-mix rows of elmo in {ELMO_MATRIX}")
    gaps = {task: frame["mix"] - frame[[c for c in frame if c.isdigit()]].max(axis=1)
            for task, frame in (("POS", pos), ("WSD", wsd))}
    return by_seed((gaps["POS"] >= 0) & (gaps["WSD"] >= 0),
                   [effect(f"{task} mix − best layer, points", gap, 2) for task, gap in gaps.items()],
                   scale=_elmo_scale(rows))


# --- claim 8: the scalar-mix weights themselves ---------------------------------------------------------

MIX_MATRIX = "mix-weights"  # the pretrained transformers' probes (bench/matrices/mix-weights.toml)
MIX_COMMANDS = f"{ELMO_COMMAND} --save-models; lm-lineage run --matrix {MIX_MATRIX} --out results/{MIX_MATRIX}"


def _mix_table(rows: Rows, value: str, matrices: tuple[str, ...], model: str | None = None) -> pd.DataFrame:
    """(model, seed, mix) x task ("POS", "WSD"): `value` of the learned scalar mixes (the report's
    `scalar_mix` table) of the cells of `matrices` (and of `model` alone if given), for the runs
    that learned both tasks' mixes; empty where none did."""
    frame = rows.frames["scalar_mix"]
    frame = frame[frame["matrix"].isin(matrices)]
    if model is not None:
        frame = frame[frame["model"] == model]
    table = frame.dropna(subset=[value]).pivot_table(index=["model", "seed", "mix"], columns="task", values=value)
    if not {"POS", "WSD"} <= set(table):
        return pd.DataFrame()
    return table.dropna(subset=["POS", "WSD"])


def _mix_scale(rows: Rows, matrices: tuple[str, ...]) -> str:
    """The models whose mixes were read and the layers they mix; the biLM's corpus and tokens."""
    frame = rows.frames["scalar_mix"]
    frame = frame[frame["matrix"].isin(matrices)]
    layers = frame.groupby("model", sort=False)["layers"].first()
    mixed = ", ".join(f"{model} layers {min(numbers)}–{max(numbers)}" for model, numbers in layers.items())
    return "; ".join(part for part in (mixed, _elmo_scale(rows)) if part)


def _per_model_mix(name: str, values: pd.Series, digits: int) -> list[str]:
    """`effect` of `values` ((model, seed, mix)-indexed) for each model and mix: `elmo mix: NAME ...`."""
    return [effect(f"{model} {mix}: {name}", group, digits)
            for (model, mix), group in values.groupby(level=["model", "mix"], sort=False)]


def mix_centre_higher_for_word_sense(rows: Rows) -> Verdict:
    """Tenney et al.'s centre of gravity E[layer] = Σ l·s_l of the WSD probe's mix above the POS
    probe's, per model (ELMo's biLMs, the pretrained transformers), mix (plain and
    layer-normalised) and seed: the task the note calls semantic draws on higher layers."""
    matrices = (ELMO_MATRIX, MIX_MATRIX)
    centre = _mix_table(rows, "centre", matrices)
    if centre.empty:
        return Verdict(NOT_RUN, command=MIX_COMMANDS,
                       why=f"no POS and WSD scalar-mix weights in {' or '.join(matrices)} (stored since issue 25)")
    gap = centre["WSD"] - centre["POS"]
    return by_seed(gap > 0, _per_model_mix("E[layer] WSD − POS", gap, 2), unit="model × mix × seed",
                   scale=_mix_scale(rows, matrices))


def mix_layer_two_for_word_sense(rows: Rows) -> Verdict:
    """The note's claim word for word, on ELMo's biLMs: s_2 − s_1 above 0 in the WSD probe's
    mix and below 0 in the POS probe's, per seed and mix."""
    weights = _mix_table(rows, "s2_minus_s1", (ELMO_MATRIX,), model="elmo")
    if weights.empty:
        return Verdict(NOT_RUN, command=f"{ELMO_COMMAND} --save-models",
                       why=f"no POS and WSD scalar-mix weights of elmo's layers 1 and 2 in {ELMO_MATRIX} (stored "
                           f"since issue 25)")
    return by_seed((weights["WSD"] > 0) & (weights["POS"] < 0),
                   [*_per_model_mix("WSD s2 − s1", weights["WSD"], 2),
                    *_per_model_mix("POS s2 − s1", weights["POS"], 2)],
                   unit="mix × seed", scale=_mix_scale(rows, (ELMO_MATRIX,)))


# --- claim 9: pre-train, then fine-tune ------------------------------------------------------------------

FINETUNE_MATRIX = "elmo-finetune"
FINETUNE_COMMAND = f"lm-lineage run --matrix {FINETUNE_MATRIX} --out results/{FINETUNE_MATRIX}"
# Its three biLMs per seed (bench/matrices/elmo-finetune.toml): pre-trained only, fine-tuned, control.
PRETRAINED, FINETUNED, CONTROL = "elmo-pretrained", "elmo-finetuned", "elmo-scratch"


def _mix_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """(seed x model) accuracy in percent of the learned scalar mix, ELMo's downstream use of its layers."""
    mixed = frame[frame["layer"] == "mix"]
    return mixed.pivot_table(index="seed", columns="model", values="accuracy") * 100


def finetuning_helps(rows: Rows) -> Verdict:
    """Per seed: the fine-tuned biLM's WSD accuracy (linear probe of the scalar mix, micro-averaged)
    above both the pre-trained biLM it started from and the control trained on the fine-tuning
    text alone for the same budget. The POS probe's gaps are shown beside it, not tested: the
    fine-tuning text is senseval2's, not the POS probe's."""
    wsd = rows.of("wsd_probe", FINETUNE_MATRIX)
    wsd = _mix_accuracy(wsd[(wsd["word"] == ALL_WORDS) & (wsd["method"] == "linear")])
    wsd = wsd.reindex(columns=[PRETRAINED, FINETUNED, CONTROL]).dropna()  # the seeds with all three biLMs' rows
    if wsd.empty:
        return Verdict(NOT_RUN, command=FINETUNE_COMMAND,
                       why="needs the Brown biLMs of `lm-lineage run --matrix elmo-seeds-wsd --save-models --force`, "
                           "saved; its time is in the matrix's description")
    over_pretrained, over_control = wsd[FINETUNED] - wsd[PRETRAINED], wsd[FINETUNED] - wsd[CONTROL]
    effects = [effect("WSD fine-tuned − pre-trained, points", over_pretrained, 2),
               effect("WSD fine-tuned − control, points", over_control, 2)]
    pos = _mix_accuracy(rows.of("pos_probe", FINETUNE_MATRIX))
    if {PRETRAINED, FINETUNED} <= set(pos):
        effects.append(effect("POS fine-tuned − pre-trained, points", pos[FINETUNED] - pos[PRETRAINED], 2))
    cells = rows.cells(FINETUNE_MATRIX)
    fine_tuned = [r for r in cells if r["cell"]["model"] == FINETUNED]
    control = [r for r in cells if r["cell"]["model"] == CONTROL]
    scale = "; ".join(part for part in (f"fine-tuned: {tokens_read(fine_tuned)}" if fine_tuned else "",
                                        f"control: {tokens_read(control)}" if control else "",
                                        data_size(control)) if part)
    return by_seed((over_pretrained > 0) & (over_control > 0), effects, scale=scale)
