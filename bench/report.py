"""Tables and the Markdown report, rendered from result JSON only (never edited by hand).

`render(results_dir, out_dir)` writes `wordsim.csv`, `analogy.csv`, `perplexity.csv`,
`throughput.csv` (one row per cell and seed) and `report.md` (the same aggregated over seeds, mean ± sd).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.results import load_results

PARITY_PAIRS = (("word2vec-cbow", "gensim-cbow"), ("word2vec-sg", "gensim-sg"))
PARITY_BENCHMARKS = ("WS-353-ALL", "SIMLEX-999", "MEN-TR-3k")
PARITY_TOLERANCE = 0.02
SPEED_TARGET = 0.5


def tables(results: list[dict]) -> dict[str, pd.DataFrame]:
    wordsim, analogy, perplexity, throughput, failed = [], [], [], [], []
    for r in results:
        cell = r["cell"]
        key = {"model": cell["model"], "corpus": cell["corpus"], "seed": cell["seed"]}
        if r["status"] != "ok":
            failed.append({**key, "error": r["error"]})
            continue
        for row in r["metrics"].get("wordsim", []):
            wordsim.append({**key, **{k: row[k] for k in ("benchmark", "pairs", "oov_pairs", "spearman", "pearson")}})
        for row in r["metrics"].get("analogy", []):
            analogy.append({**key, **{k: row[k] for k in ("method", "section", "questions", "oov_questions",
                                                          "accuracy")}})
        for row in r["metrics"].get("perplexity", []):
            perplexity.append({**key, **{k: row[k] for k in ("split", "perplexity", "scored_tokens", "vocab_size",
                                                             "unk_rate", "sentence_ends_scored", "context")}})
        for phase, t in r["timings"].items():
            peak = t["peak_cuda_mb"] if t.get("peak_cuda_mb") is not None else t["peak_rss_mb"]
            throughput.append({**key, "device": t["device"], "phase": phase, "tokens_per_s": t["tokens_per_s"],
                               "wall_s": t["wall_s"], "peak_mem_mb": peak})
    columns = {
        "wordsim": ["model", "corpus", "seed", "benchmark", "pairs", "oov_pairs", "spearman", "pearson"],
        "analogy": ["model", "corpus", "seed", "method", "section", "questions", "oov_questions", "accuracy"],
        "perplexity": ["model", "corpus", "seed", "split", "perplexity", "scored_tokens", "vocab_size", "unk_rate",
                       "sentence_ends_scored", "context"],
        "throughput": ["model", "corpus", "seed", "device", "phase", "tokens_per_s", "wall_s", "peak_mem_mb"],
        "failed": ["model", "corpus", "seed", "error"],
    }
    frames = {"wordsim": wordsim, "analogy": analogy, "perplexity": perplexity, "throughput": throughput,
              "failed": failed}
    return {name: pd.DataFrame(rows, columns=columns[name]) for name, rows in frames.items()}


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
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _wordsim_section(wordsim: pd.DataFrame) -> list[str]:
    lines = ["## Word similarity (Spearman ρ, higher is better; mean ± sd over seeds)", ""]
    for corpus, frame in wordsim.groupby("corpus", sort=False):
        benchmarks = list(dict.fromkeys(frame["benchmark"]))
        rows = []
        for model in _model_order(frame):
            sub = frame[frame["model"] == model]
            cells = {b: _mean_sd(sub[sub["benchmark"] == b]["spearman"], 3) for b in benchmarks}
            rows.append({"model": model, "seeds": sub["seed"].nunique(), **cells})
        lines += [f"### corpus `{corpus}`", "", _markdown(pd.DataFrame(rows)), ""]
        coverage = []
        for model in _model_order(frame):
            sub = frame[(frame["model"] == model) & (frame["seed"] == frame[frame["model"] == model]["seed"].min())]
            coverage.append({"model": model, **{b: f"{int(r.oov_pairs)}/{int(r.pairs)}"
                                                for r in sub.itertuples() for b in [r.benchmark]}})
        lines += ["Out-of-vocabulary pairs (OOV / all; covered pairs are scored):", "",
                  _markdown(pd.DataFrame(coverage)), ""]
    return lines


def _analogy_section(analogy: pd.DataFrame) -> list[str]:
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
        lines += [f"### corpus `{corpus}` (percent)", "", _markdown(pd.DataFrame(rows)), ""]
    return lines


def _perplexity_section(perplexity: pd.DataFrame) -> list[str]:
    lines = ["## Perplexity (per word, lower is better; mean ± sd over seeds)", "",
             "Each row's protocol: vocabulary size, the unknown-token rate of the test split (unknown "
             "words are scored as the `<unk>` symbol: a closed-vocabulary perplexity), whether "
             "sentence ends are scored, and the context the model had.", ""]
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
        lines += [f"### corpus `{corpus}`", "", _markdown(pd.DataFrame(rows)), ""]
    return lines


def _throughput_section(throughput: pd.DataFrame) -> list[str]:
    lines = ["## Cost (training tokens/s, wall time, peak memory; quality is reported apart)", "",
             "Tokens/s counts the corpus tokens each model trains on (after the vocabulary rule) "
             "times epochs. Peak memory is the process' resident set during the phase (CUDA: "
             "peak allocated).", ""]
    rows = []
    for (model, corpus, device, phase), sub in throughput.groupby(["model", "corpus", "device", "phase"], sort=False):
        rows.append({"model": model, "corpus": corpus, "device": device, "phase": phase,
                     "tokens/s": _mean_sd(sub["tokens_per_s"], 0), "wall s": _mean_sd(sub["wall_s"], 1),
                     "peak MiB": f"{sub['peak_mem_mb'].max():.0f}"})
    lines += [_markdown(pd.DataFrame(rows)), ""]
    return lines


def _parity_section(wordsim: pd.DataFrame, throughput: pd.DataFrame) -> list[str]:
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
            speed = train[train["corpus"] == corpus]
            a = speed[speed["model"] == ours]["tokens_per_s"].mean()
            b = speed[speed["model"] == theirs]["tokens_per_s"].mean()
            if not (pd.isna(a) or pd.isna(b)):
                rows.append({"ours": ours, "gensim": theirs, "measure": "train tokens/s", "ours value": f"{a:,.0f}",
                             "gensim value": f"{b:,.0f}", "difference": f"{a / b:.2f}×",
                             "target": f"≥ {SPEED_TARGET}×", "met": "yes" if a / b >= SPEED_TARGET else "no"})
        if rows:
            lines += [f"## Ours against gensim at matched settings (corpus `{corpus}`, means over seeds)", "",
                      _markdown(pd.DataFrame(rows)), ""]
    return lines


def _analogy_speed_section(results: list[dict]) -> list[str]:
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
            _markdown(pd.DataFrame(rows)), ""]


def _environment_section(results: list[dict], results_dir: Path) -> list[str]:
    lines = ["## How these numbers were made", ""]
    for matrix_file in sorted(results_dir.rglob("matrix.json")):
        info = json.loads(matrix_file.read_text())
        lines.append(f"- matrix `{info['matrix']['name']}`: `{info['command']}`")
    commits = sorted({str(r.get("git_commit")) for r in results})
    devices = sorted({f"{r['device']['type']} ({r['device'].get('name')}, {r['device']['cpu_count']} cores)"
                      for r in results})
    versions = results[0]["versions"]
    lines += [f"- git commit(s): {', '.join(commits)}", f"- devices: {', '.join(devices)}",
              "- libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return lines


def render(results_dir: Path, out_dir: Path | None = None) -> Path:
    """Write the CSV tables and report.md for every result under `results_dir`."""
    out_dir = out_dir or results_dir
    results = load_results(results_dir)
    frames = tables(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("wordsim", "analogy", "perplexity", "throughput"):
        path = out_dir / f"{name}.csv"
        if frames[name].empty:
            path.unlink(missing_ok=True)  # a table with no rows here: no stale file from an earlier render
        else:
            frames[name].to_csv(path, index=False, float_format="%.6g")
    lines = ["# lm-lineage report", "",
             f"Rendered from {len(results)} result files in `{results_dir}` by `lm-lineage report`.", ""]
    if not frames["wordsim"].empty:
        lines += _parity_section(frames["wordsim"], frames["throughput"])
        lines += _wordsim_section(frames["wordsim"])
    if not frames["analogy"].empty:
        lines += _analogy_section(frames["analogy"])
    lines += _analogy_speed_section(results)
    if not frames["perplexity"].empty:
        lines += _perplexity_section(frames["perplexity"])
    if not frames["throughput"].empty:
        lines += _throughput_section(frames["throughput"])
    if not frames["failed"].empty:
        lines += ["## Failed cells", "", _markdown(frames["failed"]), ""]
    lines += _environment_section(results, results_dir)
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
