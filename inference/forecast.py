"""`corona-jax forecast`: Fisher matrices of today's data and of future experiments.

A forecast configuration is a run configuration (inference.config; its [data] are today's data,
all measurements) plus

[forecast]  fiducial = { <every [priors] parameter> = value }: where the Fisher matrices are taken
[[forecast.experiment]]  name, data (a [data] key: 'neutrinos', 'gamma_regions', ...), dataset
            (one data set of that key), exposure_ratio (> 0): a future experiment measures that
            data set's points with its errors divided by sqrt(exposure_ratio), statistics-limited

Every data set, today's and future, is replaced by its Asimov version: the model at the fiducial
point, measured with the data set's absolute errors (calibrate.measured). Then
F = d^2 [-log L] / d theta d theta at the fiducial, the exact Hessian by autodiff (reverse over
reverse through the transport's discrete adjoint), and F of today's data plus an experiment is
the sum of the two. The forecast error of a parameter is sqrt((F^-1)_ii), the expected error of
a derived quantity g is sqrt(grad g . F^-1 . grad g), and its expected 95 % upper limit, when
the data agree with the fiducial, is g + 1.645 of that error. The nuisances of the terms stay at
their prior means; uniform priors add no curvature.
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from corona_jax import forward
from corona_jax.errors import ConfigError

from .calibrate import measured
from .config import (_SECTIONS, RunConfig, _check_keys, _number, _table, parse_run_sections, read_text, read_toml,
                     require_measurements)
from .model import Problem, Setup, build_setup, build_terms, derived, log_density
from .systematics import corona_params
from .terms import DATA_SOURCES

SHARE = "share_icecube_100TeV"  # the derived quantity whose expected upper limit is reported
ONE_SIDED_95 = 1.6449  # Gaussian quantile of a one-sided 95 % upper limit


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    data: str  # a key of DATA_SOURCES
    dataset: str
    exposure_ratio: float


@dataclasses.dataclass(frozen=True)
class ForecastConfig:
    run: RunConfig
    fiducial: dict
    experiments: tuple


def parse_forecast_config(text: str, source: str = "config") -> ForecastConfig:
    raw = read_toml(text, source, {*_SECTIONS, "forecast"})
    settings = _table(raw.pop("forecast", {}), "[forecast]")
    run = parse_run_sections(raw, source)
    _check_keys(settings, {"fiducial", "experiment"}, "forecast")
    require_measurements(run, "forecast (today's data become Asimov measurements)")
    fiducial = _table(settings.get("fiducial", {}), "[forecast] fiducial")
    _check_keys(fiducial, set(run.priors), "forecast.fiducial")
    missing = [p for p in run.priors if p not in fiducial]
    if missing:
        raise ConfigError(f"[forecast] fiducial needs a value for every free parameter; missing {', '.join(missing)}")
    for name, value in fiducial.items():
        prior = run.priors[name]
        _number(value, f"[forecast] fiducial {name}")
        if prior.kind == "uniform" and not prior.a < value < prior.b:
            raise ConfigError(f"[forecast] fiducial {name} = {value} must lie inside its prior ({prior.a}, {prior.b})")
    experiments = []
    for i, e in enumerate(settings.get("experiment", [])):
        where = f"[[forecast.experiment]] {i + 1}"
        e = _table(e, where)
        _check_keys(e, {"name", "data", "dataset", "exposure_ratio"}, f"forecast.experiment {i + 1}")
        if not all(k in e for k in ("name", "data", "dataset", "exposure_ratio")):
            raise ConfigError(f"{where} needs name, data, dataset and exposure_ratio")
        if e["data"] not in DATA_SOURCES or e["data"] == "neutrino_event":
            raise ConfigError(f"{where}: data must be one of {', '.join(k for k in DATA_SOURCES if k != 'neutrino_event')}")
        DATA_SOURCES[e["data"]].check(e["data"], [e["dataset"]] if DATA_SOURCES[e["data"]].many else e["dataset"])
        ratio = _number(e["exposure_ratio"], f"{where} exposure_ratio", positive=True)
        experiments.append(Experiment(str(e["name"]), e["data"], e["dataset"], float(ratio)))
    if not experiments:
        raise ConfigError(f"{source}: [forecast] needs at least one [[forecast.experiment]]")
    return ForecastConfig(run, {k: float(v) for k, v in fiducial.items()}, tuple(experiments))


def load_forecast_config(path: str) -> ForecastConfig:
    return parse_forecast_config(read_text(path), path)


def asimov(term, predicted, error_scale=1.0):
    """The term measured exactly at `predicted`, with its data's absolute errors times error_scale."""
    m = measured(term)
    return dataclasses.replace(m, value=np.asarray(predicted), err_lo=np.asarray(m.err_lo) * error_scale,
                               err_hi=np.asarray(m.err_hi) * error_scale)


def _predict(problem: Problem, values: dict):
    params = corona_params(problem.base_params, values)
    pred = forward.forward(params, problem.model)
    return pred, params


def asimov_setup(setup: Setup, fiducial: dict, terms=None, error_scale=1.0) -> Setup:
    """setup with `terms` (default: its own) replaced by their Asimov versions at the fiducial."""
    terms = setup.terms if terms is None else terms
    pred, _ = jax.jit(_predict)(setup.problem, {k: jnp.asarray(v) for k, v in fiducial.items()})
    new = tuple(asimov(t, t.predict(pred, setup.model), error_scale) for t in terms)
    return setup._replace(problem=setup.problem._replace(terms=new))


@dataclasses.dataclass(frozen=True)
class NegLogLikelihood:
    """-log density as a function of the free corona parameters (vector in the order `names`), the
    terms' nuisances at their prior means."""

    names: tuple

    def __call__(self, x, problem: Problem):
        theta = dict(zip(self.names, x))
        for term in problem.terms:
            theta.update({k: d.mean for k, d in term.nuisance_priors().items()})
        return -log_density(problem, theta)


@functools.partial(jax.jit, static_argnums=0)
def _fisher(objective, x, problem):
    return jax.jacrev(jax.grad(objective))(x, problem)


def fisher_matrix(setup: Setup, point: dict) -> np.ndarray:
    """Hessian of -log L in the free corona parameters (the order of [priors]) at point."""
    names = tuple(setup.config.priors)
    F = np.asarray(_fisher(NegLogLikelihood(names), jnp.asarray([point[n] for n in names]), setup.problem))
    return 0.5 * (F + F.T)


@functools.partial(jax.jit, static_argnums=0)
def _derived_gradient(names, x, problem):
    def share(x):
        pred, params = _predict(problem, dict(zip(names, x)))
        return derived(problem, params, pred)[SHARE]

    return jax.value_and_grad(share)(x)


class Forecast(NamedTuple):
    names: list
    fiducial: dict
    fisher: dict  # 'today' and 'today + <experiment>' -> (d, d)
    errors: dict  # same keys -> {parameter: 1 sigma}
    share: float  # SHARE at the fiducial
    share_upper_limit: dict  # same keys -> expected 95 % upper limit of SHARE


def _errors(F, names):
    try:
        cov = np.linalg.inv(F)
    except np.linalg.LinAlgError:
        return {n: float("inf") for n in names}, None
    return {n: float(np.sqrt(cov[i, i])) if cov[i, i] > 0 else float("inf") for i, n in enumerate(names)}, cov


def today_setup(cfg: ForecastConfig) -> Setup:
    """The configuration's Setup with today's data as Asimov data at the fiducial (all-particle
    spectra, like the rest, as measurements of the model's protons)."""
    base = build_setup(cfg.run)
    base = base._replace(problem=base.problem._replace(terms=build_terms(cfg.run, base.model, mock=True)))
    return asimov_setup(base, cfg.fiducial)


def run_forecast(cfg: ForecastConfig, progress=print) -> Forecast:
    """Fisher matrices of today's data and of today's data plus each experiment (module docstring)."""
    today = today_setup(cfg)
    names = list(cfg.run.priors)
    if today.problem.neutrino_reference is None:
        raise ConfigError(f"forecast reports the expected upper limit of {SHARE}: [data] needs an IceCube data set")
    x = jnp.asarray([cfg.fiducial[n] for n in names])
    share, gradient = (np.asarray(v) for v in _derived_gradient(tuple(names), x, today.problem))
    fishers = {"today": fisher_matrix(today, cfg.fiducial)}
    for e in cfg.experiments:
        progress(f"  Fisher matrix of {e.name} ({e.dataset} with errors / sqrt({e.exposure_ratio:g}))")
        source = DATA_SOURCES[e.data]
        mode_key = {source.mode_key: "measurement"} if source.mode_key else {}
        data = {**cfg.run.data, e.data: (e.dataset,) if source.many else e.dataset, **mode_key}
        terms = source.terms(data[e.data], "measurement", True, today.model)
        future = asimov_setup(today, cfg.fiducial, terms, 1.0 / np.sqrt(e.exposure_ratio))
        fishers[f"today + {e.name}"] = fishers["today"] + fisher_matrix(future, cfg.fiducial)
    errors, limits = {}, {}
    for key, F in fishers.items():
        errors[key], cov = _errors(F, names)
        sigma = float(np.sqrt(gradient @ cov @ gradient)) if cov is not None else float("inf")
        limits[key] = float(share) + ONE_SIDED_95 * sigma
    return Forecast(names, dict(cfg.fiducial), fishers, errors, float(share), limits)


def pinned(forecast: Forecast, key: str, factor=2.0) -> list:
    """Parameters whose error the experiment `key` shrinks by more than `factor` against today's."""
    return [n for n in forecast.names if forecast.errors[key][n] * factor < forecast.errors["today"][n]]


def forecast_table(forecast: Forecast):
    """Rows: today and today + each experiment; columns: each parameter's 1-sigma error, the
    expected 95 % upper limit of SHARE and the parameters each experiment pins."""
    import pandas as pd

    rows = {}
    for key in forecast.fisher:
        row = {f"sigma_{n}": forecast.errors[key][n] for n in forecast.names}
        row[f"expected_95ul_{SHARE}"] = forecast.share_upper_limit[key]
        row["pins (error / 2 or better)"] = "" if key == "today" else " ".join(pinned(forecast, key))
        rows[key] = row
    return pd.DataFrame.from_dict(rows, orient="index")
