"""Metrics of the benchmark: a registry of what each number means, and the word-vector evaluators.

The registry (`METRICS`) follows lm-evaluation-harness: every number a run reports names a
`Metric`, so reports can say which direction is better and in which unit without guessing.

The evaluators reproduce gensim's `KeyedVectors.evaluate_word_pairs` and
`evaluate_word_analogies` number for number (the published reference scores were measured
with them), but vectorized: gensim answers one analogy question at a time with a
(vocab x dim) mat-vec in Python, which takes minutes on the 400k GloVe vectors; here a batch of
questions is one matmul in torch, on CPU or CUDA.
"""
from __future__ import annotations

import base64
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from scipy import stats
from tqdm.auto import tqdm

from bench.errors import BenchError


@dataclass(frozen=True)
class Metric:
    """What a reported number means: which way is better, and its unit."""

    name: str
    direction: str  # "higher" or "lower": which values are better
    unit: str
    description: str

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"metric {self.name}: direction must be 'higher' or 'lower', not {self.direction!r}")


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("spearman", "higher", "rho",
               "Spearman rank correlation between cosine similarity and human similarity judgements"),
        Metric("pearson", "higher", "r",
               "Pearson correlation between cosine similarity and human similarity judgements"),
        Metric("analogy_accuracy", "higher", "fraction",
               "fraction of answered analogy questions (a:b :: c:?) whose best-scoring word is the expected one"),
        Metric("word_perplexity", "lower", "perplexity per word",
               "exp of the mean negative log-likelihood per word of held-out text"),
        Metric("pos_accuracy", "higher", "fraction",
               "fraction of held-out tokens whose part-of-speech tag a linear probe on frozen representations "
               "(or a baseline) gets right"),
        Metric("wsd_accuracy", "higher", "fraction",
               "fraction of held-out instances of an ambiguous word whose sense a classifier on frozen "
               "representations of the target (or a baseline) gets right"),
        Metric("tokens_per_s", "higher", "tokens/s", "training or inference throughput"),
        Metric("wall_s", "lower", "s", "wall-clock time"),
        Metric("peak_mem_mb", "lower", "MiB", "peak memory (resident set or accelerator allocation)"),
    )
}

# gensim's copies of two standard sets carry other file names than the data root's EN-*.txt;
# naming them alike lets reports put numbers from either source side by side.
_GENSIM_SIMILARITY_SET_NAMES = {"wordsim353.tsv": "WS-353-ALL", "simlex999.txt": "SIMLEX-999"}

ANALOGY_METHODS = ("3cosadd", "3cosmul")
OOV_POLICIES = ("skip", "zero")

# Levy & Goldberg (2014), eq. 4: keeps 3CosMul finite when the subtracted word's cosine is 0.
_COSMUL_EPSILON = 1e-6
# Candidates scored at once: a (2048 questions x 2048 candidates) float32 tile is 16 MiB and
# stays in a 32 MiB L3 cache.
_CANDIDATE_BLOCK = 2048


# ---------------------------------------------------------------------------------------------
# Word-similarity sets
# ---------------------------------------------------------------------------------------------


@dataclass
class SimilaritySet:
    """Word pairs with human similarity scores, as read from one file."""

    name: str
    path: str
    pairs: list[tuple[str, str, float]]


def _similarity_set_name(path: Path) -> str:
    if path.name in _GENSIM_SIMILARITY_SET_NAMES:
        return _GENSIM_SIMILARITY_SET_NAMES[path.name]
    stem = path.name
    for suffix in (".txt", ".tsv"):
        stem = stem.removesuffix(suffix)
    return stem.removeprefix("EN-")


def load_similarity_set(path: str | os.PathLike) -> SimilaritySet:
    """Read a tab-separated `word1 word2 score` file, failing loudly where gensim skips silently.

    gensim drops malformed lines with an INFO log, so a broken file quietly scores a subset;
    here every malformed line is a `BenchError` naming file:line. Blank lines and '#' comments
    (gensim's copies start with two) are skipped.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BenchError(f"{path}: cannot read word-similarity set ({error.strerror or error})") from error
    except UnicodeDecodeError as error:
        raise BenchError(f"{path}: expected UTF-8 text, byte {error.start} is not") from error

    pairs: list[tuple[str, str, float]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split("\t")]
        if len(fields) != 3 or not fields[0] or not fields[1]:
            raise BenchError(
                f"{path}:{line_no}: expected 3 tab-separated fields 'word1<TAB>word2<TAB>score', "
                f"got {len(fields)} field(s): {line.strip()[:60]!r}"
            )
        try:
            score = float(fields[2])
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise BenchError(f"{path}:{line_no}: expected a finite numeric score in field 3, got {fields[2]!r}")
        pairs.append((fields[0], fields[1], score))
    if not pairs:
        raise BenchError(f"{path}: expected at least one 'word1<TAB>word2<TAB>score' line, found none")
    return SimilaritySet(name=_similarity_set_name(path), path=str(path), pairs=pairs)


def similarity_sets(data_dir: Path | None) -> list[SimilaritySet]:
    """All similarity sets of the data root (`data_dir/wordsim/EN-*.txt`), else gensim's two.

    Without a data root the benchmark still has WS-353 and SimLex-999, because gensim ships them.
    """
    if data_dir is None:
        return [load_similarity_set(datapath(name)) for name in _GENSIM_SIMILARITY_SET_NAMES]
    folder = Path(data_dir) / "wordsim"
    paths = sorted(folder.glob("EN-*.txt")) if folder.is_dir() else []
    if not paths:
        raise BenchError(f"{folder}: expected word-similarity sets EN-*.txt in this folder, found none")
    return [load_similarity_set(path) for path in paths]


# ---------------------------------------------------------------------------------------------
# Vocabulary restriction shared by both evaluators
# ---------------------------------------------------------------------------------------------


def _restricted_vocab(kv: KeyedVectors, restrict_vocab: int | None, case_insensitive: bool) -> dict[str, int]:
    """gensim's `ok_vocab`: (upper-cased) key -> row, over the first `restrict_vocab` keys.

    With case folding several keys share one upper-case form; the first row, i.e. the most
    frequent variant, wins (gensim builds the dict from the reversed key list for that reason).
    """
    keys = kv.index_to_key[:restrict_vocab]
    folded = [key.upper() for key in keys] if case_insensitive else keys
    return dict(zip(reversed(folded), range(len(keys) - 1, -1, -1)))


def _fold(word: str, case_insensitive: bool) -> str:
    return word.upper() if case_insensitive else word


# ---------------------------------------------------------------------------------------------
# Word similarity
# ---------------------------------------------------------------------------------------------


def evaluate_similarity(
    kv: KeyedVectors,
    sim_set: SimilaritySet,
    *,
    oov: str = "skip",
    restrict_vocab: int | None = 300000,
    case_insensitive: bool = True,
) -> dict:
    """Correlate cosine similarity with human scores, exactly as gensim's `evaluate_word_pairs`.

    A pair is out of vocabulary when either word is missing from the first `restrict_vocab`
    keys (after case folding). `oov="skip"` correlates covered pairs only (gensim's default);
    `oov="zero"` scores missing pairs as similarity 0 (gensim's `dummy4unknown=True`), which
    penalizes poor coverage. With fewer than two scored pairs the correlations are NaN
    (undefined), not an error, so one tiny model cannot abort a whole benchmark run.

    The row keeps every pair's gold score and cosine (`pair_scores`, read back with
    `pair_scores`), so a report can correlate several models on the pairs they all cover.
    """
    if oov not in OOV_POLICIES:
        raise BenchError(f"oov={oov!r}: expected one of {', '.join(map(repr, OOV_POLICIES))}")
    vocab = _restricted_vocab(kv, restrict_vocab, case_insensitive)

    # (pairs,) rows of the two words, -1 where out of vocabulary
    rows_a = np.array([vocab.get(_fold(a, case_insensitive), -1) for a, _, _ in sim_set.pairs], dtype=np.int64)
    rows_b = np.array([vocab.get(_fold(b, case_insensitive), -1) for _, b, _ in sim_set.pairs], dtype=np.int64)
    gold = np.array([score for _, _, score in sim_set.pairs], dtype=np.float64)  # (pairs,)
    covered = (rows_a >= 0) & (rows_b >= 0)  # (pairs,)

    # Cosine in the vectors' own dtype, as gensim's `similarity` computes it: (covered, dim) each.
    unit_a = _unit_rows(kv.vectors[rows_a[covered]])
    unit_b = _unit_rows(kv.vectors[rows_b[covered]])
    model = np.zeros(len(gold), dtype=np.float64)  # (pairs,)
    model[covered] = np.einsum("pd,pd->p", unit_a, unit_b)

    per_pair = _encode_pair_scores(gold, np.where(covered, model, np.nan))  # before `oov` drops pairs
    if oov == "skip":
        gold, model = gold[covered], model[covered]
    if len(gold) < 2:
        spearman = pearson = math.nan
    else:
        spearman = float(stats.spearmanr(gold, model).statistic)
        pearson = float(stats.pearsonr(gold, model).statistic)
    return {
        "benchmark": sim_set.name,
        "pairs": len(sim_set.pairs),
        "oov_pairs": int((~covered).sum()),
        "spearman": spearman,
        "pearson": pearson,
        "pair_scores": per_pair,
    }


# Per-pair scores travel as base64 of little-endian float32 arrays: the 11.7k pairs of the 13
# sets take ~125 KB per cell this way, where the result file's indented JSON lists would take
# ~300 KB. float32 is the dtype the cosines are computed in for float32 vectors (every model
# here), so the correlations computed from them are the row's own.
PAIR_SCORES_DTYPE = "<f4"


def _encode_pair_scores(gold: np.ndarray, cosine: np.ndarray) -> dict:
    """`gold` and `cosine`: (pairs,) in the set's order, cosine NaN where out of vocabulary."""
    def encode(values: np.ndarray) -> str:
        return base64.b64encode(values.astype(PAIR_SCORES_DTYPE).tobytes()).decode("ascii")

    return {"dtype": PAIR_SCORES_DTYPE, "gold": encode(gold), "cosine": encode(cosine)}


def pair_scores(row: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(gold, cosine) of an `evaluate_similarity` row, each (pairs,) float64 in the set's order,
    cosine NaN where the pair is out of vocabulary; None for a row written before rows kept them."""
    scores = row.get("pair_scores")
    if scores is None:
        return None
    gold, cosine = (np.frombuffer(base64.b64decode(scores[key]), dtype=scores["dtype"]).astype(np.float64)
                    for key in ("gold", "cosine"))
    if len(gold) != len(cosine) or len(gold) != row["pairs"]:
        raise BenchError(f"word-similarity row {row['benchmark']}: pair_scores hold {len(gold)} gold and "
                         f"{len(cosine)} cosine values; expected {row['pairs']} of each (one per pair)")
    return gold, cosine


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; all-zero rows stay zero, as in gensim's `matutils.unitvec`."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # (rows, 1)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


# ---------------------------------------------------------------------------------------------
# Word analogies
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AnalogySection:
    name: str
    kind: str  # "semantic" or "syntactic"
    questions: tuple[tuple[str, str, str, str], ...]  # (a, b, c, expected): a is to b as c is to expected


def _read_analogy_sections(path: str | os.PathLike) -> tuple[_AnalogySection, ...]:
    """Parsed analogy file, cached: every model of a run is scored on the same 19,544 questions."""
    path = Path(path)
    try:
        status = path.stat()
    except OSError as error:
        raise BenchError(f"{path}: cannot read analogy file ({error.strerror or error})") from error
    # mtime and size in the key: a file rewritten in place is parsed again.
    return _parse_analogy_file(str(path.resolve()), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=8)
def _parse_analogy_file(path: str, _mtime_ns: int, _size: int) -> tuple[_AnalogySection, ...]:
    """Google analogy format: ': name' section headers, then 'a b c expected' lines.

    Sections named 'gram*' are syntactic, all others semantic (Mikolov et al. 2013). Unlike
    gensim, which skips malformed lines, a line without exactly four words is an error.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"{path}: cannot read analogy file as UTF-8 text ({error})") from error

    sections: list[_AnalogySection] = []
    name: str | None = None
    questions: list[tuple[str, str, str, str]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.startswith(": "):
            if name is not None:
                sections.append(_analogy_section(name, questions))
            name, questions = line.lstrip(": ").strip(), []
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if name is None:
            raise BenchError(f"{path}:{line_no}: expected a ': section' header before the first question")
        words = line.split()
        if len(words) != 4:
            raise BenchError(
                f"{path}:{line_no}: expected 4 words 'a b c expected', got {len(words)}: {line.strip()[:60]!r}"
            )
        a, b, c, expected = words
        questions.append((a, b, c, expected))
    if name is not None:
        sections.append(_analogy_section(name, questions))
    if not any(section.questions for section in sections):
        raise BenchError(f"{path}: expected ': section' headers followed by 'a b c expected' lines, found no question")
    return tuple(sections)


def _analogy_section(name: str, questions: list[tuple[str, str, str, str]]) -> _AnalogySection:
    kind = "syntactic" if name.startswith("gram") else "semantic"
    return _AnalogySection(name=name, kind=kind, questions=tuple(questions))


def evaluate_analogies(
    kv: KeyedVectors,
    path: str | os.PathLike | None = None,
    *,
    restrict_vocab: int | None = 300000,
    case_insensitive: bool = True,
    methods: tuple[str, ...] = ANALOGY_METHODS,
    device: str | torch.device = "cpu",
    batch_size: int = 2048,
    progress: bool = False,
) -> list[dict]:
    """Accuracy on analogy questions 'a is to b as c is to ?', per method and section kind.

    Semantics of gensim's `evaluate_word_analogies` (default file: gensim's Google
    questions-words.txt): only the first `restrict_vocab` keys, case-folded with the most
    frequent variant winning, are candidates and count as known; a question with any of its
    four words unknown is skipped (`oov_questions`); the three question words, and their case
    variants, cannot be the answer; accuracy is correct / answered (NaN when none answered).

    - "3cosadd": argmax_x cos(x, b - a + c) on unit vectors (gensim's `most_similar`).
    - "3cosmul": argmax_x cos'(x, b) cos'(x, c) / (cos'(x, a) + 1e-6) with cos' = (1 + cos) / 2
      (Levy & Goldberg 2014; gensim's `most_similar_cosmul`, which however ignores
      `restrict_vocab`, here applied to it as well so both methods search the same words).

    Each batch of questions is one matmul against the restricted unit matrix on `device`;
    the caller synchronizes if it times a CUDA run. `progress`: a bar over the batches (400k
    candidates take minutes on a CPU). Returns one row per method and section
    kind: {method, section ("semantic", "syntactic", "total"), questions, oov_questions,
    correct, accuracy}.
    """
    unknown = [method for method in methods if method not in ANALOGY_METHODS]
    if unknown or not methods:
        raise BenchError(f"methods={methods!r}: expected some of {', '.join(map(repr, ANALOGY_METHODS))}")
    if batch_size < 1:
        raise BenchError(f"batch_size={batch_size}: expected a positive number of questions per batch")
    sections = _read_analogy_sections(path if path is not None else datapath("questions-words.txt"))
    vocab = _restricted_vocab(kv, restrict_vocab, case_insensitive)

    questions = [question for section in sections for question in section.questions]
    is_syntactic = np.array(
        [section.kind == "syntactic" for section in sections for _ in section.questions], dtype=bool
    )  # (questions,)
    # (questions, 4) rows of a, b, c, expected (of their most frequent case variant); -1 where
    # out of vocabulary.
    rows = np.array(
        [[vocab.get(_fold(word, case_insensitive), -1) for word in question] for question in questions],
        dtype=np.int64,
    )
    answerable = (rows >= 0).all(axis=1)  # (questions,)

    # Candidates are the first `restrict_vocab` keys, as gensim's `most_similar` clips them.
    candidates = len(kv.index_to_key[:restrict_vocab])
    unit = _shifted_unit_matrix(kv, candidates, device)
    answerable_rows = torch.from_numpy(rows[answerable]).to(device)  # (answered, 4)
    variants = _case_variants(kv, vocab, candidates) if case_insensitive else {}
    # (answered, 3 + most variants): rows that may not be the answer, padded by repeating row a
    excluded = torch.from_numpy(_excluded_answers(rows[answerable, :3], variants)).to(device)
    # (candidates,) row of each candidate's most frequent case variant: "canonical[predicted] ==
    # expected row" is gensim's "predicted.upper() == expected"
    canonical = torch.arange(candidates)
    for canonical_row, variant_rows in variants.items():
        canonical[variant_rows] = canonical_row
    canonical = canonical.to(device)

    results: list[dict] = []
    for method in methods:
        # Score matrices are reused across batches: a fresh (batch, candidates) allocation per
        # batch costs page faults comparable to the matmul itself on CPU.
        score_rows = min(batch_size, len(answerable_rows)) * (3 if method == "3cosmul" else 1)
        workspace = torch.empty(score_rows * min(candidates, _CANDIDATE_BLOCK), device=device)
        correct = torch.zeros(len(answerable_rows), dtype=torch.bool, device=device)  # (answered,)
        for start in tqdm(range(0, len(answerable_rows), batch_size), desc=f"analogies {method}", unit="batch",
                          leave=False, disable=not progress):
            batch = answerable_rows[start:start + batch_size]  # (batch, 4)
            predicted = _best_candidates(method, unit, batch, excluded[start:start + batch_size], workspace)
            correct[start:start + batch_size] = canonical[predicted] == batch[:, 3]
        results.extend(_accuracy_rows(method, is_syntactic, answerable,  # type: ignore[arg-type]  # numpy's stub:
                                      correct.cpu().numpy()))  # .all(axis=1) may be a scalar; it is (questions,)
    return results


def _shifted_unit_matrix(kv: KeyedVectors, candidates: int, device: str | torch.device) -> torch.Tensor:
    """(candidates, dim + 1) float32: unit vectors, then a column of ones.

    Cosine is then a plain matmul, and a query whose last entry is 1 gets 1 + cosine from the
    same matmul: 3CosMul's shift to [0, 1] without another pass over the score matrix.
    """
    vectors = torch.from_numpy(np.ascontiguousarray(kv.vectors[:candidates], dtype=np.float32)).to(device)
    ones = torch.ones(candidates, 1, device=device)
    return torch.cat([torch.nn.functional.normalize(vectors, dim=1), ones], dim=1)


def _case_variants(kv: KeyedVectors, vocab: dict[str, int], candidates: int) -> dict[int, list[int]]:
    """Row of a key -> rows of its less frequent case variants, for keys that have any.

    gensim refuses a predicted word whose upper-case form is a question word, so 'Paris' is no
    answer to a question about 'paris'. Even lower-cased GloVe has a few (45 of 300k: 'ß' and
    'ss' both fold to 'SS').
    """
    variants: dict[int, list[int]] = {}
    for row, key in enumerate(kv.index_to_key[:candidates]):
        canonical = vocab[key.upper()]
        if canonical != row:
            variants.setdefault(canonical, []).append(row)
    return variants


def _excluded_answers(question_rows: np.ndarray, variants: dict[int, list[int]]) -> np.ndarray:
    """(questions, width) rows that may not answer each question: a, b, c and their case variants.

    question_rows: (questions, 3) rows of a, b, c. Padding repeats row a, so one scatter of -inf
    over the whole matrix masks everything at once.
    """
    extra = [
        [row for word_row in question for row in variants.get(word_row, ())] for question in question_rows.tolist()
    ]
    width = 3 + max((len(rows) for rows in extra), default=0)
    excluded = np.repeat(question_rows[:, :1], width, axis=1)
    excluded[:, :3] = question_rows
    for question, rows in enumerate(extra):
        excluded[question, 3:3 + len(rows)] = rows
    return excluded


def _best_candidates(
    method: str,
    unit: torch.Tensor,
    batch: torch.Tensor,
    excluded: torch.Tensor,
    workspace: torch.Tensor,
) -> torch.Tensor:
    """Best-scoring candidate row for each question of the batch: (batch,) int64.

    unit: (candidates, dim + 1) from `_shifted_unit_matrix`; batch: (batch, 4) rows of a, b, c,
    expected; excluded: (batch, width) rows that may not be the answer; workspace: flat float32
    storage for one score tile, reused across tiles and batches.

    Candidates are scored a block at a time and a running best is kept: with dim ~ 50 the
    matmul is bound by writing its (batch, candidates) output, so a tile that stays in cache
    instead of a full score matrix in memory roughly halves the matmul time. A later block
    must score strictly higher to win, so ties go to the lower row, as a single argmax over
    all candidates would.
    """
    size, candidates = len(batch), len(unit)
    a, b, c = unit[batch[:, 0]], unit[batch[:, 1]], unit[batch[:, 2]]  # (batch, dim + 1) each
    if method == "3cosadd":
        # gensim normalizes the offset first; a positive factor per question leaves the argmax alone.
        queries = b - a + c
        queries[:, -1] = 0  # plain cosine, no shift
    else:
        # (1+cos_b)/2 * (1+cos_c)/2 / ((1+cos_a)/2 + eps) = (1+cos_b)(1+cos_c) / (1+cos_a + 2 eps) / 2:
        # the same argmax, with the shift and eps folded into the queries' last column.
        queries = torch.cat([a, b, c])  # (3 * batch, dim + 1), last column 1
        queries[:size, -1] += 2 * _COSMUL_EPSILON
    best_score = torch.full((size,), -torch.inf, device=unit.device)  # (batch,)
    best_row = torch.zeros(size, dtype=torch.int64, device=unit.device)  # (batch,)
    question = torch.arange(size, device=unit.device)[:, None].expand_as(excluded)  # (batch, width)
    for start in range(0, candidates, _CANDIDATE_BLOCK):
        stop = min(candidates, start + _CANDIDATE_BLOCK)
        tile = torch.mm(queries, unit[start:stop].T,
                        out=workspace[:len(queries) * (stop - start)].view(len(queries), stop - start))
        if method == "3cosadd":
            scores = tile  # (batch, block)
        else:
            shifted_a, shifted_b, shifted_c = tile.view(3, size, stop - start)  # (batch, block) each
            scores = shifted_b.mul_(shifted_c).div_(shifted_a)
        local = excluded - start  # (batch, width) excluded rows, relative to this block
        inside = (local >= 0) & (local < stop - start)
        scores[question[inside], local[inside]] = -torch.inf
        # amax is vectorized (~20x faster than max with indices on CPU); the index is only
        # needed for the few questions this block improves (candidates come most frequent first).
        value = scores.amax(dim=1)  # (batch,)
        better = (value > best_score).nonzero().squeeze(1)  # (improved,)
        best_score[better] = value[better]
        best_row[better] = scores[better].argmax(dim=1) + start  # first maximum: ties keep the lower row
    return best_row


def _accuracy_rows(method: str, is_syntactic: np.ndarray, answerable: np.ndarray, correct: np.ndarray) -> list[dict]:
    """One result row per section kind, counting over all questions of that kind."""
    correct_all = np.zeros(len(answerable), dtype=bool)  # (questions,)
    correct_all[answerable] = correct
    rows = []
    for section, selected in (
        ("semantic", ~is_syntactic),
        ("syntactic", is_syntactic),
        ("total", np.ones_like(is_syntactic)),
    ):
        questions = int(selected.sum())
        answered = int((selected & answerable).sum())
        hits = int((selected & correct_all).sum())
        rows.append({
            "method": method,
            "section": section,
            "questions": questions,
            "oov_questions": questions - answered,
            "correct": hits,
            "accuracy": hits / answered if answered else math.nan,
        })
    return rows

