"""The Python API (bench.run.api): vectors and language models in memory, scored with results
that can be checked by hand."""
import math

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

from bench.data.prepared import prepare_corpus
from bench.data.vocab import TokenizerConfig, VocabConfig
from bench.errors import BenchError
from bench.run import api


def _angle(degrees: float) -> np.ndarray:
    return np.array([math.cos(math.radians(degrees)), math.sin(math.radians(degrees))], dtype=np.float32)


# Words on the unit circle: the cosine of two of them falls as their angles move apart.
CIRCLE = {"w0": _angle(0), "w1": _angle(10), "w2": _angle(30), "w3": _angle(60), "w4": _angle(100)}


@pytest.fixture
def data_dir(tmp_path):
    """Two similarity sets: scores that rise with the cosine (rho 1), and that fall with it (rho -1);
    each has one pair with a word the vectors lack."""
    folder = tmp_path / "wordsim"
    folder.mkdir()
    # cos(w0, w1) > cos(w0, w2) > cos(w0, w3) > cos(w0, w4)
    pairs = [("w0", "w1"), ("w0", "w2"), ("w0", "w3"), ("w0", "w4"), ("w0", "unknown")]
    (folder / "EN-RISING.txt").write_text("".join(f"{a}\t{b}\t{10 - i}\n" for i, (a, b) in enumerate(pairs)))
    (folder / "EN-FALLING.txt").write_text("".join(f"{a}\t{b}\t{i}\n" for i, (a, b) in enumerate(pairs)))
    return tmp_path


def test_similarity_of_a_mapping_is_exactly_plus_or_minus_one_on_the_pairs_covered(data_dir):
    frame = api.evaluate_vectors(CIRCLE, data_dir, tasks=("similarity",)).set_index("benchmark")
    assert list(frame.index) == ["FALLING", "RISING"]
    assert frame.loc["RISING", "score"] == pytest.approx(1.0)
    assert frame.loc["FALLING", "score"] == pytest.approx(-1.0)
    assert (frame["items"] == 5).all() and (frame["covered"] == 4).all()
    assert (frame["coverage"] == 0.8).all() and (frame["metric"] == "spearman").all()


def test_keyed_vectors_score_like_the_same_mapping(data_dir):
    kv = KeyedVectors(2)
    kv.add_vectors(list(CIRCLE), np.stack(list(CIRCLE.values())))
    assert api.evaluate_vectors(kv, data_dir, "similarity").equals(api.evaluate_vectors(CIRCLE, data_dir, "similarity"))


def test_analogies_count_the_questions_covered_and_answer_them():
    """gensim's Google file asks 'athens greece baghdad ?' twice (lines 2 and 899) and 'baghdad iraq
    athens ?' once (line 45): the only questions these five words cover. iraq = greece - athens +
    baghdad, and the distractor paris is orthogonal to both offsets, so 3CosAdd answers all three."""
    e1, e2, e3 = np.eye(3, dtype=np.float32)
    vectors = {"athens": e1, "greece": e2, "baghdad": e3, "iraq": (e2 - e1 + e3) / np.sqrt(3), "paris": e1 + e3}
    frame = api.evaluate_vectors(vectors, tasks=["analogy"]).set_index("benchmark")
    assert list(frame.index) == ["google-3cosadd", "google-3cosmul"]
    assert (frame["items"] == 19544).all() and (frame["covered"] == 3).all()
    assert frame.loc["google-3cosadd", "score"] == 1.0
    assert frame.loc["google-3cosadd", "coverage"] == pytest.approx(3 / 19544)


def test_bad_input_is_one_clear_error():
    with pytest.raises(BenchError, match=r"tasks 'parsing': expected some of similarity, analogy"):
        api.evaluate_vectors(CIRCLE, tasks=("parsing",))
    with pytest.raises(BenchError, match=r"vectors of one length, got lengths \[2, 3\]"):
        api.evaluate_vectors({"a": [1.0, 0.0], "b": [1.0, 0.0, 0.0]})
    with pytest.raises(BenchError, match=r"got list"):
        api.evaluate_vectors([1, 2])


class UniformWindowLM(torch.nn.Module):
    """A window LM giving every word the same probability: perplexity is the vocabulary size."""

    context_kind = "window"
    context_size = 2

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, contexts):  # contexts: (batch, context_size)
        return torch.zeros(len(contexts), self.vocab_size), None  # (batch, V) logits


class UniformRecurrentLM(UniformWindowLM):
    context_kind = "recurrent"

    def init_state(self, batch_size, device):
        return torch.zeros(1, batch_size, 1, device=device)

    def forward(self, ids, targets=None, state=None):  # ids: (B, T)
        return torch.zeros(*ids.shape, self.vocab_size), None, state  # (B, T, V) logits


@pytest.mark.parametrize("model_class", [UniformWindowLM, UniformRecurrentLM])
def test_a_uniform_lm_has_the_vocabulary_size_as_perplexity_with_every_token_scored(model_class):
    prepared = prepare_corpus("lee", None, TokenizerConfig(), VocabConfig(min_count=2, unk="<unk>"))
    frame = api.evaluate_lm_perplexity(model_class(len(prepared.vocab)), prepared).set_index("split")
    assert list(frame.index) == ["validation", "test"]
    assert frame["perplexity"].to_numpy() == pytest.approx([len(prepared.vocab)] * 2, rel=1e-5)  # float32 log-softmax
    assert list(frame["scored_tokens"]) == [len(prepared.streams[s].ids) for s in ("validation", "test")]
    assert (frame["vocab_size"] == len(prepared.vocab)).all() and "every token scored" in frame["context"].iloc[0]
    with pytest.raises(BenchError, match=r"corpus lee: no split dev; it has "):
        api.evaluate_lm_perplexity(model_class(len(prepared.vocab)), prepared, splits=("dev",))
