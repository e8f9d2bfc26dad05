"""Calibration statistics on a problem with a known posterior: a conjugate Gaussian.

theta ~ N(0, 1); n data y_k ~ N(theta, sigma^2). The posterior is N(m, s^2) with
1/s^2 = 1 + n/sigma^2 and m = s^2 n ybar / sigma^2; the profile statistic of theta is
t = n (ybar - theta)^2 / sigma^2, chi-square(1) for every theta.
"""

import numpy as np
import pytest

from corona_jax.inference import calibration

N_SIMULATIONS, N_DATA, SIGMA, N_DRAWS, BINS = 2000, 5, 2.0, 99, 20


def conjugate_gaussian(seed):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(N_SIMULATIONS)
    ybar = theta + SIGMA / np.sqrt(N_DATA) * rng.standard_normal(N_SIMULATIONS)
    s2 = 1.0 / (1.0 + N_DATA / SIGMA**2)
    mean = s2 * N_DATA * ybar / SIGMA**2
    return rng, theta, ybar, mean, np.sqrt(s2)


def posterior_ranks(width_factor, seed=1):
    rng, theta, _, mean, sd = conjugate_gaussian(seed)
    draws = mean[:, None] + width_factor * sd * rng.standard_normal((N_SIMULATIONS, N_DRAWS))
    return calibration.ranks(theta, draws)


def test_sbc_exact_posterior_gives_uniform_ranks():
    test = calibration.rank_test(posterior_ranks(1.0), N_DRAWS, BINS)
    assert test.counts.sum() == N_SIMULATIONS
    assert test.p_value > 0.01
    assert np.all((test.counts >= test.band[0] - 5) & (test.counts <= test.band[1] + 5))


@pytest.mark.parametrize("width_factor", [0.5, 2.0])
def test_sbc_miscalibrated_posterior_fails(width_factor):
    """Posterior widths halved (overconfident: the ranks pile up at both ends) or doubled (the
    ranks pile up in the middle) fail the uniformity test."""
    test = calibration.rank_test(posterior_ranks(width_factor), N_DRAWS, BINS)
    assert test.p_value < 1e-6
    outside = (test.counts < test.band[0]) | (test.counts > test.band[1])
    assert outside[[0, -1]].all() if width_factor < 1 else outside[BINS // 2]


def test_sbc_shifted_posterior_fails():
    rng, theta, _, mean, sd = conjugate_gaussian(2)
    draws = mean[:, None] + 0.5 * sd + sd * rng.standard_normal((N_SIMULATIONS, N_DRAWS))
    assert calibration.rank_test(calibration.ranks(theta, draws), N_DRAWS, BINS).p_value < 1e-6


def test_rank_bins_must_be_equal():
    with pytest.raises(ValueError, match="equal bins"):
        calibration.rank_test(np.zeros(3, int), 98, 20)


def profile_statistic(sigma_assumed, seed=3):
    _, theta, ybar, _, _ = conjugate_gaussian(seed)
    return N_DATA * (ybar - theta) ** 2 / sigma_assumed**2


@pytest.mark.parametrize("level", calibration.COVERAGE_LEVELS)
def test_profile_intervals_cover_at_their_level(level):
    c = calibration.coverage(profile_statistic(SIGMA), level)
    assert abs(c.fraction - level) < 3 * c.error
    assert c.p_value > 0.001


@pytest.mark.parametrize("level", calibration.COVERAGE_LEVELS)
def test_intervals_with_halved_errors_undercover(level):
    c = calibration.coverage(profile_statistic(SIGMA / 2), level)
    assert c.fraction < level - 0.2
    assert c.p_value < 1e-6


def test_coverage_leaves_out_failed_simulations():
    t = np.array([0.1, np.nan, 0.5, 10.0])
    assert calibration.coverage(t, 0.6827).fraction == pytest.approx(2 / 3)


def test_nested_sampling_evidence_of_a_gaussian_under_a_uniform_prior():
    """x ~ U(-5, 5)^2, y_i ~ N(x_i, sigma): Z = prod_i [Phi((5 - y_i)/sigma) - Phi((-5 - y_i)/sigma)] / 10,
    in closed form; jaxns's log Z lies within 3 of its stated standard errors."""
    pytest.importorskip("jaxns")
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from scipy import stats

    from corona_jax.inference import evidence

    y, sigma = np.array([0.7, -4.2]), 0.8  # the second near the prior's edge: the closed form's cut matters

    def model():
        x = numpyro.sample("x", dist.Uniform(-5.0 * jnp.ones(2), 5.0).to_event(1))
        numpyro.factor("likelihood", jnp.sum(dist.Normal(x, sigma).log_prob(y)))

    exact = np.sum(np.log((stats.norm.cdf((5 - y) / sigma) - stats.norm.cdf((-5 - y) / sigma)) / 10))
    result = evidence.log_evidence(model, (), 2, live_points=400, seed=0)
    assert not result.max_samples_reached
    assert 0.01 < result.error < 0.2
    assert abs(result.log_Z - exact) < 3 * result.error
