"""The NumPyro model: priors on the corona parameters, the forward model, the data terms.

Which flux is compared with which data (architecture.md, "Likelihood semantics"):

* cosmic rays: the proton flux at R_sun (total energy; kinetic energies of direct
  data are converted) against direct proton spectra (in the configured mode) and
  air-shower all-particle spectra (one-sided: protons cannot exceed all particles; with
  mock data, which are the model's protons, in the configured mode);
* IceCube (per flavour): the all-sky mean, Milky Way + other galaxies, at the data's
  energies (segment centres);
* Fermi-LAT IGRB: the isotropic part (Milky Way anticentre + other galaxies),
  integrated over each band, against the band intensities shifted by one correlated
  foreground nuisance eta ~ N(0, 1) (eta > 0 moves every band up by eta * fgsyst_hi,
  eta < 0 down by |eta| * fgsyst_lo).

Modes: 'bound' = one-sided (the corona must not exceed the data), 'measurement' = the
corona is the whole measured flux (split normal), 'component' = data = corona + a free
nuisance spectrum (IceCube: a power law; Fermi: a power law with an exponential cut-off).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from corona_jax import forward, grids
from corona_jax.params import preset, validate_params
from corona_jax.safe import safe_log
from corona_jax.units import PROTON_MASS_GEV

from . import datasets, likelihoods
from .config import RATIO_PARAMETER, RunConfig

_BAND_NODES, _BAND_WEIGHTS = np.polynomial.legendre.leggauss(8)
NU_PIVOT_GeV = 1.0e5
NUISANCE_PRIORS = {
    "nu_astro_log10_norm": (-20.0, -16.0),  # per-flavour dN/dE at 100 TeV [GeV^-1 cm^-2 s^-1 sr^-1]
    "nu_astro_index": (1.5, 3.5),
    "igrb_log10_norm": (-9.0, -5.0),  # dN/dE at 1 GeV
    "igrb_index": (1.8, 2.8),
    "igrb_log10_cutoff_GeV": (1.5, 3.5),
}


class Observed(NamedTuple):
    """One data set as arrays for the likelihood (numpy; constant inside jit)."""

    name: str
    kind: str  # 'cosmic_rays' (direct protons), 'air_showers' (all-particle), 'neutrinos', 'gamma_bands'
    E_GeV: np.ndarray  # energies where the model is evaluated (band centres for gamma)
    value: np.ndarray
    err_lo: np.ndarray
    err_hi: np.ndarray
    is_upper_limit: np.ndarray
    E_lo_GeV: np.ndarray  # band edges (gamma); equal to E_GeV otherwise
    E_hi_GeV: np.ndarray
    fgsyst_lo: np.ndarray
    fgsyst_hi: np.ndarray


class Setup(NamedTuple):
    config: RunConfig
    forward_model: forward.ForwardModel
    observed: tuple  # of Observed
    base_params: object  # CoronaParams with the fixed values


def _from_spectrum(d: datasets.SpectralData, kind):
    E = d.E_GeV + (PROTON_MASS_GEV if d.energy_kind == "kinetic" else 0.0)
    zeros = np.zeros_like(E)
    err_lo = np.where(d.is_upper_limit, 0.0, np.nan_to_num(d.err_lo))
    err_hi = np.where(d.is_upper_limit, 0.0, np.nan_to_num(d.err_hi))
    return Observed(d.name, kind, E, d.flux_per_GeV_cm2_s_sr, err_lo, err_hi, d.is_upper_limit, E, E, zeros, zeros)


def load_observed(cfg: RunConfig):
    """The data sets named in the configuration, as Observed."""
    out = []
    for n in cfg.cosmic_rays:
        d = datasets.load_cosmic_ray_dataset(n)
        out.append(_from_spectrum(d, "air_showers" if d.species == "all-particle" else "cosmic_rays"))
    if cfg.neutrinos != "none":
        out.append(_from_spectrum(datasets.load_neutrino_dataset(cfg.neutrinos), "neutrinos"))
    if cfg.gamma_foreground != "none":
        b = datasets.load_gamma_bands(cfg.gamma_foreground)
        out.append(Observed(b.name, "gamma_bands", np.sqrt(b.E_lo_GeV * b.E_hi_GeV), b.intensity_per_cm2_s_sr,
                            b.err_lo, b.err_hi, np.zeros(b.E_lo_GeV.size, bool), b.E_lo_GeV, b.E_hi_GeV,
                            b.fgsyst_lo, b.fgsyst_hi))
    return tuple(out)


def build_setup(cfg: RunConfig) -> Setup:
    res = grids.resolution(cfg.resolution)
    setup = Setup(cfg, forward.build_forward_model(res), load_observed(cfg), preset(cfg.preset))
    if cfg.mock:
        setup = setup._replace(observed=mock_observed(setup))
    return setup


def _loglog_interp(E_grid, values, E_query):
    return jnp.exp(jnp.interp(jnp.log(E_query), jnp.log(E_grid), safe_log(values)))


def band_integrals(E_grid, intensity, E_lo, E_hi):
    """int_{E_lo}^{E_hi} I dE per band [cm^-2 s^-1 sr^-1], 8-point Gauss-Legendre in ln E."""
    a, b = np.log(E_lo)[:, None], np.log(E_hi)[:, None]
    u = 0.5 * (b - a) * _BAND_NODES[None, :] + 0.5 * (a + b)
    E = np.exp(u)
    values = _loglog_interp(E_grid, intensity, E.ravel()).reshape(E.shape)
    return jnp.sum(0.5 * (b - a) * _BAND_WEIGHTS[None, :] * E * values, axis=1)


def predictions(pred: forward.Prediction, model: forward.ForwardModel, observed):
    """Model values at every data set's points: name -> array (the same units as the data)."""
    E_p = model.transport.E_GeV
    E_s = model.E_secondary_GeV
    nu_mean = (pred.milky_way.sky_mean_nu_all_flavour + pred.extragalactic.nu_all_flavour) / forward.NEUTRINO_FLAVOURS
    out = {}
    for o in observed:
        if o.kind in ("cosmic_rays", "air_showers"):
            out[o.name] = _loglog_interp(E_p, pred.local_flux_per_GeV_cm2_s_sr, o.E_GeV)
        elif o.kind == "neutrinos":
            out[o.name] = _loglog_interp(E_s, nu_mean, o.E_GeV)
        else:
            out[o.name] = band_integrals(E_s, pred.total.gamma, o.E_lo_GeV, o.E_hi_GeV)
    return out


def _cutoff_power_law_bands(o, log10_norm, index, log10_cutoff):
    a, b = np.log(o.E_lo_GeV)[:, None], np.log(o.E_hi_GeV)[:, None]
    E = np.exp(0.5 * (b - a) * _BAND_NODES[None, :] + 0.5 * (a + b))
    dnde = 10.0**log10_norm * E ** (-index) * jnp.exp(-E / 10.0**log10_cutoff)
    return jnp.sum(0.5 * (b - a) * _BAND_WEIGHTS[None, :] * E * dnde, axis=1)


def _sample_priors(cfg: RunConfig):
    values = {}
    for name, prior in cfg.priors.items():
        d = dist.Uniform(prior.a, prior.b) if prior.kind == "uniform" else dist.Normal(prior.a, prior.b)
        values[name] = numpyro.sample(name, d)
    return values


def corona_params(setup: Setup, values: dict):
    """CoronaParams from the sampled values (the L_CR/D0 ratio, if sampled, turned into L_CR)."""
    values = dict(values)
    if RATIO_PARAMETER in values:
        D0 = values.get("log10_D0_cm2_s", setup.base_params.log10_D0_cm2_s)
        values["log10_LCR_erg_s"] = values.pop(RATIO_PARAMETER) + D0
    return setup.base_params._replace(**values)


def _uniform(name):
    lo, hi = NUISANCE_PRIORS[name]
    return numpyro.sample(name, dist.Uniform(lo, hi))


def corona_model(setup: Setup, adjoint: str = "discrete"):
    """NumPyro model: free corona parameters, nuisances, one factor per data set."""
    cfg = setup.config
    params = corona_params(setup, _sample_priors(cfg))
    pred = forward.forward(params, setup.forward_model, adjoint)
    model_values = predictions(pred, setup.forward_model, setup.observed)
    for o in setup.observed:
        m = model_values[o.name]
        if o.kind == "cosmic_rays":
            term = likelihoods.spectrum(m, o.value, o.err_lo, o.err_hi, o.is_upper_limit, cfg.cosmic_ray_mode)
        elif o.kind == "air_showers":  # protons can never exceed the all-particle flux ...
            mode = cfg.cosmic_ray_mode if cfg.mock else "bound"  # ... but mock data are the model's protons
            term = likelihoods.spectrum(m, o.value, o.err_lo, o.err_hi, o.is_upper_limit, mode)
        elif o.kind == "neutrinos":
            mode = cfg.neutrino_mode
            if mode == "component":
                astro = 10.0 ** _uniform("nu_astro_log10_norm") * (o.E_GeV / NU_PIVOT_GeV) ** (-_uniform("nu_astro_index"))
                m, mode = m + astro, "measurement"
            term = likelihoods.spectrum(m, o.value, o.err_lo, o.err_hi, o.is_upper_limit, mode)
        else:
            eta = numpyro.sample("fermi_foreground_eta", dist.Normal(0.0, 1.0))
            shifted = o.value + jnp.where(eta > 0, eta * o.fgsyst_hi, eta * o.fgsyst_lo)
            if cfg.gamma_mode == "bound":
                term = likelihoods.must_not_exceed(m, shifted, o.err_hi)
            else:
                if cfg.gamma_mode == "component":
                    m = m + _cutoff_power_law_bands(o, _uniform("igrb_log10_norm"), _uniform("igrb_index"),
                                                    _uniform("igrb_log10_cutoff_GeV"))
                term = likelihoods.split_normal(m, shifted, o.err_lo, o.err_hi)
        numpyro.factor(f"log-likelihood {o.name}", term)


def predictive_values(setup: Setup, samples: dict, chunk=64):
    """The model at every data point for each posterior sample: name -> (n_samples, n_points).

    One jitted, vmapped forward pass over chunks of samples (recomputing inside NUTS with
    numpyro.deterministic would run the forward model op by op).
    """
    names = list(setup.config.priors)
    n = len(samples[names[0]])

    def one(values):
        params = corona_params(setup, values)
        return predictions(forward.forward(params, setup.forward_model), setup.forward_model, setup.observed)

    batched = jax.jit(jax.vmap(one))
    parts = [batched({k: jnp.asarray(samples[k][i:i + chunk]) for k in names}) for i in range(0, n, chunk)]
    return {o.name: np.concatenate([np.asarray(p[o.name]) for p in parts]) for o in setup.observed}


def mock_observed(setup: Setup):
    """The configured data sets with values replaced by the model at [data.mock] plus noise.

    Noise: Gaussian with each row's relative error (the mean of err_lo and err_hi over
    the value) times the model value; upper-limit rows become measurements with 100 %
    error; the Fermi foreground nuisance is set to zero.
    """
    cfg = setup.config
    truth = {k: float(v) for k, v in cfg.mock.items() if k != "seed"}
    params = validate_params(corona_params(setup, truth))
    pred = jax.jit(forward.forward)(params, setup.forward_model)
    values = predictions(pred, setup.forward_model, setup.observed)
    rng = np.random.default_rng(int(cfg.mock.get("seed", 0)))
    out = []
    for o in setup.observed:
        m = np.asarray(values[o.name])
        rel = np.where(o.is_upper_limit | (o.value <= 0), 1.0,
                       0.5 * (o.err_lo + o.err_hi) / np.where(o.value > 0, o.value, 1.0))
        sigma = rel * m
        mock = np.maximum(m + sigma * rng.standard_normal(m.shape), 1e-3 * m)
        out.append(o._replace(value=mock, err_lo=sigma, err_hi=sigma, is_upper_limit=np.zeros_like(o.is_upper_limit),
                              fgsyst_lo=np.zeros_like(m), fgsyst_hi=np.zeros_like(m)))
    return tuple(out)


def free_parameter_names(setup: Setup, include_nuisances=True):
    """Names of the sampled sites, corona parameters first."""
    cfg = setup.config
    names = list(cfg.priors)
    if include_nuisances:
        kinds = {o.kind for o in setup.observed}
        if "neutrinos" in kinds and cfg.neutrino_mode == "component":
            names += ["nu_astro_log10_norm", "nu_astro_index"]
        if "gamma_bands" in kinds:
            names.append("fermi_foreground_eta")
            if cfg.gamma_mode == "component":
                names += ["igrb_log10_norm", "igrb_index", "igrb_log10_cutoff_GeV"]
    return names


def site_supports(setup: Setup):
    """Support of every sampled site (for mapping unconstrained samples without the model)."""
    from numpyro.distributions import constraints

    out = {}
    for name, prior in setup.config.priors.items():
        out[name] = constraints.interval(prior.a, prior.b) if prior.kind == "uniform" else constraints.real
    for name in free_parameter_names(setup)[len(setup.config.priors):]:
        out[name] = constraints.real if name == "fermi_foreground_eta" else constraints.interval(*NUISANCE_PRIORS[name])
    return out


def log_density_fn(setup: Setup, adjoint: str = "discrete"):
    """theta (dict of constrained values) -> log joint density (priors + likelihood)."""
    from numpyro.infer.util import log_density

    def fn(theta):
        return log_density(corona_model, (setup, adjoint), {}, theta)[0]

    return fn


def paper_scenarios():
    """The paper's three presets as points for the corner plot: name -> dict."""
    out = {}
    for name in ("baseline", "fast-diffusion", "hard"):
        p = preset(name)
        out[name] = {"alpha": p.alpha, "log10_Emax_GeV": p.log10_Emax_GeV, "log10_D0_cm2_s": p.log10_D0_cm2_s}
    return out
