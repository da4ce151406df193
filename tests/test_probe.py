"""Part-of-speech probe: tag stripping, baselines, the linear probe on a slice of brown-pos."""

import json

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

from bench.errors import BenchError
from bench.eval.probe import (
    PosSettings,
    encode_tags,
    extract_features,
    load_tagged_corpus,
    majority_tag_baseline,
    most_frequent_tag_baseline,
    run_probe,
    static_coverage,
    static_featurizer,
    strip_tag,
    tag_index,
    train_linear_probe,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")


def test_strip_tag_by_hand():
    assert strip_tag("NN-TL") == "NN"
    assert strip_tag("NN-TL-HL") == "NN"
    assert strip_tag("NP$-HL-TL") == "NP$"
    assert strip_tag("JJ-NC") == "JJ"
    assert strip_tag("---HL") == "--"  # the dash tag "--" in a headline
    assert strip_tag("--") == "--"
    assert strip_tag("FW-IN+NN-TL") == "FW-IN+NN"  # foreign-word and contraction marks stay
    assert strip_tag("BEDZ*") == "BEDZ*"
    assert strip_tag("NN-TL-HL", strip=False) == "NN-TL-HL"


def test_baselines_on_a_hand_corpus():
    train_tokens = [["the", "dog", "runs"], ["the", "runs", "dog"], ["a", "run"]]
    train_tags = [["AT", "NN", "VBZ"], ["AT", "NNS", "NN"], ["AT", "NN"]]
    # Train tag counts: AT 3, NN 3, VBZ 1, NNS 1; AT is seen first, so it wins the tie.
    # Per word: the -> AT, dog -> NN, runs -> VBZ (tie with NNS, VBZ seen first), a -> AT, run -> NN.
    test_tokens = [["the", "dog", "runs"], ["a", "cat", "runs"]]
    test_tags = [["AT", "NN", "VBZ"], ["AT", "NN", "NNS"]]
    # Predictions: AT NN VBZ | AT AT(unknown word: majority) VBZ -> right: 3 + 1 = 4 of 6.
    assert most_frequent_tag_baseline(train_tokens, train_tags, test_tokens, test_tags) == pytest.approx(4 / 6)
    # Majority tag AT: right on 2 of 6.
    assert majority_tag_baseline(train_tags, test_tags) == pytest.approx(2 / 6)
    index = tag_index(train_tags)
    assert list(index) == ["AT", "NN", "VBZ", "NNS"]
    assert encode_tags([["NN", "XX"]], index).tolist() == [1, -1]


def test_static_featurizer_falls_back_to_lower_case_and_zeros():
    kv = KeyedVectors(2)
    kv.add_vectors(["the", "cat"], np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32))
    featurize = static_featurizer(kv)
    sentences = [["The", "cat", "purrs"], ["cat"]]
    features = extract_features(featurize, sentences, batch_size=1)
    assert features.tolist() == [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0], [3.0, 4.0]]
    assert static_coverage(kv, sentences) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="expected \\(2, 3\\)"):
        extract_features(lambda batch: [torch.zeros(3, 3) for _ in batch], [["a", "b"]])


def test_linear_probe_learns_a_separable_problem():
    generator = torch.Generator().manual_seed(0)
    centers = 3 * torch.randn(4, 5, generator=generator)
    labels = torch.randint(0, 4, (600,), generator=generator)
    features = centers[labels] + 0.3 * torch.randn(600, 5, generator=generator)
    test_labels = labels[400:].clone()
    test_labels[:10] = -1  # tags unseen in train can never be right
    accuracy = train_linear_probe(features[:400], labels[:400], features[400:], test_labels,
                                  epochs=30, lr=0.05, seed=0, device=CPU, batch_size=64)
    assert 0.9 <= accuracy <= 190 / 200


def test_corpus_without_tags_raises(tmp_path):
    folder = tmp_path / "untagged"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text(json.dumps({"tokens": ["a", "b"]}) + "\n")
    with pytest.raises(BenchError, match=f"corpus '{folder}': split 'train' has no 'tags' field"):
        load_tagged_corpus(str(folder))
    with pytest.raises(BenchError, match="corpus 'lee' has no 'tags' field"):
        load_tagged_corpus("lee")


def _context_featurizer(sentences: list[list[str]], dim: int = 32):
    """Random but fixed vectors per (lower-cased) train word, zeros for other words; a token's
    features are its own, its previous and its next word's vectors: (len, 3 * dim)."""
    words = sorted({w.lower() for s in sentences for w in s})
    generator = torch.Generator().manual_seed(0)
    table = torch.cat([torch.randn(len(words), dim, generator=generator), torch.zeros(1, dim)])
    row = {w: i for i, w in enumerate(words)}

    def featurize(batch):
        out = []
        for sentence in batch:
            ids = torch.tensor([row.get(w.lower(), len(words)) for w in sentence])
            padded = torch.cat([torch.tensor([len(words)]), ids, torch.tensor([len(words)])])  # zero row at ends
            out.append(torch.cat([table[padded[1:-1]], table[padded[:-2]], table[padded[2:]]], dim=-1))
        return out

    return featurize


@pytest.mark.data
def test_probe_on_brown_pos_beats_the_majority_tag(data_root):
    corpus = load_tagged_corpus("brown-pos", data_root)
    train, test = corpus.splits["train"], corpus.splits["test"]
    assert len(train.tokens) == 35523 and train.n_tokens == sum(len(tags) for tags in train.tags)
    assert not any(tag.endswith(("-TL", "-HL", "-NC")) for tags in train.tags for tag in tags)
    corpus.splits["test"] = type(test)(test.tokens[:500], test.tags[:500])
    featurize = _context_featurizer(train.tokens[:2000])
    result = run_probe(featurize, corpus, PosSettings(epochs=5, lr=1e-2, batch_size=256, max_train_sentences=2000),
                       seed=0, device=CPU)
    assert result["train_tokens"] == sum(len(s) for s in train.tokens[:2000])
    assert result["eval_tokens"] == sum(len(s) for s in test.tokens[:500])
    assert result["majority_tag_accuracy"] < 0.2
    assert result["accuracy"] > result["majority_tag_accuracy"] + 0.3


def test_layer_probes_find_the_informative_layer_and_the_mix_weights_it():
    from bench.eval.probe import TaggedCorpus, TaggedSplit, run_layer_probes

    tags = ["AT", "NN", "VB", "IN"]
    generator = torch.Generator().manual_seed(0)
    centers = 3 * torch.randn(len(tags), 8, generator=generator)  # (tags, D)
    rng = np.random.default_rng(0)

    def split(n_sentences: int) -> TaggedSplit:
        labels = [[str(tag) for tag in rng.choice(tags, size=rng.integers(3, 9))] for _ in range(n_sentences)]
        return TaggedSplit([[f"{tag.lower()}{rng.integers(20)}" for tag in sentence] for sentence in labels], labels)

    def featurize(batch):
        # Layers 0 and 2 are noise; layer 1 holds the word's tag (its word carries the tag's name).
        out = []
        for words in batch:
            tag_ids = torch.tensor([tags.index(word.rstrip("0123456789").upper()) for word in words])
            layers = torch.randn(len(words), 3, 8, generator=generator)
            layers[:, 1] += centers[tag_ids]
            out.append(layers.flatten(1))  # (len, 3 * 8)
        return out

    corpus = TaggedCorpus("toy", {"train": split(150), "test": split(60)}, {})
    config = PosSettings(epochs=10, lr=0.05, batch_size=128, max_eval_sentences=40)
    result = run_layer_probes(featurize, 3, corpus, config, seed=0, device=CPU)
    assert result["eval_tokens"] == sum(len(s) for s in corpus.splits["test"].tokens[:40])
    layers = result["layers"]
    assert set(layers) == {"0", "1", "2", "mix", "mix-ln"}
    assert min(layers["1"], layers["mix"], layers["mix-ln"]) > 0.95 and max(layers["0"], layers["2"]) < 0.5
    for mix in result["mixes"].values():  # both mixes weight the informative layer most
        weights = mix["mix_weights"]
        assert int(np.argmax(weights)) == 1 and sum(weights) == pytest.approx(1.0)
        assert mix["mix_centre"] == pytest.approx(weights[1] + 2 * weights[2])
        assert mix["mix_s2_minus_s1"] == pytest.approx(weights[2] - weights[1]) and mix["mix_s2_minus_s1"] < 0
    with pytest.raises(ValueError, match="not a multiple of 3 layers"):
        run_layer_probes(lambda batch: [torch.zeros(len(w), 7) for w in batch], 3, corpus, config, seed=0, device=CPU)
