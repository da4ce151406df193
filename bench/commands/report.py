"""The commands over a folder of result files: `report` (tables, report.md and report.html),
`claims` (the claims ledger's verdicts) and `migrate` (old results keyed and renamed)."""

from __future__ import annotations

from pathlib import Path

from bench.run import outdir


def report_command(args) -> int:
    from bench.report import render as report

    # The tables go to --out, else into the results folder: either must take them.
    out, flag = (args.results, "--results") if args.out is None else (args.out, "--out")
    with outdir.claim(out, flag, named=args.out is not None) as out_dir:
        path = report.render(Path(args.results), out_dir)
    print(f"tables and report: {path} and {path.with_suffix('.html')}")
    return 0


def claims_command(args) -> int:
    from bench.report.claims import print_ledger
    from bench.report.render import claim_rows
    from bench.report.tables import tables
    from bench.run.results import load_results

    results_dir = Path(args.results)
    results = load_results(results_dir)
    print_ledger(claim_rows(results_dir, results, tables(results)))
    return 0


def migrate_command(args) -> int:
    from bench.data.datasets import resolve_data_dir
    from bench.run.migrate import migrate_folder

    migrated = migrate_folder(Path(args.results), resolve_data_dir(args.data_dir))
    print(f"{len(migrated)} result file(s) under {args.results} migrated: each carries its cell key under its "
          f"current name")
    return 0
