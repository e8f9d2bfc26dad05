"""corona-jax calibrate, evidence and forecast on the corona model: configurations refused with one
clear line, mocks drawn from the likelihood, the batched minimisation against fit's, the Fisher
matrix against the Laplace covariance and against J^T C^-1 J, and the command line end to end
(resuming an interrupted calibration)."""

import csv
import dataclasses
import os
import shutil
import subprocess
import sys

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from corona_jax.errors import ConfigError
from corona_jax.inference import calibrate, fit, forecast, model, terms
from h5files import assert_same_h5

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIORS = """
[model]
preset = "baseline"
resolution = "coarse"

[priors]
alpha = { uniform = [2.0, 2.8] }
log10_Emax_GeV = { uniform = [6.0, 9.0] }
log10_D0_cm2_s = { uniform = [28.0, 31.0] }
log10_LCR_minus_log10_D0 = { uniform = [10.0, 13.5] }
"""
DATA = """
[data]
cosmic_rays = ["AMS02", "KASCADE2011"]
cosmic_ray_mode = "measurement"
neutrinos = "IceCube-HESE-7.5yr"
neutrino_mode = "measurement"
gamma_foreground = "none"
"""
CALIBRATE = PRIORS + DATA + "\n[calibrate]\ndraws = 3\nposterior_draws = 19\nbins = 4\n"


@pytest.mark.parametrize("change, message", [
    (("neutrino_mode = \"measurement\"", "neutrino_mode = \"bound\""), "every data set as a measurement"),
    (("gamma_foreground = \"none\"", "gamma_foreground = \"A\"\ngamma_mode = \"component\""), "measurement"),
    (("gamma_foreground = \"none\"", "gamma_foreground = \"none\"\nneutrino_event = \"KM3NeT-KM3-230213A\"\n"
                                     "neutrino_event_mode = \"measurement\""), "single event"),
    (("bins = 4", "bins = 7"), "multiple of bins"),
    (("bins = 4", "bins = 4\nmethod = \"hmc\""), "method must be one of laplace, nuts"),
    (("draws = 3", "draws = -3"), "draws must be positive"),
    (("bins = 4", "bins = 4\nwalkers = 3"), "unknown key 'walkers' in [calibrate]"),
    (("bins = 4", "bins = 4\nmethod = \"nuts\"\n[sampler]\nchains = 1\nsamples = 10"), "at least"),
])
def test_calibrate_config_errors(change, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        calibrate.parse_calibrate_config(CALIBRATE.replace(*change))


def test_calibrate_refuses_its_own_mock_section():
    text = CALIBRATE.replace("[calibrate]", "[data.mock]\nseed = 1\nalpha = 2.4\nlog10_Emax_GeV = 7.0\n"
                             "log10_D0_cm2_s = 29.0\nlog10_LCR_minus_log10_D0 = 11.9\n\n[calibrate]")
    with pytest.raises(ConfigError, match="draws its own mocks"):
        calibrate.parse_calibrate_config(text)


@pytest.fixture(scope="module")
def cal():
    return calibrate.prepare(calibrate.parse_calibrate_config(CALIBRATE))


def test_calibration_mocks_the_all_particle_spectra_as_measurements(cal):
    assert {t.mode for t in cal.setup.terms} == {"measurement"}


def test_simulated_data_scatter_with_each_point_s_own_error(cal):
    term = cal.setup.terms[0]
    predicted = np.asarray(term.value) * 1.3
    rng = np.random.default_rng(0)
    pulls = np.stack([(calibrate.simulate(term, predicted, rng) - predicted) / calibrate.measured(term).err_lo
                      for _ in range(400)])
    assert abs(pulls.mean()) < 0.02
    assert abs(pulls.std() - 1) < 0.02


def test_power_law_mode_leaves_the_corona_out_of_the_igrb():
    term = terms.gamma_band_terms("A", "power_law", False, None)[0]
    component = dataclasses.replace(term, mode="component")
    nuisances = {"fermi_foreground_eta": 0.0, "igrb_log10_norm": -6.0, "igrb_index": 2.3, "igrb_log10_cutoff_GeV": 2.5}
    low, high = np.asarray(term.value) * 1e-3, np.asarray(term.value) * 0.5
    assert term.log_likelihood(low, nuisances) == term.log_likelihood(high, nuisances)
    assert component.log_likelihood(low, nuisances) != component.log_likelihood(high, nuisances)
    assert set(term.nuisance_priors()) == set(nuisances)


@pytest.mark.slow
def test_batched_mock_inference_equals_fit_s_minimisation(cal):
    """The traced L-BFGS under vmap finds fit.lbfgs's posterior mode and the same Hessian, and the
    profile statistic of a parameter equals 2 (profile minimum - minimum) from fit.lbfgs."""
    truth = calibrate.prior_draws(cal)
    values = calibrate.mocks(cal, truth)
    batch = calibrate.mock_terms(cal, values)
    truth_u = calibrate.to_unconstrained(cal, truth)
    inference = calibrate.MockInference(cal.names, tuple(cal.names.index(p) for p in cal.parameters), 300)
    starts = calibrate.start_points(cal, np.arange(len(truth_u)))
    assert np.all(starts[:, 0] == 0) and not np.array_equal(starts[0, 1:], starts[1, 1:])
    np.testing.assert_array_equal(starts[1:2], calibrate.start_points(cal, [1]))  # the same on resuming
    out = jax.device_get(calibrate._infer_batch(inference, batch, truth_u, starts, cal.setup.problem))
    i = 1
    problem = cal.setup.problem._replace(terms=jax.tree.map(lambda a: a[i], batch))
    potential = model.FlatPotential(cal.names)
    mode = min((fit.lbfgs(potential, jnp.asarray(x0), (problem,), 300) for x0 in starts[i]), key=lambda m: m.value)
    np.testing.assert_allclose(out["mode"][i], mode.x, atol=1e-5)
    assert out["starts_elsewhere"][i] == sum(fit.lbfgs(potential, jnp.asarray(x0), (problem,), 300).value > mode.value + 0.1
                                             for x0 in starts[i])
    hessian = np.asarray(fit.hessian(potential, mode.x, (problem,)))
    np.testing.assert_allclose(out["hessian"][i], hessian, rtol=1e-3, atol=1e-6 * np.abs(hessian).max())
    nll = fit.NegLogDensity(cal.names)
    start = jnp.asarray(truth_u[i])
    best = min(fit.lbfgs(nll, mode.x, (problem,), 300), fit.lbfgs(nll, start, (problem,), 300), key=lambda m: m.value)
    j = cal.names.index("alpha")
    held = calibrate.HeldAt(nll)
    profile = min(fit.lbfgs(held, best.x, (j, truth_u[i, j], problem), 300),
                  fit.lbfgs(held, start, (j, truth_u[i, j], problem), 300), key=lambda m: m.value)
    assert out["statistic"][i, cal.parameters.index("alpha")] == pytest.approx(2 * (profile.value - best.value), abs=1e-4)


FORECAST = PRIORS + DATA + """
[forecast]
fiducial = { alpha = 2.443, log10_Emax_GeV = 8.0, log10_D0_cm2_s = 30.0, log10_LCR_minus_log10_D0 = 11.905 }

[[forecast.experiment]]
name = "IceCube-Gen2"
data = "neutrinos"
dataset = "IceCube-HESE-7.5yr"
exposure_ratio = 10
"""


@pytest.mark.parametrize("change, message", [
    (("alpha = 2.443, ", ""), "missing alpha"),
    (("alpha = 2.443", "alpha = 2.9"), "inside its prior"),
    (("exposure_ratio = 10", "exposure_ratio = 0"), "exposure_ratio must be positive"),
    (("dataset = \"IceCube-HESE-7.5yr\"", "dataset = \"IceCube-Gen2\""), "unknown neutrino data set"),
    (("data = \"neutrinos\"", "data = \"sky\""), "data must be one of"),
    (("neutrino_mode = \"measurement\"", "neutrino_mode = \"bound\""), "measurements"),
    (("exposure_ratio = 10", "exposure_ratio = 10\nbackground = \"spline\""), "background must be one of"),
    (("exposure_ratio = 10", "exposure_ratio = 10\nreference_energy_GeV = -1"), "reference_energy_GeV must be positive"),
])
def test_forecast_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        forecast.parse_forecast_config(FORECAST.replace(*change))


@pytest.fixture(scope="module")
def asimov():
    cfg = forecast.parse_forecast_config(FORECAST)
    setup = forecast.today_setup(cfg)
    return cfg, setup, forecast.fisher_matrix(setup, cfg.fiducial)


@pytest.mark.slow
def test_fisher_matrix_is_the_inverse_laplace_covariance_at_the_same_point(asimov):
    """The forecast's Hessian (reverse over reverse through the discrete adjoint) against fit's
    Laplace covariance (forward over reverse through the autodiff adjoint) at the fiducial, which
    is the best fit of Asimov data."""
    cfg, setup, F = asimov
    names = list(cfg.run.priors)
    covariance = fit.laplace_covariance(setup, cfg.fiducial, names)
    np.testing.assert_allclose(F @ covariance, np.eye(len(names)), atol=1e-6)
    gradient = jax.grad(forecast.NegLogLikelihood(tuple(names)))(jnp.asarray([cfg.fiducial[n] for n in names]),
                                                                 setup.problem)
    assert np.max(np.abs(gradient)) < 1e-8 * np.max(np.abs(F))  # the fiducial is the Asimov data's optimum


@pytest.mark.slow
def test_fisher_matrix_equals_gauss_newton_of_asimov_data(asimov):
    """With residuals zero, the Hessian of the Gaussian -log L is J^T C^-1 J exactly (J: the terms'
    predictions' Jacobian, one reverse pass per data point)."""
    cfg, setup, F = asimov
    names = list(cfg.run.priors)

    def predictions(x):
        pred, _ = forecast._predict(setup.problem, dict(zip(names, x)))
        return [t.predict(pred, setup.model) for t in setup.terms]

    J = jax.jacrev(predictions)(jnp.asarray([cfg.fiducial[n] for n in names]))
    gauss_newton = sum(np.asarray(j).T @ (np.asarray(j) / np.asarray(t.err_lo)[:, None] ** 2)
                       for j, t in zip(J, setup.terms))
    np.testing.assert_allclose(F, gauss_newton, rtol=1e-6, atol=1e-9 * np.abs(F).max())


@pytest.mark.slow
def test_forecast_errors_shrink_with_exposure(asimov):
    cfg, _, _ = asimov
    result = forecast.run_forecast(cfg, progress=lambda *_: None)
    key = "today + IceCube-Gen2"
    assert all(result.errors[key][n] <= result.errors["today"][n] for n in result.names)
    more = dataclasses.replace(cfg, experiments=(dataclasses.replace(cfg.experiments[0], exposure_ratio=1e6),))
    pinned = forecast.run_forecast(more, progress=lambda *_: None)
    assert pinned.share_prediction_upper[key] < result.share_prediction_upper[key]
    assert forecast.pinned(pinned, key)
    with pytest.warns(DeprecationWarning, match="share_prediction_upper"):
        assert result.share_upper_limit == result.share_prediction_upper


@pytest.mark.slow
def test_forecast_sensitivity_of_an_experiment_against_today_s_data(asimov):
    """Errors / sqrt(10) with a power-law background (no constraint term): chi^2 scales by 10 at
    every background, so the fiducial's significance grows by sqrt(10) exactly; with the
    log-parabola, whose curvature constraint does not scale, by less. The limits fall."""
    cfg, _, _ = asimov
    power_law = dataclasses.replace(cfg, experiments=(dataclasses.replace(cfg.experiments[0], background="power_law"),))
    for config in (cfg, power_law):
        result = forecast.run_forecast(config, progress=lambda *_: None)
        today = result.sensitivities["today: IceCube-HESE-7.5yr"].result
        gen2 = result.sensitivities["IceCube-Gen2"].result
        if config is power_law:
            assert gen2.Z / today.Z == pytest.approx(np.sqrt(10.0), rel=1e-6)
        else:
            assert 1.0 < gen2.Z / today.Z < np.sqrt(10.0)
        assert gen2.mu_upper < today.mu_upper and gen2.mu_5sigma < today.mu_5sigma
    table = forecast.sensitivity_table(result)
    assert table.loc["IceCube-Gen2", "median_discovery_Z_of_fiducial"] == gen2.Z
    assert table.loc["IceCube-Gen2", "background"] == "power_law"
    assert np.log10(table.loc["IceCube-Gen2", "expected_95CLs_upper_limit_LCR_over_fiducial"]) == pytest.approx(
        table.loc["IceCube-Gen2", "expected_95CLs_upper_limit_log10_LCR_erg_s"] - table.loc["IceCube-Gen2", "fiducial_log10_LCR_erg_s"])


def _calibrate(tmp_path, config, *extra):
    return subprocess.run([sys.executable, "-m", "corona_jax.cli", "calibrate", "--no-progress", "--config", config,
                           *extra], cwd=tmp_path, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_calibrate_quick_runs_and_resumes_to_the_same_file(tmp_path):
    config = os.path.join(ROOT, "configs", "calibrate-quick.toml")
    done = _calibrate(tmp_path, config, "--out", "sbc.h5", "--plot", "plots")
    assert done.returncode == 0, done.stderr
    assert os.path.isfile(tmp_path / "plots" / "sbc_ranks.png")
    summary = calibrate.summarise(str(tmp_path / "sbc.h5"))
    assert summary.done == 4 and summary.failed == 0
    # forget two simulations, as if killed before them: the same command redoes just those
    shutil.copy(tmp_path / "sbc.h5", tmp_path / "part.h5")
    with h5py.File(tmp_path / "part.h5", "r+") as f:
        f["done"][2:] = 0
        for group in calibrate.PER_SIMULATION:
            for name in f[group]:
                f[group][name][2:] = -1 if group == "rank" else np.nan
    again = _calibrate(tmp_path, config, "--out", "part.h5")
    assert again.returncode == 0, again.stderr
    assert_same_h5(tmp_path / "sbc.h5", tmp_path / "part.h5", rtol=1e-9, complete=True)


def test_calibrate_refuses_a_file_of_another_configuration(tmp_path):
    (tmp_path / "a.toml").write_text(CALIBRATE)
    with h5py.File(tmp_path / "sbc.h5", "w") as f:
        f.attrs["config_sha256"] = "another"
    p = _calibrate(tmp_path, "a.toml", "--out", "sbc.h5")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"corona-jax: error: {tmp_path / 'sbc.h5'} was made with another configuration; choose another --out, "
        "or delete it to start again"]


@pytest.mark.parametrize("change, message", [
    ("[evidence]\nlive_points = 0\n", "live_points must be positive"),
    ("[evidence]\nthreads = 2\n", "unknown key 'threads'"),
    ("[evidence]\nseed = -1\n", "seed must be an integer"),
    ("[evidence]\nstarts = 0\n", "starts must be positive"),
    ("[evidence]\nimportance_samples = 1.5\n", "importance_samples must be"),
])
def test_evidence_config_errors(change, message):
    from corona_jax.inference import evidence

    with pytest.raises(ConfigError, match=message):
        evidence.parse_evidence_config(PRIORS + DATA + change)


def test_the_shipped_evidence_pairs_differ_only_in_the_hypothesis():
    from corona_jax.inference import evidence

    def load(name):
        return evidence.load_evidence_config(os.path.join(ROOT, "configs", f"evidence-{name}.toml")).run

    corona, power_law = load("igrb-corona"), load("igrb-power-law")
    assert (corona.data["gamma_mode"], power_law.data["gamma_mode"]) == ("component", "power_law")
    assert dataclasses.replace(power_law, data=corona.data) == corona
    for without, with_burst in (("no-burst", "burst"), ("broken-spectrum", "broken-burst")):
        none, burst = load(without), load(with_burst)  # the second adds the burst and its priors, nothing else
        assert burst.systematics == (*none.systematics, "burst")
        assert {k: v for k, v in burst.priors.items() if k in none.priors} == none.priors
        assert dataclasses.replace(none, priors=burst.priors, systematics=burst.systematics) == burst
    # the same [evidence] settings, but for the live points and the search's step cap, which each run sizes
    # for its own model (docs/calibration.md, "How many live points"); neither moves the estimate, only its
    # precision and the checks' reach
    sized = dict(live_points=0, max_steps=0)
    for first, second in (("igrb-power-law", "igrb-corona"), ("no-burst", "burst"), ("paper-spectrum", "broken-spectrum"),
                          ("broken-spectrum", "broken-burst")):
        a, b = (evidence.load_evidence_config(os.path.join(ROOT, "configs", f"evidence-{n}.toml")) for n in (first, second))
        assert dataclasses.replace(a, run=None, **sized) == dataclasses.replace(b, run=None, **sized)


@pytest.mark.slow
def test_evidence_stops_on_sigterm_with_one_line(tmp_path):
    """jaxns runs as one long XLA call; SIGTERM still stops it at once, with the one-line message."""
    import signal
    import time

    (tmp_path / "e.toml").write_text(PRIORS + DATA + "[evidence]\nlive_points = 2000\n")
    p = subprocess.Popen([sys.executable, "-m", "corona_jax.cli", "evidence", "--config", "e.toml", "--out", "e.csv"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert p.stdout.readline().startswith("nested sampling (jaxns)")  # printed just before the sampler starts
    time.sleep(10)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("corona-jax: interrupted")
    assert not os.path.exists(tmp_path / "e.csv")


@pytest.mark.slow
def test_calibrate_with_nuts_writes_ranks_and_chain_diagnostics(tmp_path):
    text = CALIBRATE.replace("bins = 4", "bins = 4\nmethod = \"nuts\"\n\n[sampler]\nchains = 2\nwarmup = 30\n"
                             "samples = 20\nmax_tree_depth = 4")
    (tmp_path / "n.toml").write_text(text)
    done = _calibrate(tmp_path, "n.toml", "--out", "n.h5")
    assert done.returncode == 0, done.stderr
    with h5py.File(tmp_path / "n.h5", "r") as f:
        assert f["done"][()].all()
        for p in ("alpha", "log10_D0_cm2_s"):
            assert ((f[f"rank/{p}"][()] >= 0) & (f[f"rank/{p}"][()] <= 19)).all()
        assert np.isfinite(f["ess_min"][()]).all() and (f["rhat_max"][()] > 0.5).all()


def test_the_shipped_evidence_results_come_from_the_shipped_configurations():
    """Each row of docs/evidence_*.csv was made with its configuration's live points and starts, so a
    configuration changed without a rerun fails here; the documented live-point rules are read off them."""
    from corona_jax.inference import evidence

    rows = []
    for name in sorted(os.listdir(os.path.join(ROOT, "docs"))):
        if name.startswith("evidence_") and name.endswith(".csv"):
            with open(os.path.join(ROOT, "docs", name)) as handle:
                rows += list(csv.DictReader(handle))
    assert len(rows) == 7  # pairs (a)-(c), and (d)'s second model, set against (c)'s broken power law
    for row in rows:
        cfg = evidence.load_evidence_config(os.path.join(ROOT, row[""]))
        assert (int(row["live_points"]), int(row["starts"])) == (cfg.live_points, cfg.starts), row[""]
        assert int(row["live_points_needed"]) == evidence.live_points_needed(float(row["information_nats"]))
