"""Metrics, one module each, registered by the name of their rows: `similarity` (word
similarity, `wordsim` rows), `analogy` (Google analogies), `perplexity` (language models),
`pos_probe` and `wsd_probe` (the probe tasks' rows).

A metric module declares its `Metric`s (what a number means: which way is better, its unit,
how seeds combine), a dataclass of the rows a cell stores for them, and `TABLE`, the
`RowTable` tying the two to a name and to the report's heading (bench.eval.metrics._schema
says what each field means). Every module of this package that defines `TABLE` is registered
on import, so a new metric is one module here (and its test): the keys a result's rows must
carry (bench.run.results), the report's table, its CSV, its section and the cell's
`metric_defs` all follow from `TABLES`. The word-vector evaluators live in their metric's
module and are re-exported here; `_vocab` is the vocabulary both of them search, `_schema`
the declarations' classes.

The registry follows lm-evaluation-harness: every number a run reports names a `Metric`, so
reports say which direction is better and in which unit without guessing.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Iterable

from bench.eval.metrics._schema import Metric, RowTable, measured, renamed, stored
from bench.eval.metrics.analogy import ANALOGY_METHODS, evaluate_analogies
from bench.eval.metrics.similarity import (
    OOV_POLICIES,
    PAIR_SCORES_DTYPE,
    SimilaritySet,
    evaluate_similarity,
    load_similarity_set,
    pair_scores,
    similarity_sets,
)

__all__ = ["ANALOGY_METHODS", "COST_METRICS", "METRICS", "Metric", "OOV_POLICIES", "PAIR_SCORES_DTYPE", "RowTable",
           "SimilaritySet", "TABLES", "evaluate_analogies", "evaluate_similarity", "load_similarity_set",
           "measured", "metric_defs", "pair_scores", "register", "renamed", "similarity_sets", "stored"]

# What a cell's timings measure (bench.timing); the report's cost table is built from them.
COST_METRICS = (
    Metric("tokens_per_s", "higher", "tokens/s", "training or inference throughput"),
    Metric("wall_s", "lower", "s", "wall-clock time"),
    Metric("peak_mem_mb", "lower", "MiB", "peak memory (resident set or accelerator allocation)"),
)

TABLES: dict[str, RowTable] = {}  # rows' name (a result's metrics key) -> their declaration
METRICS: dict[str, Metric] = {}  # every table's metrics, then the cost's


def register(table: RowTable) -> RowTable:
    """Add a row table and its metrics to the registry (a module's `TABLE` is added on import)."""
    if table.name in TABLES:
        raise ValueError(f"row table '{table.name}' is registered twice")
    clashes = [metric.name for metric in table.metrics if METRICS.get(metric.name, metric) != metric]
    if clashes:
        raise ValueError(f"row table '{table.name}': metric(s) {', '.join(clashes)} declared differently before")
    TABLES[table.name] = table
    METRICS.update({metric.name: metric for metric in table.metrics})
    return table


def metric_defs(row_names: Iterable[str]) -> dict[str, dict]:
    """What the metrics of a cell's rows mean, as the result stores them: name -> Metric fields,
    for every registered table among `row_names` (a result's metrics keys)."""
    return {metric.name: dataclasses.asdict(metric)
            for name in row_names if name in TABLES for metric in TABLES[name].metrics}


def _register_metric_modules() -> None:
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if module_info.name.startswith("_"):  # the declarations' classes and shared helpers, not metrics
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        if not isinstance(getattr(module, "TABLE", None), RowTable):
            raise TypeError(f"{module.__name__}: a metric module defines TABLE, a RowTable")
        register(module.TABLE)


_register_metric_modules()
METRICS.update({metric.name: metric for metric in COST_METRICS})
