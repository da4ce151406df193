"""Speed of each model's training hot path on fixed small shapes (`pytest --benchmark-only`).

Each benchmark times one unit of real training work: one epoch of word2vec (its step
functions, noise draws and scatter-adds on a fixed synthetic corpus), one AdaGrad epoch of
GloVe on a fixed co-occurrence matrix, PPMI + truncated SVD of a fixed count matrix, one
optimizer step of each neural LM on fixed batch shapes, and a Kneser-Ney fit of a fixed
stream. The README's "Speed regression gate" says how to save and compare a baseline.
"""

import pytest
import torch

from bench.models.registry import MODELS
from bench.run.config import load_matrix
from bench.train import lm
from impl import elmo, glove, nnlm, rnn, svd, word2vec
from impl import kneser_ney as ngram
from impl._cooccurrence import cooccurrence
from tests.benchmarks.harness import BENCH_THREADS, VOCAB, time_on_device

BROWN_SOFTMAX = 14_116  # the elmo matrix's softmax ids: Brown's vocabulary, <S> and </S>

LM_MODELS = {"nnlm-mlp1": nnlm.NNLM, "rnn": rnn.RNNLM, "lstm": rnn.RNNLM, "gru": rnn.RNNLM}
# brown-lm's recurrent shapes, halved so the rounds of every model stay within seconds.
RNN_SHAPE = {"emb": 128, "hidden": 128, "layers": 2, "dropout": 0.2}
NNLM_BATCH = 256  # windows per step, as brown-lm
RNN_BATCH, BPTT = 20, 35  # rows x steps per step, LMTrainConfig's defaults


@pytest.mark.benchmark(group="train")
@pytest.mark.parametrize("arch", ["cbow", "sg"])
def test_word2vec_epoch(benchmark, device, zipf_corpus, arch):
    ids, offsets, words, counts = zipf_corpus
    # CBOW on the defaults (one Hogwild thread of the kernel per core); skip-gram on one
    # thread, as the committed baseline measured it (its epoch is 4x CBOW's: one thread keeps
    # the round short and its figure steady).
    threading = {"threads": 1} if arch == "sg" else {}
    config = word2vec.Word2VecConfig(arch=arch, epochs=1, **threading)
    vectors = time_on_device(benchmark, device, lambda: word2vec.train_word2vec(
        ids, offsets, words, counts, config, seed=0, device=device))
    assert vectors.vectors.shape == (len(words), config.vector_size)


@pytest.mark.benchmark(group="train")
def test_glove_adagrad_epoch(benchmark, device, zipf_corpus):
    ids, offsets, words, _ = zipf_corpus
    counts = cooccurrence(ids, offsets, len(words), window=10)
    config = glove.GloVeConfig(epochs=1, threads=BENCH_THREADS)  # not 2: see BENCH_THREADS
    vectors, losses = time_on_device(benchmark, device, lambda: glove.fit_glove(counts, config, seed=0,
                                                                                  device=device))
    assert vectors.shape == (len(words), config.vector_size) and len(losses) == 1


@pytest.mark.benchmark(group="train")
def test_svd_ppmi(benchmark, zipf_corpus):
    ids, offsets, words, _ = zipf_corpus
    config = svd.SVDConfig()
    counts = cooccurrence(ids, offsets, len(words), config.window, distance_weighting=config.distance_weighting)
    vectors = time_on_device(benchmark, torch.device("cpu"), lambda: svd.svd_vectors(
        svd.ppmi(counts, config.cds_alpha, config.neg_shift), config.vector_size, config.eig_power, seed=0))
    assert vectors.shape == (len(words), config.vector_size)


@pytest.mark.benchmark(group="train")
def test_kneser_ney_fit(benchmark, zipf_corpus):
    ids, _, words, _ = zipf_corpus
    model = time_on_device(benchmark, torch.device("cpu"),
                           lambda: ngram.KneserNey(ngram.KNConfig(order=3)).fit(ids, len(words)))
    assert model.discounts.shape == (3, 3)


@pytest.mark.benchmark(group="train")
@pytest.mark.parametrize("name", list(LM_MODELS))
def test_lm_optimizer_step(benchmark, device, name):
    spec = MODELS[name]
    torch.manual_seed(0)
    if name.startswith("nnlm"):
        model = LM_MODELS[name](spec.config_cls(**spec.preset), VOCAB).to(device)
        inputs = torch.randint(VOCAB, (NNLM_BATCH, model.context_size), device=device)
        targets = torch.randint(VOCAB, (NNLM_BATCH,), device=device)
    else:
        model = LM_MODELS[name](spec.config_cls(**spec.preset, **RNN_SHAPE), VOCAB).to(device)
        inputs = torch.randint(VOCAB, (RNN_BATCH, BPTT), device=device)
        targets = torch.randint(VOCAB, (RNN_BATCH, BPTT), device=device)
    train_config = spec.train_cls()
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    model.train()

    def step():
        loss = model(inputs, targets)[1]  # NNLM: (logits, loss); RNN LMs: (logits, loss, state)
        lm._step(model, loss, optimizer, train_config.clip)
        return loss.detach()

    loss = time_on_device(benchmark, device, step)
    assert torch.isfinite(loss)


def _elmo_step(config: elmo.ELMoConfig, train_config: lm.LMTrainConfig, vocab_size: int, device):
    """One optimizer step of ELMo (the harness's optimizer and clipping) on a batch of
    train_config.batch_size fixed sentences of 20 words, as a callable; word i is spelled "w<i>"
    and its softmax id is i. Words are drawn Zipf-distributed (P(i) ~ 1/(i+1)), so a batch
    repeats its frequent words as text does and the char-CNN, which encodes each distinct word
    once, does the share of the work it does on Brown."""
    torch.manual_seed(0)
    model = elmo.ELMo(config, vocab_size).to(device)
    generator = torch.Generator().manual_seed(0)
    zipf = 1.0 / torch.arange(1, vocab_size + 1, dtype=torch.float64)  # (V,)
    rows = train_config.batch_size
    word_ids = torch.multinomial(zipf, rows * 20, replacement=True, generator=generator).view(rows, 20)
    chars = elmo.batch_char_ids([[f"w{i}" for i in row] for row in word_ids.tolist()], config.max_chars,
                                boundaries=False).to(device)
    targets = [t.to(device) for t in elmo.bilm_targets(word_ids)]
    optimizer = lm._make_optimizer(model, train_config)

    def step():
        loss = model(chars, *targets)["loss"]
        lm._step(model, loss, optimizer, train_config.clip)
        return loss.detach()

    return step


@pytest.mark.benchmark(group="train")
def test_elmo_optimizer_step(benchmark, device):
    """The `elmo` matrix's training step (issue 27) over a softmax of Brown's 14,116 ids: each
    distinct word encoded once, and the adaptive softmax of the matrix's cutoffs."""
    matrix = load_matrix("elmo")
    step = _elmo_step(matrix.model_config("elmo"), matrix.train_config("elmo"), BROWN_SOFTMAX, device)
    loss = time_on_device(benchmark, device, step)
    assert torch.isfinite(loss)


@pytest.mark.benchmark(group="train-bilm-softmax")
@pytest.mark.parametrize("softmax", [{"softmax_precision": "fp32"}, {"softmax_precision": "bf16"},
                                     {"softmax_samples": 2048, "softmax_precision": "fp32"},
                                     {"softmax_cutoffs": (2000, 6000)}],
                         ids=["full", "full-bf16", "sampled-2048", "adaptive-2000-6000"])
def test_elmo_step_on_brown_reuters_vocabulary(benchmark, device, softmax):
    """One optimizer step of ELMo over the 22,858-word softmax of elmo-more-text's vocabulary,
    full (its matmuls in fp32 or bf16), sampled (elmo-wider's 2,048 candidates) and adaptive
    (the elmo matrix's cutoffs): what each saves a step. Not in the committed baseline; compare
    the normalised medians within one run."""
    step = _elmo_step(elmo.ELMoConfig(**softmax), load_matrix("elmo").train_config("elmo"), 22_858, device)
    assert torch.isfinite(time_on_device(benchmark, device, step))
