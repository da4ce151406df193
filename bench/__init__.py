"""lm-lineage benchmark harness: datasets, vocabularies, baselines, metrics, runner, reports."""
