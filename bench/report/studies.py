"""Studies: the project's own comparisons, each with the target it set itself, in one place.

Ours against gensim at matched settings (similarity within PARITY_TOLERANCE, speed at or above
SPEED_TARGET), GloVe against skip-gram (within GLOVE_TOLERANCE), the analogy evaluation's
speed, ELMo's layers against Peters et al. (2018) (which layer is the better one per task), the
word-sense probe's best layer against the references, and ELMo's probes against the text its
biLM read (POS_LAYER_ONE_TARGET). The generic sections are in `bench.report.sections`.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.eval.wsd import ALL_WORDS, BAG_OF_CONTEXT, MFS, NAIVE_BAYES
from bench.report import probe_figures
from bench.report.markup import Block, Figure, mean_sd, number, plural
from bench.report.tables import micro_averaged_wsd_tasks

# The targets, one place for all (a claims ledger reads them here).
PARITY_PAIRS = (("word2vec-cbow", "gensim-cbow"), ("word2vec-sg", "gensim-sg"))
PARITY_BENCHMARKS = ("WS-353-ALL", "SIMLEX-999", "MEN-TR-3k")
PARITY_TOLERANCE = 0.02
SPEED_TARGET = 1.0  # ours at or above gensim's training tokens/s (median of interleaved seed pairs)
# Two cells of a seed pair that started further apart than this were not interleaved (one
# was re-run later, e.g. with --models ... --force): the machine's load may differ between
# them, so the pair is left out of the speed ratio. A whole standard-all seed takes minutes.
INTERLEAVED_WITHIN = pd.Timedelta(hours=1)
GLOVE_BENCHMARKS = ("MEN-TR-3k", "WS-353-ALL")
GLOVE_TOLERANCE = 0.03
# The GloVeConfig fields that make two glove cells the same experiment (threads and batch
# size change the speed only).
GLOVE_SETTINGS = ("vector_size", "window", "x_max", "alpha", "epochs", "learning_rate")
# The layer Peters et al. (2018) found the better one, of 1 and 2, per probe task.
PETERS_BETTER_LAYER = {"POS": "1", "WSD": "2"}
POS_LAYER_ONE_TARGET = 95  # percent: the POS accuracy the project targets for an ELMo biLM's layer 1
# The section of the learned scalar-mix weights (claim 8) and its figure, as the ledger links them.
MIX_SECTION = "Scalar-mix weights: where each probe's mix puts its weight (mean ± sd over seeds)"
MIX_FIGURE = "scalar-mix weight per layer against relative depth, one panel per task"


def parity_section(wordsim: pd.DataFrame, throughput: pd.DataFrame) -> list[Block]:
    lines: list[Block] = []
    train = throughput[throughput["phase"] == "train"]
    for corpus in dict.fromkeys(wordsim["corpus"]):
        rows = []
        for ours, theirs in PARITY_PAIRS:
            sims = wordsim[wordsim["corpus"] == corpus]
            if not {ours, theirs} <= set(sims["model"]):
                continue
            for bench in PARITY_BENCHMARKS:
                a = sims[(sims["model"] == ours) & (sims["benchmark"] == bench)]["spearman"].mean()
                b = sims[(sims["model"] == theirs) & (sims["benchmark"] == bench)]["spearman"].mean()
                if pd.isna(a) or pd.isna(b):
                    continue
                rows.append({"ours": ours, "gensim": theirs, "measure": f"{bench} ρ", "ours value": f"{a:.3f}",
                             "gensim value": f"{b:.3f}", "difference": f"{a - b:+.3f}",
                             "target": f"|diff| ≤ {PARITY_TOLERANCE}",
                             "met": "yes" if abs(a - b) <= PARITY_TOLERANCE else "no"})
            speed = interleaved_speed_ratio(train[train["corpus"] == corpus], ours, theirs)
            apart = "" if speed is None or not speed["apart"] else (
                f"; {plural(speed['apart'], 'pair')} made over an hour apart left out")
            if speed is not None and speed["pairs"] == 0:
                rows.append({"ours": ours, "gensim": theirs, "measure": "train tokens/s", "ours value": "–",
                             "gensim value": "–", "difference": f"no interleaved pair{apart}",
                             "target": f"≥ {SPEED_TARGET}×", "met": "–"})
            elif speed is not None:
                rows.append({"ours": ours, "gensim": theirs, "measure": "train tokens/s",
                             "ours value": f"{speed['ours_tokens_per_s']:,.0f}",
                             "gensim value": f"{speed['gensim_tokens_per_s']:,.0f}",
                             "difference": f"{speed['median']:.2f}× ({speed['min']:.2f}–{speed['max']:.2f}, "
                                           f"{plural(speed['pairs'], 'seed pair')}{apart})",
                             "target": f"≥ {SPEED_TARGET}×",
                             "met": "yes" if speed["median"] >= SPEED_TARGET else "no"})
        if rows:
            lines += [f"## Ours against gensim at matched settings (corpus `{corpus}`)", "",
                      "Spearman ρ: means over seeds. Speed: each seed's ours / gensim ratio of training "
                      "tokens/s (the runner trains each seed's models in turn, so ours and gensim runs alternate "
                      "and a pair shares the machine's load; a pair whose cells started over an hour apart, one "
                      "re-run later, is left out), median over seeds with its min–max range; the tokens/s shown "
                      "are medians over the same seeds.", "", pd.DataFrame(rows), ""]
    return lines


def interleaved_speed_ratio(train: pd.DataFrame, ours: str, theirs: str) -> dict | None:
    """Ours / gensim training tokens/s from interleaved runs, or None without a seed that has both.

    `train`: throughput rows of the train phase (model, matrix, corpus, seed, tokens_per_s).
    The runner runs a matrix seed by seed, each seed's models in matrix order, so ours and
    gensim alternate (seed 0: ours, gensim; seed 1: ours, gensim; ...) and the two runs of
    a pair are minutes apart: the ratio within a pair cancels the slow load swings of a
    shared machine that a ratio of means over the whole run keeps. A pair whose runs started
    more than INTERLEAVED_WITHIN apart (`started`) was not
    interleaved and is left out, counted in `apart`. Returns the median, min and max of the
    per-seed ratios, the number of pairs (0 when every pair was apart) and each side's median
    tokens/s over the paired seeds."""
    keys = ["matrix", "corpus", "seed"]
    runs = {model: train[train["model"] == model][[*keys, "tokens_per_s", "started"]] for model in (ours, theirs)}
    for model, rows in runs.items():
        twice = rows[rows.duplicated(keys)]
        if not twice.empty:
            first = twice.iloc[0]
            raise BenchError(f"{model}: two training timings for matrix {first['matrix']}, corpus {first['corpus']}, "
                             f"seed {first['seed']}: expected one result file per cell in the folder")
    pairs = runs[ours].merge(runs[theirs], on=keys, suffixes=("_ours", "_gensim"))
    if pairs.empty:
        return None
    gap = pd.to_datetime(pairs["started_ours"], utc=True) - pd.to_datetime(pairs["started_gensim"], utc=True)
    apart = gap.abs() > INTERLEAVED_WITHIN  # NaT (a start not recorded) compares False: kept
    kept = pairs[~apart]
    if kept.empty:
        return {"pairs": 0, "apart": int(apart.sum())}
    ratios = kept["tokens_per_s_ours"] / kept["tokens_per_s_gensim"]
    return {"median": float(ratios.median()), "min": float(ratios.min()), "max": float(ratios.max()),
            "pairs": len(kept), "apart": int(apart.sum()),
            "ours_tokens_per_s": float(kept["tokens_per_s_ours"].median()),
            "gensim_tokens_per_s": float(kept["tokens_per_s_gensim"].median())}


def glove_against_skipgram_section(results: list[dict]) -> list[Block]:
    """GloVe's target, one row per GloVe setting: within GLOVE_TOLERANCE Spearman of gensim's
    skip-gram on the same tokens (corpus, tokenization, vocabulary), dimensions and window.

    Rows pool every cell of a setting over seeds and matrices (the GloVe sweep runs one
    matrix per setting), so the sweep reads as one table."""
    def data_key(r: dict) -> tuple:
        return r["cell"]["corpus"], json.dumps([r["config"]["tokenizer"], r["config"]["vocab"]], sort_keys=True)

    def scores(r: dict) -> dict[str, float]:
        return {row["benchmark"]: row["spearman"] for row in r["metrics"].get("wordsim", [])
                if row["benchmark"] in GLOVE_BENCHMARKS}

    glove: dict[tuple, list[dict]] = {}
    skipgram: dict[tuple, list[dict]] = {}
    for r in results:
        if r["status"] != "ok" or r["cell"]["model"] not in ("glove", "gensim-sg"):
            continue
        settings = r["config"]["model"]
        if r["cell"]["model"] == "glove":
            glove.setdefault((*data_key(r), *(settings[k] for k in GLOVE_SETTINGS)), []).append(r)
        else:
            skipgram.setdefault((*data_key(r), settings["vector_size"], settings["window"]), []).append(r)
    rows = []
    for key, cells in sorted(glove.items(), key=lambda item: item[0]):
        corpus, data, vector_size, window, x_max, alpha, epochs, learning_rate = key
        references = skipgram.get((corpus, data, vector_size, window))
        if not references:
            continue
        row = {"corpus": corpus, "dims": vector_size, "window": window, "x_max": f"{x_max:g}", "α": f"{alpha:g}",
               "passes": epochs, "lr": f"{learning_rate:g}", "seeds": len(cells)}
        met = True
        for bench in GLOVE_BENCHMARKS:
            ours = pd.Series([scores(r).get(bench) for r in cells], dtype=float).mean()
            theirs = pd.Series([scores(r).get(bench) for r in references], dtype=float).mean()
            row |= {f"{bench} glove": f"{ours:.3f}", f"{bench} gensim-sg": f"{theirs:.3f}",
                    f"{bench} diff": f"{ours - theirs:+.3f}"}
            met = met and abs(ours - theirs) <= GLOVE_TOLERANCE
        row |= {"met": "yes" if met else "no", "gensim-sg cells": len(references),
                "matrices": ", ".join(sorted({r["cell"]["matrix"] for r in cells}))}
        rows.append(row)
    if not rows:
        return []
    return ["## GloVe settings against skip-gram (means over seeds)", "",
            f"Target: `glove` within {GLOVE_TOLERANCE} Spearman of `gensim-sg` on "
            f"{' and '.join(GLOVE_BENCHMARKS)}, both trained on the same tokens with the same dimensions and "
            f"window. One row per GloVe setting, pooled over the matrices that ran it; `gensim-sg` pooled over "
            f"its cells at that corpus, vocabulary, dimensions and window. Passes are over the co-occurrence "
            f"entries.", "", pd.DataFrame(rows), ""]


def analogy_speed_section(results: list[dict]) -> list[Block]:
    rows = []
    for r in results:
        timings = r.get("timings", {})
        if r["status"] == "ok" and "eval_analogy_gensim" in timings:
            ours, theirs = timings["eval_analogy_3cosadd"]["wall_s"], timings["eval_analogy_gensim"]["wall_s"]
            rows.append({"model": r["cell"]["model"], "corpus": r["cell"]["corpus"], "seed": r["cell"]["seed"],
                         "vectors": f"{r['vectors']['words']:,} × {r['vectors']['dims']}",
                         "restrict": r["config"]["eval"]["restrict_vocab"], "device": timings["eval_analogy"]["device"],
                         "ours s": f"{ours:.2f}", "gensim s": f"{theirs:.2f}",
                         "speed-up": f"{theirs / ours:.1f}×"})
    if not rows:
        return []
    return ["## Analogy evaluation speed: ours (batched torch) vs gensim `evaluate_word_analogies`", "",
            "Both answer every Google analogy question with 3CosAdd over the same restricted vocabulary "
            "(ours: batched matmuls in torch; gensim: one question at a time); warm-up excluded.", "",
            pd.DataFrame(rows), ""]


def best_layer_against_references(frame: pd.DataFrame, corpus: str) -> list[Block]:
    """One sentence per layered model of one run's WSD rows (so every row is over the same
    test instances): its best single layer by the linear probe, micro-averaged and averaged
    over seeds, against the references and every static model's bag of context."""
    micro = frame[(frame["word"] == ALL_WORDS) & (frame["method"].isin(["linear", MFS, NAIVE_BAYES]))]
    micro = micro.assign(accuracy=micro["accuracy"] * 100)
    numeric = micro["layer"].str.fullmatch(r"\d+")
    layered = [model for model, layers in micro[numeric].groupby("model", sort=False)["layer"] if layers.nunique() > 1]
    if not layered:
        return []
    n = int(micro["instances"].max())
    compared = []
    for reference in (MFS, NAIVE_BAYES):
        values = micro[micro["model"] == reference]["accuracy"].drop_duplicates()  # one copy per seed: the same
        if not values.empty:
            compared.append((f"`{reference}`", values))
    for model, sub in micro[micro["layer"] == BAG_OF_CONTEXT].groupby("model", sort=False):
        compared.append((f"`{model}`'s bag of context", sub["accuracy"]))
    lines: list[Block] = []
    for model in layered:
        means = micro[(micro["model"] == model) & numeric].groupby("layer", sort=False)["accuracy"].mean()
        layer = means.idxmax()
        best = micro[(micro["model"] == model) & (micro["layer"] == layer)]["accuracy"]
        against = [f"{means[layer] - values.mean():+.1f} points against {name} ({mean_sd(values, 1)}%"
                   + (f", {len(values)} seeds)" if len(values) > 1 else ")") for name, values in compared]
        lines += [f"WSD (linear, micro-averaged), `{model}` on `{corpus}`: its best single layer, {layer}, scores "
                  f"{mean_sd(best, 1)}% ({plural(len(best), 'seed')}): " + "; ".join(against)
                  + f". Over {plural(n, 'test instance')} one accuracy near {means[layer]:.0f}% has a binomial "
                  f"standard error of {_binomial_se(means[layer] / 100, n) * 100:.1f} points.", ""]
    return lines


def _binomial_se(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n))


def layer_one_against_two(probe: pd.DataFrame, label: str, task: str) -> list[Block]:
    """One sentence per model shaped like ELMo's biLM (layers 0, 1, 2) and probe corpus: which of
    layers 1 and 2 scores higher on `task` ("POS" or "WSD"; `label` heads the sentence), mean ±
    sd over seeds and in how many seeds, against the layer Peters et al. (2018) found better."""
    lines: list[Block] = []
    probe = probe.assign(layer=probe["layer"].astype(str))  # layers are labels ("1", "mix"), whatever the dtype
    for (model, corpus), sub in probe.groupby(["model", "corpus"], sort=False):
        numeric = sub["layer"][sub["layer"].str.fullmatch(r"\d+")].astype(int)
        by_seed = sub[sub["layer"].isin(["1", "2"])].pivot_table(index="seed", columns="layer", values="accuracy")
        if numeric.empty or numeric.max() != 2 or list(by_seed.columns) != ["1", "2"]:
            continue
        one, two = by_seed["1"].dropna() * 100, by_seed["2"].dropna() * 100
        higher, lower = ("1", "2") if one.mean() > two.mean() else ("2", "1")
        seeds_higher = int((by_seed[higher] > by_seed[lower]).sum())
        lines += [f"{label}, `{model}` on `{corpus}`: layer {higher} scores higher, {mean_sd(one, 1)}% (layer 1) "
                  f"against {mean_sd(two, 1)}% (layer 2), higher in {seeds_higher} of {len(by_seed)} seed(s); "
                  f"Peters et al. 2018 found layer {PETERS_BETTER_LAYER[task]} the better one for this task.", ""]
    return lines


def _bilm_shape(config: dict) -> str:
    """What sets a biLM apart besides the text and time it trained on, from its cell's resolved
    config: its layers' width (both directions), LSTM cells, training softmax (an adaptive one's
    cutoffs and tail widths), a biLSTM trained in bf16, and lower-cased training text (such a
    biLM reads its probes' words lower-cased too)."""
    model = config["model"]
    samples = model.get("softmax_samples", 0)  # absent: a cell from before the sampled softmax
    cutoffs = model.get("softmax_cutoffs") or []  # absent: a cell from before the adaptive softmax
    if cutoffs:
        div = model.get("softmax_div_value", 4.0)
        tails = "/".join(str(int(model["projection_dim"] // div ** (i + 1))) for i in range(len(cutoffs)))
        softmax = f"adaptive softmax at {', '.join(f'{c:,}' for c in cutoffs)} ({tails}-d tails)"
    else:
        softmax = f"{samples:,}-sample softmax" if samples else "full softmax"
    lstm = ", bf16 biLSTM" if model.get("lstm_precision", "fp32") == "bf16" else ""
    case = ", lower-cased text" if config["tokenizer"]["lowercase"] else ""
    return f"{2 * model['projection_dim']}-d layers, {model['hidden']} cells, {softmax}{lstm}{case}"


def _biLM_weights(results: list[dict]) -> pd.DataFrame:
    """model, corpus, seed, matrix, biLM (its shape), tokens, weights, loaded, from_scratch: one row
    per biLM cell.

    tokens are all those its biLM read in training: its own training's; for a biLM loaded from a
    checkpoint (`checkpoint =`, nothing trained: loaded) those of the cell among `results` that
    saved these weights (the same sha256); for one fine-tuned from a saved biLM (`init_from`) its
    own plus those of the cell that saved its start. A biLM whose saving cell is not among them is
    left out: how much it read is not known here. weights names the weights probed: the sha256 of
    the saved or loaded file, else the cell itself (trained, not saved)."""
    bilms = [r for r in results if r["status"] == "ok" and r["cell"].get("family") == "bilm"]
    tokens_of = {file["sha256"]: r["timings"].get("train", {}).get("tokens") for r in bilms
                 for file in (r.get("saved") or {}).get("files", {}).values()}
    rows = []
    for r in bilms:
        cell = {k: r["cell"][k] for k in ("model", "corpus", "seed", "matrix")}
        training = r.get("training") or {}
        loaded, start = ((training.get(key) or {}).get("sha256") for key in ("checkpoint", "init_from"))
        saved = (r.get("saved") or {}).get("files", {}).values()
        weights = loaded or next((f["sha256"] for f in saved if f["path"].endswith(".safetensors")),
                                 "cell " + "/".join(map(str, cell.values())))
        own = r["timings"].get("train", {}).get("tokens") or 0
        before = tokens_of.get(loaded or start) if loaded or start else 0
        if before is not None and own + before:
            rows.append({**cell, "biLM": _bilm_shape(r["config"]), "tokens": own + before, "weights": weights,
                         "loaded": bool(loaded), "from_scratch": not (loaded or start)})
    return pd.DataFrame(rows, columns=["model", "corpus", "seed", "matrix", "biLM", "tokens", "weights", "loaded",
                                       "from_scratch"])


def probes_against_training(frames: dict[str, pd.DataFrame], results: list[dict]) -> pd.DataFrame:
    """matrix, seed, biLM (its shape), tokens (read in training), task, layer, accuracy of every
    biLM probed at layers 0, 1, 2 (ELMo's): how far its probes move with the text it has read.
    A biLM loaded from a checkpoint counts the tokens of the cell that trained it
    (`_biLM_weights`); its rows are left out where the same weights were probed on the same task
    and slices in a cell that trained them: they would be one biLM's accuracy twice."""
    parts = [frames["pos_probe"].assign(task="POS (linear)"), *micro_averaged_wsd_tasks(frames["wsd_probe"])]
    probed = pd.concat(parts, ignore_index=True)
    columns = ["model", "matrix", "seed", "biLM", "tokens", "from_scratch", "task", "layer", "accuracy",
               "probe_train", "probe_eval"]
    if probed.empty:
        return pd.DataFrame(columns=columns)
    layer = probed["layer"].astype(str)
    # ELMo's shape, judged on every layer probed: 0, 1 and 2 and no others (a transformer's
    # first three layers are not a biLM's).
    shaped = layer.where(layer.str.fullmatch(r"\d+")).groupby(probed["model"]).transform(
        lambda layers: set(layers.dropna()) == {"0", "1", "2"})
    probed = probed[shaped.astype(bool) & layer.isin(["0", "1", "2", "mix"])]
    joined = probed.merge(_biLM_weights(results), left_on=["model", "train_corpus", "seed", "matrix"],
                          right_on=["model", "corpus", "seed", "matrix"], suffixes=("", "_trained"))
    # Trained cells' rows first, so that of one biLM probed alike twice the loaded copy is dropped.
    kept = joined.sort_values("loaded", kind="stable").drop_duplicates(
        ["weights", "task", "layer", "probe_train", "probe_eval"]).sort_index()
    return kept[columns]


def training_tokens_section(trained: pd.DataFrame) -> list[Block]:
    """ELMo's probes against the tokens its biLM read, when the folder holds biLMs that read
    different amounts (several matrices or budgets); nothing otherwise."""
    if trained.empty or trained.groupby(["model", "matrix"]).ngroups < 2:
        return []
    rows = []
    for (model, matrix), sub in trained.groupby(["model", "matrix"], sort=False):
        row = {"model": model, "matrix": matrix, "biLM": " / ".join(sub["biLM"].unique()),
               "seeds": sub["seed"].nunique(),
               "training tokens (M)": mean_sd(sub.drop_duplicates("seed")["tokens"] / 1e6, 2)}
        for task, layer in (("POS (linear)", "1"), ("POS (linear)", "2"), ("WSD (linear)", "1"),
                            ("WSD (linear)", "2"), ("WSD (centroid)", "2")):
            row[f"{task.split()[0]} {task.split()[1][1:-1]} L{layer}"] = mean_sd(
                sub[(sub["task"] == task) & (sub["layer"] == layer)]["accuracy"] * 100, 1)
        for task, unit in (("POS (linear)", "tokens"), ("WSD (linear)", "instances")):
            slices = sub[sub["task"] == task].drop_duplicates(["probe_train", "probe_eval"])
            pairs = zip(slices["probe_train"], slices["probe_eval"])
            row[f"{task.split()[0]} probe train / test {unit}"] = ", ".join(
                f"{int(train):,} / {int(test):,}" for train, test in pairs) or "–"
        rows.append(row)
    return ["## ELMo's probes against the text its biLM read", "",
            "Each biLM trained to its time budget; the tokens it read (all epochs) against its probe accuracies "
            "(percent, mean ± sd over seeds). Each matrix probes its own slices (the last two columns): a probe fit "
            "on more train instances scores higher for that reason alone, so the figure joins two matrices' means "
            "by a line only where they probed the same slices, and its legend gives each matrix's marker and, where "
            "a panel holds several, its slices; nor does a line join biLMs of different shapes (the biLM column). "
            f"POS: {POS_LAYER_ONE_TARGET}% is the target for layer 1.", "",
            pd.DataFrame(rows), "",
            Figure(probe_figures.probes_against_tokens(trained), probe_figures.PROBES_AGAINST_TOKENS_TITLE), "",
            *pos_target_estimate(trained)]


def pos_target_estimate(trained: pd.DataFrame) -> list[Block]:
    """Tokens a biLM would need for POS_LAYER_ONE_TARGET on layer 1, by a power law fitted to the
    error: log(1 - accuracy) = a + b log(tokens), least squares over each matrix's mean (over
    seeds) and model, per biLM shape and probe slices (the figure's curves: a probe fit on more
    instances scores higher, so slices are never pooled), over the biLMs trained from scratch (a
    fine-tuned one read two texts). Only groups with two or more points whose tokens differ; an
    error that does not fall with tokens (b >= 0) gets no estimate."""
    pos = trained[(trained["task"] == "POS (linear)") & (trained["layer"].astype(str) == "1")
                  & trained["from_scratch"].astype(bool)]
    rows = []
    for (shape, probe_train, probe_eval), group in pos.groupby(["biLM", "probe_train", "probe_eval"]):
        points = group.groupby(["matrix", "model"]).agg(tokens=("tokens", "mean"), accuracy=("accuracy", "mean"))
        points = points.sort_values("tokens")
        if len(points) < 2 or points["tokens"].iloc[-1] <= points["tokens"].iloc[0]:
            continue
        slope, intercept = np.polyfit(np.log(points["tokens"]), np.log(1 - points["accuracy"]), 1)
        target_error = 1 - POS_LAYER_ONE_TARGET / 100
        needed = np.exp((np.log(target_error) - intercept) / slope) if slope < 0 else np.nan
        rows.append({"biLM": shape, "POS probe train / test tokens": f"{int(probe_train):,} / {int(probe_eval):,}",
                     "points (matrix: M tokens, layer 1 %)": "; ".join(
                         f"{matrix}{'' if model == 'elmo' else ' ' + model}: {row.tokens / 1e6:.2f}, "
                         f"{100 * row.accuracy:.1f}" for (matrix, model), row in points.iterrows()),
                     "error ∝ tokens^b, b": f"{slope:.3f}",
                     f"tokens for {POS_LAYER_ONE_TARGET}% (M), fitted": number(needed / 1e6, ",.0f")})
    if not rows:
        return []
    return [f"### Tokens for {POS_LAYER_ONE_TARGET}% POS on layer 1, by a fitted power law", "",
            "The error of layer 1's POS probe (100 − accuracy) against the tokens its biLM read, fitted as "
            "error = c · tokens^b by least squares on the logs of each matrix's mean, per biLM shape and "
            "probe slices; the last column solves it for the target. An extrapolation from few points, "
            "often far past them: it says how far away the target is, not when it is reached (the error "
            "of a fixed-size biLM levels off, which a power law does not).", "", pd.DataFrame(rows), ""]




def scalar_mix_section(mixes: pd.DataFrame) -> list[Block]:
    """The learned scalar-mix weights of every layered probe (claim 8): per task, model, mix and
    seed the weights s_l, gamma, the centre of gravity E[layer] and s_2 - s_1, then their mean
    (± sd) over seeds; the figure of the weights against relative depth."""
    if mixes.empty:
        return []
    rows = []
    for (task, model, matrix, mix), runs in mixes.groupby(["task", "model", "matrix", "mix"], sort=False):
        runs = runs.sort_values("seed")
        rows += [{"task": task, "model": model, "matrix": matrix, "mix": mix, "seed": str(run.seed),
                  "s_l (layer 0 first)": _weights(run.weights), "γ": f"{run.gamma:.2f}",
                  "E[layer]": f"{run.centre:.2f}",
                  "s2 − s1": number(run.s2_minus_s1, ".3f"), "accuracy %": f"{run.accuracy * 100:.1f}"}
                 for run in runs.itertuples()]
        if len(runs) > 1:
            rows.append({"task": task, "model": model, "matrix": matrix, "mix": mix, "seed": "mean ± sd",
                         "s_l (layer 0 first)": _weights(np.mean(runs["weights"].tolist(), axis=0)),
                         "γ": mean_sd(runs["gamma"], 2), "E[layer]": mean_sd(runs["centre"], 2),
                         "s2 − s1": mean_sd(runs["s2_minus_s1"].astype(float), 3),
                         "accuracy %": mean_sd(runs["accuracy"] * 100, 1)})
    return [f"## {MIX_SECTION}", "",
            "The softmax-normalised weights s_l the linear probes learn for each layer (POS; WSD: the mean of its "
            "four per-word mixes), γ, Tenney et al.'s (2019) centre of gravity E[layer] = Σ l·s_l and s2 − s1, "
            "the weight of layer 2 against layer 1. `mix` sees each dimension standardized on the probe's train "
            "tokens, as every layer's own probe does, so no layer wins the softmax by the scale of its activations; "
            "`mix-ln` sees the raw layers, each normalised as a whole (ELMo's do_layer_norm). Claim 8 of the ledger "
            "reads these rows.", "",
            Figure(probe_figures.scalar_mix_weights(mixes), MIX_FIGURE), pd.DataFrame(rows), ""]


def _weights(weights) -> str:
    return " ".join(f"{weight:.2f}" for weight in weights)
