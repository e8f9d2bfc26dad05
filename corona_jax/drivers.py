"""Numpy-level drivers of the command line: solve, normalise (by the CR data or by L_CR),
evaluate the stages, and return numpy arrays with the configuration they were made with."""

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from . import extragalactic as eg
from . import observations, transport
from .cosmic_rays import Normalisation, cr_density, kinetic_luminosity_erg_s, local_flux, normalise_to_data
from .errors import ConfigError
from .forward import Total, sky_and_beyond
from .gas import gas_density_cells
from .milky_way import MilkyWay
from .model import CoronaModel, ModelConfig
from .params import CoronaParams, validate_params

NORMALISATIONS = ("data", "luminosity")

_solve = jax.jit(transport.unit_spectrum_density, static_argnames="adjoint")
_sky_and_beyond = jax.jit(sky_and_beyond)


class CosmicRayResult(NamedTuple):
    """Cosmic rays in the corona today, on the solver's grids (numpy arrays)."""

    params: CoronaParams  # with log10_LCR_erg_s as used (set by the data rule if asked)
    config: ModelConfig  # what the model was built with
    E_GeV: np.ndarray  # (N_E,) proton total energy
    r_kpc: np.ndarray  # (N_r,) cell centres
    r_faces_kpc: np.ndarray  # (N_r+1,)
    n_gas_cm3: np.ndarray  # (N_r,)
    unit_density_Gyr: np.ndarray  # (N_E, N_r) G, density per unit source rate
    j_per_GeV_cm3: np.ndarray  # (N_E, N_r)
    local_flux_per_GeV_cm2_s_sr: np.ndarray  # (N_E,) at the observer
    normalisation: Optional[Normalisation]  # None when fixed by L_CR
    LCR_kinetic_erg_s: float  # the kinetic luminosity of the same protons (L_CR counts rest mass too)


def run_cosmic_rays(params: CoronaParams, model: CoronaModel, normalisation: str = "data",
                    cr_data=None) -> CosmicRayResult:
    """Solve the transport and normalise by the CR data ('data') or by L_CR ('luminosity').

    cr_data: loaded SpectralData (corona_jax.observations); default: DEFAULT_CR_DATASETS.
    Used only with normalisation='data'.
    """
    validate_params(params)
    if normalisation not in NORMALISATIONS:
        raise ConfigError(f"unknown normalisation {normalisation!r}; choose 'data' or 'luminosity'")
    tm, observer = model.transport, model.config.observer_kpc
    G = _solve(params, tm, adjoint=model.config.adjoint)
    norm = None
    if normalisation == "data":
        if cr_data is None:
            cr_data = [observations.load_cosmic_ray_dataset(n) for n in observations.DEFAULT_CR_DATASETS]
        norm = normalise_to_data(params, tm, G, cr_data, observer)
        params = norm.params
    return CosmicRayResult(
        params=params,
        config=model.config,
        E_GeV=np.asarray(tm.E_GeV),
        r_kpc=np.asarray(tm.centres_kpc),
        r_faces_kpc=np.asarray(tm.faces_kpc),
        n_gas_cm3=np.asarray(gas_density_cells(params, tm.faces_kpc, tm.centres_kpc)),
        unit_density_Gyr=np.asarray(G),
        j_per_GeV_cm3=np.asarray(cr_density(params, tm, G)),
        local_flux_per_GeV_cm2_s_sr=np.asarray(local_flux(params, tm, G, observer)),
        normalisation=norm,
        LCR_kinetic_erg_s=float(kinetic_luminosity_erg_s(params, tm)),
    )


def at_source_power(cr: CosmicRayResult, log10_LCR_erg_s: float) -> CosmicRayResult:
    """The same cosmic rays for another source power L_CR [erg/s], no new solve: j, the local
    flux and the kinetic luminosity are proportional to L_CR at fixed alpha and E_max."""
    scale = 10.0 ** (log10_LCR_erg_s - cr.params.log10_LCR_erg_s)
    return cr._replace(params=cr.params._replace(log10_LCR_erg_s=log10_LCR_erg_s), normalisation=None,
                       j_per_GeV_cm3=scale * cr.j_per_GeV_cm3,
                       local_flux_per_GeV_cm2_s_sr=scale * cr.local_flux_per_GeV_cm2_s_sr,
                       LCR_kinetic_erg_s=scale * cr.LCR_kinetic_erg_s)


class ForwardResult(NamedTuple):
    """run_forward's result: the CR part, the Milky Way sky, the other galaxies (numpy arrays)."""

    cosmic_rays: CosmicRayResult
    model: CoronaModel
    milky_way: MilkyWay
    extragalactic: eg.Extragalactic
    total: Total


def run_forward(params: CoronaParams, model: CoronaModel, normalisation: str = "data",
                cr_data=None) -> ForwardResult:
    """CR transport (normalised as run_cosmic_rays does), the Milky Way and the other galaxies."""
    cr = run_cosmic_rays(params, model, normalisation, cr_data)
    mw, other, tot = _sky_and_beyond(cr.params, model, jnp.asarray(cr.unit_density_Gyr))
    to_numpy = lambda t: type(t)(*(np.asarray(a) for a in t))  # noqa: E731
    return ForwardResult(cr, model, to_numpy(mw), to_numpy(other), to_numpy(tot))


def xi_report(result: ForwardResult, E_GeV: float = 1.0e5) -> dict:
    """The paper's xi at one neutrino energy for a run_forward result (extragalactic.xi_report)."""
    mw, config = result.milky_way, result.model.config
    return eg.xi_report(mw.emissivity_nu_all_flavour, mw.luminosity_nu_all_flavour, mw.anticentre_nu_all_flavour,
                        result.extragalactic.nu_all_flavour, result.model.milky_way.E_secondary_GeV,
                        result.model.transport.faces_kpc, config.cosmology, config.observer_kpc, E_GeV)
