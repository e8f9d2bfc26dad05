"""The composed model. So far: the cosmic-ray part (transport + normalisation)."""

from typing import NamedTuple, Optional

import jax
import numpy as np

from . import grids, transport
from .cosmic_rays import Normalisation, cr_density, local_flux, normalise_to_data
from .errors import ConfigError
from .gas import gas_density_cells
from .params import CoronaParams, validate_params

NORMALISATIONS = ("data", "luminosity")

_solve = jax.jit(transport.unit_spectrum_density, static_argnames="adjoint")


class CosmicRayResult(NamedTuple):
    """Cosmic rays in the corona today, on the solver's grids (numpy arrays)."""

    params: CoronaParams  # with log10_LCR_erg_s as used (set by the data rule if asked)
    resolution: grids.Resolution
    E_GeV: np.ndarray  # (N_E,) proton total energy
    r_kpc: np.ndarray  # (N_r,) cell centres
    r_faces_kpc: np.ndarray  # (N_r+1,)
    n_gas_cm3: np.ndarray  # (N_r,)
    unit_density_Gyr: np.ndarray  # (N_E, N_r) G, density per unit source rate
    j_per_GeV_cm3: np.ndarray  # (N_E, N_r)
    local_flux_per_GeV_cm2_s_sr: np.ndarray  # (N_E,) at R_sun
    normalisation: Optional[Normalisation]  # None when fixed by L_CR


def run_cosmic_rays(
    params: CoronaParams,
    resolution: grids.Resolution = grids.Resolution(),
    normalisation: str = "data",
    cr_data=None,
    model: Optional[transport.TransportModel] = None,
) -> CosmicRayResult:
    """Solve the transport and normalise by the CR data ('data') or by L_CR ('luminosity').

    cr_data: loaded SpectralData (corona_jax.inference.datasets); default: the
    DEFAULT_CR_DATASETS. Used only with normalisation='data'. model: a prebuilt
    TransportModel for `resolution`, to reuse across calls.
    """
    from .inference import datasets as ds  # data loading lives with the inference code

    validate_params(params)
    if normalisation not in NORMALISATIONS:
        raise ConfigError(f"unknown normalisation {normalisation!r}; choose 'data' or 'luminosity'")
    if model is None:
        model = transport.build_transport_model(resolution)
    G = _solve(params, model)
    norm = None
    if normalisation == "data":
        if cr_data is None:
            cr_data = [ds.load_cosmic_ray_dataset(n) for n in ds.DEFAULT_CR_DATASETS]
        norm = normalise_to_data(params, model, G, cr_data)
        params = norm.params
    return CosmicRayResult(
        params=params,
        resolution=resolution,
        E_GeV=np.asarray(model.E_GeV),
        r_kpc=np.asarray(model.centres_kpc),
        r_faces_kpc=np.asarray(model.faces_kpc),
        n_gas_cm3=np.asarray(gas_density_cells(params, model.faces_kpc, model.centres_kpc)),
        unit_density_Gyr=np.asarray(G),
        j_per_GeV_cm3=np.asarray(cr_density(params, model, G)),
        local_flux_per_GeV_cm2_s_sr=np.asarray(local_flux(params, model, G)),
        normalisation=norm,
    )
