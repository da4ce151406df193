"""Settings conformed to the type of the config field they set, and their errors blamed on
whoever set them.

A matrix file's value or a `--set` arrives as TOML made it: an integer where a float field
waits, a list where a tuple does. `conform` turns it into what the field's annotation
(`typing.get_type_hints` of the config dataclass) says, or refuses it; `build` makes a config
dataclass from one table of settings that way, refusing unknown keys too. Every refusal is a
one-line `BenchError` naming the setting and, through a `Blame`, the file or flag that made it.
`bench.run.config` checks every section of a matrix through these.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable

from bench.errors import BenchError

Blame = Callable[..., str]  # setting path -> the file or flag that set it (`blamer`)


class _WrongType(Exception):
    """A setting's value does not fit its field's annotation (turned into a BenchError by `checked`)."""


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def conform(hint, value):
    """`value` as a field annotated `hint` takes it: a TOML integer for a float, a list for a
    tuple (nested too). Raises _WrongType when it does not fit; `X | None` takes X (TOML has no
    null: an unset field keeps its None default)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        for option in args:
            if option is type(None) and value is None:
                return None
            if option is not type(None):
                try:
                    return conform(option, value)
                except _WrongType:
                    pass
        raise _WrongType
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _WrongType
        if origin is list:
            return [conform(args[0], item) for item in value] if args else list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(conform(args[0], item) for item in value)
        if len(value) != len(args):
            raise _WrongType
        return tuple(conform(arg, item) for arg, item in zip(args, value))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise _WrongType
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
            raise _WrongType
        return value
    raise TypeError(f"settings annotated {hint!r} are not checked by bench.run.conform; annotate config fields "
                    f"with int, float, str, bool, dict, tuple[...], list[...] or a union of them")


def describe(hint) -> str:
    """A field's annotation in the words of an error message: `int`, `a list of str`, `[int, int]`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(describe(option) for option in args if option is not type(None))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis or origin is list and args:
        return f"a list of {describe(args[0])}"
    if origin is tuple:
        return "[" + ", ".join(describe(arg) for arg in args) + "]"
    if hint is dict or origin is dict:
        return "a table"
    return getattr(hint, "__name__", str(hint))


def checked(cls: type, key: str, value, section: tuple[str, ...], blame: Blame):
    """`value` conformed to the type of `cls`'s field `key` (`conform`), or a one-line error
    naming the setting, blamed on the file or flag that made it."""
    hint = _hints(cls)[key]
    try:
        return conform(hint, value)
    except _WrongType:
        raise BenchError(f"{blame(*section, key)}: {'.'.join(section)}.{key}: expected {describe(hint)}, "
                         f"got {value!r}") from None


def build(cls: type, values: dict, section: tuple[str, ...], blame: Blame):
    """`cls` made from one table of settings: unknown keys and values of the wrong type refused."""
    fields = class_fields(cls)
    unknown = sorted(set(values) - fields)
    if unknown:
        raise BenchError(f"{blame(*section, unknown[0])}: unknown key(s) {', '.join(unknown)} in "
                         f"[{'.'.join(section)}]; expected some of {', '.join(sorted(fields))}")
    conformed = {key: checked(cls, key, value, section, blame) for key, value in values.items()}
    try:
        return cls(**conformed)
    except ValueError as exc:  # impl configs validate themselves with ValueError
        raise BenchError(f"{blame(*section)}: [{'.'.join(section)}] {exc}") from exc


def blamer(where: str, origins: dict[tuple[str, ...], str] | None = None) -> Blame:
    """Who set a setting: the flag (`--set section.key=value`, `--seeds`) in `origins` that set
    it or a setting below it, else the matrix file `where`. Every check of a matrix goes
    through one path; this makes its message name the flag the user typed."""
    def blame(*path: str) -> str:
        return next((origin for set_path, origin in (origins or {}).items() if set_path[:len(path)] == path), where)
    return blame


def class_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}
