"""Stage 4, eval: what a trained model is scored with: the metric registry and the
word-vector evaluators (`metrics`), the probes on frozen representations (`probe`), the
word-sense probe's data and references (`wsd`) and the gradient-flow diagnostic (`diagnostics`).

May import: `bench.models`, `bench.train`, `bench.data`, `bench.errors`, `bench.timing`, `impl`.
"""
