"""Input checks shared by every model file and by the harness's config dataclasses.

Model files never import each other; they share these checks through this helper module, so a
config field or a corpus is checked the same way everywhere and the error text reads the same:
``Word2VecConfig.window=0: expected an int >= 1``.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

import numpy as np


def is_int(value: object) -> TypeGuard[int | np.integer]:
    """A Python or NumPy integer, never a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_num(value: object) -> TypeGuard[int | float | np.integer | np.floating]:
    """A finite int or float (bools excluded)."""
    return (is_int(value) or isinstance(value, (float, np.floating))) and math.isfinite(value)


def is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


def need(config: Any, ok: bool | np.bool_, field: str, expected: str) -> None:
    """Raise ``ValueError`` naming ``Class.field=value`` and what was expected, unless ``ok``."""
    if not ok:
        raise ValueError(f"{type(config).__name__}.{field}={getattr(config, field)!r}: expected {expected}")


def need_ints(config: Any, *fields: str, minimum: int = 1) -> None:
    """``need`` an int >= ``minimum`` in each of ``fields`` (sizes, counts, epochs)."""
    for field in fields:
        value = getattr(config, field)
        need(config, is_int(value) and value >= minimum, field, f"an int >= {minimum}")


def check_int(name: str, value: object, minimum: int = 1) -> None:
    """Raise ``ValueError`` ``name=value: expected an int >= minimum`` for a function argument
    (a vocabulary size, a window) that is not such an int."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an int >= {minimum}")


def check_flat_corpus(ids, offsets, counts, n_words: int, *, positive_counts: bool = False):
    """The flat corpus every static-vector trainer takes, as validated arrays.

    ``ids`` [n_tokens] are token ids in ``[0, n_words)``, sentence i being
    ``ids[offsets[i]:offsets[i+1]]`` (``offsets`` [n_sentences + 1], 0 .. n_tokens,
    non-decreasing) and ``counts`` [n_words] the corpus frequency of each word.
    Returns ``(ids, offsets int64, counts int64)``.
    """
    ids = np.asarray(ids)
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (n_words,) or n_words == 0:
        raise ValueError(f"counts: expected one count per word ({n_words} words, >= 1), got shape {counts.shape}")
    if positive_counts and (counts <= 0).any():
        raise ValueError("counts: expected every count >= 1")
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids: expected a 1-d integer array, got {ids.dtype} with shape {ids.shape}")
    if len(ids) and (ids.min() < 0 or ids.max() >= n_words):
        raise ValueError(f"ids: expected every id in [0, {n_words}), got range [{ids.min()}, {ids.max()}]")
    if (offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids)
            or (np.diff(offsets) < 0).any()):
        raise ValueError(f"offsets: expected non-decreasing int offsets from 0 to len(ids)={len(ids)}")
    return ids, offsets, counts
