"""`corona-jax forecast`: Fisher matrices of today's data and of future experiments.

A forecast configuration is a run configuration (inference.config; its [data] are today's data,
all measurements) plus

[forecast]  fiducial = { <every [priors] parameter> = value }: where the Fisher matrices are taken
[[forecast.experiment]]  name, data (a [data] key: 'neutrinos', 'gamma_regions', ...), dataset
            (one data set of that key), exposure_ratio (> 0): a future experiment measures that
            data set's points with its errors divided by sqrt(exposure_ratio), statistics-limited;
            optional reference_energy_GeV (where shares and fluxes are quoted; default the
            geometric mean of the data set's energies) and background ('log_parabola', the
            default, or 'power_law': the astrophysical background of the sensitivity)

Every data set, today's and future, is replaced by its Asimov version: the model at the fiducial
point, measured with the data set's absolute errors (calibrate.measured). Then
F = d^2 [-log L] / d theta d theta at the fiducial, the exact Hessian by autodiff (reverse over
reverse through the transport's discrete adjoint), and F of today's data plus an experiment is
the sum of the two. The forecast error of a parameter is sqrt((F^-1)_ii), the expected error of
a derived quantity g is sqrt(grad g . F^-1 . grad g): g + 1.645 of that error is the 95 % upper
end of the model's own prediction of g, given today's parameters, not a sensitivity. The
nuisances of the terms stay at their prior means; uniform priors add no curvature.

Sensitivity (inference.sensitivity): each experiment's data set, and today's measurement of it,
as flux points with Asimov data: the background is the log-parabola (or power law) that fits
today's measured points less the corona at the fiducial, its curvature constrained by that fit,
and the signal is the corona at the fiducial scaled by mu = L_CR / L_CR,fiducial (the corona's
fluxes are linear in L_CR). Reported: the median discovery significance of the fiducial corona,
the L_CR (and share and flux) detected at 3 and 5 sigma, and the expected 95 % CLs upper limit of
each if the corona is absent, each by the direct profile and linearised.
"""

import dataclasses
import functools
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from corona_jax import forward
from corona_jax.errors import ConfigError

from .calibrate import measured
from .config import (_SECTIONS, RunConfig, _check_keys, _number, _table, parse_run_sections, read_text, read_toml,
                     require_measurements)
from . import sensitivity
from .model import Problem, Setup, build_setup, build_terms, derived, log_density
from .systematics import corona_params
from .terms import DATA_SOURCES

SHARE = "share_icecube_100TeV"  # the derived quantity whose prediction's spread is reported
ONE_SIDED_95 = 1.6449  # Gaussian quantile of a one-sided 95 % upper limit
BACKGROUNDS = ("log_parabola", "power_law")


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    data: str  # a key of DATA_SOURCES
    dataset: str
    exposure_ratio: float
    reference_energy_GeV: float = None  # None: the geometric mean of the data set's energies
    background: str = "log_parabola"


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
        _check_keys(e, {"name", "data", "dataset", "exposure_ratio", "reference_energy_GeV", "background"},
                    f"forecast.experiment {i + 1}")
        if not all(k in e for k in ("name", "data", "dataset", "exposure_ratio")):
            raise ConfigError(f"{where} needs name, data, dataset and exposure_ratio")
        if e["data"] not in DATA_SOURCES or e["data"] == "neutrino_event":
            raise ConfigError(f"{where}: data must be one of {', '.join(k for k in DATA_SOURCES if k != 'neutrino_event')}")
        DATA_SOURCES[e["data"]].check(e["data"], [e["dataset"]] if DATA_SOURCES[e["data"]].many else e["dataset"])
        ratio = _number(e["exposure_ratio"], f"{where} exposure_ratio", positive=True)
        E_ref = e.get("reference_energy_GeV")
        if E_ref is not None:
            E_ref = float(_number(E_ref, f"{where} reference_energy_GeV", positive=True))
        background = e.get("background", "log_parabola")
        if background not in BACKGROUNDS:
            raise ConfigError(f"{where}: background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
        experiments.append(Experiment(str(e["name"]), e["data"], e["dataset"], float(ratio), E_ref, background))
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


def fiducial_prediction(problem: Problem, fiducial: dict):
    """(forward prediction, CoronaParams) at the fiducial point."""
    return jax.jit(_predict)(problem, {k: jnp.asarray(v) for k, v in fiducial.items()})


def asimov_setup(setup: Setup, fiducial: dict, terms=None, error_scale=1.0, prediction=None) -> Setup:
    """setup with `terms` (default: its own) replaced by their Asimov versions at the fiducial
    (prediction: the forward prediction there, if already computed)."""
    terms = setup.terms if terms is None else terms
    pred = prediction if prediction is not None else fiducial_prediction(setup.problem, fiducial)[0]
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


class ExperimentSensitivity(NamedTuple):
    """inference.sensitivity for one data set at one exposure, with what mu = 1 stands for."""

    dataset: str
    exposure_ratio: float
    background: str
    reference_energy_GeV: float
    corona_at_reference: float  # the fiducial corona at the reference energy, in the data's units
    background_at_reference: float
    energy_power: int  # E^energy_power x value is the data's E^2 dN/dE-like quantity
    log10_LCR_erg_s: float  # the fiducial's
    result: sensitivity.Sensitivity


class Forecast(NamedTuple):
    names: list
    fiducial: dict
    fisher: dict  # 'today' and 'today + <experiment>' -> (d, d)
    errors: dict  # same keys -> {parameter: 1 sigma}
    share: float  # SHARE at the fiducial
    share_prediction_upper: dict  # same keys -> SHARE + 1.645 of its Fisher error: the prediction's spread
    sensitivities: dict  # 'today: <dataset>' and '<experiment>' -> ExperimentSensitivity

    @property
    def share_upper_limit(self):
        """Deprecated since 0.2.2, removed in 0.3: it was never an upper limit; share_prediction_upper."""
        warnings.warn("Forecast.share_upper_limit is deprecated: it is the 95 % upper end of the model's prediction, "
                      "now Forecast.share_prediction_upper; for upper limits see Forecast.sensitivities",
                      DeprecationWarning, stacklevel=2)
        return self.share_prediction_upper


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


def experiment_terms(cfg: ForecastConfig, e: Experiment, model):
    """The terms of an experiment's data set, today's measurements, in mode 'measurement'."""
    source = DATA_SOURCES[e.data]
    return source.terms((e.dataset,) if source.many else e.dataset, "measurement", True, model)


def experiment_sensitivity(term, corona, exposure_ratio, e: Experiment, log10_LCR_erg_s) -> ExperimentSensitivity:
    """The sensitivity to the fiducial corona of one data set measured with its errors divided by
    sqrt(exposure_ratio) (module docstring): the background fits today's points less the corona."""
    E_GeV, corona = np.asarray(term.E_GeV, float), np.asarray(corona, float)
    sigma = np.asarray(measured(term).err_lo, float)
    E_ref = e.reference_energy_GeV or float(np.exp(np.mean(np.log(E_GeV))))
    m = ~np.asarray(term.is_upper_limit, bool)  # today's measured points
    background = sensitivity.fit_background(E_GeV[m], np.asarray(term.value)[m] - corona[m], sigma[m], E_ref,
                                            curvature=e.background == "log_parabola")
    result = sensitivity.sensitivity(sensitivity.Asimov(E_GeV, sigma / np.sqrt(exposure_ratio), corona, background))
    corona_ref = float(np.exp(np.interp(np.log(E_ref), np.log(E_GeV), np.log(np.maximum(corona, 1e-300)))))
    return ExperimentSensitivity(e.dataset, exposure_ratio, e.background, E_ref, corona_ref,
                                 float(background.values([E_ref])[0]), type(term).energy_power, log10_LCR_erg_s, result)


def run_forecast(cfg: ForecastConfig, progress=print) -> Forecast:
    """Fisher matrices of today's data and of today's data plus each experiment, and each
    experiment's sensitivity to the corona (module docstring)."""
    today = today_setup(cfg)
    names = list(cfg.run.priors)
    if today.problem.neutrino_reference is None:
        raise ConfigError(f"forecast reports the spread of {SHARE}: [data] needs an IceCube data set")
    x = jnp.asarray([cfg.fiducial[n] for n in names])
    share, gradient = (np.asarray(v) for v in _derived_gradient(tuple(names), x, today.problem))
    pred, params = fiducial_prediction(today.problem, cfg.fiducial)
    log10_LCR = float(params.log10_LCR_erg_s)
    fishers = {"today": fisher_matrix(today, cfg.fiducial)}
    sensitivities = {}
    for e in cfg.experiments:
        progress(f"  {e.name}: {e.dataset} with errors / sqrt({e.exposure_ratio:g})")
        terms = experiment_terms(cfg, e, today.model)
        future = asimov_setup(today, cfg.fiducial, terms, 1.0 / np.sqrt(e.exposure_ratio), pred)
        fishers[f"today + {e.name}"] = fishers["today"] + fisher_matrix(future, cfg.fiducial)
        term, = terms
        corona = np.asarray(term.predict(pred, today.model))
        sensitivities.setdefault(f"today: {e.dataset}", experiment_sensitivity(term, corona, 1.0, e, log10_LCR))
        sensitivities[e.name] = experiment_sensitivity(term, corona, e.exposure_ratio, e, log10_LCR)
    errors, spread = {}, {}
    for key, F in fishers.items():
        errors[key], cov = _errors(F, names)
        sigma = float(np.sqrt(gradient @ cov @ gradient)) if cov is not None else float("inf")
        spread[key] = float(share) + ONE_SIDED_95 * sigma
    return Forecast(names, dict(cfg.fiducial), fishers, errors, float(share), spread, sensitivities)


def pinned(forecast: Forecast, key: str, factor=2.0) -> list:
    """Parameters whose error the experiment `key` shrinks by more than `factor` against today's."""
    return [n for n in forecast.names if forecast.errors[key][n] * factor < forecast.errors["today"][n]]


def forecast_table(forecast: Forecast):
    """Rows: today and today + each experiment; columns: each parameter's 1-sigma error, SHARE at
    the fiducial and the 95 % upper end of its prediction, and the parameters each experiment pins."""
    import pandas as pd

    rows = {}
    for key in forecast.fisher:
        row = {f"sigma_{n}": forecast.errors[key][n] for n in forecast.names}
        row[f"{SHARE}_at_fiducial"] = forecast.share
        row[f"{SHARE}_prediction_95pct_upper"] = forecast.share_prediction_upper[key]
        row["pins (error / 2 or better)"] = "" if key == "today" else " ".join(pinned(forecast, key))
        rows[key] = row
    return pd.DataFrame.from_dict(rows, orient="index")


NONLINEAR = 0.1  # a fiducial significance whose linearised value differs by more than this fraction is
# flagged (the 3 and 5 sigma signals and the limits are many times the fiducial: there the direct
# profile departs from the linearised one by design, the background having to stay positive)


def sensitivity_table(forecast: Forecast):
    """One row per data set and exposure: the corona's median discovery significance, the L_CR,
    share and E^2 dN/dE detected at 3 and 5 sigma, and the expected 95 % CLs upper limits if the
    corona is absent (median and +-1 sigma band), with the linearised values beside them."""
    import pandas as pd

    rows = {}
    for key, s in forecast.sensitivities.items():
        r = s.result
        share = s.corona_at_reference / s.background_at_reference
        to_E2 = s.reference_energy_GeV ** s.energy_power  # the data's E^power x value: E^2 dN/dE (bands: E_c x intensity)
        row = {"dataset": s.dataset, "exposure_ratio": s.exposure_ratio, "background": s.background,
               "reference_energy_GeV": s.reference_energy_GeV,
               "corona_E2dNdE_at_reference_GeV_cm2_s_sr": s.corona_at_reference * to_E2,
               "background_E2dNdE_at_reference_GeV_cm2_s_sr": s.background_at_reference * to_E2,
               "corona_share_of_background_at_reference": share,
               "fiducial_log10_LCR_erg_s": s.log10_LCR_erg_s,
               "median_discovery_Z_of_fiducial": r.Z, "median_discovery_Z_of_fiducial_linearised": r.Z_linear}
        for name, mu, mu_linear in (("3sigma_discovery", r.mu_3sigma, r.mu_3sigma_linear),
                                    ("5sigma_discovery", r.mu_5sigma, r.mu_5sigma_linear),
                                    ("expected_95CLs_upper_limit", r.mu_upper, r.mu_upper_linear)):
            row[f"{name}_LCR_over_fiducial"] = mu
            row[f"{name}_LCR_over_fiducial_linearised"] = mu_linear
            row[f"{name}_log10_LCR_erg_s"] = s.log10_LCR_erg_s + np.log10(mu)
            row[f"{name}_share_of_background_at_reference"] = mu * share
        row["expected_95CLs_upper_limit_LCR_over_fiducial_minus_1sigma"] = r.mu_upper_minus_1sigma
        row["expected_95CLs_upper_limit_LCR_over_fiducial_plus_1sigma"] = r.mu_upper_plus_1sigma
        off = abs(r.Z_linear / r.Z - 1.0)
        row["note"] = (f"the fiducial corona is not a small signal here: its linearised significance differs from the "
                       f"direct profile's by {off:.0%}" if off > NONLINEAR else "")
        rows[key] = row
    return pd.DataFrame.from_dict(rows, orient="index")
