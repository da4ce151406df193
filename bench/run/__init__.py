"""Stage 5, run: layered configuration and matrix files (`config`), the matrix runner and its
executors (`runner`), one cell (`cell`) and its probe tasks (`probes`), the result schema and
atomic writes (`results`), output folders and their lock (`outdir`) and the quality gates (`gates`).

May import every stage before it: `bench.eval`, `bench.models`, `bench.train`, `bench.data`,
`bench.errors`, `bench.timing`, `impl`.
"""
