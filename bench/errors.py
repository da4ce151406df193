"""The one error type the CLI turns into a one-line message and exit code 2.

Raise `BenchError` for anything a user can fix: bad input files, unknown names,
missing data roots, unreachable hubs. The message must name the file/key and say
what was expected, in one line.
"""


class BenchError(Exception):
    """A user-facing error: printed as one line, exit code 2, nothing half-written."""
