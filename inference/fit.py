"""Best fits with optax (L-BFGS) from several starts (batched with jax.vmap, sharded over the devices),
Laplace errors, profile likelihoods.

The objective is minus the log joint density (priors + likelihood) in the constrained
parameters; with uniform priors this is the maximum-likelihood fit. The optimiser works
on unconstrained coordinates (numpyro's bijections of each prior's support), so bounds
are respected. Laplace errors come from the Hessian in the constrained parameters,
computed with the autodiff adjoint (forward-over-reverse).
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.distributions import biject_to, constraints

from corona_jax.transport import AutodiffAdjoint

from . import goodness
from .model import (Problem, Setup, constrain, free_parameter_names, log_density, predictions_and_derived,
                    site_distributions)


FIT_CHUNK = 8  # starts minimised at once (memory: each holds its own gradient of the model)
AGREEMENT_NATS = 0.01  # starts ending within this of the best -log density reach the same optimum


class Minimum(NamedTuple):
    """Where L-BFGS stopped, and why."""

    x: jax.Array
    value: float
    steps: int
    converged: bool  # gradient below tol, or the objective stopped changing; False: step limit
    gradient_norm: float  # max |d objective / dx| at x


class Start(NamedTuple):
    """One start of a best fit (constrained values)."""

    start: dict
    final: dict
    neg_log_density: float
    steps: int
    converged: bool
    gradient_norm: float


class FitResult(NamedTuple):
    names: list
    best: dict  # name -> value
    neg_log_density: float
    covariance: np.ndarray  # Laplace, in the order of names (nan where the Hessian is not positive)
    errors: dict  # name -> sqrt(diag covariance); nan at a prior edge (see intervals)
    starts: list  # of Start
    profile: dict  # {'parameter', 'values', 'neg_log_density', 'others', 'at_edge'} or {}
    at_edge: dict  # name -> 'lower' | 'upper' for parameters that end on a prior edge
    intervals: dict  # name -> (low, high): 95 % one-sided interval of an edge parameter
    derived: dict  # the derived sites (share_..., derived_...) at the best fit
    goodness: list  # goodness.TermFit of every data set at the best fit
    goodness_total: dict  # goodness.total_fit: chi2, n_points, dof, p_value over the measurements
    starts_agreeing: int  # starts that end within AGREEMENT_NATS of the best -log density


@dataclasses.dataclass(frozen=True)
class NegLogDensity:
    """-log joint density at the constrained image of a flat vector of unconstrained site values,
    in the order `names` (hashable, so L-BFGS compiles once per set of names)."""

    names: tuple

    def __call__(self, x, problem: Problem):
        return -log_density(problem, constrain(problem, dict(zip(self.names, x))))


@dataclasses.dataclass(frozen=True)
class WithOneFixed:
    """objective with the coordinate `index` held at a value: (free, fixed_value, *args) -> objective."""

    objective: object
    index: int

    def __call__(self, free, fixed, *args):
        return self.objective(jnp.concatenate([free[: self.index], fixed[None], free[self.index:]]), *args)


@functools.partial(jax.jit, static_argnums=0)
def _lbfgs_step(objective, x, state, args):
    """One optax L-BFGS step (compiled once per objective, reused by every start and problem)."""
    f = lambda y: objective(y, *args)  # noqa: E731
    value, grad = optax.value_and_grad_from_state(f)(x, state=state)
    updates, state = optax.lbfgs().update(grad, state, x, value=value, grad=grad, value_fn=f)
    return optax.apply_updates(x, updates), state, value, grad


@functools.partial(jax.jit, static_argnums=0)
def _evaluate(objective, x, args):
    return objective(x, *args)


def lbfgs(objective, x0, args, max_steps, tol=1e-6, rtol=1e-12, patience=5) -> Minimum:
    """Minimise objective(x, *args) with optax L-BFGS until the gradient or the relative change
    of the objective is tiny (converged) or max_steps is reached (not converged). objective
    must be hashable (it is a static argument of jit)."""
    # without weak types, so the state after one step has the same types: one compilation, not two
    x, state = x0, jax.tree.map(lambda a: jnp.asarray(a, dtype=a.dtype), optax.lbfgs().init(x0))
    previous, quiet, converged = np.inf, 0, False
    for i in range(max_steps):
        x, state, value, grad = _lbfgs_step(objective, x, state, args)
        value = float(value)
        quiet = quiet + 1 if abs(previous - value) <= rtol * (1 + abs(value)) else 0
        previous = value
        if float(jnp.max(jnp.abs(grad))) < tol or quiet >= patience:
            converged = True
            break
    return Minimum(x, float(_evaluate(objective, x, args)), i + 1, converged, float(jnp.max(jnp.abs(grad))))


class TracedMinimum(NamedTuple):
    """Where `minimise` stopped (arrays, so it can be vmapped)."""

    x: jax.Array
    value: jax.Array
    steps: jax.Array
    converged: jax.Array  # the same criteria as lbfgs
    gradient_norm: jax.Array  # max |d objective / dx| at the last step, as lbfgs reports it


def minimise(objective, x0, args, max_steps, tol=1e-6, rtol=1e-12, patience=5) -> TracedMinimum:
    """lbfgs as a traced jax.lax.while_loop: the same optax L-BFGS and stopping rules, but
    jit- and vmap-able, so that many problems (calibrate's mocks) are minimised in one
    program, sharded over the devices."""
    solver = optax.lbfgs()
    f = lambda y: objective(y, *args)  # noqa: E731
    value_and_grad = optax.value_and_grad_from_state(f)

    def step(carry):
        x, state, k, previous, quiet, _ = carry
        value, grad = value_and_grad(x, state=state)
        updates, state = solver.update(grad, state, x, value=value, grad=grad, value_fn=f)
        quiet = jnp.where(jnp.abs(previous - value) <= rtol * (1 + jnp.abs(value)), quiet + 1, 0)
        return optax.apply_updates(x, updates), state, k + 1, value, quiet, jnp.max(jnp.abs(grad))

    def going(carry):
        _, _, k, value, quiet, gradient_norm = carry
        return (k < max_steps) & (gradient_norm >= tol) & (quiet < patience) & ~jnp.isnan(value)

    zero = jnp.zeros((), jnp.int32)
    carry = (x0, solver.init(x0), zero, jnp.asarray(jnp.inf, x0.dtype), zero, jnp.asarray(jnp.inf, x0.dtype))
    x, _, k, _, quiet, gradient_norm = jax.lax.while_loop(going, step, carry)
    return TracedMinimum(x, f(x), k, (gradient_norm < tol) | (quiet >= patience), gradient_norm)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _minimise_batch(objective, x0, args, max_steps):
    return jax.vmap(lambda x: minimise(objective, x, args, max_steps))(x0)


@functools.partial(jax.jit, static_argnums=0)
def hessian(objective, x, args):
    """Hessian of objective(x, *args), reverse over reverse (through the transport's discrete adjoint)."""
    return jax.jacrev(jax.grad(objective))(x, *args)


def minimise_many(objective, args, x0, max_steps, chunk=32) -> TracedMinimum:
    """minimise from every row of x0 (numpy arrays, one row per start), batched and sharded (in_chunks)."""
    return in_chunks(functools.partial(_minimise_batch, objective, max_steps=max_steps), np.asarray(x0, np.float64),
                     args, chunk)


@functools.partial(jax.jit, static_argnums=0)
def batch_values(function, u, args):
    return jax.vmap(lambda x: function(x, *args))(u)


def in_chunks(function, u, args, chunk):
    """function(u_i, *args) for every row of u, in jitted, vmapped chunks of `chunk` rows (the last
    padded, so that one program serves every chunk), each chunk's rows sharded over the devices."""
    u = np.asarray(u)
    devices = jax.devices()
    chunk = int(np.ceil(min(chunk, len(u)) / len(devices))) * len(devices)
    sharding = None
    if len(devices) > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        sharding = NamedSharding(Mesh(np.asarray(devices), ("rows",)), PartitionSpec("rows"))
    pieces = []
    for i in range(0, len(u), chunk):
        rows = u[i:i + chunk]
        block = np.concatenate([rows, np.repeat(rows[-1:], chunk - len(rows), axis=0)])
        block = jax.device_put(block, sharding) if sharding is not None else jnp.asarray(block)
        out = function(block, args)
        pieces.append(jax.tree.map(lambda a: np.asarray(a)[: len(rows)], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *pieces)


def best_fit(setup: Setup, starts=None, seed=None, max_steps=None, progress=print) -> FitResult:
    cfg = setup.config
    starts = starts or cfg.starts
    seed = cfg.fit_seed if seed is None else seed
    max_steps = max_steps or cfg.max_steps
    names = free_parameter_names(setup)
    objective = NegLogDensity(tuple(sorted(names)))  # the flat vector in sorted order, as numpyro ravels sites
    problem = setup.problem

    def constrained(flat):
        return {k: float(v) for k, v in constrain(problem, dict(zip(objective.names, flat))).items()}

    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1.5, 1.5, (starts, len(names)))  # unconstrained: spread over each prior's range
    ends = minimise_many(objective, (problem,), x0, max_steps, chunk=FIT_CHUNK)
    runs = []
    for s in range(starts):
        value, converged, gradient_norm = float(ends.value[s]), bool(ends.converged[s]), float(ends.gradient_norm[s])
        runs.append(Start(constrained(x0[s]), constrained(ends.x[s]), value, int(ends.steps[s]), converged,
                          gradient_norm))
        status = "converged" if converged else f"NOT converged (step limit; gradient {gradient_norm:.2g})"
        progress(f"  start {s + 1}/{starts}: -log L = {value:.4f} after {int(ends.steps[s])} L-BFGS steps, {status}")
    best_start = min(runs, key=lambda r: r.neg_log_density)
    agreeing = sum(r.neg_log_density - best_start.neg_log_density <= AGREEMENT_NATS for r in runs)
    progress(f"  {agreeing} of {starts} starts reach the best -log L (within {AGREEMENT_NATS} nat)")
    best = best_start.final
    covariance = laplace_covariance(setup, best, names)
    errors = {n: float(np.sqrt(covariance[i, i])) if covariance[i, i] > 0 else float("nan") for i, n in enumerate(names)}
    at_edge = prior_edges(setup.problem, best)
    intervals = {}
    for name, side in at_edge.items():
        intervals[name] = one_sided_interval(setup.problem, name, side, errors[name])
        errors[name] = float("nan")  # a Laplace error means nothing on an edge
    profile = {}
    if cfg.profile:
        profile = profile_likelihood(setup, cfg.profile, objective, constrained, max_steps, progress)
    _, derived = predictions_and_derived(setup, {k: np.atleast_1d(best[k]) for k in setup.config.priors})
    derived = {k: v[0] for k, v in derived.items()}
    fits, total = goodness.fits_at(setup, best)
    return FitResult(names, best, best_start.neg_log_density, covariance, errors, runs, profile, at_edge, intervals,
                     derived, fits, total, agreeing)


def _bounds(distribution):
    """(low, high) of a prior's support (+-inf where unbounded)."""
    support = distribution.support
    if isinstance(support, constraints.interval):
        return float(support.lower_bound), float(support.upper_bound)
    return -np.inf, np.inf


def prior_edges(problem: Problem, values: dict, rtol=1e-3) -> dict:
    """{name: 'lower' | 'upper'} of the values within rtol of the prior range from an edge."""
    out, priors = {}, site_distributions(problem)
    for name, v in values.items():
        lo, hi = _bounds(priors[name])
        if np.isfinite(lo) and np.isfinite(hi):
            if v - lo <= rtol * (hi - lo):
                out[name] = "lower"
            elif hi - v <= rtol * (hi - lo):
                out[name] = "upper"
    return out


def one_sided_interval(problem: Problem, name, side, sigma):
    """95 % interval of a parameter whose best fit sits on a prior edge: the posterior there is
    taken as a half-normal of the Laplace width sigma (1.96 sigma holds 95 %), cut by the
    prior; with no finite width, the whole prior range."""
    lo, hi = _bounds(site_distributions(problem)[name])
    if not np.isfinite(sigma):
        return lo, hi
    return (lo, min(hi, lo + 1.96 * sigma)) if side == "lower" else (max(lo, hi - 1.96 * sigma), hi)


@functools.partial(jax.jit, static_argnums=0)
def _hessian(names, x, problem: Problem):
    return jax.hessian(lambda y: -log_density(problem, dict(zip(names, y))))(x)


def laplace_covariance(setup: Setup, best: dict, names):
    """Inverse Hessian of -log density at the best fit (constrained parameters), via autodiff
    (forward over reverse, so the transport runs with AutodiffAdjoint)."""
    problem = setup.problem._replace(model=setup.model.with_adjoint(AutodiffAdjoint()))
    H = np.asarray(_hessian(tuple(names), jnp.asarray([best[n] for n in names]), problem))
    if not np.all(np.isfinite(H)):
        return np.full(H.shape, np.nan)
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full(H.shape, np.nan)
    if not np.all(np.linalg.eigvalsh(0.5 * (H + H.T)) > 0):
        cov = np.where(np.eye(len(names), dtype=bool) & (np.diag(cov) > 0), cov, np.nan)
    return cov


def profile_likelihood(setup, parameter, objective, constrained, max_steps, progress):
    """-log density minimised over the other parameters on a grid of one parameter's values."""
    cfg = setup.config
    prior = cfg.priors[parameter]
    lo, hi = (prior.a, prior.b) if prior.kind == "uniform" else (prior.a - 3 * prior.b, prior.a + 3 * prior.b)
    grid = np.linspace(lo, hi, cfg.profile_points + 2)[1:-1]
    index = objective.names.index(parameter)  # the parameter's coordinate in the flat vector
    to_unconstrained = biject_to(site_distributions(setup.problem)[parameter].support).inv
    fixed_objective = WithOneFixed(objective, index)
    values, others, edges = [], [], []
    start = jnp.zeros(len(objective.names) - 1)
    for v in grid:
        u = jnp.asarray(to_unconstrained(jnp.asarray(v)))
        m = lbfgs(fixed_objective, start, (u, setup.problem), max_steps)
        start = m.x  # warm start along the profile
        values.append(m.value)
        others.append(constrained(jnp.concatenate([m.x[:index], u[None], m.x[index:]])))
        cut = sorted(n for n in prior_edges(setup.problem, others[-1]) if n != parameter)
        edges.append(",".join(cut))
        note = f"; cut by the prior edge of {', '.join(cut)}" if cut else ""
        progress(f"  profile {parameter} = {v:.4g}: -log L = {m.value:.4f}{note}")
    return {"parameter": parameter, "values": grid, "neg_log_density": np.asarray(values), "others": others,
            "at_edge": edges}
