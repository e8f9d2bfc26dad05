"""Wall-clock timing shared by the benchmark scripts."""

import time

import jax
import numpy as np


def best_of(fn, repeat, warm_up=True):
    """(best, median) seconds of fn() over `repeat` calls, waiting for JAX's asynchronous results;
    one untimed call first (compilation) unless warm_up is False."""
    if warm_up:
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))
