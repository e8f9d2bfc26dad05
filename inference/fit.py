"""Best fits with optax (L-BFGS) from several starts, Laplace errors, profile likelihoods.

The objective is minus the log joint density (priors + likelihood) in the constrained
parameters; with uniform priors this is the maximum-likelihood fit. The optimiser works
on unconstrained coordinates (numpyro's bijections of each prior's support), so bounds
are respected. Laplace errors come from the Hessian in the constrained parameters,
computed with the autodiff adjoint (forward-over-reverse).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import initialize_model

from .model import NUISANCE_PRIORS, Setup, corona_model, free_parameter_names, log_density_fn

NUISANCE_NAMES = (*NUISANCE_PRIORS, "fermi_foreground_eta")


class FitResult(NamedTuple):
    names: list
    best: dict  # name -> value
    neg_log_density: float
    covariance: np.ndarray  # Laplace, in the order of names (nan where the Hessian is not positive)
    errors: dict  # name -> sqrt(diag covariance)
    starts: list  # (start values dict, final values dict, final objective, steps) per start
    profile: dict  # {'parameter', 'values', 'neg_log_density', 'others'} or {}


def _transforms(setup: Setup, key):
    """Unconstrained <-> constrained maps of numpyro's initialisation."""
    info = initialize_model(key, corona_model, model_args=(setup,))
    return info.param_info.z, info.postprocess_fn


@functools.partial(jax.jit, static_argnums=0)
def _lbfgs_step(objective, x, state):
    """One optax L-BFGS step (compiled once per objective, reused by every start)."""
    value, grad = optax.value_and_grad_from_state(objective)(x, state=state)
    updates, state = optax.lbfgs().update(grad, state, x, value=value, grad=grad, value_fn=objective)
    return optax.apply_updates(x, updates), state, value, grad


def lbfgs(objective, x0, max_steps, tol=1e-6, rtol=1e-12, patience=5):
    """Minimise with optax L-BFGS until the gradient or the relative change of the objective is tiny."""
    x, state = x0, optax.lbfgs().init(x0)
    previous, quiet = np.inf, 0
    for i in range(max_steps):
        x, state, value, grad = _lbfgs_step(objective, x, state)
        value = float(value)
        quiet = quiet + 1 if abs(previous - value) <= rtol * (1 + abs(value)) else 0
        previous = value
        if float(jnp.max(jnp.abs(grad))) < tol or quiet >= patience:
            break
    return x, float(objective(x)), i + 1


def best_fit(setup: Setup, starts=None, seed=None, max_steps=None, progress=print) -> FitResult:
    cfg = setup.config
    starts = starts or cfg.starts
    seed = cfg.fit_seed if seed is None else seed
    max_steps = max_steps or cfg.max_steps
    names = free_parameter_names(setup)
    log_density = log_density_fn(setup)
    z0, postprocess = _transforms(setup, jax.random.PRNGKey(seed))
    flat0, unravel = ravel_pytree(z0)

    def constrained(flat):
        return postprocess(unravel(flat))

    def objective(flat):
        theta = {k: v for k, v in constrained(flat).items() if k in names}
        return -log_density(theta)

    objective = jax.jit(objective)
    rng = np.random.default_rng(seed)
    runs = []
    for s in range(starts):
        x0 = jnp.asarray(rng.uniform(-1.5, 1.5, flat0.shape))  # unconstrained: spread over each prior's range
        x, value, steps = lbfgs(objective, x0, max_steps)
        start = {k: float(v) for k, v in constrained(x0).items() if k in names}
        final = {k: float(v) for k, v in constrained(x).items() if k in names}
        runs.append((start, final, value, steps))
        progress(f"  start {s + 1}/{starts}: -log L = {value:.4f} after {steps} L-BFGS steps")
    best_start = min(runs, key=lambda r: r[2])
    best = best_start[1]
    covariance = laplace_covariance(setup, best, names)
    errors = {n: float(np.sqrt(covariance[i, i])) if covariance[i, i] > 0 else float("nan") for i, n in enumerate(names)}
    profile = {}
    if cfg.profile:
        profile = profile_likelihood(setup, cfg.profile, best, objective, constrained, unravel, flat0, max_steps, progress)
    return FitResult(names, best, best_start[2], covariance, errors, runs, profile)


def laplace_covariance(setup: Setup, best: dict, names):
    """Inverse Hessian of -log density at the best fit (constrained parameters), via autodiff."""
    log_density = log_density_fn(setup, adjoint="autodiff")
    x_best = jnp.asarray([best[n] for n in names])

    def f(x):
        return -log_density(dict(zip(names, x)))

    H = np.asarray(jax.jit(jax.hessian(f))(x_best))
    if not np.all(np.isfinite(H)):
        return np.full(H.shape, np.nan)
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full(H.shape, np.nan)
    if not np.all(np.linalg.eigvalsh(0.5 * (H + H.T)) > 0):
        cov = np.where(np.eye(len(names), dtype=bool) & (np.diag(cov) > 0), cov, np.nan)
    return cov


def profile_likelihood(setup, parameter, best, objective, constrained, unravel, flat0, max_steps, progress):
    """-log density minimised over the other parameters on a grid of one parameter's values."""
    cfg = setup.config
    prior = cfg.priors[parameter]
    lo, hi = (prior.a, prior.b) if prior.kind == "uniform" else (prior.a - 3 * prior.b, prior.a + 3 * prior.b)
    grid = np.linspace(lo, hi, cfg.profile_points + 2)[1:-1]
    # the parameter's coordinate in the flat unconstrained vector
    probe = {k: jnp.zeros_like(v) for k, v in unravel(flat0).items()}
    probe[parameter] = jnp.ones_like(probe[parameter])
    index = int(np.flatnonzero(np.asarray(ravel_pytree(probe)[0]))[0])
    from numpyro.distributions import biject_to, constraints

    support = constraints.interval(prior.a, prior.b) if prior.kind == "uniform" else constraints.real
    to_unconstrained = biject_to(support).inv

    @jax.jit
    def fixed_objective(free, fixed_u):
        return objective(jnp.concatenate([free[:index], fixed_u[None], free[index:]]))

    values, others = [], []
    start = jnp.delete(jnp.zeros_like(flat0), index)
    for v in grid:
        u = jnp.asarray(to_unconstrained(jnp.asarray(v)))
        x, value, _ = lbfgs(lambda f: fixed_objective(f, u), start, max_steps)
        start = x  # warm start along the profile
        full = jnp.concatenate([x[:index], u[None], x[index:]])
        values.append(value)
        others.append({k: float(w) for k, w in constrained(full).items() if k in cfg.priors or k in NUISANCE_NAMES})
        progress(f"  profile {parameter} = {v:.4g}: -log L = {value:.4f}")
    return {"parameter": parameter, "values": grid, "neg_log_density": np.asarray(values), "others": others}
