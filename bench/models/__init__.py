"""Stage 3, models: the model registry (`registry`: name -> family, config dataclass, how to
build and train it), the gensim baselines (`baselines`) and the pretrained models that install
from PyPI (`pretrained_lm`).

May import: `bench.train`, `bench.data`, `bench.errors`, `bench.timing`, `impl`.
"""
