"""The claims ledger's vocabulary: a `Verdict` and the `Rows` it is computed from, a `Check` and
the `Claim` it settles, and the helpers every claim's rule shares (a verdict tested seed by seed,
an effect as mean ± sd, the scale a claim was measured at).

The rules themselves are in `bench.report.claim_rules`, the ledger that puts them together in
`bench.report.claims`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

HOLDS, DOES_NOT_HOLD, MIXED, NOT_RUN = "holds", "does not hold", "mixed", "not run"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # HOLDS | DOES_NOT_HOLD | MIXED | NOT_RUN
    holds_in: int = 0  # seeds (or runs) in which the condition held
    runs: int = 0  # seeds (or runs) tested
    unit: str = "seed"
    effect: str = ""  # the effect size, mean ± sd over the runs
    scale: str = ""  # what the claim was measured at, where it depends on scale
    command: str = ""  # not run: the command that would make the rows
    why: str = ""  # not run: why it has not

    def summary(self) -> str:
        """`holds (3 of 3 seeds)`, `mixed (holds in 2 of 3 seeds)`, `not run`: the ledger's verdict cell."""
        if self.outcome == NOT_RUN:
            return NOT_RUN
        counted = f"{self.holds_in} of {self.runs} {self.unit}{'s' if self.runs != 1 else ''}"
        return f"mixed (holds in {counted})" if self.outcome == MIXED else f"{self.outcome} ({counted})"

    def text(self) -> str:
        """The summary, and for a check not run the command that would run it and why it has not."""
        return f"not run: `{self.command}` ({self.why})" if self.outcome == NOT_RUN else self.summary()


@dataclass(frozen=True)
class Rows:
    """What the rules read: every result, the report's tables of them (bench.report.tables.tables,
    corpora not yet labelled by matrix) and the gradient-flow diagnostic (None when absent).
    The report and the CLI build it (`read_rows`): this module imports neither, so the report can
    import it."""

    results: list[dict]
    frames: dict[str, pd.DataFrame]
    gradient_flow: pd.DataFrame | None
    regimes: pd.DataFrame | None = None  # gradient-flow/gradient_regimes.csv (bench.eval.diagnostics)
    clipping: pd.DataFrame | None = None  # gradient-flow/clipping.csv

    def of(self, table: str, matrix: str) -> pd.DataFrame:
        frame = self.frames[table]
        return frame[frame["matrix"] == matrix]

    def cells(self, matrix: str) -> list[dict]:
        return [r for r in self.results if r["status"] == "ok" and r["cell"]["matrix"] == matrix]


@dataclass(frozen=True)
class Check:
    name: str  # the part of the claim it settles; "" when the claim has one check
    reads: str  # the rows, in words
    rule: Callable[[Rows], Verdict]
    section: str = ""  # the report heading (## level) behind the verdict; "" when not run
    figure: str = ""  # the figure of that section, as its alt text names it


@dataclass(frozen=True)
class Claim:
    id: int
    claim: str
    section: str  # the note's section
    checks: tuple[Check, ...]


def not_run(command: str, why: str) -> Callable[[Rows], Verdict]:
    """The rule of a check whose rows no matrix makes yet."""
    return lambda rows: Verdict(NOT_RUN, command=command, why=why)


def by_seed(holds: pd.Series, effects: list[str], scale: str = "", unit: str = "seed") -> Verdict:
    """The verdict of a condition tested per seed (`holds`, one bool per seed or run); `effects`:
    the effect sizes over the same seeds, each `name mean ± sd` (see `effect`)."""
    k, n = int(holds.sum()), len(holds)
    return Verdict(outcome(k, n), k, n, unit, "; ".join(effects), scale)


def outcome(holds_in: int, runs: int) -> str:
    return HOLDS if holds_in == runs else DOES_NOT_HOLD if holds_in == 0 else MIXED


def effect(name: str, values: pd.Series, digits: int, signed: bool = True) -> str:
    """`name +0.012 ± 0.004`: mean ± sd over the values (one value: no sd); `signed`: a
    difference, shown with its sign (a ratio is not)."""
    values = pd.Series(values, dtype=float).dropna()
    sign = "+" if signed else ""
    if len(values) == 1:
        return f"{name} {values.iloc[0]:{sign}.{digits}f}"
    return f"{name} {values.mean():{sign}.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def tokens(n: float) -> str:
    return f"{n / 1e6:.2f}M tokens"


def data_size(cells: list[dict]) -> str:
    """The corpora the cells trained on with their train split's size (after the vocabulary
    rule), e.g. `offline-mix, 3.92M tokens`."""
    sizes = sorted({(r["cell"]["corpus"], r["dataset"]["splits"]["train"]["tokens"])
                    for r in cells if "splits" in r.get("dataset", {})})
    return "; ".join(f"{corpus}, {tokens(size)}" for corpus, size in sizes)


def tokens_read(cells: list[dict]) -> str:
    """Tokens a trained model read in training (all passes), mean over the cells."""
    read = [r["timings"]["train"]["tokens"] for r in cells if r["timings"].get("train", {}).get("tokens")]
    return f"{tokens(float(np.mean(read)))} read in training" if read else ""


def mean_spearman(wordsim: pd.DataFrame, benchmarks: tuple[str, ...]) -> pd.DataFrame:
    """Mean ρ over `benchmarks` per (model, seed) and whatever else the rows are keyed by."""
    rows = wordsim[wordsim["benchmark"].isin(benchmarks)]
    keys = [c for c in ("model", "corpus", "matrix", "seed", "size") if c in rows]
    return rows.groupby(keys, as_index=False)["spearman"].mean()
