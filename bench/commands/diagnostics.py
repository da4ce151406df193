"""The diagnostics beside the matrix runs: `gradient-flow` (how far back gradients reach in the
RNN LMs; with --regime-seeds, the Elman RNN's regimes by spectral radius and clipping) and
`gates` (the quality gates' spread over seeds, which the gate tests read)."""

from __future__ import annotations

from bench.errors import BenchError
from bench.run import outdir

# Defaults of the output flags: under runs/, never the committed results/ (`bench.run.outdir.check_named`).
GRADIENT_FLOW_OUT = "runs/gradient-flow"
GATES_OUT = "runs/quality_gates.json"


def gradient_flow_command(args) -> int:
    from bench.eval import diagnostics
    from bench.report import gradient_figures
    from bench.run.results import write_bytes_atomic

    if args.seeds < 1:
        raise BenchError(f"--seeds must be >= 1, got {args.seeds}")
    if args.regime_seeds < 0:
        raise BenchError(f"--regime-seeds must be >= 0, got {args.regime_seeds}")
    out = GRADIENT_FLOW_OUT if args.out is None else args.out
    with outdir.claim(out, "--out", named=args.out is not None) as out_dir:
        path = out_dir / "gradient_flow.csv"
        table = diagnostics.gradient_flow_table(diagnostics.GradientFlowConfig(corpus=args.corpus),
                                                list(range(args.seeds)), args.data_dir)
        files = {path.name: csv_bytes(table), "gradient_flow.png": gradient_figures.gradient_flow(table)}
        if args.regime_seeds:
            config = diagnostics.GradientRegimesConfig()
            prepared = diagnostics.prepare_regime_corpus(config, args.data_dir)
            seeds = list(range(args.regime_seeds))
            regimes = diagnostics.gradient_regimes_table(config, prepared, seeds)
            clipping = diagnostics.clipping_table(config, prepared, seeds)
            files |= {"gradient_regimes.csv": csv_bytes(regimes),
                      "gradient_regimes.png": gradient_figures.gradient_regimes(regimes),
                      "clipping.csv": csv_bytes(clipping), "clipping.png": gradient_figures.clipping(clipping)}
        for name, content in files.items():  # all measured before the first write: nothing half-written
            if content is not None:  # None: a figure with nothing to plot (an empty table) is not written
                write_bytes_atomic(out_dir / name, content)
    far = table[table["k"] == table["k"].max()].groupby("model")["grad_norm"].mean()
    print(f"{path} (plot: {path.with_suffix('.png').name}): mean |d loss_t / d h_(t-k)| at k={table['k'].max()}: "
          + ", ".join(f"{model} {value:.3g}" for model, value in far.items()))
    if args.regime_seeds:
        verdicts = {"Elman gradients explode above radius 1 (init; smallest growth factor per step above 1)":
                    diagnostics.explodes_above_one(regimes),
                    "LSTM/GRU keep gradients 50 steps back (trained; log10 retention over vanishing Elman)":
                    diagnostics.gated_cells_keep_gradients(regimes),
                    "clipping prevents divergence (final loss unclipped - clipped, nats/token)":
                    diagnostics.clipping_prevents_divergence(clipping)}
        for claim, verdict in verdicts.items():
            print(f"{claim}: {'holds' if verdict.holds else 'does not hold'} in {verdict.seeds_holding} of "
                  f"{verdict.seeds} seed(s), effect {verdict.effect:.3g} ± {verdict.sd:.3g}")
    return 0


def csv_bytes(table) -> bytes:
    return table.to_csv(index=False, float_format="%.6g").encode("utf-8")


def gates_command(args) -> int:
    from bench.run.gates import SCHEMA, record_gates
    from bench.run.results import write_json_atomic

    if args.seeds < 2:
        raise BenchError(f"--seeds must be >= 2 (a gate's tolerance is the spread over seeds), got {args.seeds}")
    out = outdir.as_path(GATES_OUT if args.out is None else args.out, "--out")
    # The record is one file: checked as our own or new, and its folder locked, before minutes of training.
    outdir.check_record(out, "--out", SCHEMA)
    outdir.check_named(out.parent, "--out", named=args.out is not None)
    with outdir.locked(out.parent, "--out"):
        payload = record_gates(list(range(args.seeds)))
        write_json_atomic(out, payload)
    print(f"{out}: {len(payload['gates'])} quality gates over {args.seeds} seeds")
    return 0
