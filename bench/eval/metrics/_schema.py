"""How a metric declares itself: `Metric` (what one number means) and `RowTable` (the rows a
cell stores for it, as a dataclass, and how the report shows them).

Everything downstream is derived from these declarations, so none of it is a second list to
keep in step by hand: the keys a result's rows must carry (bench.run.results), the
report's table columns and CSV files (bench.report.tables), the "higher is better" of its
headings and how seeds are aggregated (bench.report.sections, bench.report.summary).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pandas as pd

DIRECTIONS = ("higher", "lower")
# How the report folds a metric's seeds into one number; tables show the spread beside it.
AGGREGATIONS = {"mean": "mean ± sd over seeds", "median": "median over seeds"}


@dataclass(frozen=True)
class Metric:
    """What a reported number means: which way is better, its unit, and how seeds combine."""

    name: str
    direction: str  # "higher" or "lower": which values are better
    unit: str
    description: str
    aggregation: str = "mean"  # over seeds: a key of AGGREGATIONS

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name}: direction must be 'higher' or 'lower', not {self.direction!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"metric {self.name}: aggregation must be one of {', '.join(AGGREGATIONS)}, "
                             f"not {self.aggregation!r}")

    @property
    def better(self) -> str:
        """The report's words for the direction: "higher is better"."""
        return f"{self.direction} is better"

    @property
    def over_seeds(self) -> str:
        """The report's words for the aggregation: "mean ± sd over seeds"."""
        return AGGREGATIONS[self.aggregation]

    def aggregate(self, values: pd.Series) -> float:
        """The seeds' values as one number (NaN for none)."""
        return float(values.agg(self.aggregation))


# A row field's metadata: the report's column it becomes (None: stored, not a column), the
# metric it measures (None: a key, a count or a protocol field) and the group of optional
# fields stored together it belongs to.
_COLUMN, _METRIC, _GROUP = "column", "metric", "group"


def measured(metric: Metric) -> Any:
    """A required row field holding `metric`'s value (a table column of the field's name)."""
    return dataclasses.field(metadata={_METRIC: metric})


def renamed(column: str) -> Any:
    """A required row field shown in the report's tables under another name."""
    return dataclasses.field(metadata={_COLUMN: column})


def stored(group: str | None = None) -> Any:
    """An optional row field (None when absent) kept in the result file but not a table column.
    The fields of one `group` are stored together: a row holding one of them holds them all."""
    return dataclasses.field(default=None, metadata={_COLUMN: None, _GROUP: group})


def as_stored(row: Any) -> dict:
    """A row (an instance of a table's row type) as a result stores it: its fields in declaration
    order, an optional one only when it is set (not None)."""
    return {field.name: getattr(row, field.name) for field in dataclasses.fields(row)
            if field.default is dataclasses.MISSING or getattr(row, field.name) is not None}


# The cell's identity in every table: model and corpus lead (a row may name its own model, or
# its own corpus: a probe's), matrix closes (two matrices may run the same model and corpus).
_LEADING, _CLOSING = ("model", "corpus", "seed"), ("matrix",)


@dataclass(frozen=True)
class RowTable:
    """One kind of result row: `result["metrics"][name]` holds a list of them, and the report
    shows them as the table (and `<name>.csv`) of the same name.

    `row` is a dataclass (keyword-only): its fields without a default are the keys every
    stored row must carry, each a column of the table (under `renamed` names where given);
    fields with a default may be absent (`stored` ones are not columns; `model`, when a row
    names its own, replaces the cell's). A row may carry further keys (a protocol's details):
    they are stored, not read. `title` and `score` head the report's section:
    "{title} ({score}, {direction} is better; {aggregation})" of its first measured metric.
    `cell_corpus`: the column of the cell's corpus, when a row's own `corpus` column means
    another one (a probe's tagged corpus; the cell's is the one the model trained on).
    `repeated_rows`: cells repeat some rows whole (a probe's references, the same in every
    probing cell), which the table keeps once.
    """

    name: str
    row: type
    title: str
    score: str
    cell_corpus: str = "corpus"
    repeated_rows: bool = False

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.row):
            raise TypeError(f"row table {self.name}: row must be a dataclass, not {self.row!r}")
        if not self.metrics:
            raise TypeError(f"row table {self.name}: {self.row.__name__} has no `measured(...)` field")
        own_corpus = "corpus" in self._columns().values()
        if own_corpus == (self.cell_corpus == "corpus"):
            raise TypeError(f"row table {self.name}: a row naming its own corpus column needs another "
                            f"cell_corpus column, and only then")

    def _fields(self) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(self.row)

    def _columns(self) -> dict[str, str]:
        """Row field -> table column, in declaration order."""
        return {field.name: field.metadata.get(_COLUMN, field.name) for field in self._fields()
                if field.metadata.get(_COLUMN, field.name) is not None}

    @property
    def required(self) -> tuple[str, ...]:
        """The keys every stored row carries: what readers may index."""
        return tuple(field.name for field in self._fields()
                     if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING)

    def keys_of(self, row: dict) -> tuple[str, ...]:
        """The keys `row` must carry: the required ones, and every field of a `stored` group of
        which it holds one."""
        groups: dict[str, list[str]] = {}
        for field in self._fields():
            if field.metadata.get(_GROUP) is not None:
                groups.setdefault(field.metadata[_GROUP], []).append(field.name)
        held = [name for fields in groups.values() if any(name in row for name in fields) for name in fields]
        return (*self.required, *held)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The metrics its rows measure, in field order."""
        return tuple(self.measured_columns.values())

    @property
    def measured_columns(self) -> dict[str, Metric]:
        """Table column -> the metric it holds."""
        return {field.metadata.get(_COLUMN, field.name): field.metadata[_METRIC] for field in self._fields()
                if _METRIC in field.metadata}

    @property
    def columns(self) -> list[str]:
        """The table's (and the CSV's) columns, the cell's identity around the rows' own."""
        own = [column for column in self._columns().values() if column not in _LEADING]
        cell_corpus = [self.cell_corpus] if self.cell_corpus != "corpus" else []
        return [*_LEADING, *own, *cell_corpus, *_CLOSING]

    @property
    def heading(self) -> str:
        """The report section's heading, its direction and aggregation read from the first metric."""
        metric = self.metrics[0]
        return f"{self.title} ({self.score}, {metric.better}; {metric.over_seeds})"

    def table_row(self, row: dict, cell: dict) -> dict:
        """One stored row as a row of the table, beside the `cell` it came from."""
        shown = {"model": cell["model"], "corpus": cell["corpus"], "seed": cell["seed"], "matrix": cell["matrix"],
                 self.cell_corpus: cell["corpus"]}
        shown.update({column: row[field] for field, column in self._columns().items() if field in row})
        return shown
