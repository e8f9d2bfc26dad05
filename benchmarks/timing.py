"""Wall-clock timing shared by the benchmark scripts."""

import argparse
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


def arguments(description):
    """Command line of the timing scripts: --resolution (default 'default') and --repeat (20)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--resolution", default="default")
    ap.add_argument("--repeat", type=int, default=20)
    return ap.parse_args()
