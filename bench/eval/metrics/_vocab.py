"""The vocabulary both word-vector evaluators search: gensim's `ok_vocab`, case-folded or not."""

from __future__ import annotations

from gensim.models import KeyedVectors


def restricted_vocab(kv: KeyedVectors, restrict_vocab: int | None, case_insensitive: bool) -> dict[str, int]:
    """gensim's `ok_vocab`: (upper-cased) key -> row, over the first `restrict_vocab` keys.

    With case folding several keys share one upper-case form; the first row, i.e. the most
    frequent variant, wins (gensim builds the dict from the reversed key list for that reason).
    """
    keys = kv.index_to_key[:restrict_vocab]
    folded = [key.upper() for key in keys] if case_insensitive else keys
    return dict(zip(reversed(folded), range(len(keys) - 1, -1, -1)))


def fold(word: str, case_insensitive: bool) -> str:
    return word.upper() if case_insensitive else word
