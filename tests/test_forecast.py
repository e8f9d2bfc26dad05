"""Sensitivities of forecast (inference.sensitivity): Asimov significances and CLs limits checked
against a direct chi^2 minimisation by another minimiser, the linearised Fisher answer where it
must hold, toy experiments and closed forms."""

import numpy as np
import pytest
from scipy import optimize, stats

from corona_jax.errors import ConfigError
from corona_jax.inference import sensitivity as S

E_GeV = np.geomspace(1e4, 1e6, 9)
BACKGROUND = S.BackgroundShape(1e5, np.array([np.log(1e-18), -2.5, -0.05]), 0.05)
SIGMA = 0.2 * BACKGROUND.values(E_GeV)
BUMP = 0.05 * BACKGROUND.values(E_GeV) * np.exp(-(np.log(E_GeV / 1e5) / 0.5) ** 2)  # a shape the background lacks


def brute_chi2(asimov, mu, d):
    """min_a chi2(mu, a) by Nelder-Mead from several starts (not the least squares of the module)."""
    bg = asimov.background
    X = bg.design(asimov.E_GeV)

    def chi2(a):
        with np.errstate(over="ignore"):
            r = (d - mu * asimov.signal - np.exp(X @ a)) / asimov.sigma
        return np.sum(r * r) + ((a[2] - bg.coefficients[2]) / bg.curvature_sigma) ** 2

    starts = [bg.coefficients + shift for shift in ([0, 0, 0], [0.3, 0.2, 0.05], [-0.3, -0.2, -0.05])]
    return min(optimize.minimize(chi2, a, method="Nelder-Mead",
                                 options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 40000, "maxfev": 40000}).fun
               for a in starts)


@pytest.mark.parametrize("mu", [0.5, 5.0, 20.0])
def test_profiled_chi2_equals_a_direct_minimisation_on_asimov_data(mu):
    asimov = S.Asimov(E_GeV, SIGMA, BUMP, BACKGROUND)
    assert asimov.q0(mu) == pytest.approx(brute_chi2(asimov, 0.0, asimov.data(mu)), rel=1e-5, abs=1e-9)
    assert asimov.q_mu(mu) == pytest.approx(brute_chi2(asimov, mu, asimov.data(0.0)), rel=1e-5, abs=1e-9)


def test_small_signals_agree_with_the_fisher_matrix_and_scale_linearly():
    asimov = S.Asimov(E_GeV, SIGMA / 100.0, BUMP, BACKGROUND)
    result = S.sensitivity(asimov)
    assert result.Z == pytest.approx(result.Z_linear, rel=0.01)
    assert result.mu_5sigma == pytest.approx(result.mu_5sigma_linear, rel=0.01)
    assert result.mu_upper == pytest.approx(result.mu_upper_linear, rel=0.01)
    assert np.sqrt(asimov.q0(2.0)) == pytest.approx(2.0 * result.Z, rel=0.01)  # Z proportional to mu
    # n sigma: sqrt(q0(mu_n)) = n, the median CLs limit: 2 Phi(-sqrt(q_mu)) = 0.05
    assert np.sqrt(asimov.q0(result.mu_3sigma)) == pytest.approx(3.0, rel=1e-6)
    assert 2.0 * stats.norm.sf(np.sqrt(asimov.q_mu(result.mu_upper))) == pytest.approx(S.CLS_ALPHA, rel=1e-6)


def test_fisher_sigma_of_a_linear_problem_is_the_least_squares_error():
    """A background with its shape fixed has one free normalisation; the model is then nearly
    linear, and sigma_mu is the closed-form error of a two-parameter weighted least squares."""
    asimov = S.Asimov(E_GeV, SIGMA, BUMP, BACKGROUND)
    b = BACKGROUND.values(E_GeV)
    A = np.column_stack([BUMP, b, b * np.log(E_GeV / 1e5), b * np.log(E_GeV / 1e5) ** 2]) / SIGMA[:, None]
    F = A.T @ A
    F[3, 3] += 1 / BACKGROUND.curvature_sigma**2
    assert asimov.sigma_mu() == pytest.approx(np.sqrt(np.linalg.inv(F)[0, 0]), rel=1e-12)


def test_median_expected_cls_limit_and_band_from_toy_experiments():
    """Background-only toys of a problem in its linear regime: each toy's CLs limit from its own
    least-squares mu_hat (mu_hat ~ N(mu, sigma)), CLs(mu) = Phi((mu_hat - mu)/sigma) / Phi(mu_hat/sigma);
    the toys' median and 16/84 % quantiles against the Asimov answer."""
    asimov = S.Asimov(E_GeV, SIGMA / 100.0, BUMP, BACKGROUND)
    result = S.sensitivity(asimov)
    b = BACKGROUND.values(E_GeV)
    X = np.column_stack([BUMP, b, b * np.log(E_GeV / 1e5), b * np.log(E_GeV / 1e5) ** 2]) / asimov.sigma[:, None]
    prior_row = np.array([[0.0, 0.0, 0.0, 1.0 / BACKGROUND.curvature_sigma]])
    design = np.vstack([X, prior_row])
    sigma = np.sqrt(np.linalg.inv(design.T @ design)[0, 0])
    rng = np.random.default_rng(1)
    limits = []
    for _ in range(2000):
        noise = np.append(rng.standard_normal(len(E_GeV)), rng.standard_normal())  # the constraint's too
        mu_hat = np.linalg.lstsq(design, noise, rcond=None)[0][0]
        cls = lambda mu: stats.norm.cdf((mu_hat - mu) / sigma) / stats.norm.cdf(mu_hat / sigma) - S.CLS_ALPHA  # noqa: E731
        limits.append(optimize.brentq(cls, 0.0, mu_hat + 10 * sigma))
    median, low, high = np.quantile(limits, [0.5, stats.norm.cdf(-1.0), stats.norm.cdf(1.0)])
    assert result.mu_upper == pytest.approx(median, rel=0.05)
    assert result.mu_upper_minus_1sigma == pytest.approx(low, rel=0.06)
    assert result.mu_upper_plus_1sigma == pytest.approx(high, rel=0.06)


def test_a_signal_shaped_like_the_background_is_never_detected():
    """A power-law signal over a power-law background with a free index: q0 stays bounded, so the
    3 and 5 sigma signals are inf; a limit still exists (the background cannot go negative)."""
    flat = S.BackgroundShape(1e5, np.array([np.log(1e-18), -2.5, 0.0]), 0.0)
    asimov = S.Asimov(E_GeV, 0.2 * flat.values(E_GeV), 0.05 * flat.values(E_GeV) * (E_GeV / 1e5) ** 0.3, flat)
    result = S.sensitivity(asimov)
    assert result.mu_5sigma == np.inf and result.mu_3sigma == np.inf
    assert np.isfinite(result.mu_upper) and result.mu_upper > 0


def test_background_fit_recovers_a_log_parabola_and_its_curvature_error():
    truth = S.BackgroundShape(1e5, np.array([np.log(2e-18), -2.7, -0.04]), 0.0)
    value = truth.values(E_GeV)
    sigma = 0.05 * value
    fitted = S.fit_background(E_GeV, value, sigma, 1e5)
    np.testing.assert_allclose(fitted.coefficients, truth.coefficients, rtol=1e-8, atol=1e-10)
    rng = np.random.default_rng(2)  # the curvature's error against its scatter over noisy refits
    curvatures = [S.fit_background(E_GeV, value + sigma * rng.standard_normal(len(E_GeV)), sigma, 1e5).coefficients[2]
                  for _ in range(300)]
    assert np.std(curvatures) == pytest.approx(fitted.curvature_sigma, rel=0.15)
    power_law = S.fit_background(E_GeV, value, sigma, 1e5, curvature=False)
    assert power_law.curvature_sigma == 0.0 and power_law.coefficients[2] == 0.0


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="at least 4 measured points"):
        S.fit_background(E_GeV[:3], np.ones(3), np.ones(3), 1e5)
    with pytest.raises(ConfigError, match="positive errors"):
        S.sensitivity(S.Asimov(E_GeV, 0 * SIGMA, BUMP, BACKGROUND))


def test_sensitivity_table_and_plot_of_a_forecast(tmp_path):
    """The table's columns in the units they name, and the plot, from a forecast built by hand."""
    from corona_jax.inference import forecast, plots

    result = S.sensitivity(S.Asimov(E_GeV, SIGMA / 100.0, BUMP, BACKGROUND))
    entry = forecast.ExperimentSensitivity("toy", 10.0, "log_parabola", 1e5, 2e-20, 4e-19, 2, 41.9, result)
    names = ["alpha"]
    made = forecast.Forecast(names, {"alpha": 2.4}, {"today": np.eye(1)}, {"today": {"alpha": 0.1}}, 0.01,
                             {"today": 0.012}, {"toy": entry})
    row = forecast.sensitivity_table(made).loc["toy"]
    assert row["corona_E2dNdE_at_reference_GeV_cm2_s_sr"] == pytest.approx(2e-20 * 1e10)
    assert row["corona_share_of_background_at_reference"] == pytest.approx(0.05)
    assert row["5sigma_discovery_share_of_background_at_reference"] == pytest.approx(0.05 * result.mu_5sigma)
    assert row["expected_95CLs_upper_limit_log10_LCR_erg_s"] == pytest.approx(41.9 + np.log10(result.mu_upper))
    assert row["note"] == ""
    assert (tmp_path / "forecast.png").exists() is False
    plots.forecast_plot(made, str(tmp_path / "forecast.png"))
    assert (tmp_path / "forecast.png").stat().st_size > 10_000
