"""Flag values that several commands read the same way."""

from __future__ import annotations

from typing import overload

from bench.errors import BenchError


@overload
def split_names(value: str, flag: str) -> list[str]: ...
@overload
def split_names(value: None, flag: str) -> None: ...
def split_names(value: str | None, flag: str) -> list[str] | None:
    """A comma-separated flag's names; None when the flag is not given. An empty list (`--models ,`,
    `--corpus "$UNSET"`) is an error, never "the matrix's whole list"."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise BenchError(f"{flag} {value!r}: expected a comma-separated list of names, got none")
    return names
