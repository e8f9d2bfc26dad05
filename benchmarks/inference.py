"""Speed of the posterior machinery: log-density gradient, NUTS iterations, effective samples.

Run: python benchmarks/inference.py [--config configs/sample.toml] [--resolution coarse|default]
     [--warmup 30] [--samples 30]
A short NUTS run with the configuration's data and priors (chains as configured); prints the
time per gradient, per NUTS iteration and per leapfrog step, and the effective samples per
second, and extrapolates the time of the configured full run.
"""

import argparse
import dataclasses
import os
import sys
import time

import arviz as az
import jax
import numpy as np

from corona_jax.inference import config, model, sample

sys.path.insert(0, os.path.dirname(__file__))
from timing import best_of  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/sample.toml")
    ap.add_argument("--resolution", default=None)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    full = config.load_config(args.config)
    cfg = dataclasses.replace(full, warmup=args.warmup, samples=args.samples,
                              resolution=args.resolution or full.resolution)
    sample.use_host_devices(cfg.chains)
    setup = model.build_setup(cfg)
    theta = {n: 0.5 * (p.a + p.b) if p.kind == "uniform" else p.a for n, p in cfg.priors.items()}
    theta.update({n: 0.0 for n in model.free_parameter_names(setup) if n not in theta})
    grad = jax.jit(jax.grad(model.log_density_fn(setup)))
    t_grad, _ = best_of(lambda: grad(theta), 20)
    t0 = time.perf_counter()
    start = sample.warm_start(setup, cfg.seed, progress=lambda s: None) if cfg.init == "optimum" else None
    t_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    mcmc = sample.run_nuts(setup, progress_bar=False, start=start)
    seconds = time.perf_counter() - t0
    steps = np.asarray(mcmc.num_steps)
    idata = sample.to_inference_data(mcmc, setup)
    ess = float(az.ess(idata, var_names=list(cfg.priors)).to_array().min())
    iterations = cfg.warmup + cfg.samples
    print(f"{cfg.resolution} resolution, {cfg.chains} chains ({sample.chain_method(cfg.chains)}), "
          f"{cfg.warmup} + {cfg.samples} iterations (includes compilation)")
    print(f"| log-density gradient, one point | {t_grad * 1e3:.1f} ms |")
    print(f"| warm start ([sampler] init = {cfg.init!r}, includes compilation) | {t_start:.1f} s |")
    print(f"| NUTS iteration (all chains together) | {seconds / iterations * 1e3:.0f} ms |")
    print(f"| mean leapfrog steps per iteration | {steps.mean():.1f} |")
    print(f"| time per leapfrog step, all chains | {seconds / (iterations * steps.mean()) * 1e3:.1f} ms |")
    print(f"| worst-parameter ESS per second (short run) | {ess / seconds:.3f} |")
    print(f"| extrapolated {full.chains} x ({full.warmup} + {full.samples}) run | "
          f"{seconds / iterations * (full.warmup + full.samples) / 60 * full.chains / cfg.chains:.1f} min |")


if __name__ == "__main__":
    main()
