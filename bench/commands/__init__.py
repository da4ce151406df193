"""The `lm-lineage` commands' handlers, one module per kind of work; `bench.cli` holds the
parser and hands each parsed command to its handler (`args.handler`), which returns the exit
code and raises `BenchError` for bad input.

- `run`: `run`, a matrix run then its tables and report, and what eval-vectors shares with
  it: the executor, the render after a run or an interrupt, the exit code of failed cells.
- `eval_vectors`: `eval-vectors`, word-vector files scored beside glove-6b-50d.
- `report`: the commands over a folder of result files: `report`, `claims`, `migrate`.
- `diagnostics`: `gradient-flow` (the vanishing-gradient and clipping measurements) and
  `gates` (the quality gates' seed spread).
- `data`: `data build`, the data root from public sources.
- `listing`: `list`, the models, kinds, corpora, probe tasks, matrices and metrics.
- `flags`: the comma-separated flag values that several commands read.

May import every stage, like `bench.cli`, which alone imports it.
"""
