"""Word analogies (a is to b as c is to ?): accuracy per method and section kind, with the
semantics of gensim's `KeyedVectors.evaluate_word_analogies`, but vectorized: gensim answers one
question at a time with a (vocab x dim) mat-vec in Python, which takes minutes on the 400k GloVe
vectors; here a batch of questions is one matmul in torch, on CPU or CUDA. Its `analogy` rows:
`AnalogyRow`, `TABLE`."""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from tqdm.auto import tqdm

from bench.errors import BenchError
from bench.eval.metrics._schema import Metric, RowTable, as_stored, measured, stored
from bench.eval.metrics._vocab import fold, restricted_vocab

ANALOGY_ACCURACY = Metric("analogy_accuracy", "higher", "fraction",
                          "fraction of answered analogy questions (a:b :: c:?) whose best-scoring word is the "
                          "expected one")


@dataclass(kw_only=True)
class AnalogyRow:
    """One method's accuracy on one section kind of the questions."""

    model: str | None = None  # where a cell scores several vector sets (the biLM's), the row's own
    method: str  # "3cosadd" or "3cosmul"
    section: str  # "semantic", "syntactic" or "total"
    questions: int
    oov_questions: int  # questions with a word outside the searched vocabulary: not answered
    correct: int | None = stored()
    accuracy: float = measured(ANALOGY_ACCURACY)  # correct / answered; NaN when none was answered


TABLE = RowTable("analogy", AnalogyRow, title="Google analogies", score="accuracy over answered questions")

ANALOGY_METHODS = ("3cosadd", "3cosmul")

# Levy & Goldberg (2014), eq. 4: keeps 3CosMul finite when the subtracted word's cosine is 0.
_COSMUL_EPSILON = 1e-6
# Candidates scored at once: a (2048 questions x 2048 candidates) float32 tile is 16 MiB and
# stays in a 32 MiB L3 cache.
_CANDIDATE_BLOCK = 2048


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
    candidates take minutes on a CPU). Returns one `AnalogyRow`, as stored, per method and
    section kind ("semantic", "syntactic", "total").
    """
    unknown = [method for method in methods if method not in ANALOGY_METHODS]
    if unknown or not methods:
        raise BenchError(f"methods={methods!r}: expected some of {', '.join(map(repr, ANALOGY_METHODS))}")
    if batch_size < 1:
        raise BenchError(f"batch_size={batch_size}: expected a positive number of questions per batch")
    sections = _read_analogy_sections(path if path is not None else datapath("questions-words.txt"))
    vocab = restricted_vocab(kv, restrict_vocab, case_insensitive)

    questions = [question for section in sections for question in section.questions]
    is_syntactic = np.array(
        [section.kind == "syntactic" for section in sections for _ in section.questions], dtype=bool
    )  # (questions,)
    # (questions, 4) rows of a, b, c, expected (of their most frequent case variant); -1 where
    # out of vocabulary.
    rows = np.array(
        [[vocab.get(fold(word, case_insensitive), -1) for word in question] for question in questions],
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
        rows.append(as_stored(AnalogyRow(method=method, section=section, questions=questions,
                                         oov_questions=questions - answered, correct=hits,
                                         accuracy=hits / answered if answered else math.nan)))
    return rows

