"""Helpers of the tests that compare torch runs with numbers recorded from earlier code."""

import contextlib
import math

import torch


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread: CPU reductions, so the last bits, depend on the thread count."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n_threads)


def nan_as_none(value):
    """``value`` with every float nan (in nested dicts, lists, tuples) as ``None``, so ``==`` works."""
    if isinstance(value, dict):
        return {k: nan_as_none(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(nan_as_none(v) for v in value)
    return None if isinstance(value, float) and math.isnan(value) else value
