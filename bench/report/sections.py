"""Sections: the report's generic sections, one function per result table, each a list of blocks.

Word similarity, analogies, perplexity, cost, quality against cost, the gradient flow, the POS
and word-sense probes, any other registered metric (`metric_section`), the failed cells and
the environment the numbers were made in. Each groups its table by corpus (and matrix) and
aggregates over seeds as the metric declares (bench.eval.metrics: mean ± sd, or the median),
its heading stating the metric's direction and aggregation; a section with no input says what
makes it. The comparisons the project set itself targets for are in
`bench.report.studies`.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from bench.eval.metrics import METRICS, TABLES, Metric, RowTable
from bench.eval.wsd import ALL_WORDS
from bench.report import figures, gradient_figures, probe_figures, studies
from bench.report.markup import Block, Figure, mean_sd, number, plural
from bench.report.tables import GRADIENT_FLOW, micro_averaged_wsd_tasks

GRADIENT_FLOW_KS = (1, 5, 10, 20, 50)  # the distances the gradient-flow table shows (the figure has every k)
# A Spearman ρ over fewer pairs says little (MC-30 on the Lee corpus: 3 covered pairs, ρ = 1.000):
# the similarity tables and figures show "–" and the count instead.
MIN_SCORED_PAIRS = 20
# The titles of the report's one-of-a-kind figures (the claims ledger quotes their first
# words); a figure per corpus is titled by `_titled`.
FLOW_TITLE = "Gradient norm against distance k, per recurrent cell (mean over seeds)"
DEPTH_TITLE = "Probe accuracy against relative depth: one panel per task, one line per model (mean over seeds)"
QUALITY_AGAINST_COST = (
    (figures.SIMILARITY_AGAINST_SPEED, "Word vectors: similarity against training speed, one panel per corpus · "
                                       "matrix"),
    (figures.PERPLEXITY_AGAINST_TIME, "Language models: perplexity against training time, one panel per corpus · "
                                      "matrix"),
)


def _figures_by_corpus(frame: pd.DataFrame, draw: Callable[[pd.DataFrame, str], bytes | None],
                       what: str) -> list[Figure]:
    """One figure per corpus (and matrix) of `frame`: `draw(rows of that corpus, title)` -> PNG
    or None, the title naming what it shows and the corpus."""
    drawn = []
    for corpus, sub in frame.groupby("corpus", sort=False):
        title = _titled(what, corpus)
        drawn.append(Figure(draw(sub, title), title))
    return drawn


def _titled(what: str, corpus: str) -> str:
    """A figure's title: what it shows and of which corpus (· matrix, in a combined report)."""
    return f"{what}, corpus {corpus}"


def _model_order(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["model"]))


def _over_seeds(values: pd.Series, metric: Metric, digits: int = 3) -> str:
    """The seeds' values as `metric` aggregates them: "mean ± sd", or the median."""
    if metric.aggregation == "mean":
        return mean_sd(values, digits)
    return number(metric.aggregate(values), f".{digits}f")


def own_coverage(wordsim: pd.DataFrame) -> pd.DataFrame:
    """wordsim rows as (model, seed, benchmark, scored, spearman): each model on the pairs it covers.

    `scored` counts the covered pairs: under `oov = "zero"` the others are scored too, but as
    similarity 0, which ranks nothing."""
    return wordsim.assign(scored=wordsim["pairs"] - wordsim["oov_pairs"])[
        ["model", "seed", "benchmark", "scored", "spearman"]]


def like_for_like(pair_scores: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Spearman ρ of every (model, seed) of one table (one corpus and matrix) on the pairs that
    every cell of that table covers, per similarity set.

    Returns rows (model, seed, benchmark, scored, spearman), `scored` being the intersection's
    size (spearman NaN below MIN_SCORED_PAIRS), and one sentence per reason a set was left out:
    some cells hold no per-pair scores for it (results written before rows kept them), or the
    cells scored different pair lists under one name."""
    rows, differ = [], []
    lacking: dict[str, list[str]] = {}  # cells lacking per-pair scores -> the sets they leave out
    for benchmark, sub in pair_scores.groupby("benchmark", sort=False):
        missing = sub[sub["scores"].isna()]
        if not missing.empty:
            cells = ", ".join(f"`{model}` (seed {', '.join(map(str, group['seed']))})"
                              for model, group in missing.groupby("model", sort=False))
            lacking.setdefault(cells, []).append(benchmark)
            continue
        golds = [gold for gold, _ in sub["scores"]]
        if any(not np.array_equal(gold, golds[0]) for gold in golds[1:]):
            differ.append(benchmark)
            continue
        # (cells, pairs): True where that cell's vectors cover both words of the pair
        covered = np.array([~np.isnan(cosine) for _, cosine in sub["scores"]])
        shared = covered.all(axis=0)  # (pairs,)
        count = int(shared.sum())
        for cell, (gold, cosine) in zip(sub.itertuples(), sub["scores"]):
            rho = stats.spearmanr(gold[shared], cosine[shared]).statistic if count >= MIN_SCORED_PAIRS else np.nan
            rows.append({"model": cell.model, "seed": cell.seed, "benchmark": benchmark, "scored": count,
                         "spearman": float(rho)})
    every = pair_scores["benchmark"].nunique()
    notes = [f"{'every set' if len(sets) == every else ', '.join(sets)}: the results of {cells} hold no per-pair "
             f"scores (written before result rows kept them; re-running those cells with `--force` adds them)"
             for cells, sets in lacking.items()]
    if differ:
        notes.append(f"{', '.join(differ)}: the cells scored different pair lists under one name")
    return pd.DataFrame(rows, columns=["model", "seed", "benchmark", "scored", "spearman"]), notes


def spearman_table(scores: pd.DataFrame, header_counts: dict[str, int]) -> pd.DataFrame:
    """One row per model, one column per set headed by `header_counts[set]`: mean ± sd of ρ over
    seeds, or "–" and the fewest pairs scored where any seed scored fewer than MIN_SCORED_PAIRS."""
    rows = []
    for model in _model_order(scores):
        sub = scores[scores["model"] == model]
        row = {"model": model, "seeds": sub["seed"].nunique() or "–"}  # –: vectors not trained here
        for benchmark, count in header_counts.items():
            cells = sub[sub["benchmark"] == benchmark]
            fewest = cells["scored"].min()
            row[f"{benchmark} ({count:,})"] = (f"– ({int(fewest)})" if fewest < MIN_SCORED_PAIRS
                                               else _over_seeds(cells["spearman"], METRICS["spearman"], 3))
        rows.append(row)
    return pd.DataFrame(rows)


def _heatmap(scores: pd.DataFrame, header_counts: dict[str, int], title: str, corpus: str) -> Figure:
    """`scores` (as `spearman_table` takes them) as a models x sets heatmap: the mean over seeds,
    "– (n)" where a seed scored fewer than MIN_SCORED_PAIRS pairs; columns headed as the table's."""
    grouped = scores.groupby(["model", "benchmark"], sort=False)
    order, columns = _model_order(scores), list(header_counts)
    scored = grouped["scored"].min().unstack().reindex(index=order, columns=columns)
    mean = grouped["spearman"].mean().unstack().reindex(index=order, columns=columns).where(
        scored >= MIN_SCORED_PAIRS)
    labels = [f"{benchmark} ({count:,})" for benchmark, count in header_counts.items()]
    mean.columns = scored.columns = labels
    title = _titled(f"{title}: Spearman ρ per model and set", corpus)
    return Figure(figures.similarity_heatmap(mean, scored, title), title)


def wordsim_section(wordsim: pd.DataFrame, pair_scores: pd.DataFrame) -> list[Block]:
    lines: list[Block] = [f"## {TABLES['wordsim'].heading}", "",
             f"Two tables per corpus: each model on the pairs its own vocabulary covers (headers: the set's "
             f"pairs), and every model on the pairs all models of the table cover (like for like; headers: the "
             f"pairs scored). A set with fewer than {MIN_SCORED_PAIRS} scored pairs shows – and its count.", ""]
    for corpus, frame in wordsim.groupby("corpus", sort=False):
        benchmarks = list(dict.fromkeys(frame["benchmark"]))
        totals = {b: int(frame[frame["benchmark"] == b]["pairs"].max()) for b in benchmarks}
        own = own_coverage(frame)
        lines += [f"### corpus `{corpus}`", "", "Own coverage:", "",
                  _heatmap(own, totals, "Own coverage (each model on the pairs it covers)", corpus),
                  spearman_table(own, totals), ""]
        shared, notes = like_for_like(pair_scores[pair_scores["corpus"] == corpus])
        if shared.empty:
            lines += ["Like for like: no set could be scored on shared pairs here (below: why).", ""]
        else:
            counts = {b: int(shared[shared["benchmark"] == b]["scored"].iloc[0])
                      for b in dict.fromkeys(shared["benchmark"])}
            lines += ["Like for like (the pairs every model here covers):", "",
                      _heatmap(shared, counts, "Like for like (the pairs every model here covers)", corpus),
                      spearman_table(shared, counts), ""]
        lines += ["Like for like left out:", *[f"- {note}" for note in notes], ""] if notes else []
        coverage = []
        for model in _model_order(frame):
            sub = frame[frame["model"] == model]
            sub = sub[sub["seed"].isna() | (sub["seed"] == sub["seed"].min())]  # one seed's (or no seed's) rows
            coverage.append({"model": model, **{b: f"{int(r.oov_pairs)}/{int(r.pairs)}"
                                                for r in sub.itertuples() for b in [r.benchmark]}})
        lines += ["Out-of-vocabulary pairs (OOV / all; covered pairs are scored):", "",
                  pd.DataFrame(coverage), ""]
    return lines


def analogy_section(analogy: pd.DataFrame) -> list[Block]:
    lines: list[Block] = [f"## {TABLES['analogy'].heading}", ""]
    for corpus, frame in analogy.groupby("corpus", sort=False):
        rows = []
        for model in _model_order(frame):
            for method in dict.fromkeys(frame["method"]):
                sub = frame[(frame["model"] == model) & (frame["method"] == method)]
                row = {"model": model, "method": method}
                for section in ("semantic", "syntactic", "total"):
                    part = sub[sub["section"] == section]
                    row[section] = _over_seeds(part["accuracy"] * 100, METRICS["analogy_accuracy"], 1)
                total = sub[sub["section"] == "total"].iloc[0]
                row["answered / all"] = f"{int(total.questions - total.oov_questions)}/{int(total.questions)}"
                rows.append(row)
        lines += [f"### corpus `{corpus}` (percent)", "", pd.DataFrame(rows), ""]
    return lines


def perplexity_section(perplexity: pd.DataFrame, throughput: pd.DataFrame) -> list[Block]:
    """The perplexity per corpus: a figure and a table with each row's protocol. A model that
    trained nothing on the corpus (no training tokens/s in `throughput`: a pretrained LM) is
    drawn apart as not comparable."""
    metric = METRICS["word_perplexity"]
    lines: list[Block] = [f"## {TABLES['perplexity'].heading}", "",
             "Each row's protocol: vocabulary size, the unknown-token rate of the test split (unknown "
             "words are scored as the `<unk>` symbol: a closed-vocabulary perplexity), whether "
             "sentence ends are scored, and the context the model had.", "",
             "Open-vocabulary rows (pretrained subword LMs such as `smollm2-135m`; vocabulary = their "
             "subword tokens, unknown rate 0) read the same words as text and report exp(total NLL of the "
             "text / number of words). That is not directly comparable to a closed-vocabulary `<unk>` "
             "perplexity: there every out-of-vocabulary test word is predicted as the one `<unk>` symbol, "
             "whose probability is the total over all rare words, while a subword model pays for the exact "
             "spelling of each rare word; it also never saw this corpus' training split.", ""]
    for corpus, frame in perplexity.groupby("corpus", sort=False):
        title = _titled("Test perplexity per model", corpus)
        rows = []
        for model in _model_order(frame):
            sub = frame[frame["model"] == model]
            test = sub[sub["split"] == "test"]
            rows.append({"model": model, "seeds": sub["seed"].nunique(),
                         "validation": _over_seeds(sub[sub["split"] == "validation"]["perplexity"], metric, 1),
                         "test": _over_seeds(test["perplexity"], metric, 1),
                         "vocab": int(sub["vocab_size"].iloc[0]),
                         "test unk rate": f"{test['unk_rate'].iloc[0]:.3f}" if len(test) else "–",
                         "sentence ends": "scored" if sub["sentence_ends_scored"].iloc[0] else "none",
                         "context": sub["context"].iloc[-1]})
        lines += [f"### corpus `{corpus}`", "",
                  Figure(figures.perplexity(frame, title, _pretrained(frame, throughput)), title),
                  pd.DataFrame(rows), ""]
    return lines


def _pretrained(perplexity: pd.DataFrame, throughput: pd.DataFrame) -> dict[str, str]:
    """model -> why its perplexity is apart, for the models of `perplexity` (one corpus) that
    trained nothing on it: no train tokens/s among `throughput`'s rows of that corpus."""
    trained = set(throughput[(throughput["phase"] == "train") & throughput["tokens_per_s"].notna()
                             & throughput["corpus"].isin(perplexity["corpus"])]["model"])
    reasons = {}
    for model, sub in perplexity.groupby("model", sort=False):
        if model not in trained:
            open_vocabulary = (sub["unk_rate"] == 0).all()  # no word is unknown to a subword LM
            reasons[model] = "pretrained" + (", open vocabulary" if open_vocabulary else "") + ", not trained here"
    return reasons


def throughput_section(throughput: pd.DataFrame) -> list[Block]:
    lines: list[Block] = ["## Cost (training tokens/s, wall time, peak memory; quality is reported apart)", "",
             "Tokens/s counts the corpus tokens each model trains on (after the vocabulary rule) "
             "times epochs. Peak memory is the process' resident set during the phase (CUDA: "
             "peak allocated).", ""]
    title = "Training tokens/s per model: one panel per corpus · matrix, one log scale"
    plot = figures.throughput(throughput, title)
    if plot is None:
        lines += ["No model in this folder has a training tokens/s (pretrained models train nothing here), so "
                  "there is no throughput figure.", ""]
    else:
        lines += [Figure(plot, title)]
    rows = []
    for (model, corpus, device, phase), sub in throughput.groupby(["model", "corpus", "device", "phase"], sort=False):
        rows.append({"model": model, "corpus": corpus, "device": device, "phase": phase,
                     "tokens/s": mean_sd(sub["tokens_per_s"], 0), "wall s": mean_sd(sub["wall_s"], 1),
                     "peak MiB": f"{sub['peak_mem_mb'].max():.0f}"})
    lines += [pd.DataFrame(rows), ""]
    return lines


def metric_section(table: RowTable, frame: pd.DataFrame) -> list[Block]:
    """The section of a registered metric that has none of its own (none without rows): per
    corpus, one row per model and text column of its rows (a set's name, a split), each
    measured column aggregated over seeds as its metric declares, under the table's heading."""
    if frame.empty:
        return []
    measured = table.measured_columns
    cell = ("model", "corpus", "seed", "matrix")
    keys = ["model", *(column for column in table.columns
                       if column not in (*measured, *cell) and pd.api.types.is_string_dtype(frame[column]))]
    lines: list[Block] = [f"## {table.heading}", ""]
    for corpus, rows in frame.groupby("corpus", sort=False):
        shown = [{**dict(zip(keys, values)), "seeds": sub["seed"].nunique(),
                  **{column: _over_seeds(sub[column], metric) for column, metric in measured.items()}}
                 for values, sub in rows.groupby(keys, sort=False)]
        lines += [f"### corpus `{corpus}`", "", pd.DataFrame(shown), ""]
    return lines


def absent(heading: str, sentence: str) -> list[Block]:
    return [f"## {heading}", "", sentence, ""]


def quality_cost_section(frames: dict[str, pd.DataFrame]) -> list[Block]:
    wordsim = frames["wordsim"]
    wordsim = wordsim[wordsim["pairs"] - wordsim["oov_pairs"] >= MIN_SCORED_PAIRS]  # as the similarity tables
    table = figures.quality_and_cost(wordsim, frames["perplexity"], frames["throughput"])
    if table[["spearman", "perplexity"]].isna().all(axis=None):
        return absent("Quality against training cost",
                       "No model in this folder has both a quality score and a measured training cost: run a "
                       "matrix that trains models, e.g. `lm-lineage run --matrix standard-vectors --out DIR`.")
    plots = [Figure(figures.quality_vs_cost(table, measure, title), title) for measure, title in QUALITY_AGAINST_COST]
    rows = [{"model": model, "corpus": corpus, "device": device, "mean ρ over sets": number(row.spearman, ".3f"),
             "test perplexity": number(row.perplexity, ".1f"), "train tokens/s": number(row.tokens_per_s, ",.0f"),
             "train wall s": number(row.wall_s, ".1f")}
            for (model, corpus, device), row in table.iterrows()]
    return ["## Quality against training cost (means over seeds)", "",
            "Pretrained models train nothing here, so they have no training tokens/s (their wall seconds are the "
            "time they took to load) and no point in the figures of report.html; nor has a model whose training "
            "counts no tokens (`svd-ppmi`). A figure's panel shows a corpus with two such points or more. The "
            f"mean ρ leaves out sets with fewer than {MIN_SCORED_PAIRS} covered pairs.", "", *plots,
            pd.DataFrame(rows), ""]


def gradient_flow_section(flow: pd.DataFrame | None) -> list[Block]:
    heading = "Gradient flow: |d loss_t / d h_(t-k)| in freshly initialized recurrent LMs"
    if flow is None:
        return absent(heading, f"No {GRADIENT_FLOW.file} in this folder: {GRADIENT_FLOW.producer}.")
    shown = [k for k in GRADIENT_FLOW_KS if k in set(flow["k"])]
    means = flow[flow["k"].isin(shown)].groupby(["model", "k"], sort=False)["grad_norm"].mean().unstack()
    rows = [{"model": model, **{f"k={k}": f"{means.loc[model, k]:.2e}" for k in shown}} for model in means.index]
    return [f"## {heading}", "",
            f"How much the loss at step t can still learn from the state k steps back; mean over "
            f"{flow['seed'].nunique()} seed(s), from `{GRADIENT_FLOW.file}`.", "",
            Figure(gradient_figures.gradient_flow(flow, FLOW_TITLE), FLOW_TITLE),
            pd.DataFrame(rows), ""]


def layer_probe_section(probe: pd.DataFrame) -> list[Block]:
    """The POS probe per model, probe corpus and layer (ELMo's biLMs and the pretrained
    transformers alike), with ELMo's layers 1 and 2 against Peters et al."""
    table = TABLES["pos_probe"]
    if probe.empty:
        return absent(table.title, "No POS probe rows in this folder: run a matrix with a `[probe]` section (one row "
                               "per model, corpus, seed and layer), e.g. `lm-lineage run --matrix elmo --out DIR`.")
    layers = list(dict.fromkeys(probe["layer"]))
    rows = []
    for (model, corpus), sub in probe.groupby(["model", "corpus"], sort=False):
        rows.append({"model": model, "corpus": corpus, "seeds": sub["seed"].nunique(),
                     **{f"layer {layer}": _over_seeds(sub[sub["layer"] == layer]["accuracy"] * 100, table.metrics[0], 1)
                        for layer in layers}})
    return [f"## {table.heading}", "",
            *_figures_by_corpus(probe, probe_figures.layer_probe, "POS probe accuracy per layer and model"),
            pd.DataFrame(rows), "",
            *studies.layer_one_against_two(probe, "POS", task="POS")]


def wsd_probe_section(wsd: pd.DataFrame, pos: pd.DataFrame) -> list[Block]:
    """The word-sense probe per model, layer and method (per word and micro-averaged), the best
    layer of every layered model per task, and the figure of accuracy against relative depth."""
    table = TABLES["wsd_probe"]
    if wsd.empty:
        return absent(table.title, "No word-sense probe rows in this folder: run a matrix with `[probe] task = "
                                "\"wsd\"` or `\"pos+wsd\"`, e.g. `lm-lineage run --matrix probes --out DIR`.")
    lines: list[Block] = [f"## {table.heading}", "",
             "For each ambiguous word apart, classifiers fit on the train instances and scored on the test "
             "instances of the frozen representation of the target token: `centroid` (Peters et al. 2018: the "
             "nearest sense centroid by cosine) and `linear` (softmax regression; `mix` and `mix-ln`: through a "
             "learned scalar mix of the layers, plain and layer-normalised). `all` is micro-averaged over every "
             "test instance. References without a model: "
             "`most-frequent-sense`, `naive-bayes` (bag of words of the instance, add-one smoothing) and "
             "`most-frequent-sense-per-form`. Static word vectors get the `bag-of-context` layer: the mean of the "
             "vectors of the words within ±k of the target. A static vector of the target word alone is the same "
             "in every context, so it is not run: a classifier on it gives every occurrence of a word form one "
             "sense and can do no better than `most-frequent-sense-per-form`.", ""]
    for corpus, frame in wsd.groupby("corpus", sort=False):
        words = [w for w in dict.fromkeys(frame["word"]) if w != ALL_WORDS]
        rows = []
        for (model, layer, method), sub in frame.groupby(["model", "layer", "method"], sort=False):
            rows.append({"model": model, "layer": layer, "method": method, "seeds": sub["seed"].nunique(),
                         "all": _over_seeds(sub[sub["word"] == ALL_WORDS]["accuracy"] * 100, table.metrics[0], 1),
                         **{word: _over_seeds(sub[sub["word"] == word]["accuracy"] * 100, table.metrics[0], 1)
                            for word in words}})
        n = plural(int(frame[frame["word"] == ALL_WORDS]["instances"].max()), "test instance")
        lines += [f"### corpus `{corpus}` ({n})", "", pd.DataFrame(rows), ""]
        for method in ("linear", "centroid"):
            micro = frame[(frame["word"] == ALL_WORDS) & (frame["method"] == method)]
            lines += studies.layer_one_against_two(micro, f"WSD ({method}, micro-averaged)", task="WSD")
        lines += studies.best_layer_against_references(frame, corpus)
    tasks = _depth_frame(wsd, pos)
    best = _best_layers(tasks)
    if not best.empty:
        lines += ["Best layer per model and task (mean over seeds; relative depth = layer / number of layers, "
                  "0 = the embeddings):", "", best, "",
                  Figure(probe_figures.probe_depth(tasks, DEPTH_TITLE), DEPTH_TITLE), ""]
    return lines


def _depth_frame(wsd: pd.DataFrame, pos: pd.DataFrame) -> pd.DataFrame:
    """model, task, layer, accuracy, seed rows of the layered models: POS (linear), WSD by the
    linear probe and by the centroid (micro-averaged). A model run by several matrices is
    labelled with its matrix."""
    parts = micro_averaged_wsd_tasks(wsd)
    if not pos.empty:
        parts.append(pos.assign(task="POS (linear)"))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.assign(layer=frame["layer"].astype(str))
    layered = frame.groupby("model")["layer"].transform(lambda layers: layers.str.fullmatch(r"\d+").sum() > 1)
    frame = frame[layered]
    several = frame.groupby("model")["matrix"].transform("nunique") > 1
    model = frame["model"].where(~several, frame["model"] + " (" + frame["matrix"].astype(str) + ")")
    return frame.assign(model=model)[["model", "task", "layer", "accuracy", "seed"]]


def _best_layers(tasks: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (model, task), sub in tasks.groupby(["model", "task"], sort=False):
        means = sub.groupby("layer", sort=False)["accuracy"].mean()
        numeric = means[means.index.str.fullmatch(r"\d+")]
        if numeric.empty:
            continue
        depth = max(int(layer) for layer in numeric.index)
        layer = numeric.idxmax()
        rows.append({"model": model, "task": task, "best layer": layer, "relative depth": f"{int(layer) / depth:.2f}",
                     "accuracy": f"{numeric.max() * 100:.1f}",
                     "layer 0": f"{numeric.get('0', float('nan')) * 100:.1f}",
                     "top layer": f"{numeric[str(depth)] * 100:.1f}",
                     "mix": number(means.get("mix", float("nan")) * 100, ".1f"),
                     "seeds": sub["seed"].nunique()})
    return pd.DataFrame(rows)


def _hardware(device: dict) -> str:
    host = f"{device.get('cpu')}, {device.get('cpu_count')} cores, {device.get('torch_threads')} torch threads"
    if device["type"] != "cuda":
        return f"CPU ({host})"
    memory = f"{device['total_mem_mb'] / 1024:.0f} GiB" if device.get("total_mem_mb") else "memory unknown"
    return (f"GPU {device.get('name')} ({memory}, CUDA {device.get('cuda')}, driver {device.get('driver')}) "
            f"on {host}")


def environment_section(results: list[dict]) -> list[Block]:
    lines: list[Block] = ["## Environment: how these numbers were made", ""]
    # The commands that made the cells, not the folder's matrix.json alone: a re-run of some
    # models (--models ... --force) rewrites matrix.json, and the other cells keep theirs.
    commands = Counter((str(r.get("cell", {}).get("matrix")), str(r.get("command"))) for r in results)
    for (matrix, command), cells in sorted(commands.items()):
        lines.append(f"- matrix `{matrix}`: `{command}` ({plural(cells, 'cell')})")
    commits = sorted({str(r.get("git_commit")) for r in results})
    # A cell whose worker died before it returned (bench.run.executors) has no device or versions.
    hardware = sorted({_hardware(r["device"]) for r in results if "device" in r})
    versions: dict[str, set[str]] = {}  # a combined folder may hold runs made with different versions
    for r in results:
        for library, version in r.get("versions", {}).items():
            versions.setdefault(library, set()).add(str(version))
    lines += [f"- git commit(s): {', '.join(commits)}", f"- hardware: {'; '.join(hardware)}",
              "- libraries: " + ", ".join(f"{k} {' / '.join(sorted(v))}" for k, v in versions.items()), ""]
    return lines

