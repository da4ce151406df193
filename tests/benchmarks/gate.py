"""The speed regression gate: a benchmark run against a saved baseline, by normalised median.

    python -m tests.benchmarks.gate --baseline .benchmarks/Linux-CPython-3.11-64bit/0001_baseline.json \\
        --current current.json --max-slowdown 1.5

Both files are pytest-benchmark JSON (`--benchmark-save` / `--benchmark-json`) written by
tests/benchmarks, whose harness stores each benchmark's `normalized_median` (round time over
the calibration kernel timed right before and after it) in `extra_info`. A benchmark fails
when its normalised median grew by more than `--max-slowdown` times, whatever the
calibration did: a machine twice as loaded slows the calibration and the benchmark alike
and passes, while code that slows only itself (a lost vectorisation, a thread pool that
spins under a competing process) moves the ratio and fails. The raw medians and the
calibrations are printed beside it for a reader, never judged.

Exit status: 0 when every benchmark of the current run is within the limit, 1 naming each
one over it, 2 for unusable input (a missing file, a baseline saved before normalisation,
no benchmark in common). Benchmarks of only one file are listed, not judged: a run of a
subset (`-k`) is compared on what it ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

DEFAULT_MAX_SLOWDOWN = 1.5


@dataclass(frozen=True)
class Comparison:
    name: str  # pytest-benchmark's fullname, e.g. tests/benchmarks/test_train_speed.py::test_kneser_ney_fit
    slowdown: float  # current normalised median / baseline's
    raw_slowdown: float  # current median / baseline's, for the reader
    calibration_change: float  # current calibration / baseline's, for the reader

    def over(self, limit: float) -> bool:
        return self.slowdown > limit


def load_run(path: Path) -> dict[str, dict]:
    """{fullname: benchmark} of a pytest-benchmark JSON file, each with its normalised figures."""
    try:
        data = json.loads(path.read_text())
        benchmarks = data["benchmarks"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BenchError(f"{path}: expected a pytest-benchmark JSON file with 'benchmarks' ({error})") from None
    runs = {}
    for bench in benchmarks:
        extra = bench.get("extra_info", {})
        if not {"normalized_median", "calibration_s"} <= extra.keys():
            raise BenchError(f"{path}: benchmark {bench.get('fullname')!r} has no extra_info.normalized_median: "
                             "expected a file saved by tests/benchmarks with calibration (re-save the baseline)")
        runs[bench["fullname"]] = bench
    return runs


def compare(baseline: dict[str, dict], current: dict[str, dict]) -> list[Comparison]:
    """One Comparison per benchmark in both runs, in the current run's order."""
    for name, bench in baseline.items():
        if bench["extra_info"].get("injected_slowdown", 1) != 1:
            raise BenchError(f"baseline benchmark {name!r} ran with LM_LINEAGE_BENCH_SLOWDOWN="
                             f"{bench['extra_info']['injected_slowdown']}: expected a baseline without injection")
    rows = []
    for name, bench in current.items():
        if name not in baseline:
            continue
        base, now = baseline[name], bench
        rows.append(Comparison(
            name=name,
            slowdown=now["extra_info"]["normalized_median"] / base["extra_info"]["normalized_median"],
            raw_slowdown=now["stats"]["median"] / base["stats"]["median"],
            calibration_change=now["extra_info"]["calibration_s"] / base["extra_info"]["calibration_s"]))
    if not rows:
        raise BenchError("no benchmark is in both the baseline and the current run: "
                         "expected runs of the same tests/benchmarks")
    return rows


def gate(baseline_path: Path, current_path: Path, max_slowdown: float, out=sys.stdout) -> int:
    """Print the comparison and return the exit status (0 pass, 1 a benchmark over the limit)."""
    if not max_slowdown > 1:
        raise BenchError(f"--max-slowdown {max_slowdown}: expected a factor > 1")
    baseline, current = load_run(baseline_path), load_run(current_path)
    rows = compare(baseline, current)
    width = max(len(row.name) for row in rows)
    print(f"{'benchmark':<{width}}  normalised  raw median  calibration", file=out)
    for row in rows:
        flag = "  OVER" if row.over(max_slowdown) else ""
        print(f"{row.name:<{width}}  {row.slowdown:9.2f}x  {row.raw_slowdown:9.2f}x  {row.calibration_change:10.2f}x"
              f"{flag}", file=out)
    for name in current.keys() - baseline.keys():
        print(f"not in the baseline (not judged): {name}", file=out)
    for name in baseline.keys() - current.keys():
        print(f"not in the current run (not judged): {name}", file=out)
    over = [row for row in rows if row.over(max_slowdown)]
    if over:
        names = ", ".join(f"{row.name} ({row.slowdown:.2f}x)" for row in over)
        print(f"speed gate FAILED: {len(over)} of {len(rows)} benchmarks slower than {max_slowdown}x "
              f"the baseline (normalised median): {names}", file=out)
        return 1
    print(f"speed gate passed: {len(rows)} benchmarks within {max_slowdown}x the baseline (normalised median)",
          file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.gate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="pytest-benchmark JSON of the baseline run")
    parser.add_argument("--current", type=Path, required=True, help="pytest-benchmark JSON of the run to judge")
    parser.add_argument("--max-slowdown", type=float, default=DEFAULT_MAX_SLOWDOWN,
                        help=f"largest allowed growth of a normalised median (default {DEFAULT_MAX_SLOWDOWN})")
    args = parser.parse_args(argv)
    try:
        return gate(args.baseline, args.current, args.max_slowdown)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
