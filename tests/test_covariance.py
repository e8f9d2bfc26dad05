"""AMS-02's covariance from its published error breakdown (inference.covariance): against the total
errors of the other data file, the Sherman-Morrison closed form, and chi^2 of correlated mocks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from corona_jax import forward, observations, params
from corona_jax.errors import ConfigError
from corona_jax.inference import config, covariance, goodness, terms
from corona_jax.inference import model as inference_model

TINY = 1e-9  # a correlation length [decades] that leaves only the diagonal


@pytest.fixture(scope="module")
def ams(coarse_forward_model):
    return terms.cosmic_ray_terms(["AMS02"], "measurement", False, coarse_forward_model)[0]


def test_breakdown_rows_match_the_flux_table_and_its_total_errors(ams):
    """The diagonal (stat^2 + every source^2) against the total errors of cr_proton_AMS02_2015.csv,
    a different file: equal where sigma_syst is the quadrature sum of its parts (above 20 GeV)."""
    cov = covariance.covariance("AMS02", ams.E_GeV, ams.value)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), ams.err_lo, rtol=0.02)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    no_scale = covariance.covariance("AMS02", ams.E_GeV, ams.value, include_scale=False)
    assert np.all(np.diag(no_scale) < np.diag(cov))


def test_one_fully_correlated_source_gives_the_sherman_morrison_chi2(ams):
    lengths = {"trig": TINY, "acc": TINY, "unf": TINY, "scale": math.inf}
    cov = covariance.covariance("AMS02", ams.E_GeV, ams.value, lengths=lengths)
    table = observations.load_error_breakdown("AMS02")
    R = np.sqrt(ams.E_GeV**2 - 0.938272088**2)
    rows = np.searchsorted(table["Rigidity_GV_sup"], R, side="right")
    per_GeV = ams.value / table["Phi"][rows]
    parts = {k: table[f"sigma_{k}"][rows] for k in ("trig", "acc", "unf", "scale")}
    per_GeV = per_GeV * table["sigma_syst"][rows] / np.sqrt(sum(p**2 for p in parts.values()))  # the rounding
    diag = (table["sigma_stat"][rows] * ams.value / table["Phi"][rows]) ** 2 + sum(
        (parts[k] * per_GeV) ** 2 for k in ("trig", "acc", "unf"))
    s = parts["scale"] * per_GeV
    r = np.random.default_rng(0).normal(0.0, 1.0, ams.value.size) * ams.err_lo
    expected = r @ (r / diag) - (r @ (s / diag)) ** 2 / (1.0 + s @ (s / diag))
    chi2 = -2.0 * float(terms.likelihoods.correlated_normal(jnp.asarray(ams.value + r), jnp.asarray(ams.value),
                                                            np.linalg.cholesky(cov)))
    assert chi2 == pytest.approx(expected, rel=1e-10)


def test_chi2_of_correlated_mocks_follows_its_distribution(ams, coarse_forward_model):
    """Mocks drawn with the covariance (ProtonSpectrum.mocked) give p-values of chi^2 that are uniform;
    the same mocks read with independent errors do not (their chi^2 is not chi^2(N))."""
    term = covariance.with_covariance(ams, include_scale=True)
    model = np.asarray(term.value)
    rng = np.random.default_rng(3)
    p_corr, chi2_diag = [], []
    for _ in range(400):
        mock = term.mocked(model, rng)
        p_corr.append(goodness.term_fit(mock, model, mock.value).p_value)
        chi2_diag.append(float(np.sum(((mock.value - model) / ams.err_lo) ** 2)))
    assert stats.kstest(p_corr, "uniform").pvalue > 0.01
    # correlated noise has the same diagonal but far fewer independent directions
    assert np.var(chi2_diag) > 2.0 * 2 * ams.value.size


def test_posterior_checks_leave_a_correlated_set_out_as_a_whole(ams):
    term = covariance.with_covariance(ams, include_scale=True)
    models = np.tile(np.asarray(term.value), (5, 1)) * np.linspace(0.98, 1.02, 5)[:, None]
    pointwise = goodness.pointwise_log_likelihood(term, models, np.tile(term.value, (5, 1)))
    assert pointwise.shape == (5, 1)
    L = np.asarray(term.cov_cholesky)
    v = np.asarray(term.value)  # in relative units, where scipy's eigenvalue cut does not bite
    expected = stats.multivariate_normal(mean=np.ones_like(v), cov=L @ L.T / np.outer(v, v)).logpdf(models / v) \
        - np.sum(np.log(v))
    np.testing.assert_allclose(pointwise[:, 0], expected, rtol=1e-10)
    p, obs, rep = goodness.posterior_predictive_p(term, jnp.asarray(models), jnp.tile(term.value, (5, 1)),
                                                  jax.random.PRNGKey(0))
    assert 0.0 <= p <= 1.0 and obs.shape == rep.shape == (5,)


CONFIG = """
[priors]
alpha = { uniform = [2.0, 2.8] }
[systematics]
correlated_errors = true
%s
[data]
cosmic_rays = [%s]
cosmic_ray_mode = "%s"
"""


def test_the_switch_gives_ams02_its_covariance_and_the_scale_nuisance_replaces_its_scale_errors():
    setup = inference_model.build_setup(config.parse_config(CONFIG % ("", '"AMS02", "DAMPE"', "measurement")))
    ams, dampe = setup.terms[:2]
    assert ams.cov_cholesky is not None and dampe.cov_cholesky is None
    scaled = inference_model.build_setup(config.parse_config(CONFIG % ("energy_scale = true", '"AMS02"',
                                                                       "measurement"))).terms[0]
    assert np.all(np.diag(np.asarray(scaled.cov_cholesky) @ np.asarray(scaled.cov_cholesky).T)
                  < np.diag(np.asarray(ams.cov_cholesky) @ np.asarray(ams.cov_cholesky).T))
    pred = jax.jit(forward.forward)(params.preset("baseline"), setup.model)
    predicted = ams.predict(pred, setup.model)
    chi2 = goodness.term_fit(ams, np.asarray(predicted), ams.value).chi2
    assert chi2 == pytest.approx(-2.0 * float(ams.log_likelihood(predicted, {})), rel=1e-12)


@pytest.mark.parametrize("names, mode", [('"DAMPE"', "measurement"), ('"AMS02"', "bound")])
def test_correlated_errors_need_a_measured_data_set_with_a_breakdown(names, mode):
    with pytest.raises(ConfigError, match="correlated_errors = true needs a data set with a published error"):
        config.parse_config(CONFIG % ("", names, mode))
