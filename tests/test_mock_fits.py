"""Fits of the real model to mocks (slow): the best fit's chi^2 against a parametric bootstrap of
itself, a misspecification the fit cannot absorb, and recovery of the truth with the breaks and
the energy scales free. Coarse resolution; every mock is drawn from the likelihood the fit uses
(inference.calibrate.simulate) and fitted in one vmapped L-BFGS program per batch."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions import biject_to
from scipy import stats

from corona_jax.inference import calibrate, config, fit, goodness
from corona_jax.inference import model as inference_model

pytestmark = pytest.mark.slow

DATA = """
[data]
cosmic_rays = ["AMS02", "DAMPE", "CREAM-III"]
cosmic_ray_mode = "measurement"
neutrinos = "none"
gamma_foreground = "none"
"""
BROKEN = """
[model]
resolution = "coarse"
spectrum = "broken"
[priors]
alpha = { uniform = [2.3, 2.8] }
log10_LCR_minus_log10_D0 = { uniform = [11.0, 13.0] }
hardening_log10_R_GV = { uniform = [2.0, 3.3] }
hardening_dindex = { uniform = [-0.6, 0.0] }
""" + DATA
TRUTH = dict(alpha=2.60, log10_LCR_minus_log10_D0=12.1, hardening_log10_R_GV=2.7, hardening_dindex=-0.25)


CUTOFF = """
[model]
resolution = "coarse"
[priors]
alpha = { uniform = [2.3, 2.8] }
log10_LCR_minus_log10_D0 = { uniform = [11.0, 13.0] }
log10_Emax_GeV = { uniform = [4.0, 9.0] }
""" + DATA


def _setup(text):
    setup = inference_model.build_setup(config.parse_config(text))
    terms = tuple(calibrate.measured(t) for t in setup.terms)  # symmetric errors, as the mocks scatter
    return setup._replace(problem=setup.problem._replace(terms=terms))


def _mocks(setup, truth, n, seed):
    """n mocks of every term at one truth (every sampled site): term name -> (n, points)."""
    predicted, _ = inference_model.predictions_and_derived(setup, {k: np.full(1, v) for k, v in truth.items()})
    rng = np.random.default_rng(seed)
    return {t.name: np.stack([calibrate.simulate(t, predicted[t.name][0], rng) for _ in range(n)])
            for t in setup.terms}


@dataclasses.dataclass(frozen=True)
class MockFit:
    """The best fit of one mock from each start (unconstrained): (chi^2 at the best, the best
    constrained values in the order names, the Hessian of -log density there, all converged)."""

    names: tuple
    max_steps: int = 800

    def __call__(self, terms, starts, problem):
        problem = problem._replace(terms=terms)
        runs = [fit.minimise(fit.NegLogDensity(self.names), x0, (problem,), self.max_steps) for x0 in starts]
        x = jnp.stack([r.x for r in runs])[jnp.argmin(jnp.stack([r.value for r in runs]))]
        theta = inference_model.constrain(problem, dict(zip(self.names, x)))
        _, pred, nuisances = inference_model._evaluate(theta, problem)
        chi2 = sum(goodness.measured_chi2(t, t.predict(pred, problem.model, nuisances), t.value) for t in terms)
        y = jnp.stack([theta[k] for k in self.names])
        hessian = jax.jacrev(jax.grad(lambda v: -inference_model.log_density(problem, dict(zip(self.names, v)))))(y)
        return chi2, y, hessian, jnp.all(jnp.stack([r.converged for r in runs]))


@functools.partial(jax.jit, static_argnums=0)
def _fit_batch(mock_fit, terms, starts, problem):
    return jax.vmap(mock_fit, in_axes=(0, None, None))(terms, starts, problem._replace(terms=()))


def fit_mocks(setup, values, truth):
    """Best fits of the mocks `values` (term name -> (B, points)) from the truth and from the
    middle of every prior: numpy (chi2 (B,), best (B, sites), Hessian (B, sites, sites), converged
    (B,)) and the site names."""
    names = tuple(sorted(inference_model.site_distributions(setup.problem)))
    sites = inference_model.site_distributions(setup.problem)
    truth_u = jnp.asarray([biject_to(sites[k].support).inv(jnp.asarray(truth.get(k, sites[k].mean))) for k in names])
    starts = jnp.stack([truth_u, jnp.zeros(len(names))])
    n = len(next(iter(values.values())))
    terms = jax.tree.map(lambda *a: np.stack(a), *[tuple(dataclasses.replace(t, value=values[t.name][i])
                                                         for t in setup.terms) for i in range(n)])
    out = _fit_batch(MockFit(names), terms, starts, setup.problem)
    return tuple(np.asarray(a) for a in out), names


def n_points(setup):
    return sum(int(np.size(t.value)) for t in setup.terms)


def test_best_fit_chi2_follows_a_parametric_bootstrap_of_itself():
    """chi^2 at the best fit of mocks drawn at the truth, against a parametric bootstrap: mocks drawn
    at the best fit of one of them, fitted again. Both follow chi^2(points - parameters)."""
    setup = _setup(BROKEN)
    (chi2, best, _, converged), names = fit_mocks(setup, _mocks(setup, TRUTH, 24, seed=1), TRUTH)
    assert np.all(converged)
    at_best = dict(zip(names, best[0]))
    (chi2_boot, _, _, converged), _ = fit_mocks(setup, _mocks(setup, at_best, 24, seed=2), at_best)
    assert np.all(converged)
    assert stats.ks_2samp(chi2, chi2_boot).pvalue > 0.01
    dof = n_points(setup) - len(names)
    for sample in (chi2, chi2_boot):
        assert stats.kstest(sample, stats.chi2(dof).cdf).pvalue > 0.01
    # the bootstrap p-value of each mock's chi^2 is an ordinary p-value, not bunched at 0 or 1
    p_boot = np.array([np.mean(chi2_boot >= c) for c in chi2])
    assert 0.25 < np.mean(p_boot) < 0.75


def test_a_misspecified_spectrum_is_rejected():
    """Mocks with the hardening and the softening, fitted by the paper's cut-off power law."""
    broken = _setup(BROKEN)
    values = _mocks(broken, TRUTH, 8, seed=3)
    cutoff = _setup(CUTOFF)
    truth = dict(alpha=2.6, log10_LCR_minus_log10_D0=12.1, log10_Emax_GeV=6.0)
    (chi2, _, _, _), names = fit_mocks(cutoff, values, truth)
    p = stats.chi2.sf(chi2, n_points(cutoff) - len(names))
    assert np.median(p) < 1e-3
    # the same mocks are described by the spectrum they were drawn from
    (chi2_broken, _, _, _), names = fit_mocks(broken, values, TRUTH)
    assert np.median(stats.chi2.sf(chi2_broken, n_points(broken) - len(names))) > 0.05


def test_truth_is_recovered_with_the_breaks_and_energy_scales_free():
    setup = _setup(BROKEN + "[systematics]\nenergy_scale = true\n")
    truth = dict(TRUTH, **{"rigidity_offset_AMS02_per_TV": 0.02, "energy_scale_DAMPE": 0.02,
                           "energy_scale_CREAM-III": -0.03})
    (_, best, hessian, converged), names = fit_mocks(setup, _mocks(setup, truth, 8, seed=4), truth)
    assert np.all(converged)
    sd = np.sqrt(np.stack([np.diag(np.linalg.inv(h)) for h in hessian]))
    pulls = (best - np.asarray([truth[k] for k in names])) / sd
    assert np.all(np.isfinite(pulls))
    assert np.mean(np.abs(pulls) < 2.0) >= 0.85  # 95 % expected
    assert np.all(np.abs(pulls) < 4.0)
    assert np.all(np.abs(np.mean(pulls, axis=0)) < 1.5)  # no parameter biased by a sd or more
