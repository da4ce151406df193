"""`torch_threads(n)`: torch's intra-op thread count set for a block and restored after it.

torch.set_num_threads is process-wide: a model that sets it for its training and leaves it
would change the speed of whatever the process runs next (the evaluation, the next cell).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch uses `n` intra-op threads inside the block; the caller's count comes back on exit,
    on an error too."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
