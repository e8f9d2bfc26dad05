"""Log-likelihood terms (JAX), following the semantics of docs/architecture.md.

Conventions (all terms drop constants that do not depend on the model):

* Asymmetric errors: a split normal. The error on the side of the model is used,
  log L = -1/2 ((m - d) / s)^2 with s = err_hi if m > d else err_lo. Its normalisation
  depends only on err_lo + err_hi, so it does not bias the fit.
* "Must not exceed" (one-sided): log L = -1/2 ((m - d) / err_hi)^2 for m > d, else 0.
* Correlated errors (a covariance C = L L^T, inference.covariance): -1/2 (m - d)^T C^-1 (m - d).
* Upper limits (rows flagged so, e.g. the last IceCube HESE segment, a ~1 sigma limit
  with best fit 0): a half-normal at zero whose 1-sigma point is the limit,
  log L = -1/2 (m / limit)^2; one-sided in every mode.
"""

import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular


def split_normal(model, data, err_lo, err_hi):
    """Sum of split-normal terms."""
    sigma = jnp.where(model > data, err_hi, err_lo)
    return -0.5 * jnp.sum(((model - data) / sigma) ** 2)


def correlated_normal(model, data, cholesky):
    """A multivariate normal with covariance L L^T (L = cholesky, lower): -1/2 |L^-1 (m - d)|^2."""
    z = solve_triangular(cholesky, model - data, lower=True)
    return -0.5 * jnp.sum(z**2)


def must_not_exceed(model, data, err_hi):
    """Sum of one-sided terms: no penalty below the data, Gaussian above it."""
    excess = jnp.maximum(model - data, 0.0)
    return -0.5 * jnp.sum((excess / err_hi) ** 2)


def upper_limits(model, limit):
    """Sum of half-normal terms with the limit as 1 sigma."""
    return -0.5 * jnp.sum((jnp.maximum(model, 0.0) / limit) ** 2)


def spectrum(model, data, err_lo, err_hi, is_upper_limit, mode):
    """A spectrum with measured rows and upper-limit rows; mode 'bound' or 'measurement'.

    'bound': measured rows one-sided (the model must not exceed them);
    'measurement': measured rows split-normal (the model is the whole measured flux).
    Boolean masks select rows, so this stays jit-able with fixed shapes.
    """
    measured = ~is_upper_limit
    safe_lo = jnp.where(measured, err_lo, 1.0)
    safe_hi = jnp.where(measured, err_hi, 1.0)
    m_meas = jnp.where(measured, model, data)  # upper-limit rows contribute 0 here
    if mode == "bound":
        term = must_not_exceed(m_meas, data, safe_hi)
    elif mode == "measurement":
        term = split_normal(m_meas, data, safe_lo, safe_hi)
    else:
        raise ValueError(f"unknown likelihood mode {mode!r}")
    limit = jnp.where(is_upper_limit, data, 1.0)
    return term + upper_limits(jnp.where(is_upper_limit, model, 0.0), limit)
