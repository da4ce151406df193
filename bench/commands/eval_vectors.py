"""`lm-lineage eval-vectors`: how good are my vectors? Word-vector files scored on the
similarity sets and analogies, beside glove-6b-50d, as a run of a matrix made here."""

from __future__ import annotations

from bench.commands.flags import split_names
from bench.commands.run import exit_code, run_and_render
from bench.errors import BenchError
from bench.eval import VECTOR_TASKS
from bench.run import outdir

EVAL_VECTORS_OUT = "runs/eval-vectors"  # never the committed results/ (`bench.run.outdir.check_named`)


def eval_vectors_command(args) -> int:
    """A run of a matrix made here: one `kind = "vectors"` row per file, plus glove-6b-50d
    (from the cache when scored before, bench.run.reference), on the embedded Lee corpus
    (which vectors read from files ignore: it only labels the cells, and bench.run.not_trained
    marks them so that no row claims it or a seed). The table printed and eval_vectors.csv come
    from bench.run.api's frame of each cell's rows."""
    import pandas as pd

    from bench.run import not_trained, reference
    from bench.run.api import VECTOR_COLUMNS, vector_frame
    from bench.run.config import add_vectors_model, matrix_from_dict, vectors_names
    from bench.run.executors import LocalExecutor
    from bench.run.results import load_results, write_text_atomic
    from bench.run.runner import cell_path

    tasks = split_names(args.tasks, "--tasks")
    unknown = [task for task in tasks if task not in VECTOR_TASKS]
    if unknown:
        raise BenchError(f"--tasks {args.tasks}: unknown {', '.join(unknown)}; "
                         f"expected some of {', '.join(VECTOR_TASKS)}")
    raw = {"description": "eval-vectors: word-vector files" + ("" if args.no_reference else
                                                                " scored beside " + reference.REFERENCE_VECTORS),
           "models": [] if args.no_reference else [reference.REFERENCE_VECTORS], "corpora": ["lee"], "seeds": 1,
           "eval": {"tasks": tasks}}
    names = [add_vectors_model(raw, name, path, "eval-vectors") for name, path in vectors_names(args.files,
                                                                                                  "eval-vectors")]
    matrix = matrix_from_dict(raw, "eval-vectors", "eval-vectors")
    out = EVAL_VECTORS_OUT if args.out is None else args.out
    with outdir.claim(out, "--out", named=args.out is not None) as out_dir:
        cached_cells = {}
        if not args.no_reference:
            cached = reference.cache_path(matrix, "lee", args.data_dir)
            reference_cell = cell_path(out_dir, reference.REFERENCE_VECTORS, "lee", 0)
            cached_cells[reference_cell] = cached
        # In this process: a worker per file would import torch and gensim again for each,
        # and scoring read vectors has no training timings that other cells could skew.
        failed, path = run_and_render(matrix, out_dir, args, LocalExecutor(isolate=False), "auto",
                                      cached_cells=cached_cells, before_render=not_trained.mark)
        if not args.no_reference:
            reference.keep(reference_cell, cached)
        scored = [vector_frame(r["metrics"]).assign(model=r["cell"]["model"])
                  for r in load_results(out_dir / "cells") if r["status"] == "ok"]
        columns = ["model", *VECTOR_COLUMNS]
        frame = pd.concat(scored, ignore_index=True)[columns] if scored else pd.DataFrame(columns=columns)
        write_text_atomic(out_dir / "eval_vectors.csv", frame.to_csv(index=False, float_format="%.6g"))
    if not args.quiet:
        print(vectors_table(frame, [*names, reference.REFERENCE_VECTORS]))
    print(f"results: {out_dir}/cells, eval_vectors.csv, tables and report: {path}")
    return exit_code(failed)


def vectors_table(frame, order: list[str]) -> str:
    """One line per model: Spearman rho per similarity set and analogy accuracy per method,
    each with the pairs or questions the model covers (too few pairs give no correlation)."""
    import pandas as pd

    from bench.report.sections import MIN_SCORED_PAIRS

    def cell(row) -> str:
        if row.task == "analogy":  # accuracy is NaN when no question is covered
            return f"– ({row.covered})" if pd.isna(row.score) else f"{100 * row.score:.1f}% ({row.covered})"
        return f"{row.score:.3f} ({row.covered})" if row.covered >= MIN_SCORED_PAIRS else f"– ({row.covered})"

    shown = frame.assign(cell=[cell(row) for row in frame.itertuples()],
                         benchmark=[b.replace("google-", "") + " (Google analogies)" if t == "analogy" else b
                                    for t, b in zip(frame["task"], frame["benchmark"])])
    table = shown.pivot(index="model", columns="benchmark", values="cell")
    table = table[list(dict.fromkeys(shown["benchmark"]))]  # similarity sets, then the analogy methods
    return (f"Spearman rho per similarity set (pairs the model covers; fewer than {MIN_SCORED_PAIRS}: –), "
            f"analogy accuracy (questions it covers):\n"
            + table.reindex([name for name in order if name in table.index])
            .rename_axis(index=None, columns=None).fillna("–").to_string())
