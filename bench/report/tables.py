"""Tables: the rows of the result files as one DataFrame per table, and the CSVs written from them.

`tables(results)` builds the frames every section reads; `write_csvs` writes one row per cell
and seed of each (`wordsim.csv`, `analogy.csv`, `perplexity.csv`, `throughput.csv`,
`pos_probe.csv` and `wsd_probe.csv`). A diagnostic that has no result JSON (the gradient flow)
writes its own CSV at the top of a results folder: `read_diagnostic` reads it back, checked.
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
from bench.run.results import ROW_KEYS


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

# The tables written as `<name>.csv`, one row per cell and seed. The probe tables are read
# from the cells' rows only: a CSV left by an earlier render is never read back.
CSV_TABLES = ("wordsim", "analogy", "perplexity", "throughput", "pos_probe", "wsd_probe")
POS_PROBE_COLUMNS = ("model", "corpus", "seed", "layer", "accuracy")
WSD_PROBE_COLUMNS = ("model", "corpus", "seed", "layer", "word", "method", "accuracy")
# One row per learned scalar mix of a probe (POS; WSD micro-averaged: the mean of its per-word
# mixes): task "POS" | "WSD", mix "mix" | "mix-ln" (bench.eval.probe.MIXES), the layer numbers
# mixed and their weights s_l, gamma, centre = E[layer] = sum_l l * s_l, s2_minus_s1 (None
# unless layers 1 and 2 are mixed) and the mix's probe accuracy.
SCALAR_MIX_COLUMNS = ("model", "corpus", "seed", "task", "mix", "layers", "weights", "gamma", "centre", "s2_minus_s1",
                      "accuracy", "train_corpus", "matrix")


def tables(results: list[dict]) -> dict[str, pd.DataFrame]:
    """One frame per table, from results whose rows carry the keys that `read_result` checks
    (bench.run.results.ROW_KEYS)."""
    wordsim, analogy, perplexity, throughput, failed, pos_probe, pair_scores = [], [], [], [], [], [], []
    wsd_probe, scalar_mix = [], []
    for r in results:
        cell = r["cell"]
        key = row_key(r)  # vectors scored but not trained here: no corpus, no seed
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
                              "accuracy": row["accuracy"], "train_corpus": key["corpus"],
                              "probe_train": row["train_tokens"], "probe_eval": row["eval_tokens"]})
        for row in r["metrics"].get("wsd_probe", []):
            wsd_probe.append({**key, "model": row["model"], "corpus": row["probe_corpus"], "layer": str(row["layer"]),
                              "word": row["word"], "method": row["method"], "accuracy": row["accuracy"],
                              "train_corpus": key["corpus"], "instances": row["instances"],
                              "probe_train": row["train_instances"], "probe_eval": row["eval_instances"]})
        for task, rows_key in (("POS", "pos_probe"), ("WSD", "wsd_probe")):
            for row in r["metrics"].get(rows_key, []):
                row = _with_stored_pos_mix(r, row) if task == "POS" else row
                if "mix_weights" in row and row.get("word", ALL_WORDS) == ALL_WORDS:
                    scalar_mix.append(_scalar_mix_row(key, cell, task, row))
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
        "pos_probe": [*POS_PROBE_COLUMNS, "train_corpus", "matrix", "probe_train", "probe_eval"],
        "wsd_probe": [*WSD_PROBE_COLUMNS, "train_corpus", "matrix", "instances", "probe_train", "probe_eval"],
        # scores: (gold, cosine) per pair of the set, or None for a row that did not keep them
        "pair_scores": ["model", "corpus", "seed", "benchmark", "scores", "matrix"],
        "scalar_mix": list(SCALAR_MIX_COLUMNS),
    }
    frames = {"wordsim": wordsim, "analogy": analogy, "perplexity": perplexity, "throughput": throughput,
              "failed": failed, "pos_probe": pos_probe, "pair_scores": pair_scores, "wsd_probe": wsd_probe,
              "scalar_mix": scalar_mix}
    built = {name: pd.DataFrame(rows, columns=columns[name]) for name, rows in frames.items()}
    # Every probing cell adds the most-frequent-tag baseline of the same sentences: keep one copy.
    built["pos_probe"] = built["pos_probe"].drop_duplicates(ignore_index=True)
    built["wsd_probe"] = built["wsd_probe"].drop_duplicates(ignore_index=True)  # the same for the WSD references
    return built


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
    for name in CSV_TABLES:
        path = out_dir / f"{name}.csv"
        if frames[name].empty:
            path.unlink(missing_ok=True)
        else:
            frames[name].to_csv(path, index=False, float_format="%.6g")
