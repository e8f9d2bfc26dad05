"""Inference: likelihood terms by hand, configuration errors, the log-density gradient,
reproducibility, and parameter recovery from mock data (slow)."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("numpyro")

from corona_jax.errors import ConfigError  # noqa: E402
from corona_jax.inference import config, likelihoods, model  # noqa: E402

QUICK = """
[model]
resolution = "coarse"
[priors]
alpha = { uniform = [2.0, 2.8] }
log10_LCR_erg_s = { uniform = [39.0, 42.0] }
[data]
cosmic_rays = ["AMS02", "KASCADE2011"]
cosmic_ray_mode = "measurement"
neutrino_mode = "component"
gamma_mode = "component"
[sampler]
chains = 1
warmup = 8
samples = 6
max_tree_depth = 3
"""


def test_likelihood_terms_by_hand():
    m, d = jnp.array([3.0, 1.0]), jnp.array([2.0, 2.0])
    lo, hi = jnp.array([0.5, 0.5]), jnp.array([1.0, 1.0])
    # split normal: (3-2)/1 above (err_hi), (1-2)/0.5 below (err_lo)
    assert float(likelihoods.split_normal(m, d, lo, hi)) == pytest.approx(-0.5 * (1.0 + 4.0))
    # one-sided: only the row above the data counts
    assert float(likelihoods.must_not_exceed(m, d, hi)) == pytest.approx(-0.5)
    # upper limit as a half-normal with the limit as 1 sigma
    assert float(likelihoods.upper_limits(jnp.array([2.0]), jnp.array([4.0]))) == pytest.approx(-0.125)
    ul = jnp.array([False, True])
    # bound: row 0 above its data by 1 sigma_hi; row 1 an upper limit 2 with model 1
    assert float(likelihoods.spectrum(m, d, lo, hi, ul, "bound")) == pytest.approx(-0.5 - 0.5 * 0.25)
    # measurement: the same here (row 0 is above), and below the data it counts too
    below = jnp.array([1.5, 1.0])
    assert float(likelihoods.spectrum(below, d, lo, hi, ul, "measurement")) == pytest.approx(-0.5 - 0.125)
    assert float(likelihoods.spectrum(below, d, lo, hi, ul, "bound")) == pytest.approx(-0.125)


@pytest.mark.parametrize("text, message", [
    ("[model]\nresolution = 'coarse'\n[priors]\nalpha = { uniform = [2, 3] }\n[sampler]\nchainz = 2", "unknown key 'chainz'"),
    ("[priors]\nbeta = { uniform = [2, 3] }", "unknown parameter 'beta'"),
    ("[priors]\nalpha = { cauchy = [2, 3] }", "unknown form"),
    ("[priors]\nalpha = { uniform = [3, 2] }", "low < high"),
    ("[priors]\nalpha = { uniform = [2, 3] }\n[data]\ncosmic_rays = ['PAMELA']", "unknown cosmic-ray data set 'PAMELA'"),
    ("[priors]\nalpha = { uniform = [2, 3] }\n[data]\ngamma_mode = 'maybe'", "gamma_mode must be one of"),
    ("[priors]\nalpha = { uniform = [2, 3] \n", "not valid TOML"),
    ("[model]\npreset = 'x'\n[priors]\nalpha = { uniform = [2, 3] }", "unknown preset"),
    ("[model]\n", "at least one free parameter"),
    ("[priors]\nalpha = { uniform = [2, 3] }\n[data.mock]\nseed = 1", "missing alpha"),
    ("[priors]\nalpha = { uniform = [2, 3] }\n[sampler]\ninit = 'map'", "init must be one of optimum, prior"),
])
def test_bad_configuration_is_one_clear_error(text, message):
    with pytest.raises(ConfigError, match=message):
        config.parse_config(text)


@pytest.fixture(scope="module")
def quick_setup():
    return model.build_setup(config.parse_config(QUICK))


def test_log_density_gradient_matches_finite_differences(quick_setup):
    log_density = model.log_density_fn(quick_setup)
    theta = {"alpha": 2.45, "log10_LCR_erg_s": 40.6, "nu_astro_log10_norm": -17.7, "nu_astro_index": 2.6,
             "fermi_foreground_eta": 0.3, "igrb_log10_norm": -6.6, "igrb_index": 2.3, "igrb_log10_cutoff_GeV": 2.5}
    grad = jax.jit(jax.grad(log_density))(theta)
    f = jax.jit(log_density)
    for name, x in theta.items():
        h = 1e-5 * max(abs(x), 1.0)
        fd = float(f({**theta, name: x + h}) - f({**theta, name: x - h})) / (2 * h)
        assert float(grad[name]) == pytest.approx(fd, rel=1e-4, abs=1e-6 * max(1.0, abs(fd))), name


# slow: three sampler runs; the resume tests below also check same-seed reproducibility bit for bit
@pytest.mark.slow
def test_same_seed_same_samples(quick_setup):
    from corona_jax.inference import sample

    a = sample.run_nuts(quick_setup, progress_bar=False).get_samples()
    b = sample.run_nuts(quick_setup, progress_bar=False).get_samples()
    for name in quick_setup.config.priors:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))
    other = quick_setup._replace(config=dataclasses.replace(quick_setup.config, seed=7))
    c = sample.run_nuts(other, progress_bar=False).get_samples()
    assert not np.array_equal(np.asarray(a["alpha"]), np.asarray(c["alpha"]))


# slow: a finite-difference Hessian of the potential (about a minute on two cores)
@pytest.mark.slow
def test_warm_start_is_a_minimum_with_its_inverse_hessian(quick_setup):
    """At the optimum the potential's gradient vanishes, and the initial inverse mass matrix is
    the inverse of the Hessian, checked against central differences of the adjoint gradient."""
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import potential_energy

    from corona_jax.inference import sample

    setup = quick_setup._replace(config=dataclasses.replace(quick_setup.config, chains=2))
    start = sample.warm_start(setup, seed=3, progress=lambda s: None)
    x, unravel = ravel_pytree({k: jnp.asarray(v) for k, v in start.optimum.items()})
    grad = jax.jit(jax.grad(lambda y: potential_energy(model.corona_model, (setup.problem,), {}, unravel(y))))
    assert float(jnp.max(jnp.abs(grad(x)))) < 1e-4
    h = 1e-4
    H = np.stack([(np.asarray(grad(x + h * e)) - np.asarray(grad(x - h * e))) / (2 * h) for e in np.eye(x.size)])
    np.testing.assert_allclose(np.asarray(start.inverse_mass_matrix) @ H, np.eye(x.size), atol=1e-4)
    for name, value in start.init_params.items():
        assert value.shape == (2,) and np.all(np.isfinite(value)), name
        assert float(value[0]) != float(value[1])  # each chain its own draw
    samples = sample.run_nuts(setup, progress_bar=False, start=start).get_samples()
    assert np.all(np.isfinite(np.asarray(samples["alpha"])))


def test_inference_data_groups(quick_setup):
    from corona_jax.inference import sample

    idata = sample.to_inference_data(sample.run_nuts(quick_setup, progress_bar=False), quick_setup)
    for group in ("posterior", "sample_stats", "observed_data", "posterior_predictive", "constant_data"):
        assert hasattr(idata, group), group
    for o in quick_setup.terms:
        assert idata.posterior_predictive[o.name].shape[-1] == o.value.size
        np.testing.assert_array_equal(idata.observed_data[o.name].values, o.value)


MOCK = """
[model]
resolution = "coarse"
[priors]
alpha = {{ uniform = [2.0, 2.8] }}
log10_Emax_GeV = {{ uniform = [6.0, 9.0] }}
log10_LCR_erg_s = {{ uniform = [39.0, 42.0] }}
[data]
cosmic_rays = ["AMS02", "DAMPE", "CREAM-III", "KASCADE2011"]
cosmic_ray_mode = "measurement"
neutrinos = "none"
gamma_mode = "measurement"
[data.mock]
seed = {seed}
alpha = {alpha}
log10_Emax_GeV = {emax}
log10_LCR_erg_s = {lcr}
[sampler]
chains = 2
warmup = 150
samples = 150
seed = {seed}
max_tree_depth = 6
[fit]
starts = 3
max_steps = 150
"""


@pytest.mark.slow
@pytest.mark.parametrize("truth", [(2.3, 7.0, 40.2, 1), (2.6, 8.0, 41.2, 2)])
def test_parameter_recovery_from_mock_data(truth):
    """Mock data at known parameters with the real data's relative errors: the optax best fit
    lands within 1 sigma (Laplace), the NUTS posterior covers the truth within 2 sigma."""
    from corona_jax.inference import fit, sample

    alpha, emax, lcr, seed = truth
    setup = model.build_setup(config.parse_config(MOCK.format(alpha=alpha, emax=emax, lcr=lcr, seed=seed)))
    values = {"alpha": alpha, "log10_Emax_GeV": emax, "log10_LCR_erg_s": lcr}
    best = fit.best_fit(setup, progress=lambda s: None)
    for name, true in values.items():
        assert abs(best.best[name] - true) <= best.errors[name], (name, best.best[name], best.errors[name], true)
    samples = sample.run_nuts(setup, progress_bar=False).get_samples()
    for name, true in values.items():
        s = np.asarray(samples[name])
        assert abs(s.mean() - true) < 2 * s.std(), (name, s.mean(), s.std(), true)


def test_sampling_the_luminosity_to_D0_ratio_is_the_same_model(quick_setup):
    text = QUICK.replace("log10_LCR_erg_s = { uniform = [39.0, 42.0] }",
                         "log10_D0_cm2_s = { uniform = [28.0, 31.0] }\nlog10_LCR_minus_log10_D0 = { uniform = [9.0, 14.0] }")
    ratio_setup = model.build_setup(config.parse_config(text))
    nuisances = {"nu_astro_log10_norm": -17.7, "nu_astro_index": 2.6, "fermi_foreground_eta": 0.3,
                 "igrb_log10_norm": -6.6, "igrb_index": 2.3, "igrb_log10_cutoff_GeV": 2.5}
    direct = {"alpha": 2.45, "log10_D0_cm2_s": 29.5, "log10_LCR_erg_s": 41.2, **nuisances}
    ratio = {"alpha": 2.45, "log10_D0_cm2_s": 29.5, "log10_LCR_minus_log10_D0": 11.7, **nuisances}
    both = QUICK.replace("log10_LCR_erg_s = { uniform = [39.0, 42.0] }",
                         "log10_D0_cm2_s = { uniform = [28.0, 31.0] }\nlog10_LCR_erg_s = { uniform = [39.0, 42.0] }")
    direct_setup = model.build_setup(config.parse_config(both))
    # the same likelihood; the priors differ only by constants (uniform densities)
    a = float(model.log_density_fn(direct_setup)(direct)) - np.log(1 / 3.0)
    b = float(model.log_density_fn(ratio_setup)(ratio)) - np.log(1 / 5.0)
    assert a == pytest.approx(b, rel=1e-12)
    with pytest.raises(ConfigError, match="not both"):
        config.parse_config(both.replace("[data]", "log10_LCR_minus_log10_D0 = { uniform = [9.0, 14.0] }\n[data]"))


def test_potential_compiles_once_for_configurations_of_the_same_shapes():
    """The model object, the terms, the priors and the fixed values are traced arguments of
    the NumPyro potential: other data values, prior ranges and fixed parameters reuse it.
    (The ModelConfig and the terms' names and modes are static: changing them recompiles.)"""
    def mock_setup(seed, alpha, preset="baseline", alpha_prior="[2.0, 2.8]"):
        text = QUICK.replace("[model]", f"[model]\npreset = '{preset}'").replace("[2.0, 2.8]", alpha_prior)
        text = text.replace("[sampler]", f"[data.mock]\nseed = {seed}\nalpha = {alpha}\nlog10_LCR_erg_s = 40.5\n[sampler]")
        return model.build_setup(config.parse_config(text))

    one = mock_setup(1, 2.4)
    other = mock_setup(3, 2.6, "fast-diffusion", "[2.1, 2.7]")
    assert not np.array_equal(one.terms[0].value, other.terms[0].value)
    z = {n: jnp.asarray(0.1) for n in model.free_parameter_names(one)}
    a = float(model.potential_energy(one.problem, z))
    compiled = model.potential_energy._cache_size()
    b = float(model.potential_energy(other.problem, z))
    assert model.potential_energy._cache_size() == compiled
    assert np.isfinite(a) and np.isfinite(b) and a != b
    # the same through optax: best_fit's batched L-BFGS compiles once for both
    from corona_jax.inference import fit

    fit.best_fit(one, starts=1, max_steps=2, progress=lambda s: None)
    steps = fit._minimise_batch._cache_size()
    fit.best_fit(other, starts=1, max_steps=2, progress=lambda s: None)
    assert fit._minimise_batch._cache_size() == steps


def test_a_new_data_set_plugs_in_as_one_term_and_one_registry_entry(monkeypatch):
    """A toy term (Gaussian on the isotropic gamma rays at 10 GeV, with a nuisance scale)
    registered from here, without touching inference/model.py: its nuisance becomes a free
    parameter and the log density grows by exactly its log-likelihood and prior."""
    import numpyro.distributions as dist

    from corona_jax.inference import terms

    @terms.pytree_dataclass
    class Toy(terms.LikelihoodTerm):
        E_GeV: np.ndarray
        value: np.ndarray
        err_lo: np.ndarray
        err_hi: np.ndarray
        is_upper_limit: np.ndarray
        name: str = terms.static_field()

        def nuisance_priors(self):
            return {"toy_scale": dist.Normal(1.0, 0.1)}

        def predict(self, prediction, model):
            return terms.loglog_interp(model.milky_way.E_secondary_GeV, prediction.total.gamma, self.E_GeV)

        def log_likelihood(self, predicted, nuisances):
            return -0.5 * jnp.sum(((nuisances["toy_scale"] * predicted - self.value) / self.err_hi) ** 2)

    def build(name, mode, mock, model):
        one = np.ones(1)
        return [Toy(10.0 * one, 1e-8 * one, 2e-9 * one, 2e-9 * one, np.zeros(1, bool), name=f"toy-{name}")]

    monkeypatch.setitem(terms.DATA_SOURCES, "toy", terms.DataSource(("one",), "none", build, "toy data set"))
    base = QUICK.replace("neutrino_mode", "neutrinos = 'none'\nneutrino_mode").replace(
        "gamma_mode = \"component\"", "gamma_foreground = \"none\"")
    with pytest.raises(ConfigError, match="unknown toy data set 'two'"):
        config.parse_config(base.replace("[data]", "[data]\ntoy = 'two'"))
    plain = model.build_setup(config.parse_config(base))
    toy = model.build_setup(config.parse_config(base.replace("[data]", "[data]\ntoy = 'one'")))
    assert model.free_parameter_names(toy) == model.free_parameter_names(plain) + ["toy_scale"]
    theta = {"alpha": 2.45, "log10_LCR_erg_s": 40.6}
    s = 1.05
    with_toy = float(model.log_density_fn(toy)({**theta, "toy_scale": s}))
    without = float(model.log_density_fn(plain)(theta))
    from corona_jax import forward

    pred = jax.jit(forward.forward)(model.corona_params(toy.problem.base_params, theta), toy.model)
    m = float(np.interp(np.log(10.0), np.log(toy.model.milky_way.E_secondary_GeV), np.log(pred.total.gamma)))
    by_hand = -0.5 * ((s * np.exp(m) - 1e-8) / 2e-9) ** 2 + float(dist.Normal(1.0, 0.1).log_prob(s))
    assert with_toy - without == pytest.approx(by_hand, rel=1e-9)


RESUMABLE = QUICK.split("[sampler]")[0].replace(
    'neutrino_mode = "component"\ngamma_mode = "component"', 'neutrinos = "none"\ngamma_foreground = "none"'
) + "[sampler]\nchains = 2\nwarmup = 20\nsamples = 30\ncheckpoint_every = 10\nmax_tree_depth = 4\ninit = \"prior\"\n"


def test_sample_resumes_after_sigkill_to_the_uninterrupted_result(tmp_path, capsys):
    """A run killed (SIGKILL) after its first checkpoint, continued by running the same command
    again, gives the same samples as an uninterrupted run of the same configuration (bit for bit
    when both ran their chains the same way)."""
    import os
    import signal
    import subprocess
    import sys

    import arviz as az

    from corona_jax import cli

    cfg = tmp_path / "run.toml"
    cfg.write_text(RESUMABLE)
    reference = tmp_path / "reference.nc"
    assert cli.main(["sample", "--config", str(cfg), "--out", str(reference), "--no-progress"]) == 0
    out = tmp_path / "killed.nc"
    proc = subprocess.Popen([sys.executable, "-m", "corona_jax.cli", "sample", "--config", str(cfg), "--out", str(out),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)
    for line in proc.stdout:
        if line.startswith("checkpoint: 10/30"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    checkpoint = tmp_path / "killed.nc.checkpoint"
    assert checkpoint.exists() and not out.exists()
    import h5py

    assert h5py.is_hdf5(checkpoint)  # arrays only: reading it cannot run code
    assert (tmp_path / "killed.nc.lock").exists()  # left by the killed run: taken over, its process is gone
    (tmp_path / "other.nc.checkpoint").write_bytes(checkpoint.read_bytes())
    capsys.readouterr()
    assert cli.main(["sample", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0  # the same command
    assert "continuing the interrupted run" in capsys.readouterr().out
    assert not checkpoint.exists() and not (tmp_path / "killed.nc.lock").exists()
    a, b = az.from_netcdf(reference), az.from_netcdf(out)
    # The killed run had a device per chain; this process may have one device (when JAX started before
    # cli.main could add more), and batched chains differ from parallel ones in the last digits.
    from corona_jax.inference.sample import chain_method

    same_code = chain_method(2) == "parallel"
    for name in ("alpha", "log10_LCR_erg_s"):
        np.testing.assert_allclose(a.posterior[name].values, b.posterior[name].values, rtol=0 if same_code else 1e-10)
    np.testing.assert_array_equal(a.sample_stats["n_steps"].values, b.sample_stats["n_steps"].values)
    other = tmp_path / "other.toml"
    other.write_text(RESUMABLE.replace("samples = 30", "samples = 40"))
    assert cli.main(["sample", "--config", str(other), "--out", str(tmp_path / "other.nc")]) == 2
    assert "another configuration" in capsys.readouterr().err  # never overwritten silently
    (tmp_path / "empty.nc.checkpoint").write_bytes(b"")
    assert cli.main(["sample", "--config", str(cfg), "--out", str(tmp_path / "empty.nc"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "not readable" in err and "--resume is no longer needed" in err  # the old flag still works


# slow: two sampler runs; the parallel case stays in the default run (the SIGKILL test)
@pytest.mark.slow
def test_a_checkpoint_continues_with_batched_chains(tmp_path, monkeypatch):
    """With fewer devices than chains the chains are batched ('vectorized'); a checkpoint continued
    so gives the uninterrupted run's samples (the parallel case: the SIGKILL test above)."""
    from corona_jax.inference import sample

    monkeypatch.setattr(sample, "chain_method", lambda chains: "vectorized")
    setup = model.build_setup(config.parse_config(RESUMABLE))
    reference = sample.run_nuts(setup, progress_bar=False, progress=lambda line: None)

    class Stop(Exception):
        pass

    def stop(line):
        raise Stop(line)

    path = str(tmp_path / "run.checkpoint")
    with pytest.raises(Stop):
        sample.run_nuts(setup, progress_bar=False, checkpoint=path, progress=stop)  # stops after 10 samples
    continued = sample.run_nuts(setup, progress_bar=False, checkpoint=path, saved=sample.load_checkpoint(path, setup),
                                progress=lambda line: None)
    assert continued.samples["alpha"].shape == (2, 30)
    np.testing.assert_array_equal(reference.samples["alpha"], continued.samples["alpha"])
    np.testing.assert_array_equal(reference.num_steps, continued.num_steps)


def test_a_pickled_checkpoint_is_refused_and_never_run(tmp_path, capsys):
    """A checkpoint planted as a pickle that would write a file when unpickled: one line, exit 2,
    and no file."""
    import pickle

    from corona_jax import cli

    marker = tmp_path / "written-by-the-pickle"

    class Planted:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    cfg = tmp_path / "run.toml"
    cfg.write_text(RESUMABLE)
    (tmp_path / "planted.nc.checkpoint").write_bytes(pickle.dumps(Planted()))
    assert cli.main(["sample", "--config", str(cfg), "--out", str(tmp_path / "planted.nc"), "--no-progress"]) == 2
    assert "is not readable" in capsys.readouterr().err
    assert not marker.exists()


def test_sampler_warnings_for_a_short_chain():
    """A deliberately short single chain: every threshold is judged and reported."""
    import pandas as pd

    from corona_jax.inference import sample

    table = pd.DataFrame({"r_hat": [1.2, 1.001], "ess_bulk": [12.0, 900.0]}, index=["alpha", "beta"])
    messages = sample.convergence_warnings(table, np.array([[False, True, True]]))
    assert any("R-hat of alpha is 1.200" in m for m in messages)
    assert any("bulk ESS of alpha is 12" in m for m in messages)
    assert any("2 divergent transitions" in m for m in messages)
    assert not any("beta" in m for m in messages)
    one_chain = pd.DataFrame({"r_hat": [np.nan], "ess_bulk": [500.0]}, index=["alpha"])
    assert sample.convergence_warnings(one_chain, np.zeros((1, 5), bool)) == [
        "R-hat needs at least 2 chains: convergence cannot be judged from one"]


@pytest.mark.parametrize("text, message", [
    ("[priors]\nalpha = { uniform = [2, 3] }\n[data]\ncosmic_rays = []\nneutrinos = 'none'\ngamma_foreground = 'none'",
     "selects no data set"),
    ("priors = 5", r"\[priors\] must be a table"),
    ("[priors]\nalpha = { uniform = [2, 3] }\n[data]\nmock = 3", r"\[data.mock\] must be a table"),
    ("model = 'baseline'\n[priors]\nalpha = { uniform = [2, 3] }", r"\[model\] must be a table"),
    ("[priors]\nalpha = { uniform = [2, 3] }\n[sampler]\nseed = -1", r"seed must be an integer in \[0, 2\^32\)"),
    ("[priors]\nalpha = { uniform = [2, 3] }\n[data.mock]\nseed = -2\nalpha = 2.5", r"seed must be an integer"),
])
def test_more_bad_configurations_are_one_clear_error(text, message):
    with pytest.raises(ConfigError, match=message):
        config.parse_config(text)


def test_non_utf8_config_is_one_clear_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("# Bj\xf6rn\n[priors]\nalpha = { uniform = [2, 3] }\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load_config(str(path))


def test_fit_reports_convergence_and_prior_edges(quick_setup, tmp_path):
    """A start stopped at the step limit is flagged; a best fit on a prior edge gets a
    one-sided interval instead of a Laplace error; the file has units and no spaces."""
    import h5py

    from corona_jax.inference import fit, results

    short = fit.best_fit(quick_setup, starts=1, max_steps=2, progress=lambda s: None)
    assert short.starts[0].converged is False and short.starts[0].steps == 2
    # an edge: alpha's prior cut to [2.0, 2.3], far below the data's alpha = 2.44
    edged = quick_setup._replace(problem=quick_setup.problem._replace(priors=tuple(
        p if p.name != "alpha" else dataclasses.replace(p, b=2.3) for p in quick_setup.problem.priors)))
    lines = []
    result = fit.best_fit(edged, starts=2, max_steps=200, progress=lines.append)
    assert lines[-1] == f"  {result.starts_agreeing} of 2 starts reach the best -log L (within 0.01 nat)"
    assert result.starts_agreeing == sum(s.neg_log_density <= result.neg_log_density + 0.01 for s in result.starts) >= 1
    assert result.at_edge.get("alpha") == "upper"
    lo, hi = result.intervals["alpha"]
    assert 2.0 <= lo < hi == pytest.approx(2.3) and np.isnan(result.errors["alpha"])
    path = results.write_fit(str(tmp_path / "fit.h5"), result, edged)
    with h5py.File(path) as f:
        names = []
        f.visit(names.append)
        assert not any(" " in n for n in names)
        for n in names:
            if isinstance(f[n], h5py.Dataset):
                assert "units" in f[n].attrs, n
        assert f["best_fit/alpha"].attrs["at_prior_edge"] == "upper"
        assert f["starts/converged"].shape == (2,) and f.attrs["starts_agreeing"] == result.starts_agreeing


def test_a_term_without_predict_or_log_likelihood_cannot_be_made():
    from corona_jax.inference import terms

    @terms.pytree_dataclass
    class Incomplete(terms.LikelihoodTerm):
        value: np.ndarray
        name: str = terms.static_field()

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(np.ones(1), name="x")


@pytest.mark.parametrize("name", sorted(os.listdir(os.path.join(os.path.dirname(__file__), "..", "configs"))))
def test_every_shipped_configuration_is_valid(name):
    """Each file of configs/ parses with its command's parser and its likelihood terms build."""
    from corona_jax.inference import calibrate, evidence, forecast, sweep

    path = os.path.join(os.path.dirname(__file__), "..", "configs", name)
    loader = {"sweep": sweep.load_sweep_config, "calibrate": calibrate.load_calibrate_config,
              "evidence": evidence.load_evidence_config, "forecast": forecast.load_forecast_config}
    loaded = loader.get(name.split("-")[0].split(".")[0], config.load_config)(path)
    run = getattr(loaded, "run", loaded)
    from corona_jax.model import build_model

    assert model.build_terms(run, build_model(resolution=run.resolution, spectrum=run.spectrum, features=run.features))
