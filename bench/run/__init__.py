"""Stage 5, run: layered configuration and matrix files (`config`), each setting conformed to
its config field's type with errors blamed on the file or flag that set it (`conform`), the matrix runner
(`runner`), one cell from data to result (`cell`) and its probe tasks (`probes`), biLMs that start
from a saved one (`finetune`), cell keys
(`keys`), output folders and their lock (`outdir`), the local and Ray executors (`executors`)
and a cell's worker process (`worker`), the result schema and atomic writes (`results`), keying
old results (`migrate`), the quality gates (`gates`), the Python API that scores objects in
memory as a cell scores them (`api`), eval-vectors' cached reference row (`reference`) and its
rows that claim no training corpus or seed (`not_trained`).

May import every stage before it: `bench.eval`, `bench.models`, `bench.train`, `bench.data`,
`bench.errors`, `bench.timing`, `impl`.
"""
