"""Stage 4, eval: what a trained model is scored with: the metrics, one module each declaring
its rows (`metrics`, with the word-vector evaluators), the probes on frozen representations (`probe`: POS and
the linear probe, `wsd`: word sense), the probe tasks that run them, one module each
(`tasks`), the `[probe]` section naming them (`probe_config`) and the gradient-flow
diagnostic (`diagnostics`).

May import: `bench.models`, `bench.train`, `bench.data`, `bench.errors`, `bench.timing`, `impl`.
"""

# What word vectors are scored on: the similarity sets and the Google analogies
# (`eval.tasks` of a matrix, `eval-vectors --tasks`, bench.run.api's `tasks`).
VECTOR_TASKS = ("similarity", "analogy")
