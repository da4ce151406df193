"""Word similarity: correlate cosine similarity with human judgements, number for number as
gensim's `KeyedVectors.evaluate_word_pairs` (the published reference scores were measured with
it), vectorized; the sets it reads, and the `wordsim` rows it makes (`WordsimRow`, `TABLE`)."""

from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from scipy import stats

from bench.errors import BenchError
from bench.eval.metrics._schema import Metric, RowTable, as_stored, measured, stored
from bench.eval.metrics._vocab import fold, restricted_vocab

SPEARMAN = Metric("spearman", "higher", "rho",
                  "Spearman rank correlation between cosine similarity and human similarity judgements")
PEARSON = Metric("pearson", "higher", "r",
                 "Pearson correlation between cosine similarity and human similarity judgements")


@dataclass(kw_only=True)
class WordsimRow:
    """One similarity set scored by one set of vectors."""

    model: str | None = None  # where a cell scores several vector sets (the biLM's), the row's own
    benchmark: str  # the set's name
    pairs: int
    oov_pairs: int  # pairs with a word outside the searched vocabulary
    spearman: float = measured(SPEARMAN)  # NaN below two scored pairs
    pearson: float = measured(PEARSON)
    pair_scores: dict | None = stored()  # every pair's gold score and cosine (`pair_scores` reads them)


TABLE = RowTable("wordsim", WordsimRow, title="Word similarity", score="Spearman ρ")

# gensim's copies of two standard sets carry other file names than the data root's EN-*.txt;
# naming them alike lets reports put numbers from either source side by side.
_GENSIM_SIMILARITY_SET_NAMES = {"wordsim353.tsv": "WS-353-ALL", "simlex999.txt": "SIMLEX-999"}

OOV_POLICIES = ("skip", "zero")

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

    Returns a `WordsimRow` as stored. It keeps every pair's gold score and cosine
    (`pair_scores`, read back with `pair_scores`), so a report can correlate several models on
    the pairs they all cover.
    """
    if oov not in OOV_POLICIES:
        raise BenchError(f"oov={oov!r}: expected one of {', '.join(map(repr, OOV_POLICIES))}")
    vocab = restricted_vocab(kv, restrict_vocab, case_insensitive)

    # (pairs,) rows of the two words, -1 where out of vocabulary
    rows_a = np.array([vocab.get(fold(a, case_insensitive), -1) for a, _, _ in sim_set.pairs], dtype=np.int64)
    rows_b = np.array([vocab.get(fold(b, case_insensitive), -1) for _, b, _ in sim_set.pairs], dtype=np.int64)
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
    return as_stored(WordsimRow(benchmark=sim_set.name, pairs=len(sim_set.pairs), oov_pairs=int((~covered).sum()),
                                spearman=spearman, pearson=pearson, pair_scores=per_pair))


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

