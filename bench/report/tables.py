"""Tables: the rows of the result files as one DataFrame per table, and the CSVs written from them.

`tables(results)` builds the frames every section reads: one per registered metric
(bench.eval.metrics.TABLES: `wordsim`, `analogy`, `perplexity`, `pos_probe`, `wsd_probe`, ...,
their columns declared by the metric's row type) and the cost of each phase (`throughput`);
`write_csvs` writes one row per cell and seed of each as `<name>.csv`. A diagnostic that has no
result JSON (the gradient flow) writes its own CSV at the top of a results folder:
`read_diagnostic` reads it back, checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.eval import diagnostics, metrics
from bench.eval.probe import mix_fields
from bench.eval.wsd import ALL_WORDS
from bench.run.not_trained import row_key


@dataclass(frozen=True)
class Diagnostic:
    """A table a diagnostic writes at the top of a results folder (it has no result JSON)."""
    file: str
    columns: tuple[str, ...]
    producer: str  # how to make the file: the report says it where the file is absent


GRADIENT_FLOW = Diagnostic("gradient_flow.csv", ("model", "k", "grad_norm", "seed"),
                           "run `lm-lineage gradient-flow --out DIR`")
# Both regimes of the gradient problem (`gradient-flow --regime-seeds N`), in a gradient-flow
# folder of their own under the results (its CSVs are not result JSON).
REGIMES_PRODUCER = "run `lm-lineage gradient-flow --out DIR/gradient-flow --regime-seeds 2`"
GRADIENT_REGIMES = Diagnostic("gradient-flow/gradient_regimes.csv", tuple(diagnostics.REGIME_COLUMNS),
                              REGIMES_PRODUCER)
CLIPPING = Diagnostic("gradient-flow/clipping.csv", tuple(diagnostics.CLIPPING_COLUMNS), REGIMES_PRODUCER)

# Besides every registered metric's table (bench.eval.metrics.TABLES, one row per stored row):
# the cost of each phase, from the cells' timings, written as `throughput.csv`; the failed
# cells; each word-similarity row's per-pair scores (for like-for-like correlations); each
# probe's learned scalar mixes.
THROUGHPUT_COLUMNS = ["model", "corpus", "seed", "device", "phase", "tokens_per_s", "wall_s", "peak_mem_mb", "started",
                      "matrix"]
FAILED_COLUMNS = ["model", "corpus", "seed", "error", "matrix"]
# scores: (gold, cosine) per pair of the set, or None for a row that did not keep them
PAIR_SCORES_COLUMNS = ["model", "corpus", "seed", "benchmark", "scores", "matrix"]
# One row per learned scalar mix of a probe (POS; WSD micro-averaged: the mean of its per-word
# mixes): task "POS" | "WSD", mix "mix" | "mix-ln" (bench.eval.probe.MIXES), the layer numbers
# mixed and their weights s_l, gamma, centre = E[layer] = sum_l l * s_l, s2_minus_s1 (None
# unless layers 1 and 2 are mixed) and the mix's probe accuracy.
SCALAR_MIX_COLUMNS = ["model", "corpus", "seed", "task", "mix", "layers", "weights", "gamma", "centre", "s2_minus_s1",
                      "accuracy", "train_corpus", "matrix"]


def csv_tables() -> tuple[str, ...]:
    """The tables written as `<name>.csv`, one row per cell and seed: every registered metric's
    and the cost's. They are read from the cells' rows only: a CSV left by an earlier render is
    never read back."""
    return (*metrics.TABLES, "throughput")


def tables(results: list[dict]) -> dict[str, pd.DataFrame]:
    """One frame per table, from results whose rows carry the keys that `read_result` checks:
    each registered metric's (columns: `RowTable.columns`), "throughput", "failed", "pair_scores"
    and "scalar_mix"."""
    rows: dict[str, list[dict]] = {name: [] for name in (*metrics.TABLES, "throughput", "failed", "pair_scores",
                                                         "scalar_mix")}
    for r in results:
        cell = r["cell"]
        key = row_key(r)  # vectors scored but not trained here: no corpus, no seed
        if r["status"] != "ok":
            rows["failed"].append({**key, "error": r["error"]})
            continue
        for name, table in metrics.TABLES.items():
            rows[name] += [table.table_row(row, key) for row in r["metrics"].get(name, [])]
        rows["pair_scores"] += [{**key, "model": row.get("model", cell["model"]), "benchmark": row["benchmark"],
                                 "scores": metrics.pair_scores(row)} for row in r["metrics"].get("wordsim", [])]
        for task, rows_key in (("POS", "pos_probe"), ("WSD", "wsd_probe")):
            for row in r["metrics"].get(rows_key, []):
                row = _with_stored_pos_mix(r, row) if task == "POS" else row
                if "mix_weights" in row and row.get("word", ALL_WORDS) == ALL_WORDS:
                    rows["scalar_mix"].append(_scalar_mix_row(key, cell, task, row))
        for phase, t in r["timings"].items():
            peak = t["peak_cuda_mb"] if t.get("peak_cuda_mb") is not None else t["peak_rss_mb"]
            rows["throughput"].append({**key, "device": t["device"], "phase": phase, "tokens_per_s": t["tokens_per_s"],
                                       "wall_s": t["wall_s"], "peak_mem_mb": peak, "started": r.get("started")})
    columns = {**{name: table.columns for name, table in metrics.TABLES.items()}, "throughput": THROUGHPUT_COLUMNS,
               "failed": FAILED_COLUMNS, "pair_scores": PAIR_SCORES_COLUMNS, "scalar_mix": SCALAR_MIX_COLUMNS}
    frames = {name: pd.DataFrame(table_rows, columns=columns[name]) for name, table_rows in rows.items()}
    for name, table in metrics.TABLES.items():
        if table.repeated_rows:  # e.g. every probing cell adds the baseline of the same sentences: keep one copy
            frames[name] = frames[name].drop_duplicates(ignore_index=True)
    return frames


def _with_stored_pos_mix(result: dict, row: dict) -> dict:
    """A POS probe row with its scalar mix's fields: its own, or for the "mix" row of a result
    made before rows stored them, the weights and gamma the cell's training record kept
    (`training.probe_scalar_mix`, over the layers `[probe] layers` picked)."""
    stored = result.get("training", {}).get("probe_scalar_mix")
    if "mix_weights" in row or row["layer"] != "mix" or stored is None:
        return row
    layers = result["config"].get("probe", {}).get("layers") or list(range(len(stored["weights"])))
    return {**row, **mix_fields(stored["weights"], stored["gamma"], layers)}


def _scalar_mix_row(key: dict, cell: dict, task: str, row: dict) -> dict:
    """One learned scalar mix of a probe row (bench.eval.probe.mix_fields): the weights as tuples
    (hashable, so the frame's duplicates can be dropped like the probe tables')."""
    return {**key, "model": row["model"], "corpus": row["probe_corpus"], "task": task, "mix": row["layer"],
            "layers": tuple(row["mix_layers"]), "weights": tuple(row["mix_weights"]), "gamma": row["mix_gamma"],
            "centre": row["mix_centre"], "s2_minus_s1": row["mix_s2_minus_s1"], "accuracy": row["accuracy"],
            "train_corpus": cell["corpus"]}


def micro_averaged_wsd_tasks(wsd: pd.DataFrame) -> list[pd.DataFrame]:
    """The micro-averaged WSD rows as two tasks, "WSD (linear)" and "WSD (centroid)"."""
    return [wsd[(wsd["word"] == ALL_WORDS) & (wsd["method"] == method)].assign(task=f"WSD ({method})")
            for method in ("linear", "centroid")]


def read_diagnostic(results_dir: Path, diagnostic: Diagnostic) -> pd.DataFrame | None:
    """The diagnostic's CSV under `results_dir`, None when there is none."""
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


def label_corpora_by_matrix(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Where the results come from several matrices, each section groups by "corpus · matrix":
    two matrices may run the same model on the same corpus under another protocol or settings,
    and their rows must not be averaged together."""
    matrices = {m for frame in frames.values() if "matrix" in frame for m in frame["matrix"].dropna()}
    if len(matrices) < 2:
        return frames
    return {name: frame.assign(corpus=frame["corpus"] + " · " + frame["matrix"]) if "matrix" in frame else frame
            for name, frame in frames.items()}


def write_csvs(frames: dict[str, pd.DataFrame], out_dir: Path) -> None:
    """One CSV per table with rows; a table with none here leaves no stale file from an earlier render."""
    for name in csv_tables():
        path = out_dir / f"{name}.csv"
        if frames[name].empty:
            path.unlink(missing_ok=True)
        else:
            frames[name].to_csv(path, index=False, float_format="%.6g")
