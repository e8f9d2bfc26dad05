"""Goodness of fit: how well the model describes each data set (docs/calibration.md, "Goodness of fit").

* Measurements: chi^2 = sum of squared residuals (m - d) / sigma, sigma the error on the side
  of the model as in the split-normal likelihood (upper-limit rows add (m / limit)^2), its
  number of points, and the p-value of chi^2 with that many degrees of freedom; in total,
  the degrees of freedom are the points less the free parameters. The one-event Poisson term
  (KM3-230213A) gives its deviance 2 (mu - 1 - ln mu) with one degree of freedom.
* Bounds: how many points the model exceeds, and the largest excess in sigma.
* Posteriors: posterior-predictive p-values. For each draw, data are replicated from the
  likelihood (a split normal about the model) and the discrepancy chi^2(replica) is compared
  with chi^2(data) at the same draw (Gelman, Meng & Stern 1996); p = P(chi^2_rep >= chi^2_obs).
  These bunch towards 0.5 for a good model; small values flag a misfit.
* PSIS-LOO (ArviZ) from the pointwise log-likelihood of every measured point, with Pareto k; a
  data set with a covariance (AMS-02 with correlated_errors) is left out as a whole, since its
  points are not independent (Buerkner, Gabry & Vehtari 2021 give the pointwise alternative).
"""

import warnings as warnings_module
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from scipy import stats

from . import likelihoods
from .model import compared_values, nuisance_distributions, site_distributions
from .terms import NeutrinoEvent

P_WARNING = 0.01  # a data set below this p-value gets a warning


class TermFit(NamedTuple):
    """Goodness of fit of one data set at one set of parameter values."""

    name: str
    measurement: bool
    chi2: float  # measurements: sum of squared residuals (0 for a bound)
    n_points: int
    p_value: float  # of chi2 with n_points degrees of freedom (nan for a bound)
    n_exceeding: int  # bounds: points the model exceeds (measurements: points above the data)
    largest_excess_sigma: float  # largest (m - d) / sigma over the points
    residuals: np.ndarray  # (m - d) / sigma per point (upper-limit rows: m / limit)


def residuals(term, model, data):
    """(m - d) / sigma per point, sigma on the side of the model (jnp); upper-limit rows m / limit."""
    sigma = jnp.where(model > data, term.err_hi, term.err_lo)
    measured = (model - data) / jnp.where(term.is_upper_limit, 1.0, sigma)
    return jnp.where(term.is_upper_limit, jnp.maximum(model, 0.0) / data, measured)


def correlated(term):
    """The Cholesky factor of the term's covariance, or None (independent errors)."""
    return getattr(term, "cov_cholesky", None)


def measured_chi2(term, model, data):
    """-2 log L of a measured spectrum (jnp): the split normal over its rows, or with a covariance
    the quadratic form (m - d)^T C^-1 (m - d)."""
    if correlated(term) is not None:
        return -2.0 * likelihoods.correlated_normal(model, data, term.cov_cholesky)
    return -2.0 * likelihoods.spectrum(model, data, term.err_lo, term.err_hi, term.is_upper_limit, "measurement")


def term_fit(term, model, data) -> TermFit:
    """The goodness of fit of one term from (model, data) as its likelihood compares them
    (term.compared; concrete arrays)."""
    if isinstance(term, NeutrinoEvent):
        mu = float(np.asarray(model)[0] / np.asarray(data)[0])
        deviance = 2.0 * (mu - 1.0 - np.log(mu)) if (term.is_measurement or mu > 1.0) else 0.0
        return TermFit(term.name, term.is_measurement, deviance, 1, float(stats.chi2.sf(deviance, 1)),
                       int(mu > 1), float(np.sign(mu - 1) * np.sqrt(deviance)), np.array([mu - 1.0]))
    r = np.asarray(residuals(term, jnp.asarray(model), jnp.asarray(data)))
    ul = np.asarray(term.is_upper_limit)
    exceeding = int(np.sum((r > 0) & ~ul))
    largest = float(np.max(r)) if r.size else float("nan")
    if not term.is_measurement:
        return TermFit(term.name, False, 0.0, r.size, float("nan"), exceeding, largest, r)
    chi2 = float(measured_chi2(term, jnp.asarray(model), jnp.asarray(data)))
    return TermFit(term.name, True, chi2, r.size, float(stats.chi2.sf(chi2, r.size)), exceeding, largest, r)


def fits_at(setup, values: dict) -> tuple:
    """([TermFit per term], total_fit) at one set of values of the sampled sites."""
    compared = compared_values(setup, {k: np.atleast_1d(v) for k, v in values.items()})
    fits = [term_fit(t, compared[t.name][0][0], compared[t.name][1][0]) for t in setup.terms]
    gaussian = {k: getattr(d, "base_dist", d) for k, d in nuisance_distributions(setup.problem).items()}
    gaussian = {k: d for k, d in gaussian.items() if isinstance(d, dist.Normal)}
    pulls = [float((values[k] - d.loc) / d.scale) for k, d in gaussian.items() if k in values]
    return fits, total_fit(fits, len(values) - len(gaussian), pulls)


def total_fit(fits, n_free: int, pulls=()) -> dict:
    """chi^2, degrees of freedom and p-value over every measured set. Gaussian nuisances (pulls:
    their values in sd of their priors) add their squared pulls to chi^2 and a point each, and
    cost none of the free parameters' degrees of freedom (n_free: the other free parameters)."""
    chi2 = sum(f.chi2 for f in fits if f.measurement) + sum(p**2 for p in pulls)
    points = sum(f.n_points for f in fits if f.measurement)
    dof = points - n_free
    return {"chi2": chi2, "n_points": points, "dof": dof,
            "p_value": float(stats.chi2.sf(chi2, dof)) if dof > 0 else float("nan")}


def largest_pull(f: TermFit) -> float:
    """The residual (m - d) / sigma of largest size, with its sign (nan without points)."""
    r = np.asarray(f.residuals)
    return float(r[np.argmax(np.abs(r))]) if r.size else float("nan")


def report_lines(fits, total=None) -> list:
    """A printed table: one line per data set, then the total."""
    lines = []
    for f in fits:
        if f.measurement:
            lines.append(f"  {f.name:<28} chi2 = {f.chi2:8.2f} for {f.n_points:3d} points, p = {f.p_value:.3g}, "
                         f"largest pull {largest_pull(f):+.1f} sigma")
        else:
            lines.append(f"  {f.name:<28} bound: the model exceeds {f.n_exceeding} of {f.n_points} points"
                         + (f", by up to {f.largest_excess_sigma:.2f} sigma" if f.n_exceeding else ""))
    if total is not None and not total["n_points"]:
        lines.append("  no data set is read as a measurement: the run has no chi^2, only the bounds above")
    elif total:
        lines.append(f"  {'total (measurements)':<28} chi2 = {total['chi2']:8.2f} for {total['dof']} degrees of "
                     f"freedom ({total['n_points']} points), p = {total['p_value']:.3g}")
    return lines


def warnings_for(fits, what="the best fit") -> list:
    """One line per measured data set with p < P_WARNING and per bound the model exceeds by > 2 sigma."""
    out = []
    for f in fits:
        if f.measurement and f.p_value < P_WARNING:
            out.append(f"{f.name}: chi2 = {f.chi2:.1f} for {f.n_points} points (p = {f.p_value:.2g}) at {what}: "
                       "the model does not describe these data")
        if not f.measurement and f.largest_excess_sigma > 2.0:
            out.append(f"{f.name}: {what} exceeds this bound by {f.largest_excess_sigma:.1f} sigma")
    return out


# --- posteriors -------------------------------------------------------------------------------


def _split_normal_draw(key, model, err_lo, err_hi):
    """Data replicated about the model from the split-normal likelihood: below the model with sd
    err_hi, above it with sd err_lo, each side with probability proportional to its sd."""
    k1, k2 = jax.random.split(key)
    z = jnp.abs(jax.random.normal(k1, model.shape))
    below = jax.random.uniform(k2, model.shape) < err_hi / (err_lo + err_hi)
    return jnp.where(below, model - z * err_hi, model + z * err_lo)


def posterior_predictive_p(term, models, datas, key) -> tuple:
    """(p-value, chi2_obs (S,), chi2_rep (S,)) of a measured spectrum term from S posterior draws of
    (model, data) as term.compared gives them; upper-limit rows are left out. Replicas are drawn
    from the term's likelihood: the split normal, or the multivariate normal of its covariance."""
    measured = ~np.asarray(term.is_upper_limit)
    lo, hi = jnp.where(measured, term.err_lo, 1.0), jnp.where(measured, term.err_hi, 1.0)
    keys = jax.random.split(key, models.shape[0])

    def chi2(m, d):  # the likelihood's chi^2 over the measured rows
        if correlated(term) is not None:
            return measured_chi2(term, m, d)
        return -2.0 * likelihoods.split_normal(jnp.where(measured, m, d), d, lo, hi)

    def replica(k, m):
        if correlated(term) is not None:
            return m + term.cov_cholesky @ jax.random.normal(k, m.shape)
        return _split_normal_draw(k, m, lo, hi)

    def one(m, d, k):
        return chi2(m, d), chi2(m, replica(k, m))

    obs, rep = jax.vmap(one)(jnp.asarray(models), jnp.asarray(datas), keys)
    return float(jnp.mean(rep >= obs)), np.asarray(obs), np.asarray(rep)


def pointwise_log_likelihood(term, models, datas):
    """log p(d_i | theta) of every measured row (S, N_measured): the normalised split normal. With a
    covariance the rows are not independent and pointwise LOO is not defined: the whole data set
    is one observation (S, 1), its multivariate normal density, so LOO leaves the data set out."""
    if correlated(term) is not None:
        L = np.asarray(term.cov_cholesky)
        chi2 = np.asarray(jax.vmap(lambda m, d: measured_chi2(term, m, d))(jnp.asarray(models), jnp.asarray(datas)))
        log_norm = np.sum(np.log(np.diag(L))) + 0.5 * L.shape[0] * np.log(2.0 * np.pi)
        return (-0.5 * chi2 - log_norm)[:, None]
    measured = ~np.asarray(term.is_upper_limit)
    lo, hi = np.asarray(term.err_lo)[measured], np.asarray(term.err_hi)[measured]
    m, d = np.asarray(models)[:, measured], np.asarray(datas)[:, measured]
    sigma = np.where(m > d, hi, lo)
    return -0.5 * ((m - d) / sigma) ** 2 - np.log(np.sqrt(np.pi / 2.0) * (lo + hi))


def posterior_checks(setup, idata, seed=0):
    """Per data set, from every posterior draw: posterior-predictive p-values and the median chi^2
    (measurements), how often the model exceeds a bound, and PSIS-LOO (ArviZ) with its largest
    Pareto k. Adds the pointwise log-likelihood of the measured points to idata (group
    log_likelihood) and returns (pandas DataFrame, list of warning lines)."""
    import arviz as az
    import pandas as pd

    post = idata.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    samples = {k: post[k].values.reshape(-1) for k in site_distributions(setup.problem) if k in post}
    compared = compared_values(setup, samples)
    rows, pointwise, warnings = {}, {}, []
    key = jax.random.PRNGKey(seed)
    for term in setup.terms:
        models, datas = compared[term.name]
        if not term.is_measurement or isinstance(term, NeutrinoEvent):
            r = np.asarray(jax.vmap(lambda m, d: residuals(term, m, d))(jnp.asarray(models), jnp.asarray(datas)))
            exceeding = np.any((r > 0) & ~np.asarray(term.is_upper_limit), axis=1)
            rows[term.name] = dict(likelihood="bound" if not term.is_measurement else "poisson event",
                                   n_points=r.shape[1], draws_exceeding=float(np.mean(exceeding)),
                                   largest_excess_sigma_median=float(np.median(r.max(axis=1))))
            continue
        key, sub = jax.random.split(key)
        p, obs, _ = posterior_predictive_p(term, models, datas, sub)
        pointwise[term.name] = pointwise_log_likelihood(term, models, datas).reshape(*shape, -1)
        rows[term.name] = dict(likelihood="measurement", n_points=int(np.sum(~np.asarray(term.is_upper_limit))),
                               chi2_median=float(np.median(obs)), ppp=p,
                               loo_leaves_out="data set" if correlated(term) is not None else "point")
        if p < P_WARNING:
            warnings.append(f"{term.name}: posterior-predictive p = {p:.2g} (median chi2 {np.median(obs):.1f} for "
                            f"{rows[term.name]['n_points']} points): the model does not describe these data")
    if pointwise:
        idata.add_groups(log_likelihood={k: v for k, v in pointwise.items()},
                         dims={k: [f"{k} measured point"] for k in pointwise})
        for name in pointwise:
            with warnings_module.catch_warnings():  # a data set left out whole is one observation, as meant
                warnings_module.filterwarnings("ignore", message="The point-wise LOO is the same with the sum LOO")
                loo = az.loo(idata, var_name=name, pointwise=True)
            k_max, good_k = float(np.max(loo.pareto_k)), float(getattr(loo, "good_k", 0.7))
            rows[name].update(elpd_loo=float(loo.elpd_loo), elpd_loo_se=float(loo.se), p_loo=float(loo.p_loo),
                              pareto_k_max=k_max, pareto_k_threshold=good_k,
                              n_pareto_k_above=int(np.sum(np.asarray(loo.pareto_k) > good_k)))
            if k_max > good_k:
                warnings.append(f"{name}: Pareto k up to {k_max:.2f} > {good_k:.2f} for "
                                f"{rows[name]['n_pareto_k_above']} points: PSIS-LOO is unreliable there "
                                "(those points are influential)")
    return pd.DataFrame.from_dict(rows, orient="index"), warnings
