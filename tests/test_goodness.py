"""Goodness of fit (inference.goodness): chi^2 against the likelihood, p-values against their
distribution on simulated data, posterior-predictive p-values, and the bounds' exceedances."""

import jax
import numpy as np
import pytest
from scipy import stats

from corona_jax.inference import goodness, likelihoods, terms


def _term(value, err, mode="measurement", upper=None):
    n = len(value)
    return terms.ProtonSpectrum(E_GeV=np.geomspace(10.0, 1e4, n), value=np.asarray(value, float),
                                err_lo=np.asarray(err, float), err_hi=1.5 * np.asarray(err, float),
                                is_upper_limit=np.zeros(n, bool) if upper is None else upper, name="toy", mode=mode)


def test_chi2_is_minus_twice_the_log_likelihood():
    rng = np.random.default_rng(1)
    model = rng.uniform(1, 2, 20)
    term = _term(model + rng.normal(0, 0.1, 20), np.full(20, 0.1))
    fit = goodness.term_fit(term, model, term.value)
    assert fit.chi2 == pytest.approx(-2 * float(term.log_likelihood(model, {})), rel=1e-12)
    assert fit.p_value == pytest.approx(stats.chi2.sf(fit.chi2, 20))


def test_p_values_are_uniform_for_data_drawn_from_the_likelihood_and_small_for_a_wrong_model():
    rng = np.random.default_rng(2)
    n, sims = 15, 2000
    model = np.linspace(1.0, 3.0, n)
    err_lo, err_hi = np.full(n, 0.1), np.full(n, 0.15)
    below = rng.uniform(size=(sims, n)) < err_hi / (err_lo + err_hi)
    z = np.abs(rng.standard_normal((sims, n)))
    data = np.where(below, model - z * err_hi, model + z * err_lo)
    term = terms.ProtonSpectrum(E_GeV=np.geomspace(10, 1e3, n), value=data[0], err_lo=err_lo, err_hi=err_hi,
                                is_upper_limit=np.zeros(n, bool), name="toy", mode="measurement")
    p = np.array([goodness.term_fit(term, model, d).p_value for d in data])
    assert stats.kstest(p, "uniform").pvalue > 0.01
    wrong = model * (1 + 0.3 * np.linspace(-1, 1, n))  # a tilt the errors cannot absorb
    assert np.median([goodness.term_fit(term, wrong, d).p_value for d in data[:200]]) < 1e-3


def test_bounds_count_the_points_the_model_exceeds():
    term = _term([1.0, 1.0, 1.0, 1.0], [0.1] * 4, mode="bound")
    fit = goodness.term_fit(term, np.array([0.5, 1.15, 0.9, 1.45]), term.value)
    assert not fit.measurement and fit.n_exceeding == 2
    assert fit.largest_excess_sigma == pytest.approx(0.45 / 0.15)
    assert goodness.warnings_for([fit])  # 2 sigma above a bound


def test_upper_limit_rows_add_their_half_normal():
    term = _term([1.0, 2.0], [0.1, 0.0], upper=np.array([False, True]))
    fit = goodness.term_fit(term, np.array([1.0, 1.0]), term.value)
    assert fit.chi2 == pytest.approx(0.25)  # (m / limit)^2
    assert fit.chi2 == pytest.approx(-2 * float(likelihoods.spectrum(
        np.array([1.0, 1.0]), term.value, term.err_lo, term.err_hi, term.is_upper_limit, "measurement")))


def test_posterior_predictive_p_flags_a_misfit_and_not_a_fit():
    rng = np.random.default_rng(3)
    n, S = 20, 400
    truth = np.linspace(1.0, 2.0, n)
    term = _term(truth + rng.normal(0, 0.05, n), np.full(n, 0.05))
    term = terms.ProtonSpectrum(E_GeV=term.E_GeV, value=term.value, err_lo=term.err_lo, err_hi=term.err_lo,
                                is_upper_limit=term.is_upper_limit, name="toy", mode="measurement")
    draws = truth[None, :] * (1 + 0.002 * rng.standard_normal((S, 1)))
    p_good, _, _ = goodness.posterior_predictive_p(term, draws, np.broadcast_to(term.value, draws.shape),
                                                   jax.random.PRNGKey(0))
    tilted = draws * (1 + 0.15 * np.linspace(-1, 1, n))[None, :]
    p_bad, _, _ = goodness.posterior_predictive_p(term, tilted, np.broadcast_to(term.value, draws.shape),
                                                  jax.random.PRNGKey(0))
    assert 0.01 < p_good < 0.99 and p_bad < 1e-3


def test_total_counts_gaussian_pulls_and_free_parameters():
    fits = [goodness.TermFit("a", True, 10.0, 12, 0.6, 0, 0.0, np.zeros(12)),
            goodness.TermFit("b", False, 0.0, 5, float("nan"), 0, -1.0, np.zeros(5))]
    total = goodness.total_fit(fits, 2, pulls=[2.0])
    assert total["chi2"] == pytest.approx(14.0) and total["dof"] == 10 and total["n_points"] == 12
    assert total["p_value"] == pytest.approx(stats.chi2.sf(14.0, 10))


def test_a_run_with_only_bounds_says_it_has_no_chi2():
    term = _term([1.0, 2.0], [0.1, 0.1], mode="bound")
    fit = goodness.term_fit(term, np.array([1.5, 1.0]), term.value)
    lines = goodness.report_lines([fit], goodness.total_fit([fit], n_free=2))
    assert "exceeds 1 of 2 points" in lines[0]
    assert lines[-1].strip().startswith("no data set is read as a measurement")


def test_the_printed_largest_pull_is_the_largest_in_size_with_its_sign():
    """A fit whose worst point lies below the data: the table names that point, not the largest excess."""
    term = _term([1.0, 1.0, 1.0], [0.1, 0.1, 0.1])
    fit = goodness.term_fit(term, np.array([0.7, 1.02, 1.0]), term.value)  # pulls -3, +0.13, 0
    assert goodness.largest_pull(fit) == pytest.approx(-3.0)
    assert "largest pull -3.0 sigma" in goodness.report_lines([fit])[0]
