"""`lm-lineage list`: what a matrix can name (models, the kinds of a model of your own,
corpora, probe tasks), the shipped matrices and the metrics."""

from __future__ import annotations

import sys
import tomllib


def list_command(args) -> int:
    from bench.data.datasets import CORPORA
    from bench.eval.metrics import METRICS
    from bench.eval.tasks import PROBE_TASKS
    from bench.models.registry import KINDS, MODELS
    from bench.run.config import MATRIX_DIR

    print("models:")
    for spec in MODELS.values():
        print(f"  {spec.name:18} [{spec.family}] {spec.description}")
    for error in MODELS.plugin_errors:  # a broken plugin is left out of the list; the rest still works
        print(f"lm-lineage: warning: {error}", file=sys.stderr)
    print("kinds (a model of your own: [model.NAME] with kind = ...; see the README's Bring your own model):")
    for spec in KINDS.values():
        print(f"  {spec.name:18} [{spec.family}] {spec.description}")
    print("corpora:")
    for corpus in CORPORA.values():
        print(f"  {corpus.name:18} [{corpus.kind}] {corpus.description}")
    print("probe tasks ([probe] tasks = [...], settings in [probe.NAME]):")
    for task in PROBE_TASKS.values():
        print(f"  {task.name:18} {task.description}")
    print("matrices:")
    for path in sorted(MATRIX_DIR.glob("*.toml")):
        print(f"  {path.stem:28} {tomllib.loads(path.read_text()).get('description', '')}")
    print("metrics:")
    for metric in METRICS.values():
        print(f"  {metric.name:18} {metric.better}, unit: {metric.unit}")
    return 0
