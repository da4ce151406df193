"""Tables and the reports, rendered from result files only (never edited by hand).

`render(results_dir, out_dir)` writes `wordsim.csv`, `analogy.csv`, `perplexity.csv`,
`throughput.csv` (one row per cell and seed), `pos_probe.csv` (when cells probed), `report.md`
(the same aggregated over seeds, mean ± sd) and `report.html` (the same sections and tables plus the figures of
`bench.report.figures`, embedded, so the one file can be mailed or archived). `results_dir` may be one
matrix's output or a folder of several (every `*.json` result below it is read), with the
diagnostics' `gradient_flow.csv` and `pos_probe.csv` at its top level.

Sections are built once as a list of blocks, then written twice: a `str` is one line of a
small Markdown subset (`#` headings, `- ` items, paragraphs with `code`), a DataFrame is a
table and a `Figure` an image (HTML only: report.md keeps to the numbers).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from bench.eval import metrics
from bench.eval.wsd import ALL_WORDS, BAG_OF_CONTEXT, MFS, NAIVE_BAYES
from bench.report import figures
from bench.report.claims import claims_section
from bench.errors import BenchError
from bench.run.results import ROW_KEYS, load_results, write_text_atomic

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
GRADIENT_FLOW_KS = (1, 5, 10, 20, 50)  # the distances the gradient-flow table shows (the figure has every k)
# A Spearman ρ over fewer pairs says little (MC-30 on the Lee corpus: 3 covered pairs, ρ = 1.000):
# the similarity tables and figures show "–" and the count instead.
MIN_SCORED_PAIRS = 20


@dataclass(frozen=True)
class Figure:
    png: bytes | None  # None: nothing to plot, and the section says why in words instead
    alt: str
    caption: str = ""  # under the image, e.g. which corpus and matrix it shows


def _figures_by_corpus(frame: pd.DataFrame, draw: Callable[[pd.DataFrame], bytes | None],
                       alt: str) -> list[Figure]:
    """One figure per corpus (and matrix) of `frame`: `draw(rows of that corpus)` -> PNG or None."""
    return [Figure(draw(sub), f"{alt}, corpus {corpus}", f"corpus `{corpus}`")
            for corpus, sub in frame.groupby("corpus", sort=False)]


Block = str | pd.DataFrame | Figure


@dataclass(frozen=True)
class Diagnostic:
    """A table a diagnostic writes at the top of a results folder (it has no result JSON)."""
    file: str
    columns: tuple[str, ...]
    producer: str  # how to make the file: the report says it where the file is absent


GRADIENT_FLOW = Diagnostic("gradient_flow.csv", ("model", "k", "grad_norm", "seed"),
                           "run `lm-lineage gradient-flow --out DIR`")
POS_PROBE = Diagnostic("pos_probe.csv", ("model", "corpus", "seed", "layer", "accuracy"),
                       "the ELMo layer probe (`bench.eval.probe.run_probe`, one row per model, corpus, seed and layer) "
                       "writes it: run a matrix with a `[probe]` section, e.g. `lm-lineage run --matrix elmo`")


WSD_PROBE_COLUMNS = ("model", "corpus", "seed", "layer", "word", "method", "accuracy")
WSD_FILE = "wsd_probe.csv"


def tables(results: list[dict]) -> dict[str, pd.DataFrame]:
    """One frame per table, from results whose rows carry the keys that `read_result` checks
    (bench.run.results.ROW_KEYS)."""
    wordsim, analogy, perplexity, throughput, failed, pos_probe, pair_scores = [], [], [], [], [], [], []
    wsd_probe = []
    for r in results:
        cell = r["cell"]
        key = {"model": cell["model"], "corpus": cell["corpus"], "seed": cell["seed"], "matrix": cell["matrix"]}
        if r["status"] != "ok":
            failed.append({**key, "error": r["error"]})
            continue
        for row in r["metrics"].get("wordsim", []):
            # A cell that yields several models' rows (the biLM) names each row's model.
            wordsim.append({**key, "model": row.get("model", cell["model"]),
                            **{k: row[k] for k in ROW_KEYS["wordsim"]}})
            pair_scores.append({**key, "model": row.get("model", cell["model"]), "benchmark": row["benchmark"],
                                "scores": metrics.pair_scores(row)})
        for row in r["metrics"].get("analogy", []):
            analogy.append({**key, "model": row.get("model", cell["model"]),
                            **{k: row[k] for k in ROW_KEYS["analogy"]}})
        for row in r["metrics"].get("perplexity", []):
            perplexity.append({**key, "model": row.get("model", cell["model"]),
                               **{k: row[k] for k in ROW_KEYS["perplexity"]}})
        for row in r["metrics"].get("pos_probe", []):
            # corpus: the tagged corpus probed; train_corpus: the one the model was trained on.
            pos_probe.append({**key, "model": row["model"], "corpus": row["probe_corpus"], "layer": str(row["layer"]),
                              "accuracy": row["accuracy"], "train_corpus": cell["corpus"],
                              "probe_train": row["train_tokens"], "probe_eval": row["eval_tokens"]})
        for row in r["metrics"].get("wsd_probe", []):
            wsd_probe.append({**key, "model": row["model"], "corpus": row["probe_corpus"], "layer": str(row["layer"]),
                              "word": row["word"], "method": row["method"], "accuracy": row["accuracy"],
                              "train_corpus": cell["corpus"], "instances": row["instances"],
                              "probe_train": row["train_instances"], "probe_eval": row["eval_instances"]})
        for phase, t in r["timings"].items():
            peak = t["peak_cuda_mb"] if t.get("peak_cuda_mb") is not None else t["peak_rss_mb"]
            throughput.append({**key, "device": t["device"], "phase": phase, "tokens_per_s": t["tokens_per_s"],
                               "wall_s": t["wall_s"], "peak_mem_mb": peak, "started": r.get("started")})
    # `matrix` comes last: the same model, corpus and seed may be a cell of two matrices
    # (brown-lm and brown-lm-sentences score different tokens) in a combined folder.
    columns = {
        "wordsim": ["model", "corpus", "seed", "benchmark", "pairs", "oov_pairs", "spearman", "pearson", "matrix"],
        "analogy": ["model", "corpus", "seed", "method", "section", "questions", "oov_questions", "accuracy",
                    "matrix"],
        "perplexity": ["model", "corpus", "seed", "split", "perplexity", "scored_tokens", "vocab_size", "unk_rate",
                       "sentence_ends_scored", "context", "matrix"],
        "throughput": ["model", "corpus", "seed", "device", "phase", "tokens_per_s", "wall_s", "peak_mem_mb",
                       "started", "matrix"],
        "failed": ["model", "corpus", "seed", "error", "matrix"],
        # probe_train / probe_eval: the probe's whole train and test slices (POS: tokens, WSD:
        # instances), which the caps of a matrix set; instances: the test instances of the row's word
        "pos_probe": [*POS_PROBE.columns, "train_corpus", "matrix", "probe_train", "probe_eval"],
        "wsd_probe": [*WSD_PROBE_COLUMNS, "train_corpus", "matrix", "instances", "probe_train", "probe_eval"],
        # scores: (gold, cosine) per pair of the set, or None for a row that did not keep them
        "pair_scores": ["model", "corpus", "seed", "benchmark", "scores", "matrix"],
    }
    frames = {"wordsim": wordsim, "analogy": analogy, "perplexity": perplexity, "throughput": throughput,
              "failed": failed, "pos_probe": pos_probe, "pair_scores": pair_scores, "wsd_probe": wsd_probe}
    built = {name: pd.DataFrame(rows, columns=columns[name]) for name, rows in frames.items()}
    # Every probing cell adds the most-frequent-tag baseline of the same sentences: keep one copy.
    built["pos_probe"] = built["pos_probe"].drop_duplicates(ignore_index=True)
    built["wsd_probe"] = built["wsd_probe"].drop_duplicates(ignore_index=True)  # the same for the WSD references
    return built


def _mean_sd(values: pd.Series, digits: int) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def _model_order(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["model"]))


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(_markdown_cell, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(map(_markdown_cell, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _markdown_cell(value) -> str:
    """A table cell as text: names come from the user (a corpus is any folder path), so a `<`
    or `&` must not become HTML where the Markdown is rendered, nor a `|` a new column."""
    return html.escape(str(value), quote=False).replace("|", "\\|")


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
    rows, lacking, differ = [], {}, []
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
        row = {"model": model, "seeds": sub["seed"].nunique()}
        for benchmark, count in header_counts.items():
            cells = sub[sub["benchmark"] == benchmark]
            fewest = cells["scored"].min()
            row[f"{benchmark} ({count:,})"] = (f"– ({int(fewest)})" if fewest < MIN_SCORED_PAIRS
                                               else _mean_sd(cells["spearman"], 3))
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
    return Figure(figures.similarity_heatmap(mean, scored, title), f"{title}: Spearman ρ per model and set, "
                                                                   f"corpus {corpus}")


def _wordsim_section(wordsim: pd.DataFrame, pair_scores: pd.DataFrame) -> list[Block]:
    lines = ["## Word similarity (Spearman ρ, higher is better; mean ± sd over seeds)", "",
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
            sub = frame[(frame["model"] == model) & (frame["seed"] == frame[frame["model"] == model]["seed"].min())]
            coverage.append({"model": model, **{b: f"{int(r.oov_pairs)}/{int(r.pairs)}"
                                                for r in sub.itertuples() for b in [r.benchmark]}})
        lines += ["Out-of-vocabulary pairs (OOV / all; covered pairs are scored):", "",
                  pd.DataFrame(coverage), ""]
    return lines


def _analogy_section(analogy: pd.DataFrame) -> list[Block]:
    lines = ["## Google analogies (accuracy over answered questions, higher is better)", ""]
    for corpus, frame in analogy.groupby("corpus", sort=False):
        rows = []
        for model in _model_order(frame):
            for method in dict.fromkeys(frame["method"]):
                sub = frame[(frame["model"] == model) & (frame["method"] == method)]
                row = {"model": model, "method": method}
                for section in ("semantic", "syntactic", "total"):
                    part = sub[sub["section"] == section]
                    row[section] = _mean_sd(part["accuracy"] * 100, 1)
                total = sub[sub["section"] == "total"].iloc[0]
                row["answered / all"] = f"{int(total.questions - total.oov_questions)}/{int(total.questions)}"
                rows.append(row)
        lines += [f"### corpus `{corpus}` (percent)", "", pd.DataFrame(rows), ""]
    return lines


def _perplexity_section(perplexity: pd.DataFrame) -> list[Block]:
    lines = ["## Perplexity (per word, lower is better; mean ± sd over seeds)", "",
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
        rows = []
        for model in _model_order(frame):
            sub = frame[frame["model"] == model]
            test = sub[sub["split"] == "test"]
            rows.append({"model": model, "seeds": sub["seed"].nunique(),
                         "validation": _mean_sd(sub[sub["split"] == "validation"]["perplexity"], 1),
                         "test": _mean_sd(test["perplexity"], 1),
                         "vocab": int(sub["vocab_size"].iloc[0]),
                         "test unk rate": f"{test['unk_rate'].iloc[0]:.3f}" if len(test) else "–",
                         "sentence ends": "scored" if sub["sentence_ends_scored"].iloc[0] else "none",
                         "context": sub["context"].iloc[-1]})
        lines += [f"### corpus `{corpus}`", "",
                  Figure(figures.perplexity(frame), f"test perplexity per model, corpus {corpus}"),
                  pd.DataFrame(rows), ""]
    return lines


def _throughput_section(throughput: pd.DataFrame) -> list[Block]:
    lines = ["## Cost (training tokens/s, wall time, peak memory; quality is reported apart)", "",
             "Tokens/s counts the corpus tokens each model trains on (after the vocabulary rule) "
             "times epochs. Peak memory is the process' resident set during the phase (CUDA: "
             "peak allocated).", ""]
    plots = [plot for plot in _figures_by_corpus(throughput, figures.throughput, "training tokens/s per model")
             if plot.png is not None]
    if not plots:
        lines += ["No model in this folder has a training tokens/s (pretrained models train nothing here), so "
                  "there is no throughput figure.", ""]
    lines += plots
    rows = []
    for (model, corpus, device, phase), sub in throughput.groupby(["model", "corpus", "device", "phase"], sort=False):
        rows.append({"model": model, "corpus": corpus, "device": device, "phase": phase,
                     "tokens/s": _mean_sd(sub["tokens_per_s"], 0), "wall s": _mean_sd(sub["wall_s"], 1),
                     "peak MiB": f"{sub['peak_mem_mb'].max():.0f}"})
    lines += [pd.DataFrame(rows), ""]
    return lines


def _parity_section(wordsim: pd.DataFrame, throughput: pd.DataFrame) -> list[Block]:
    lines = []
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
                f"; {_count(speed['apart'], 'pair')} made over an hour apart left out")
            if speed is not None and speed["pairs"] == 0:
                rows.append({"ours": ours, "gensim": theirs, "measure": "train tokens/s", "ours value": "–",
                             "gensim value": "–", "difference": f"no interleaved pair{apart}",
                             "target": f"≥ {SPEED_TARGET}×", "met": "–"})
            elif speed is not None:
                rows.append({"ours": ours, "gensim": theirs, "measure": "train tokens/s",
                             "ours value": f"{speed['ours_tokens_per_s']:,.0f}",
                             "gensim value": f"{speed['gensim_tokens_per_s']:,.0f}",
                             "difference": f"{speed['median']:.2f}× ({speed['min']:.2f}–{speed['max']:.2f}, "
                                           f"{_count(speed['pairs'], 'seed pair')}{apart})",
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


def _glove_against_skipgram_section(results: list[dict]) -> list[Block]:
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


def _analogy_speed_section(results: list[dict]) -> list[Block]:
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


def _absent(heading: str, sentence: str) -> list[Block]:
    return [f"## {heading}", "", sentence, ""]


def _quality_cost_section(frames: dict[str, pd.DataFrame]) -> list[Block]:
    wordsim = frames["wordsim"]
    wordsim = wordsim[wordsim["pairs"] - wordsim["oov_pairs"] >= MIN_SCORED_PAIRS]  # as the similarity tables
    table = figures.quality_and_cost(wordsim, frames["perplexity"], frames["throughput"])
    plots = [plot for plot in _figures_by_corpus(table.reset_index(), _quality_vs_cost,
                                                 "quality against training speed or time") if plot.png is not None]
    if not plots:
        return _absent("Quality against training cost",
                       "No model in this folder has both a quality score and a measured training cost: run a "
                       "matrix that trains models, e.g. `lm-lineage run --matrix standard-vectors --out DIR`.")
    rows = [{"model": model, "corpus": corpus, "device": device, "mean ρ over sets": _number(row.spearman, ".3f"),
             "test perplexity": _number(row.perplexity, ".1f"), "train tokens/s": _number(row.tokens_per_s, ",.0f"),
             "train wall s": _number(row.wall_s, ".1f")}
            for (model, corpus, device), row in table.iterrows()]
    return ["## Quality against training cost (means over seeds)", "",
            "Pretrained models train nothing here, so they have no training tokens/s (and no point in the "
            f"figure of report.html). The mean ρ leaves out sets with fewer than {MIN_SCORED_PAIRS} covered "
            "pairs.", "", *plots, pd.DataFrame(rows), ""]


def _quality_vs_cost(rows: pd.DataFrame) -> bytes | None:
    return figures.quality_vs_cost(rows.set_index(["model", "corpus", "device"]))


def _number(value: float, spec: str) -> str:
    return "–" if pd.isna(value) else format(value, spec)


def _gradient_flow_section(flow: pd.DataFrame | None) -> list[Block]:
    heading = "Gradient flow: |d loss_t / d h_(t-k)| in freshly initialized recurrent LMs"
    if flow is None:
        return _absent(heading, f"No {GRADIENT_FLOW.file} in this folder: {GRADIENT_FLOW.producer}.")
    shown = [k for k in GRADIENT_FLOW_KS if k in set(flow["k"])]
    means = flow[flow["k"].isin(shown)].groupby(["model", "k"], sort=False)["grad_norm"].mean().unstack()
    rows = [{"model": model, **{f"k={k}": f"{means.loc[model, k]:.2e}" for k in shown}} for model in means.index]
    return [f"## {heading}", "",
            f"How much the loss at step t can still learn from the state k steps back; mean over "
            f"{flow['seed'].nunique()} seed(s), from `{GRADIENT_FLOW.file}`.", "",
            Figure(figures.gradient_flow(flow), "gradient norm against distance k, per recurrent cell"),
            pd.DataFrame(rows), ""]


def _layer_probe_section(probe: pd.DataFrame | None) -> list[Block]:
    heading = "ELMo layer probe: linear POS tagging accuracy per layer"
    if probe is None:
        return _absent(heading, f"No {POS_PROBE.file} in this folder: {POS_PROBE.producer}.")
    layers = list(dict.fromkeys(probe["layer"]))
    rows = []
    for (model, corpus), sub in probe.groupby(["model", "corpus"], sort=False):
        rows.append({"model": model, "corpus": corpus, "seeds": sub["seed"].nunique(),
                     **{f"layer {layer}": _mean_sd(sub[sub["layer"] == layer]["accuracy"] * 100, 1)
                        for layer in layers}})
    return [f"## {heading} (percent, mean ± sd over seeds)", "",
            *_figures_by_corpus(probe, figures.layer_probe, "POS probe accuracy per layer and model"),
            pd.DataFrame(rows), "",
            *_layer_one_against_two(probe, "POS", peters_better="1")]


def _wsd_probe_section(wsd: pd.DataFrame, pos: pd.DataFrame | None) -> list[Block]:
    """The word-sense probe per model, layer and method (per word and micro-averaged), the best
    layer of every layered model per task, and the figure of accuracy against relative depth."""
    heading = "Word-sense probe and layers against depth"
    if wsd.empty:
        return _absent(heading, "No word-sense probe rows in this folder: run a matrix with `[probe] task = "
                                "\"wsd\"` or `\"pos+wsd\"`, e.g. `lm-lineage run --matrix probes --out DIR`.")
    lines = [f"## {heading} (accuracy in percent, mean ± sd over seeds)", "",
             "For each ambiguous word apart, classifiers fit on the train instances and scored on the test "
             "instances of the frozen representation of the target token: `centroid` (Peters et al. 2018: the "
             "nearest sense centroid by cosine) and `linear` (softmax regression; `mix`: through a learned scalar "
             "mix of the layers). `all` is micro-averaged over every test instance. References without a model: "
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
                         "all": _mean_sd(sub[sub["word"] == ALL_WORDS]["accuracy"] * 100, 1),
                         **{word: _mean_sd(sub[sub["word"] == word]["accuracy"] * 100, 1) for word in words}})
        n = _count(int(frame[frame["word"] == ALL_WORDS]["instances"].max()), "test instance")
        lines += [f"### corpus `{corpus}` ({n})", "", pd.DataFrame(rows), ""]
        for method in ("linear", "centroid"):
            micro = frame[(frame["word"] == ALL_WORDS) & (frame["method"] == method)]
            lines += _layer_one_against_two(micro, f"WSD ({method}, micro-averaged)", peters_better="2")
        lines += _best_layer_against_references(frame, corpus)
    tasks = _depth_frame(wsd, pos)
    best = _best_layers(tasks)
    if not best.empty:
        lines += ["Best layer per model and task (mean over seeds; relative depth = layer / number of layers, "
                  "0 = the embeddings):", "", best, "",
                  Figure(figures.probe_depth(tasks), "probe accuracy against relative depth, one line per model "
                                                     "and task"), ""]
    return lines


def _best_layer_against_references(frame: pd.DataFrame, corpus: str) -> list[Block]:
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
    lines = []
    for model in layered:
        means = micro[(micro["model"] == model) & numeric].groupby("layer", sort=False)["accuracy"].mean()
        layer = means.idxmax()
        best = micro[(micro["model"] == model) & (micro["layer"] == layer)]["accuracy"]
        against = [f"{means[layer] - values.mean():+.1f} points against {name} ({_mean_sd(values, 1)}%"
                   + (f", {len(values)} seeds)" if len(values) > 1 else ")") for name, values in compared]
        lines += [f"WSD (linear, micro-averaged), `{model}` on `{corpus}`: its best single layer, {layer}, scores "
                  f"{_mean_sd(best, 1)}% ({_count(len(best), 'seed')}): " + "; ".join(against)
                  + f". Over {_count(n, 'test instance')} one accuracy near {means[layer]:.0f}% has a binomial "
                  f"standard error of {_binomial_se(means[layer] / 100, n) * 100:.1f} points.", ""]
    return lines


def _binomial_se(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n))


def _micro_averaged_wsd_tasks(wsd: pd.DataFrame) -> list[pd.DataFrame]:
    """The micro-averaged WSD rows as two tasks, "WSD (linear)" and "WSD (centroid)"."""
    return [wsd[(wsd["word"] == ALL_WORDS) & (wsd["method"] == method)].assign(task=f"WSD ({method})")
            for method in ("linear", "centroid")]


def _depth_frame(wsd: pd.DataFrame, pos: pd.DataFrame | None) -> pd.DataFrame:
    """model, task, layer, accuracy, seed rows of the layered models: POS (linear), WSD by the
    linear probe and by the centroid (micro-averaged). A model run by several matrices is
    labelled with its matrix."""
    parts = _micro_averaged_wsd_tasks(wsd)
    if pos is not None and "matrix" in pos:
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
                     "mix": _number(means.get("mix", float("nan")) * 100, ".1f"),
                     "seeds": sub["seed"].nunique()})
    return pd.DataFrame(rows)


def _layer_one_against_two(probe: pd.DataFrame, task: str, peters_better: str) -> list[Block]:
    """One sentence per model shaped like ELMo's biLM (layers 0, 1, 2) and probe corpus: which of
    layers 1 and 2 scores higher on `task`, mean ± sd over seeds and in how many seeds.
    Peters et al. (2018) found layer 1 the better one for POS and layer 2 for word sense."""
    lines = []
    probe = probe.assign(layer=probe["layer"].astype(str))  # a CSV read back may hold the layers as numbers
    for (model, corpus), sub in probe.groupby(["model", "corpus"], sort=False):
        numeric = sub["layer"][sub["layer"].str.fullmatch(r"\d+")].astype(int)
        by_seed = sub[sub["layer"].isin(["1", "2"])].pivot_table(index="seed", columns="layer", values="accuracy")
        if numeric.empty or numeric.max() != 2 or list(by_seed.columns) != ["1", "2"]:
            continue
        one, two = by_seed["1"].dropna() * 100, by_seed["2"].dropna() * 100
        higher, lower = ("1", "2") if one.mean() > two.mean() else ("2", "1")
        seeds_higher = int((by_seed[higher] > by_seed[lower]).sum())
        lines += [f"{task}, `{model}` on `{corpus}`: layer {higher} scores higher, {_mean_sd(one, 1)}% (layer 1) "
                  f"against {_mean_sd(two, 1)}% (layer 2), higher in {seeds_higher} of {len(by_seed)} seed(s); "
                  f"Peters et al. 2018 found layer {peters_better} the better one for this task.", ""]
    return lines


def _bilm_shape(config: dict) -> str:
    """What sets a biLM apart besides the text and time it trained on, from its cell's resolved
    config: its layers' width (both directions), LSTM cells, training softmax, and lower-cased
    training text (such a biLM reads its probes' words lower-cased too)."""
    model = config["model"]
    samples = model.get("softmax_samples", 0)  # absent: a cell from before the sampled softmax
    softmax = "full softmax" if not samples else f"{samples:,}-sample softmax"
    case = ", lower-cased text" if config["tokenizer"]["lowercase"] else ""
    return f"{2 * model['projection_dim']}-d layers, {model['hidden']} cells, {softmax}{case}"


def _probes_against_training(frames: dict[str, pd.DataFrame], results: list[dict]) -> pd.DataFrame:
    """matrix, seed, biLM (its shape), tokens (read in training), task, layer, accuracy of every
    trained model probed at layers 0, 1, 2 (ELMo's biLMs): how far its probes move with the
    text it has read."""
    shapes = pd.DataFrame([{"model": r["cell"]["model"], "corpus": r["cell"]["corpus"], "seed": r["cell"]["seed"],
                            "matrix": r["cell"]["matrix"], "biLM": _bilm_shape(r["config"])}
                           for r in results if r["status"] == "ok" and r["cell"].get("family") == "bilm"],
                          columns=["model", "corpus", "seed", "matrix", "biLM"])
    train = frames["throughput"][frames["throughput"]["phase"] == "train"]
    train = train.assign(tokens=train["tokens_per_s"] * train["wall_s"])[["model", "corpus", "seed", "matrix",
                                                                          "tokens"]]
    train = train.merge(shapes, on=["model", "corpus", "seed", "matrix"])
    parts = [frames["pos_probe"].assign(task="POS (linear)"), *_micro_averaged_wsd_tasks(frames["wsd_probe"])]
    probed = pd.concat(parts, ignore_index=True)
    columns = ["model", "matrix", "seed", "biLM", "tokens", "task", "layer", "accuracy", "probe_train", "probe_eval"]
    if probed.empty:
        return pd.DataFrame(columns=columns)
    layer = probed["layer"].astype(str)
    # ELMo's shape, judged on every layer probed: 0, 1 and 2 and no others (a transformer's
    # first three layers are not a biLM's).
    shaped = layer.where(layer.str.fullmatch(r"\d+")).groupby(probed["model"]).transform(
        lambda layers: set(layers.dropna()) == {"0", "1", "2"})
    probed = probed[shaped.astype(bool) & layer.isin(["0", "1", "2", "mix"])]
    joined = probed.merge(train, left_on=["model", "train_corpus", "seed", "matrix"],
                          right_on=["model", "corpus", "seed", "matrix"], suffixes=("", "_trained"))
    return joined[joined["tokens"] > 0][columns]


def _training_tokens_section(trained: pd.DataFrame) -> list[Block]:
    """ELMo's probes against the tokens its biLM read, when the folder holds biLMs that read
    different amounts (several matrices or budgets); nothing otherwise."""
    if trained.empty or trained.groupby(["model", "matrix"]).ngroups < 2:
        return []
    rows = []
    for (model, matrix), sub in trained.groupby(["model", "matrix"], sort=False):
        row = {"model": model, "matrix": matrix, "biLM": " / ".join(sub["biLM"].unique()),
               "seeds": sub["seed"].nunique(),
               "training tokens (M)": _mean_sd(sub.drop_duplicates("seed")["tokens"] / 1e6, 2)}
        for task, layer in (("POS (linear)", "1"), ("POS (linear)", "2"), ("WSD (linear)", "1"),
                            ("WSD (linear)", "2"), ("WSD (centroid)", "2")):
            row[f"{task.split()[0]} {task.split()[1][1:-1]} L{layer}"] = _mean_sd(
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
            "POS: 95% is the target for layer 1.", "",
            pd.DataFrame(rows), "",
            Figure(figures.probes_against_tokens(trained), "ELMo probe accuracy against training tokens read"), ""]


def _diagnostic_table(results_dir: Path, diagnostic: Diagnostic) -> pd.DataFrame | None:
    """The diagnostic's CSV at the top of `results_dir`, None when there is none."""
    path = results_dir / diagnostic.file
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [column for column in diagnostic.columns if column not in frame.columns]
    if missing:
        raise BenchError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(diagnostic.columns)}")
    if frame.empty:
        raise BenchError(f"{path}: holds no rows; {diagnostic.producer} again or remove the file")
    return frame


def _hardware(device: dict) -> str:
    host = f"{device.get('cpu')}, {device.get('cpu_count')} cores, {device.get('torch_threads')} torch threads"
    if device["type"] != "cuda":
        return f"CPU ({host})"
    memory = f"{device['total_mem_mb'] / 1024:.0f} GiB" if device.get("total_mem_mb") else "memory unknown"
    return (f"GPU {device.get('name')} ({memory}, CUDA {device.get('cuda')}, driver {device.get('driver')}) "
            f"on {host}")


def _count(n: int, noun: str) -> str:
    """'1 cell', '3 cells'."""
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def _environment_section(results: list[dict]) -> list[Block]:
    lines = ["## Environment: how these numbers were made", ""]
    # The commands that made the cells, not the folder's matrix.json alone: a re-run of some
    # models (--models ... --force) rewrites matrix.json, and the other cells keep theirs.
    commands = Counter((str(r.get("cell", {}).get("matrix")), str(r.get("command"))) for r in results)
    for (matrix, command), cells in sorted(commands.items()):
        lines.append(f"- matrix `{matrix}`: `{command}` ({_count(cells, 'cell')})")
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


def _to_markdown(blocks: list[Block]) -> str:
    # Markdown keeps to the numbers: the figures are in report.html.
    return "\n".join(_markdown(b) if isinstance(b, pd.DataFrame) else b for b in blocks if not isinstance(b, Figure))


def _inline_html(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _block_html(block: Block) -> str:
    if isinstance(block, pd.DataFrame):
        return block.to_html(index=False, border=0, na_rep="–")
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        image = f'<img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">'
        return f"<figure>{image}<figcaption>{_inline_html(block.caption)}</figcaption></figure>" if block.caption \
            else image
    level = len(block) - len(block.lstrip("#"))
    if level:
        return f"<h{level}>{_inline_html(block[level:].strip())}</h{level}>"
    if block.startswith("- "):
        return f"<li>{_inline_html(block[2:])}</li>"
    return f"<p>{_inline_html(block)}</p>"


# After every image has had its chance to load, the page records how many did and the
# smallest one's size: a headless browser (tests/test_report_html.py) reads them from the DOM.
HTML_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lm-lineage report</title>
<style>
body { font-family: sans-serif; max-width: 75em; margin: 1em auto; padding: 0 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.15em 0.5em; text-align: right; white-space: nowrap; }
img { display: block; max-width: 100%; margin: 0.5em 0; }
figure { margin: 0.5em 0 1em; }
figcaption { font-size: 0.85em; color: #555; }
</style>
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.imagesLoaded = images.filter((image) => image.complete && image.naturalWidth > 0).length;
  document.body.dataset.imagesTotal = images.length;
  // The smallest decoded figure: a broken or empty plot would be a few pixels.
  document.body.dataset.imagesMinWidth = Math.min(...images.map((image) => image.naturalWidth));
  document.body.dataset.imagesMinHeight = Math.min(...images.map((image) => image.naturalHeight));
});
</script>
</head><body>
"""


def _to_html(blocks: list[Block]) -> str:
    parts, in_list = [HTML_HEAD], False
    for block in blocks:
        if (isinstance(block, Figure) and block.png is None) or (isinstance(block, str) and not block):
            continue
        item = isinstance(block, str) and block.startswith("- ")
        if item != in_list:
            parts.append("<ul>" if item else "</ul>")
            in_list = item
        parts.append(_block_html(block))
    parts.append("</ul>\n</body></html>\n" if in_list else "</body></html>\n")
    return "\n".join(parts)


def _result_sections(results: list[dict], frames: dict[str, pd.DataFrame]) -> list[Block]:
    """The sections drawn from the result files; a required one with no input says what makes it."""
    blocks = []
    if frames["wordsim"].empty:
        blocks += _absent("Word similarity", "No word-similarity results in this folder: run a word-vector "
                                             "matrix, e.g. `lm-lineage run --matrix standard-vectors --out DIR`.")
    else:
        blocks += _parity_section(frames["wordsim"], frames["throughput"]) + _glove_against_skipgram_section(results)
        blocks += _wordsim_section(frames["wordsim"], frames["pair_scores"])
    if not frames["analogy"].empty:
        blocks += _analogy_section(frames["analogy"])
    blocks += _analogy_speed_section(results)
    if frames["perplexity"].empty:
        blocks += _absent("Perplexity", "No perplexity results in this folder: run a language-model matrix, "
                                        "e.g. `lm-lineage run --matrix brown-lm --out DIR`.")
    else:
        blocks += _perplexity_section(frames["perplexity"])
    if frames["throughput"].empty:
        blocks += _absent("Cost", "No timings in this folder (no cell finished): run a matrix with "
                                  "`lm-lineage run --matrix NAME --out DIR`.")
    else:
        blocks += _throughput_section(frames["throughput"]) + _quality_cost_section(frames)
    if not frames["failed"].empty:
        blocks += ["## Failed cells", "", frames["failed"], ""]
    return blocks


def _label_corpora_by_matrix(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Where the results come from several matrices, each section groups by "corpus · matrix":
    two matrices may run the same model on the same corpus under another protocol or settings,
    and their rows must not be averaged together."""
    matrices = {m for frame in frames.values() if "matrix" in frame for m in frame["matrix"].dropna()}
    if len(matrices) < 2:
        return frames
    return {name: frame.assign(corpus=frame["corpus"] + " · " + frame["matrix"]) if "matrix" in frame else frame
            for name, frame in frames.items()}


def render(results_dir: Path, out_dir: Path | None = None) -> Path:
    """Write the CSV tables, report.md and report.html for every result under `results_dir`."""
    out_dir = out_dir or results_dir
    results = load_results(results_dir)
    frames = tables(results)
    flow = _diagnostic_table(results_dir, GRADIENT_FLOW)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not frames["pos_probe"].empty:
        frames["pos_probe"].to_csv(out_dir / POS_PROBE.file, index=False, float_format="%.6g")
    if frames["wsd_probe"].empty:
        (out_dir / WSD_FILE).unlink(missing_ok=True)  # no stale file from an earlier render
    else:
        frames["wsd_probe"].to_csv(out_dir / WSD_FILE, index=False, float_format="%.6g")
    for name in ("wordsim", "analogy", "perplexity", "throughput"):
        path = out_dir / f"{name}.csv"
        if frames[name].empty:
            path.unlink(missing_ok=True)  # a table with no rows here: no stale file from an earlier render
        else:
            frames[name].to_csv(path, index=False, float_format="%.6g")
    blocks = ["# lm-lineage report", "",
              f"Rendered from {len(results)} result files in `{results_dir}` by `lm-lineage report`.", ""]
    blocks += claims_section(results, frames, flow)  # the claims ledger opens the report
    trained_probes = _probes_against_training(frames, results)  # joined on the unlabelled corpus names
    frames = _label_corpora_by_matrix(frames)  # the CSVs above keep corpus and matrix apart
    # The cells' probe rows; without any, a pos_probe.csv made apart.
    probe = frames["pos_probe"] if not frames["pos_probe"].empty else _diagnostic_table(results_dir, POS_PROBE)
    blocks += _result_sections(results, frames)
    blocks += _gradient_flow_section(flow) + _layer_probe_section(probe)
    blocks += _wsd_probe_section(frames["wsd_probe"], probe)
    blocks += _training_tokens_section(trained_probes)
    blocks += _environment_section(results)
    report = out_dir / "report.md"
    write_text_atomic(report, _to_markdown(blocks))
    write_text_atomic(out_dir / "report.html", _to_html(blocks))
    return report
