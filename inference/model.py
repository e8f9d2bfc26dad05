"""The NumPyro model: priors on the corona parameters, the forward model, the sum of the data
terms (inference.terms).

Everything the model function needs reaches it as one argument, a Problem: the CoronaModel,
the likelihood terms, the priors and the fixed parameter values. All of it is a pytree of
arrays with static names, so jit, NUTS and optax trace it instead of baking it in as
constants: the potential compiles once for a given set of shapes.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import biject_to

from corona_jax import forward
from corona_jax.model import CoronaModel, build_model
from corona_jax.params import CoronaParams, preset, validate_params

from .config import RunConfig
from .covariance import with_covariance
from .energy_scale import with_energy_scale
from .solar_modulation import with_solar_modulation
from .systematics import corona_params, derived_quantities, model_options, neutrino_references
from .terms import DATA_SOURCES, GammaBands, NeutrinoSpectrum, ProtonSpectrum, pytree_dataclass, static_field


@pytree_dataclass
class PriorSite:
    """The prior of one free corona parameter: uniform [a, b] or normal (mean a, sd b)."""

    a: float
    b: float
    name: str = static_field()
    kind: str = static_field()  # 'uniform' or 'normal'

    def distribution(self):
        return dist.Uniform(self.a, self.b) if self.kind == "uniform" else dist.Normal(self.a, self.b)


class Problem(NamedTuple):
    """The NumPyro model's one argument (a pytree)."""

    model: CoronaModel
    terms: tuple  # of LikelihoodTerm
    priors: tuple  # of PriorSite
    base_params: CoronaParams  # values of the parameters without a prior
    neutrino_reference: dict = None  # IceCube's flux at the share energies (systematics.neutrino_references)


class Setup(NamedTuple):
    """A run configuration and the Problem built from it."""

    config: RunConfig
    problem: Problem

    @property
    def terms(self):
        return self.problem.terms

    @property
    def model(self) -> CoronaModel:
        return self.problem.model


def build_terms(cfg: RunConfig, model: CoronaModel, mock: bool = None):
    """The likelihood terms of the configuration's [data] section, in registry order; mock (default:
    whether the configuration has [data.mock]) makes all-particle spectra measurements of the
    model's protons."""
    terms = []
    mock = bool(cfg.mock) if mock is None else mock
    for key, source in DATA_SOURCES.items():
        mode = cfg.data.get(source.mode_key) if source.mode_key else None
        terms += source.terms(cfg.data[key], mode, mock, model)
    if cfg.energy_scales:
        terms = [with_energy_scale(t, model, cfg.energy_scale_sd) if isinstance(t, ProtonSpectrum) else t
                 for t in terms]
    if cfg.correlated_errors:  # the energy-scale nuisance, when free, replaces the rigidity-scale errors
        terms = [with_covariance(t, include_scale=not cfg.energy_scales) if isinstance(t, ProtonSpectrum) else t
                 for t in terms]
    if cfg.solar_modulation:
        terms = [with_solar_modulation(t) if isinstance(t, ProtonSpectrum) else t for t in terms]
    return tuple(terms)


def build_setup(cfg: RunConfig) -> Setup:
    """The Problem of a configuration: the model (with the alternative tables and the burst its free
    sites need), the terms, the priors, the fixed values and the derived sites' references."""
    priors = tuple(PriorSite(p.a, p.b, name=name, kind=p.kind) for name, p in cfg.priors.items())
    model = build_model(resolution=cfg.resolution, spectrum=cfg.spectrum, features=cfg.features,
                        **model_options(cfg.priors))
    terms = build_terms(cfg, model)
    reference = next((neutrino_references(t.name) for t in terms if isinstance(t, NeutrinoSpectrum)), None)
    problem = Problem(model, terms, priors, preset(cfg.preset), reference)
    setup = Setup(cfg, problem)
    if cfg.mock:
        setup = setup._replace(problem=problem._replace(terms=mock_terms(setup)))
    return setup


def derived(problem: Problem, params: CoronaParams, pred) -> dict:
    """The derived quantities (systematics.derived_quantities) of this problem's data."""
    igrb = next((t for t in problem.terms if isinstance(t, GammaBands)), None)
    return derived_quantities(pred, params, problem.model, problem.neutrino_reference, igrb)


def nuisance_distributions(problem: Problem) -> dict:
    """{site: prior} of the terms' nuisances; a site shared by several terms (one experiment's
    energy scale over its data sets) appears once."""
    out = {}
    for term in problem.terms:
        out.update(term.nuisance_priors())
    return out


def corona_model(problem: Problem):
    """NumPyro model: free corona parameters, the derived sites (numpyro.deterministic), the terms'
    nuisances, then each term's log-likelihood."""
    values = {p.name: numpyro.sample(p.name, p.distribution()) for p in problem.priors}
    params = corona_params(problem.base_params, values)
    pred = forward.forward(params, problem.model)
    for name, value in derived(problem, params, pred).items():
        numpyro.deterministic(name, value)
    nuisances = {name: numpyro.sample(name, d) for name, d in nuisance_distributions(problem).items()}
    for term in problem.terms:
        predicted = term.predict(pred, problem.model, nuisances)
        numpyro.factor(f"log-likelihood {term.name}", term.log_likelihood(predicted, nuisances))


def site_distributions(problem: Problem) -> dict:
    """Every sampled site's prior, corona parameters first, then the terms' nuisances."""
    return {**{p.name: p.distribution() for p in problem.priors}, **nuisance_distributions(problem)}


def free_parameter_names(setup: Setup, include_nuisances=True):
    """Names of the sampled sites, corona parameters first."""
    names = list(site_distributions(setup.problem))
    return names if include_nuisances else names[: len(setup.problem.priors)]


def constrain(problem: Problem, unconstrained: dict) -> dict:
    """Map unconstrained site values to their priors' supports (numpyro's bijections)."""
    d = site_distributions(problem)
    return {k: biject_to(d[k].support)(v) for k, v in unconstrained.items()}


def log_density(problem: Problem, theta: dict):
    """log joint density (priors + likelihood) at constrained values theta."""
    return numpyro.infer.util.log_density(corona_model, (problem,), {}, theta)[0]


def log_density_fn(setup: Setup):
    """theta (dict of constrained values) -> log joint density (priors + likelihood)."""
    return lambda theta: log_density(setup.problem, theta)


@jax.jit
def potential_energy(problem: Problem, unconstrained: dict):
    """numpyro's potential (minus the log density in unconstrained coordinates, with Jacobians);
    compiled once per shape of the problem."""
    return numpyro.infer.util.potential_energy(corona_model, (problem,), {}, unconstrained)


@dataclasses.dataclass(frozen=True)
class FlatPotential:
    """potential_energy of a flat vector of the sites `names` (hashable: one compilation per names)."""

    names: tuple

    def __call__(self, x, problem: Problem):
        return potential_energy(problem, dict(zip(self.names, x)))


def predictions_and_derived(setup: Setup, samples: dict, chunk=64):
    """({term name: (n_samples, n_points)}, {derived site: (n_samples, ...)}) for posterior samples.

    One jitted, vmapped forward pass over chunks of samples (numpyro's MCMC keeps only the
    sampled sites, so the derived ones are evaluated here, by the same function as in the model).
    Terms whose points move with a nuisance (energy scales) take its sampled value, if given.
    """
    names = list(setup.config.priors) + [k for k in nuisance_distributions(setup.problem) if k in samples]
    n = len(samples[names[0]])
    parts = [_predict_batch({k: jnp.asarray(samples[k][i:i + chunk]) for k in names}, setup.problem)
             for i in range(0, n, chunk)]
    predictive = {t.name: np.concatenate([np.asarray(p[0][t.name]) for p in parts]) for t in setup.terms}
    return predictive, {k: np.concatenate([np.asarray(p[1][k]) for p in parts]) for k in parts[0][1]}


def _evaluate(values, problem: Problem):
    """(params, Prediction, nuisances) at values of the sampled sites (missing nuisances: prior means)."""
    nuisance_sites = nuisance_distributions(problem)
    params = corona_params(problem.base_params, {k: v for k, v in values.items() if k not in nuisance_sites})
    nuisances = {k: values.get(k, d.mean) for k, d in nuisance_sites.items()}
    return params, forward.forward(params, problem.model), nuisances


def _predict(values, problem: Problem):
    params, pred, nuisances = _evaluate(values, problem)
    return ({t.name: t.predict(pred, problem.model, nuisances) for t in problem.terms},
            derived(problem, params, pred))


_predict_batch = jax.jit(jax.vmap(_predict, in_axes=(0, None)))


def _compare(values, problem: Problem):
    _, pred, nuisances = _evaluate(values, problem)
    return {t.name: t.compared(t.predict(pred, problem.model, nuisances), nuisances) for t in problem.terms}


_compare_batch = jax.jit(jax.vmap(_compare, in_axes=(0, None)))


def compared_values(setup: Setup, samples: dict, chunk=64) -> dict:
    """{term name: (model (S, N), data (S, N))} as each likelihood term compares them (term.compared),
    at S sets of values of every sampled site (samples: site -> (S,))."""
    names = [k for k in site_distributions(setup.problem) if k in samples]
    n = len(samples[names[0]])
    parts = [_compare_batch({k: jnp.asarray(samples[k][i:i + chunk]) for k in names}, setup.problem)
             for i in range(0, n, chunk)]
    return {t.name: tuple(np.concatenate([np.asarray(p[t.name][j]) for p in parts]) for j in (0, 1))
            for t in setup.terms}


def mock_terms(setup: Setup):
    """The configured terms with values replaced by the model at [data.mock] plus noise
    (LikelihoodTerm.mocked; the Fermi foreground nuisance is set to zero)."""
    cfg, problem = setup.config, setup.problem
    truth = {k: float(v) for k, v in cfg.mock.items() if k != "seed"}
    params = validate_params(corona_params(problem.base_params, truth))
    pred = jax.jit(forward.forward)(params, problem.model)
    rng = np.random.default_rng(int(cfg.mock.get("seed", 0)))
    return tuple(t.mocked(t.predict(pred, problem.model), rng) for t in problem.terms)


def paper_scenarios():
    """The paper's three presets as points for the corner plot: name -> dict."""
    out = {}
    for name in ("baseline", "fast-diffusion", "hard"):
        p = preset(name)
        out[name] = {"alpha": p.alpha, "log10_Emax_GeV": p.log10_Emax_GeV, "log10_D0_cm2_s": p.log10_D0_cm2_s}
    return out
