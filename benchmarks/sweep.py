"""Models per second of the batched model against batch size, beside the single-point model.

(a) alpha, E_max and L_CR swept at fixed D0 and gas: one solve, one product per model;
(b) D0 swept: one solve per model, the batch folded into the solver's vector axis (on a CPU in
    folds of batch.CPU_FOLD); (b') the same through forward_batch, which returns everything;
(c) batched value and gradient of a log-likelihood (D0 varies), one reverse pass.
(a) and (b) time what a sweep records per model (inference.sweep.record: the predictions at
the data, each data set's log-likelihood and the derived shares). The competitor is the
single-point model, jitted, and jax.vmap of it over the batch.

Run: python benchmarks/sweep.py [--resolution default] [--repeat 5] [--max-batch 4096]
Prints a markdown table for benchmarks/RESULTS.md.
"""

import argparse
import os
import platform
import resource
import sys

import jax
import jax.numpy as jnp
import numpy as np

from corona_jax import batch, forward, params
from corona_jax.inference import sweep
from corona_jax.inference.config import parse_model_and_data, read_toml
from corona_jax.inference.config import RunConfig

sys.path.insert(0, os.path.dirname(__file__))
from timing import best_of  # noqa: E402

CONFIG = """
[model]
preset = "baseline"
resolution = "{resolution}"

[data]
cosmic_rays = ["AMS02", "DAMPE", "CREAM-III", "KASCADE2011", "KASCADE-Grande2013"]
cosmic_ray_mode = "measurement"
neutrinos = "IceCube-HESE-7.5yr"
gamma_foreground = "A"
"""


def grouped(S, P, vary_D0, rng):
    """Solve params (S,) and point params (S, P) around the baseline."""
    base = params.preset("baseline")
    D0 = 28.5 + 1.5 * rng.random(S) if vary_D0 else np.full(S, base.log10_D0_cm2_s)
    solve = batch.stack([base._replace(log10_D0_cm2_s=d) for d in D0])
    point = params.CoronaParams(*(jnp.broadcast_to(jnp.asarray(v)[:, None], (S, P)) for v in solve))
    return solve, point._replace(alpha=jnp.asarray(2.0 + 0.8 * rng.random((S, P))),
                                 log10_Emax_GeV=jnp.asarray(6.0 + 3.0 * rng.random((S, P))),
                                 log10_LCR_erg_s=jnp.asarray(39.5 + 2.0 * rng.random((S, P))))


def temp_mb(fn, *args):
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    return stats.temp_size_in_bytes / 1e6 if stats is not None else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", default="default")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--max-batch", type=int, default=4096)
    ap.add_argument("--max-solves", type=int, default=1024, help="largest batch of case (b) and (c)")
    args = ap.parse_args()
    raw = read_toml(CONFIG.format(resolution=args.resolution), "benchmark", {"model", "data"})
    run = RunConfig(**parse_model_and_data(raw, "benchmark"))
    from corona_jax.inference.model import build_setup

    problem = build_setup(run).problem
    shares = sweep.Shares.build(run)
    model = problem.model
    rng = np.random.default_rng(0)
    dev = jax.devices()[0]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{dev.platform} ({dev.device_kind}); resolution {args.resolution}; jax {jax.__version__}\n")

    base = jax.tree.map(jnp.asarray, params.preset("baseline"))
    single = jax.jit(forward.forward)
    t1 = best_of(lambda: single(base, model), args.repeat * 4)[0]

    def loglike(pred, p):
        return sum(t.log_likelihood(t.predict(pred, model), {k: d.mean for k, d in t.nuisance_priors().items()})
                   for t in problem.terms)

    def loglike_of(pred, p, model):  # the model as an argument (traced), as in inference, not a constant
        return sum(t.log_likelihood(t.predict(pred, model), {k: d.mean for k, d in t.nuisance_priors().items()})
                   for t in problem.terms)

    vg1 = jax.jit(jax.value_and_grad(lambda p, model: loglike_of(forward.forward(p, model), p, model)))
    g1 = best_of(lambda: vg1(base, model), args.repeat * 4)[0]
    print("| single point (the competitor) | time | models/s |\n|---|---|---|")
    print(f"| forward, jitted | {t1 * 1e3:.2f} ms | {1 / t1:.0f} |")
    print(f"| value and gradient of the log-likelihood | {g1 * 1e3:.2f} ms | {1 / g1:.0f} |")
    vmapped = jax.jit(jax.vmap(forward.forward, (0, None)))
    for B in (16, 64):
        pb = batch.stack([params.preset("baseline")._replace(log10_D0_cm2_s=28.5 + 1.5 * rng.random()) for _ in range(B)])
        t = best_of(lambda: vmapped(pb, model), max(1, args.repeat // 2))[0]
        print(f"| jax.vmap(forward) over {B} points | {t * 1e3:.0f} ms | {B / t:.0f} |")

    print("\n| case | batch | solves x models per solve | time per call | models/s | XLA temp memory |")
    print("|---|---|---|---|---|---|")
    sizes = [b for b in (1, 4, 16, 64, 256, 1024, 4096) if b <= args.max_batch]
    for B in sizes:
        solve, point = grouped(1, B, False, rng)
        t = best_of(lambda: sweep.record(solve, point, problem, shares), args.repeat)[0]
        print(f"| (a) alpha, E_max, L_CR | {B} | 1 x {B} | {t * 1e3:.2f} ms | {B / t:,.0f} | "
              f"{temp_mb(sweep.record, solve, point, problem, shares):.1f} MB |", flush=True)
    for B in [b for b in sizes if b <= args.max_solves]:
        solve, point = grouped(B, 1, True, rng)
        t = best_of(lambda: sweep.record(solve, point, problem, shares), max(1, args.repeat if B <= 64 else 1))[0]
        print(f"| (b) D0 | {B} | {B} x 1 | {t * 1e3:.1f} ms | {B / t:,.1f} | "
              f"{temp_mb(sweep.record, solve, point, problem, shares):.1f} MB |", flush=True)
    fb = jax.jit(batch.forward_batch)
    for B in [b for b in sizes if b <= min(args.max_solves, 256)]:
        pb = batch.stack([params.preset("baseline")._replace(log10_D0_cm2_s=28.5 + 1.5 * rng.random()) for _ in range(B)])
        t = best_of(lambda: fb(pb, model), max(1, args.repeat if B <= 64 else 1))[0]
        print(f"| (b') forward_batch (whole Prediction), D0 varies | {B} | {B} x 1 | {t * 1e3:.1f} ms | {B / t:,.1f} | "
              f"{temp_mb(batch.forward_batch, pb, model):.1f} MB |", flush=True)
    vg = jax.jit(batch.value_and_grad_batch, static_argnums=0)
    for B in [b for b in sizes if b <= min(args.max_solves, 256)]:
        pb = batch.stack([params.preset("baseline")._replace(log10_D0_cm2_s=28.5 + 1.5 * rng.random()) for _ in range(B)])
        t = best_of(lambda: vg(loglike, pb, model), max(1, args.repeat if B <= 64 else 1))[0]
        mem = jax.jit(batch.value_and_grad_batch, static_argnums=0).lower(loglike, pb, model).compile().memory_analysis()
        print(f"| (c) value and gradient, D0 varies | {B} | {B} x 1 | {t * 1e3:.1f} ms | {B / t:,.1f} | "
              f"{mem.temp_size_in_bytes / 1e6 if mem else float('nan'):.1f} MB |", flush=True)
    print(f"\npeak resident memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")


if __name__ == "__main__":
    main()
