"""`corona-jax calibrate`: simulation-based calibration (SBC) and the coverage of profile-likelihood
intervals, on mocks of a run configuration's data (statistics: inference.calibration).

A calibrate configuration is a run configuration (inference.config) plus

[calibrate]  draws (simulations N, default 200), method ('laplace' | 'nuts'), posterior_draws
             (L, default 99; L + 1 must be a multiple of bins), bins (default 20), seed,
             mocks_per_device (Laplace mocks minimised at once on each device, default 1),
             max_steps (L-BFGS steps, default 300), starts (of the posterior-mode search, default 4)

The data sets must all be measurements ('bound' and 'component' likelihoods do not say how the
data would scatter) and KM3-230213A (one event) is refused. Simulation i draws the free
parameters from their priors, evaluates the model and adds Gaussian noise of each data point's
own error (the mean of err_lo and err_hi; an upper limit's value for upper-limit rows), so the
likelihood the inference uses is exactly the one the mocks were drawn from. The nuisances that
move the cosmic-ray data (each experiment's energy scale, the solar-modulation potentials) are
drawn from their priors as well, and are ranked and profiled like the corona parameters.

Each mock is inferred twice over:
- 'laplace': L-BFGS to the posterior mode in numpyro's unconstrained coordinates (the
  potential, with the priors' Jacobians) from `starts` points, the prior's centre and prior
  draws, keeping the lowest (the file records how many starts ended elsewhere, more than
  0.1 nat higher), its Hessian, and L draws of N(mode, H^-1) mapped
  back to the constrained parameters; 'nuts' instead draws from NUTS chains started there
  ([sampler] chains, warmup, samples, target_accept, max_tree_depth) and keeps L evenly spaced
  draws. Ranks of the truth among the draws: inference.calibration.
- the coverage: the minimum of -log L, and for each parameter the minimum with that parameter
  held at its true value (the profile statistic at the truth).

The mocks are minimised in batches of mocks_per_device x devices, one jitted program sharded
over the local devices (jax.sharding); NUTS runs one chain per device. The HDF5 file holds the
truths and the mocks from the start, and every batch's rows are flushed before the batch is
marked done, so running the same command again continues an interrupted calibration.
"""

import contextlib
import dataclasses
import functools
import hashlib
import os
from typing import NamedTuple

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from numpyro.distributions import biject_to

from corona_jax import interrupt, output
from corona_jax.errors import ConfigError

from . import calibration
from .config import (_SECTIONS, RunConfig, _check_keys, _seed, _table, parse_run_sections, positive_integers, read_text,
                     read_toml, require_measurements)
from .fit import NegLogDensity, minimise
from .model import (FlatPotential, Setup, build_setup, build_terms, constrain, corona_model, predictions_and_derived,
                    site_distributions)
from .modes import FlatModel
from .terms import ProtonSpectrum
from .sweep import open_for_resume

METHODS = ("laplace", "nuts")
STARTS_AGREE_NATS = 0.1  # a start ending more than this above the lowest potential found another optimum


@dataclasses.dataclass(frozen=True)
class CalibrateConfig:
    run: RunConfig
    text: str  # the configuration as given (its hash guards resuming)
    draws: int = 200
    method: str = "laplace"
    posterior_draws: int = 99
    bins: int = 20
    seed: int = 0
    mocks_per_device: int = 1
    max_steps: int = 300
    starts: int = 4

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def parse_calibrate_config(text: str, source: str = "config") -> CalibrateConfig:
    raw = read_toml(text, source, {*_SECTIONS, "calibrate"})
    settings = _table(raw.pop("calibrate", {}), "[calibrate]")
    run = parse_run_sections(raw, source)
    if run.mock:
        raise ConfigError("calibrate draws its own mocks from the priors; remove [data.mock]")
    if run.data["neutrino_event"] != "none":
        raise ConfigError("calibrate cannot redraw a single event (KM3-230213A); set neutrino_event = 'none'")
    require_measurements(run, "calibrate (a bound or a free component does not say how the data would scatter)")
    _check_keys(settings, {f.name for f in dataclasses.fields(CalibrateConfig)} - {"run", "text"}, "calibrate")
    values = positive_integers(settings, ("draws", "posterior_draws", "bins", "mocks_per_device", "max_steps", "starts"),
                               "calibrate")
    if "seed" in settings:
        values["seed"] = _seed(settings["seed"], "[calibrate] seed")
    if "method" in settings:
        if settings["method"] not in METHODS:
            raise ConfigError(f"[calibrate] method must be one of {', '.join(METHODS)}, got {settings['method']!r}")
        values["method"] = settings["method"]
    cfg = CalibrateConfig(run, text, **values)
    if (cfg.posterior_draws + 1) % cfg.bins:
        raise ConfigError(f"[calibrate] posterior_draws + 1 = {cfg.posterior_draws + 1} must be a multiple of "
                          f"bins = {cfg.bins} (each bin of ranks holds as many ranks)")
    if cfg.method == "nuts" and run.chains * run.samples < cfg.posterior_draws:
        raise ConfigError(f"[sampler] chains x samples = {run.chains * run.samples} must be at least "
                          f"[calibrate] posterior_draws = {cfg.posterior_draws}")
    return cfg


def load_calibrate_config(path: str) -> CalibrateConfig:
    return parse_calibrate_config(read_text(path), path)


def measured(term):
    """The term as its mocks are: each point measured with its own symmetric error (the mean of
    err_lo and err_hi; an upper limit's value for its row), without the Fermi-LAT foreground shift."""
    ul = np.asarray(term.is_upper_limit)
    sigma = np.where(ul, np.asarray(term.value), 0.5 * (np.asarray(term.err_lo) + np.asarray(term.err_hi)))
    changes = dict(err_lo=sigma, err_hi=sigma, is_upper_limit=np.zeros_like(ul))
    if hasattr(term, "fgsyst_lo"):
        changes.update(fgsyst_lo=np.zeros_like(sigma), fgsyst_hi=np.zeros_like(sigma))
    return dataclasses.replace(term, **changes)


def simulate(term, predicted, rng: np.random.Generator):
    """Mock values of a term: drawn from its (measured) likelihood at `predicted` (with a
    covariance, correlated noise)."""
    sigma = np.asarray(measured(term).err_lo)
    noise = rng.standard_normal(sigma.shape)
    if getattr(term, "cov_cholesky", None) is not None:
        return np.asarray(predicted) + np.asarray(term.cov_cholesky) @ noise
    return np.asarray(predicted) + sigma * noise


class Calibration(NamedTuple):
    cfg: CalibrateConfig
    setup: Setup
    names: tuple  # every sampled site, sorted (numpyro's order)
    parameters: tuple  # ranked and profiled: the free corona parameters ([priors]), then the nuisances
    # that move the cosmic-ray data (energy scales, solar modulation), drawn from their priors too


def prepare(cfg: CalibrateConfig) -> Calibration:
    setup = build_setup(cfg.run)  # the mocks are the model's protons, so all-particle spectra are measurements too
    setup = setup._replace(problem=setup.problem._replace(terms=build_terms(cfg.run, setup.model, mock=True)))
    names = tuple(sorted(site_distributions(setup.problem)))
    nuisances = tuple(dict.fromkeys(k for t in setup.terms if isinstance(t, ProtonSpectrum)
                                    for k in t.nuisance_priors()))
    return Calibration(cfg, setup, names, tuple(cfg.run.priors) + nuisances)


def prior_draws(cal: Calibration) -> dict:
    """N draws from its prior of every calibrated parameter: name -> (N,)."""
    rng = np.random.default_rng([cal.cfg.seed, 0])
    n = cal.cfg.draws
    out = {}
    for p in cal.setup.problem.priors:
        out[p.name] = rng.uniform(p.a, p.b, n) if p.kind == "uniform" else rng.normal(p.a, p.b, n)
    sites = site_distributions(cal.setup.problem)
    for j, name in enumerate(k for k in cal.parameters if k not in out):
        key = jax.random.fold_in(jax.random.PRNGKey(cal.cfg.seed), j)
        out[name] = np.asarray(sites[name].sample(key, (n,)), dtype=np.float64)
    return out


def mocks(cal: Calibration, truth: dict) -> dict:
    """Each term's mock values (N, points): the model at each truth plus noise (simulate)."""
    predicted, _ = predictions_and_derived(cal.setup, truth)
    out = {t.name: np.empty_like(predicted[t.name]) for t in cal.setup.terms}
    for i in range(cal.cfg.draws):
        rng = np.random.default_rng([cal.cfg.seed, 1, i])
        for t in cal.setup.terms:
            out[t.name][i] = simulate(t, predicted[t.name][i], rng)
    return out


def mock_terms(cal: Calibration, values: dict):
    """The terms of a batch of mocks (values: term name -> (B, points)), stacked along a leading
    axis: a pytree of (B, ...) arrays."""
    n = len(next(iter(values.values())))
    batch = [tuple(dataclasses.replace(measured(t), value=values[t.name][i]) for t in cal.setup.terms)
             for i in range(n)]
    return jax.tree.map(lambda *a: np.stack(a), *batch)


@dataclasses.dataclass(frozen=True)
class HeldAt:
    """objective with coordinate j held at u: (x, j, u, *args) -> objective(x with x_j = u, *args)."""

    objective: object

    def __call__(self, x, j, u, *args):
        return self.objective(x.at[j].set(u), *args)


@dataclasses.dataclass(frozen=True)
class MockInference:
    """For one mock (its terms) and its truth (unconstrained, all sites): the posterior mode and the
    potential's Hessian there, the minimum of -log density and each parameter's profile minimum
    at its true value. Hashable: compiled once per calibration."""

    names: tuple
    profiled: tuple  # indices in names of the profiled parameters
    max_steps: int

    def __call__(self, terms, truth, starts, problem):
        problem = problem._replace(terms=terms)
        potential, nll = FlatPotential(self.names), NegLogDensity(self.names)
        runs = jax.vmap(lambda x0: minimise(potential, x0, (problem,), self.max_steps))(starts)
        ends = jnp.where(jnp.isfinite(runs.value), runs.value, jnp.inf)
        mode = jax.tree.map(lambda a: a[jnp.argmin(ends)], runs)
        elsewhere = jnp.sum(ends > mode.value + STARTS_AGREE_NATS)
        hessian = jax.jacrev(jax.grad(potential))(mode.x, problem)
        held = HeldAt(nll)

        def lower(a, b):
            return jax.tree.map(lambda u, v: jnp.where(a.value <= b.value, u, v), a, b)

        # -log L is minimised from two starts, the posterior mode and the truth (any start is fair:
        # the coverage is that of the exact profile-likelihood interval, so only the minimum counts)
        best = lower(minimise(nll, mode.x, (problem,), self.max_steps),
                     minimise(nll, truth, (problem,), self.max_steps))

        def profile(j):
            m = lower(minimise(held, best.x, (j, truth[j], problem), self.max_steps),
                      minimise(held, truth, (j, truth[j], problem), self.max_steps))
            return m.value, m.converged

        values, converged = jax.lax.map(profile, jnp.asarray(self.profiled))
        return {"mode": mode.x, "hessian": hessian, "statistic": 2.0 * (values - best.value),
                "converged": mode.converged & best.converged & jnp.all(converged), "starts_elsewhere": elsewhere}


@functools.partial(jax.jit, static_argnums=0)
def _infer_batch(inference: MockInference, terms, truth, starts, problem):
    """MockInference over a batch of mocks: terms, truth and starts (B, ...), the rest of problem shared."""
    return jax.vmap(inference, in_axes=(0, 0, 0, None))(terms, truth, starts, problem._replace(terms=()))


def start_points(cal: Calibration, rows) -> np.ndarray:
    """(len(rows), starts, sites) unconstrained starts of each mock's mode search: the prior's centre
    (0) and starts - 1 prior draws, seeded by the mock's index (the same on resuming)."""
    flat = FlatModel.of(corona_model, (cal.setup.problem,))
    out = np.zeros((len(rows), cal.cfg.starts, len(cal.names)))
    for b, i in enumerate(rows):
        key = jax.random.fold_in(jax.random.PRNGKey(cal.cfg.seed), 1_000_003 + int(i))
        out[b, 1:] = np.asarray(flat.draw_prior(key, cal.cfg.starts - 1))
    return out


def to_unconstrained(cal: Calibration, values: dict) -> np.ndarray:
    """(N, sites) unconstrained coordinates of the truths; sites not in values (nuisances that do not
    change the mocks, such as the Fermi-LAT foreground's) at the image 0 of their prior's middle."""
    d = site_distributions(cal.setup.problem)
    n = len(next(iter(values.values())))
    return np.stack([np.asarray(biject_to(d[k].support).inv(jnp.asarray(values[k]))) if k in values
                     else np.zeros(n) for k in cal.names], axis=1)


def laplace_draws(mode, hessian, n, rng):
    """n draws (n, sites) of N(mode, H^-1) in the unconstrained coordinates; None unless H is
    positive definite."""
    H = 0.5 * (hessian + hessian.T)
    if not np.all(np.isfinite(H)):
        return None
    try:
        np.linalg.cholesky(H)  # raises unless positive definite
        chol = np.linalg.cholesky(np.linalg.inv(H))
    except np.linalg.LinAlgError:
        return None
    return mode[None, :] + rng.standard_normal((n, mode.size)) @ chol.T


PER_SIMULATION = ("rank", "profile_statistic", "posterior_mean", "posterior_sd")


def _create(f, cal: Calibration, truth: dict, mock_values: dict):
    """Fill a new calibration file: truths, mocks, and every result allocated (not done)."""
    cfg, N = cal.cfg, cal.cfg.draws
    f.attrs.update(config=cfg.text, config_sha256=cfg.sha256, method=cfg.method, draws=N,
                   posterior_draws=cfg.posterior_draws, bins=cfg.bins, parameters=",".join(cal.parameters),
                   **{f"model_{k}": v for k, v in cal.setup.model.config.describe().items()})
    for name in cal.parameters:
        f.create_dataset(f"truth/{name}", data=truth[name])
        f.create_dataset(f"rank/{name}", data=np.full(N, -1, np.int64)).attrs["description"] = (
            f"number of the {cfg.posterior_draws} posterior draws below the truth (-1: not done or failed)")
        f.create_dataset(f"profile_statistic/{name}", data=np.full(N, np.nan)).attrs["description"] = (
            "2 [min -log L with the parameter at its truth - min -log L]")
        f.create_dataset(f"posterior_mean/{name}", data=np.full(N, np.nan))
        f.create_dataset(f"posterior_sd/{name}", data=np.full(N, np.nan))
    for t in cal.setup.terms:
        f.create_dataset(f"mock/{t.name}/value", data=mock_values[t.name]).attrs["units"] = t.value_units
        f.create_dataset(f"mock/{t.name}/E_GeV", data=np.asarray(t.E_GeV))
    f.create_dataset("converged", data=np.zeros(N, np.uint8)).attrs["description"] = (
        "every L-BFGS minimisation converged and the Hessian at the mode is positive definite")
    if cfg.method == "nuts":
        f.create_dataset("divergences", data=np.zeros(N, np.int64))
        f.create_dataset("ess_min", data=np.full(N, np.nan)).attrs["description"] = "smallest bulk ESS"
        f.create_dataset("rhat_max", data=np.full(N, np.nan)).attrs["description"] = "largest split R-hat"
    f.create_dataset("starts_elsewhere", data=np.full(N, -1, np.int64)).attrs["description"] = (
        "starts of the posterior-mode search that ended more than 0.1 nat above the lowest (-1: not done)")
    f.create_dataset("done", data=np.zeros(N, np.uint8))


@dataclasses.dataclass(frozen=True)
class NutsSettings:
    """What a calibration's NUTS chains are compiled for (hashable: compiled once per calibration)."""

    names: tuple
    warmup: int
    samples: int
    target_accept: float
    max_tree_depth: int


@functools.partial(jax.jit, static_argnums=0)
def _nuts_chains(settings: NutsSettings, keys, starts, inverse_mass, problem):
    """NUTS chains (numpyro's hmc kernels, dense mass matrix adapted in windows during warm-up) on
    the potential of one mock, one chain per row of keys and starts (unconstrained), all starting
    from the mass matrix inverse_mass: (samples (chains, S, sites), diverging (chains, S)). The
    problem is an argument, so every mock reuses one compiled program."""
    from numpyro.infer.hmc import hmc

    potential = FlatPotential(settings.names)
    init_kernel, sample_kernel = hmc(potential_fn_gen=lambda p: functools.partial(potential, problem=p), algo="NUTS")

    def chain(key, start):
        state = init_kernel(start, settings.warmup, inverse_mass_matrix=inverse_mass, dense_mass=True,
                            target_accept_prob=settings.target_accept, max_tree_depth=settings.max_tree_depth,
                            model_args=(problem,), rng_key=key)

        def step(state, _):
            state = sample_kernel(state, model_args=(problem,))
            return state, (state.z, state.diverging)

        _, (z, diverging) = jax.lax.scan(step, state, None, length=settings.warmup + settings.samples)
        return z[settings.warmup:], diverging[settings.warmup:]

    return jax.vmap(chain)(keys, starts)


def _nuts_draws(cal: Calibration, problem, start, inverse_mass, seed, mesh):
    """L evenly spaced draws of the NUTS chains' samples (constrained), the number of divergences, the
    smallest bulk ESS and the largest split R-hat; the chains start at `start` (chains, sites;
    unconstrained) with inverse_mass (the Laplace covariance, or the unit matrix) as the first
    inverse mass matrix, sharded over the devices."""
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    run = cal.cfg.run
    settings = NutsSettings(cal.names, run.warmup, run.samples, run.target_accept, run.max_tree_depth)
    spec = PartitionSpec("devices") if run.chains % mesh.size == 0 else PartitionSpec()
    keys = jax.random.split(jax.random.PRNGKey(seed), run.chains)
    keys, start = (jax.device_put(a, NamedSharding(mesh, spec)) for a in (keys, jnp.asarray(start)))
    z, diverging = jax.device_get(_nuts_chains(settings, keys, start, jnp.asarray(inverse_mass), problem))
    samples = {k: np.asarray(v) for k, v in constrain(problem, dict(zip(cal.names, np.moveaxis(z, -1, 0)))).items()
               if k in cal.parameters}
    keep = np.linspace(0, samples[cal.parameters[0]].size - 1, cal.cfg.posterior_draws).round().astype(int)
    ess = min(float(effective_sample_size(samples[k])) for k in cal.parameters)
    rhat = max(float(split_gelman_rubin(samples[k])) for k in cal.parameters)
    return {k: v.reshape(-1)[keep] for k, v in samples.items()}, int(np.sum(diverging)), ess, rhat


def run_calibration(cal: Calibration, out: str, progress: bool = True) -> str:
    """Infer every mock not yet done into out (created with the truths and mocks if new)."""
    from tqdm.auto import tqdm

    cfg = cal.cfg
    path = output.check_writable(out)
    with output.run_lock(path):  # one run at a time on this file
        if not os.path.exists(path):
            truth = prior_draws(cal)
            with output.new_hdf5(path) as f:
                _create(f, cal, truth, mocks(cal, truth))
        devices = jax.local_devices()
        mesh = Mesh(np.array(devices), ("devices",))
        batch = cfg.mocks_per_device * len(devices)
        inference = MockInference(cal.names, tuple(cal.names.index(p) for p in cal.parameters), cfg.max_steps)
        with contextlib.closing(open_for_resume(path, cfg.sha256, "calibration")) as f:
            truth = {p: f[f"truth/{p}"][()] for p in cal.parameters}
            truth_u = to_unconstrained(cal, truth)
            starts_u = start_points(cal, np.arange(cfg.draws))
            todo = np.flatnonzero(~f["done"][()].astype(bool))
            bar = tqdm(total=cfg.draws, initial=cfg.draws - todo.size, unit="mock", disable=not progress,
                       desc=f"{cfg.method} {os.path.basename(path)}")
            with bar:
                for start in range(0, todo.size, batch):
                    interrupt.check()
                    rows = todo[start:start + batch]
                    padded = np.concatenate([rows, np.full(batch - rows.size, rows[-1])])  # a full batch for every device
                    terms = mock_terms(cal, {t.name: f[f"mock/{t.name}/value"][rows][np.searchsorted(rows, padded)]
                                             for t in cal.setup.terms})
                    sharding = NamedSharding(mesh, PartitionSpec("devices"))
                    terms = jax.device_put(jax.tree.map(jnp.asarray, terms), sharding)
                    starts = jax.device_put(starts_u[padded], sharding)
                    result = jax.device_get(_infer_batch(inference, terms, jax.device_put(truth_u[padded], sharding),
                                                         starts, cal.setup.problem))
                    for b, i in enumerate(rows):
                        _record(f, cal, i, {k: v[b] for k, v in result.items()}, truth, mesh)
                    f.flush()
                    f["done"][rows] = 1  # only once the rows are on disk
                    f.flush()
                    bar.update(rows.size)
    return path


def _record(f, cal: Calibration, i, result, truth, mesh):
    """Write simulation i's profile statistics, ranks and posterior moments."""
    cfg = cal.cfg
    for j, p in enumerate(cal.parameters):
        f[f"profile_statistic/{p}"][i] = result["statistic"][j]
    rng = np.random.default_rng([cfg.seed, 2, i])
    mode, hessian = result["mode"], result["hessian"]
    x = laplace_draws(mode, hessian, cfg.posterior_draws, rng)
    f["converged"][i] = bool(result["converged"]) and x is not None
    if "starts_elsewhere" in f:  # (not in files made before the multi-start search)
        f["starts_elsewhere"][i] = int(result["starts_elsewhere"])
    if cfg.method == "nuts":
        start = x[:cfg.run.chains] if x is not None else np.repeat(mode[None, :], cfg.run.chains, axis=0)
        values = {t.name: f[f"mock/{t.name}/value"][i][None] for t in cal.setup.terms}
        problem = cal.setup.problem._replace(terms=jax.tree.map(lambda a: a[0], mock_terms(cal, values)))
        inverse_mass = np.eye(mode.size) if x is None else np.linalg.inv(0.5 * (hessian + hessian.T))
        draws, divergences, ess, rhat = _nuts_draws(cal, problem, start, inverse_mass, cfg.seed + i, mesh)
        f["divergences"][i], f["ess_min"][i], f["rhat_max"][i] = divergences, ess, rhat
    elif x is None:
        return
    else:
        draws = {k: np.asarray(v) for k, v in constrain(cal.setup.problem, dict(zip(cal.names, x.T))).items()}
    for p in cal.parameters:
        d = np.asarray(draws[p])
        f[f"rank/{p}"][i] = int(np.sum(d < truth[p][i]))
        f[f"posterior_mean/{p}"][i] = d.mean()
        f[f"posterior_sd/{p}"][i] = d.std()


class Summary(NamedTuple):
    done: int
    failed: int  # simulations without ranks (no positive-definite Hessian at the posterior mode)
    unconverged: int  # simulations with a minimisation stopped at max_steps
    rank_tests: dict  # parameter -> calibration.RankTest
    coverage: dict  # parameter -> [calibration.Coverage per level]
    starts_disagreed: int  # simulations whose mode-search starts did not all end at the lowest mode


def summarise(path: str) -> Summary:
    """Rank tests and coverage of a calibration file, of the simulations done so far (also while
    a calibration writes it: their rows are flushed before they are marked done)."""
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError:
        raise ConfigError(f"cannot read the calibration file {path}") from None
    with f:
        done = f["done"][()].astype(bool)
        L, bins = int(f.attrs["posterior_draws"]), int(f.attrs["bins"])
        parameters = str(f.attrs["parameters"]).split(",")
        ranked = f[f"rank/{parameters[0]}"][()][done] >= 0
        tests, cover = {}, {}
        for p in parameters:
            tests[p] = calibration.rank_test(f[f"rank/{p}"][()][done][ranked], L, bins)
            t = f[f"profile_statistic/{p}"][()][done]
            cover[p] = [calibration.coverage(t, level) for level in calibration.COVERAGE_LEVELS]
        unconverged = int(np.sum(~f["converged"][()][done].astype(bool)))
        disagreed = int(np.sum(f["starts_elsewhere"][()][done] > 0)) if "starts_elsewhere" in f else 0
    return Summary(int(done.sum()), int(np.sum(~ranked)), unconverged, tests, cover, disagreed)


def summary_table(summary: Summary):
    """One row per parameter: the rank test's chi-square and p-value, and each coverage level's
    fraction, its binomial error and the binomial test's p-value."""
    import pandas as pd

    rows = {}
    for name, test in summary.rank_tests.items():
        row = {"simulations": int(test.counts.sum()), "rank_chi2": test.chi2, "rank_p_value": test.p_value}
        for c in summary.coverage[name]:
            level = f"{100 * c.level:.0f}"
            row.update({f"coverage_{level}": c.fraction, f"coverage_{level}_error": c.error,
                        f"coverage_{level}_p_value": c.p_value})
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
