"""Posterior modes of a numpyro model found from many starts, their Laplace evidences, and an
importance-sampling evidence whose proposal is the prior plus Student-t components on the modes
(docs/calibration.md, "Evidence that checks itself").

Everything works on the flat vector u of the model's latent sites in numpyro's unconstrained
coordinates, where the potential U(u) = -log[prior(theta(u)) L(theta(u)) |d theta / d u|], so that
Z = integral exp(-U) du. The latent sites must have fixed priors that do not depend on each
other, as every corona_jax model has.
"""

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jax.scipy.special import logsumexp
from numpyro.distributions import biject_to

from .fit import batch_values, hessian, in_chunks, minimise_many

MODE_DISTANCE = 3.0  # an end point within 3 sd (the mode's Hessian metric) of a mode is that mode


@dataclasses.dataclass(frozen=True, eq=False)
class FlatModel:
    """model(*args) as functions of the flat vector u of its latent sites (sorted by name, each
    site's values in C order). Hashed by identity: one compilation per FlatModel."""

    model: Callable
    names: tuple
    shapes: tuple
    priors: tuple  # each site's prior distribution

    @classmethod
    def of(cls, model, args, seed=0):
        """The latent sites of one prior trace of model(*args)."""
        trace = numpyro.handlers.trace(numpyro.handlers.seed(model, seed)).get_trace(*args)
        sites = sorted((name, s) for name, s in trace.items() if s["type"] == "sample" and not s["is_observed"])
        return cls(model, tuple(n for n, _ in sites), tuple(tuple(jnp.shape(s["value"])) for _, s in sites),
                   tuple(s["fn"] for _, s in sites))

    @property
    def size(self) -> int:
        return int(sum(np.prod(s, dtype=int) for s in self.shapes))

    def unflatten(self, u) -> dict:
        out, i = {}, 0
        for name, shape in zip(self.names, self.shapes):
            n = int(np.prod(shape, dtype=int))
            out[name] = jnp.reshape(u[i:i + n], shape)
            i += n
        return out

    def constrained(self, u) -> dict:
        """Each site's value in its prior's support."""
        return {name: biject_to(d.support)(v) for (name, v), d in zip(self.unflatten(u).items(), self.priors)}

    def potential(self, u, *args):
        """U(u): minus the log joint density in unconstrained coordinates (numpyro's potential)."""
        return numpyro.infer.util.potential_energy(self.model, args, {}, self.unflatten(u))

    def prior_potential(self, u):
        """Minus the log prior density of u (the priors' log densities and the Jacobians)."""
        total = 0.0
        for (_, v), d in zip(self.unflatten(u).items(), self.priors):
            t = biject_to(d.support)
            theta = t(v)
            total = total + jnp.sum(d.log_prob(theta)) + jnp.sum(t.log_abs_det_jacobian(v, theta))
        return -total

    def draw_prior(self, key, n) -> jax.Array:
        """(n, size) prior draws, in unconstrained coordinates."""
        keys = jax.random.split(key, len(self.priors))
        columns = [jnp.reshape(jax.vmap(biject_to(d.support).inv)(d.sample(k, (n,))), (n, -1))
                   for k, d in zip(keys, self.priors)]
        return jnp.concatenate(columns, axis=1)

    def unconstrained(self, values: dict) -> np.ndarray:
        """(n, size) unconstrained coordinates of n constrained draws of every site (name -> (n, ...))."""
        n = len(values[self.names[0]])
        return np.concatenate([np.reshape(np.asarray(jax.vmap(biject_to(d.support).inv)(jnp.asarray(values[name]))),
                                          (n, -1)) for name, d in zip(self.names, self.priors)], axis=1)

    def log_likelihood(self, u, *args):
        """log L at u: the prior's part taken out of the potential."""
        return self.prior_potential(u) - self.potential(u, *args)


class Mode(NamedTuple):
    u: np.ndarray  # unconstrained coordinates
    potential: float  # U at the mode
    hessian: np.ndarray  # of U at the mode
    starts: int  # how many starts ended here
    positive_definite: bool
    log_Z_laplace: float  # -U + (d/2) ln 2 pi - (1/2) ln det H (nan unless positive definite)


class ModeSearch(NamedTuple):
    modes: list  # of Mode, deepest first
    starts: int
    converged: int  # starts whose L-BFGS run met its convergence criterion
    labels: np.ndarray  # (starts,) index of each start's mode; -1: not converged or not a mode

    @property
    def log_Z_laplace(self) -> float:
        """The Laplace evidence summed over the distinct modes with a positive-definite Hessian."""
        values = [m.log_Z_laplace for m in self.modes if m.positive_definite]
        return float(logsumexp(np.asarray(values))) if values else float("nan")

    @property
    def agreeing(self) -> int:
        """Starts that ended in the deepest mode."""
        return int(np.sum(self.labels == 0))

    def prior_shares(self) -> np.ndarray:
        """Each mode's share of the starts (drawn from the prior): the prior mass that drains to it."""
        return np.asarray([m.starts for m in self.modes], dtype=float) / self.starts


def laplace_log_evidence(potential, curvature):
    """ln Z of exp(-U) approximated by a Gaussian at its minimum, curvature the Hessian of U there;
    nan unless it is positive definite."""
    H = 0.5 * (curvature + curvature.T)
    eigenvalues = np.linalg.eigvalsh(H) if np.all(np.isfinite(H)) else np.zeros(1)
    if np.any(eigenvalues <= 0):
        return float("nan"), False
    return float(-potential + 0.5 * len(H) * np.log(2 * np.pi) - 0.5 * np.sum(np.log(eigenvalues))), True


def find_modes(objective, args, x0, max_steps=300, chunk=32) -> ModeSearch:
    """Minimise objective(x, *args) by L-BFGS from every row of x0 (batched, sharded over the
    devices), then group the converged end points into modes: an end point within MODE_DISTANCE
    of a deeper mode, in that mode's Hessian metric, is that mode."""
    x0 = np.asarray(x0, dtype=np.float64)
    runs = minimise_many(objective, args, x0, max_steps, chunk)
    ends, values, converged = runs.x, runs.value, runs.converged.astype(bool)
    usable = converged & np.isfinite(values)
    if not usable.any():  # no run met the criterion: group where they stopped, and say so in `converged`
        usable = np.isfinite(values)
    labels = np.full(len(x0), -1)
    modes = []
    for i in np.argsort(np.where(usable, values, np.inf)):
        if not usable[i]:
            break
        for k, m in enumerate(modes):
            delta = ends[i] - m["u"]
            if m["pd"] and delta @ m["H"] @ delta < MODE_DISTANCE ** 2:
                labels[i] = k
                m["starts"] += 1
                break
        else:
            H = np.asarray(hessian(objective, jnp.asarray(ends[i]), args))
            log_Z, pd = laplace_log_evidence(float(values[i]), H)
            if not pd and any(np.allclose(ends[i], m["u"], atol=1e-4) for m in modes):
                continue  # the same flat point as before (a failed Hessian), not a new mode
            labels[i] = len(modes)
            modes.append({"u": ends[i], "value": float(values[i]), "H": 0.5 * (H + H.T), "pd": pd, "log_Z": log_Z,
                          "starts": 1})
    return ModeSearch([Mode(m["u"], m["value"], m["H"], m["starts"], m["pd"], m["log_Z"]) for m in modes], len(x0),
                      int(converged.sum()), labels)


class Importance(NamedTuple):
    log_Z: float
    error: float  # standard error of log_Z (delta method)
    effective_samples: float  # Kish ESS of the weights
    pareto_k: float  # PSIS k-hat of the log weights: above 0.7 the estimate is unreliable
    samples: int


def importance_evidence(flat: FlatModel, args, modes, n, key, posterior_draws=None, defensive=0.2, dof=4.0,
                        scales=(1.0, 2.0), chunk=256) -> Importance:
    """Z = E_q[exp(-U) / q], q a defensive mixture of
    - the prior (weight `defensive`), which covers what the rest misses;
    - on each positive-definite mode, Student-t components (dof degrees of freedom) of scale
      s^2 H^-1 for each s in `scales`, each mode weighted by its Laplace evidence;
    - with posterior_draws (m, size), draws of another sampler in u (nested sampling's), a
      Student-t on each with the draws' covariance times Silverman's bandwidth^2: a kernel
      estimate that follows ridges and tails where the posterior is not Gaussian in u.
    The modes and the kernels share the rest of the weight equally."""
    import arviz as az

    modes = [m for m in modes if m.positive_definite]
    log_w_modes = np.asarray([m.log_Z_laplace for m in modes])
    groups = [(m.u[None, :], s ** 2 * np.linalg.inv(m.hessian), np.asarray([w / len(scales)]))
              for m, w in zip(modes, np.exp(log_w_modes - logsumexp(log_w_modes))) for s in scales]
    if posterior_draws is not None and len(posterior_draws) > flat.size:
        m_draws, d = posterior_draws.shape
        bandwidth = (4.0 / (d + 2)) ** (1 / (d + 4)) * m_draws ** (-1 / (d + 4))
        kernel = bandwidth ** 2 * np.cov(posterior_draws, rowvar=False).reshape(d, d)
        share = 0.5 if groups else 1.0
        groups = [(locs, cov, (1 - share) * w) for locs, cov, w in groups]
        groups.append((np.asarray(posterior_draws), kernel, np.full(m_draws, share / m_draws)))
    log_w = _mixture_log_weights(flat, args, defensive if groups else 1.0, groups, n, dof, key, chunk)
    log_Z = float(logsumexp(log_w) - np.log(n))
    w = np.exp(log_w - np.max(log_w))
    error = float(np.sqrt(w.var(ddof=1) / n) / w.mean())
    ess = float(w.sum() ** 2 / np.sum(w ** 2))
    _, k_hat = az.psislw(log_w[np.isfinite(log_w)].copy())
    return Importance(log_Z, error, ess, float(k_hat), n)


def _mixture_log_weights(flat: FlatModel, args, defensive, groups, n, dof, key, chunk):
    """The log weights -U(u) - log q(u) of n draws u of a mixture q: the prior with
    weight `defensive`, and groups of Student-t components (locs (k, d), one covariance, weights
    (k,)) sharing the rest in proportion to their weights. Each component gets its share of the
    draws exactly (deterministic mixture sampling), so the plain average of the weights is
    unbiased."""
    total = sum(float(np.sum(w)) for _, _, w in groups)
    shares = np.concatenate([[defensive], *[(1 - defensive) * np.asarray(w) / total for _, _, w in groups]])
    counts = np.floor(shares * n).astype(int)
    counts[np.argmax(shares)] += n - counts.sum()
    shares = counts / n
    tril = [np.linalg.cholesky(0.5 * (cov + cov.T)) for _, cov, _ in groups]
    prior_key, normal_key, gamma_key = jax.random.split(key, 3)
    locs = np.concatenate([locs for locs, _, _ in groups]) if groups else np.zeros((0, flat.size))
    group_of = np.concatenate([np.full(len(l), g) for g, (l, _, _) in enumerate(groups)]).astype(int)
    rows = np.repeat(np.arange(len(locs)), counts[1:])
    z = np.asarray(jax.random.normal(normal_key, (len(rows), flat.size)))
    g = np.asarray(2.0 * jax.random.gamma(gamma_key, dof / 2.0, (len(rows),)) / dof)
    scaled = np.empty_like(z)
    for k, L in enumerate(tril):
        mine = group_of[rows] == k
        scaled[mine] = z[mine] @ L.T
    u = np.concatenate([np.asarray(flat.draw_prior(prior_key, counts[0])), locs[rows] + scaled / np.sqrt(g)[:, None]])
    parts = [(jnp.asarray(l), jnp.asarray(L), jnp.asarray(shares[1:][group_of == k]))
             for k, ((l, _, _), L) in enumerate(zip(groups, tril))]
    d = flat.size
    constant = jax.scipy.special.gammaln((dof + d) / 2) - jax.scipy.special.gammaln(dof / 2) - 0.5 * d * np.log(dof * np.pi)

    def log_q(x):
        terms = [jnp.log(shares[0]) - flat.prior_potential(x)[None]] if shares[0] > 0 else []
        for l, L, w in parts:
            delta = jax.scipy.linalg.solve_triangular(L, (x[None, :] - l).T, lower=True)
            log_t = constant - jnp.sum(jnp.log(jnp.diag(L))) - 0.5 * (dof + d) * jnp.log1p(jnp.sum(delta ** 2, 0) / dof)
            terms.append(jnp.log(w) + log_t)
        return logsumexp(jnp.concatenate(terms))

    potential = in_chunks(functools.partial(batch_values, flat.potential), u, args, chunk)
    proposal = np.asarray(jax.jit(jax.vmap(log_q))(jnp.asarray(u)))
    return np.where(np.isfinite(potential), -potential - proposal, -np.inf)
