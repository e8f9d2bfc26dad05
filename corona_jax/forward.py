"""The composed model: params -> CR transport -> emissivity -> Milky Way sky -> other galaxies.

`forward(params, model)` is one pure, jit-able and differentiable function of the
parameters; `model` (a ForwardModel, built once by `build_forward_model`) holds the
grids and precomputed matrices. `run_cosmic_rays` / `run_forward` are the numpy-level
drivers the CLI uses, which can also fix L_CR by the paper's data rule.
"""

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from . import extragalactic as eg
from . import grids, sky, tables, transport
from .absorption import cmb_absorption_per_kpc
from .cosmology import Cosmology
from .cosmic_rays import (
    Normalisation,
    cr_density,
    injection_amplitude,
    local_flux,
    log_spectrum_shape,
    normalise_to_data,
)
from .errors import ConfigError
from .gas import gas_density_cells
from .interactions import emission_matrix, emissivity
from .params import CoronaParams, validate_params
from .safe import safe_log
from .units import GYR_S, R_SUN_KPC

NEUTRINO_FLAVOURS = 3  # nu_e : nu_mu : nu_tau = 1 : 1 : 1 after oscillation (physics.md sec. 3)

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


class ForwardModel(NamedTuple):
    """Static configuration of the whole forward model (a pytree of arrays; build once)."""

    transport: transport.TransportModel
    E_table_GeV: jax.Array  # (N_f,) proton energies of the emissivity integral (pp-table nodes)
    table_lower: jax.Array  # (N_f,) int: index of the solver energy just below each E_table
    table_weight: jax.Array  # (N_f,) weight of the upper neighbour in ln E
    E_secondary_GeV: jax.Array  # (N_s,) gamma / neutrino energies
    psi_rad: jax.Array  # (N_psi,) directions from the Galactic centre
    emission_gamma: jax.Array  # (N_s, N_f) [cm^3 s^-1]: q = n_g K @ j
    emission_nu_all: jax.Array  # (N_s, N_f)
    path_gamma_kpc: jax.Array  # (N_psi, N_s, N_r) CMB-absorbed path through each shell
    path_nu_kpc: jax.Array  # (N_psi, N_r) plain chord lengths
    sky_mean_gamma_kpc: jax.Array  # (N_s, N_r) <P_k> over the sky, with absorption
    sky_first_gamma_kpc: jax.Array  # (N_s, N_r) <cos psi P_k>
    sky_mean_nu_kpc: jax.Array  # (N_r,)
    sky_first_nu_kpc: jax.Array  # (N_r,)
    cmb_absorption_per_kpc: jax.Array  # (N_s,) 1 / lambda_gamma gamma
    extragalactic: eg.ExtragalacticModel  # the redshift integral over other galaxies


def build_forward_model(res: grids.Resolution = grids.Resolution(), observer_kpc: float = R_SUN_KPC,
                        cosmology: Cosmology = Cosmology(), cascade: bool = True,
                        stellar_mass_density=None) -> ForwardModel:
    """Grids, emission matrices (from the pp table), line-of-sight matrices and the redshift
    integral (with the stored cascade matrix unless cascade=False); numpy, once.

    stellar_mass_density: optional z -> rho* [M_sun Mpc^-3] (e.g. interpolating a table)
    instead of Madau & Dickinson; the stored cascade matrix assumes the default, so pass
    cascade=False with it (or with another cosmology), or rebuild the matrix.

    The emissivity integral over proton energy runs on the pp table's own nodes (20 per
    decade), whatever the solver's energy grid: the solver's G is interpolated there
    in ln G - ln E, and the injected spectrum is evaluated exactly.
    """
    tm = transport.build_transport_model(res)
    E_p = np.asarray(tm.E_GeV)
    table_E = tables.load_pp_tables().E_p_GeV
    E_f = table_E[(table_E >= E_p[0] * (1 - 1e-12)) & (table_E <= E_p[-1] * (1 + 1e-12))]
    lower = np.clip(np.searchsorted(E_p, E_f * (1 + 1e-12)) - 1, 0, E_p.size - 2)
    weight = np.clip(np.log(E_f / E_p[lower]) / np.log(E_p[lower + 1] / E_p[lower]), 0.0, 1.0)
    E_s = grids.secondary_energy_grid(res)
    psi = sky.psi_grid_rad(res.n_psi)
    kappa = cmb_absorption_per_kpc(E_s)
    faces = np.asarray(tm.faces_kpc)
    mean_gamma, first_gamma = sky.sky_average_matrices_kpc(faces, observer_kpc, kappa)
    mean_nu, first_nu = sky.sky_average_matrices_kpc(faces, observer_kpc, np.zeros(1))
    arrays = dict(
        E_table_GeV=E_f,
        table_weight=weight,
        E_secondary_GeV=E_s,
        psi_rad=psi,
        emission_gamma=emission_matrix("gamma", E_f, E_s),
        emission_nu_all=emission_matrix("nu_all", E_f, E_s),
        path_gamma_kpc=sky.shell_path_matrix_kpc(faces, observer_kpc, np.cos(psi), kappa),
        path_nu_kpc=sky.shell_path_matrix_kpc(faces, observer_kpc, np.cos(psi), np.zeros(1))[:, 0, :],
        sky_mean_gamma_kpc=mean_gamma,
        sky_first_gamma_kpc=first_gamma,
        sky_mean_nu_kpc=mean_nu[0],
        sky_first_nu_kpc=first_nu[0],
        cmb_absorption_per_kpc=kappa,
    )
    arrays = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in arrays.items()}
    extragalactic = eg.build_extragalactic_model(E_s, cosmology, cascade, stellar_mass_density)
    return ForwardModel(tm, table_lower=jnp.asarray(lower), extragalactic=extragalactic, **arrays)


def proton_density_on_table_grid(params: CoronaParams, model: ForwardModel, G_Gyr):
    """j(E_table, r) [GeV^-1 cm^-3]: G interpolated linearly in ln G - ln E, spectrum exact."""
    tm = model.transport
    log_G = safe_log(G_Gyr)
    w = model.table_weight[:, None]
    log_G_f = (1.0 - w) * log_G[model.table_lower] + w * log_G[model.table_lower + 1]
    shape = jnp.exp(log_spectrum_shape(params, model.E_table_GeV)) * GYR_S
    return injection_amplitude(params, tm) * shape[:, None] * jnp.exp(log_G_f)


class MilkyWay(NamedTuple):
    """Intensities of the Milky Way corona [GeV^-1 cm^-2 s^-1 sr^-1]; axes (psi, E) or (E,)."""

    gamma: jax.Array  # I(psi, E), CMB absorption included
    nu_all_flavour: jax.Array  # I(psi, E), nu_e + nu_mu + antineutrinos (+ nu_tau after oscillation)
    sky_mean_gamma: jax.Array
    sky_mean_nu_all_flavour: jax.Array
    anticentre_gamma: jax.Array  # I(E, psi = pi): the isotropic part
    anticentre_nu_all_flavour: jax.Array
    dipole_gamma: jax.Array  # 3 <I cos psi> / <I>
    dipole_nu: jax.Array
    luminosity_gamma: jax.Array  # L(E) = int q dV [GeV^-1 s^-1], no absorption
    luminosity_nu_all_flavour: jax.Array
    emissivity_gamma: jax.Array  # q(E, r) [GeV^-1 cm^-3 s^-1], Eq. (6)
    emissivity_nu_all_flavour: jax.Array


def milky_way(params: CoronaParams, model: ForwardModel, G_Gyr) -> MilkyWay:
    """Emissivity (Eq. 6) and line-of-sight integrals, from the solver's G (N_E, N_r) [Gyr]."""
    tm = model.transport
    n_gas = gas_density_cells(params, tm.faces_kpc, tm.centres_kpc)
    j = proton_density_on_table_grid(params, model, G_Gyr)
    q_gamma = emissivity(n_gas, model.emission_gamma, j)
    q_nu = emissivity(n_gas, model.emission_nu_all, j)
    I_gamma = sky.intensity(model.path_gamma_kpc, q_gamma)
    I_nu = sky.intensity(model.path_nu_kpc, q_nu)
    mean_gamma = sky.sky_average(model.sky_mean_gamma_kpc, q_gamma)
    mean_nu = sky.sky_average(model.sky_mean_nu_kpc, q_nu)
    return MilkyWay(
        gamma=I_gamma,
        nu_all_flavour=I_nu,
        sky_mean_gamma=mean_gamma,
        sky_mean_nu_all_flavour=mean_nu,
        anticentre_gamma=I_gamma[-1],
        anticentre_nu_all_flavour=I_nu[-1],
        dipole_gamma=sky.dipole_amplitude(mean_gamma, sky.sky_average(model.sky_first_gamma_kpc, q_gamma)),
        dipole_nu=sky.dipole_amplitude(mean_nu, sky.sky_average(model.sky_first_nu_kpc, q_nu)),
        luminosity_gamma=eg.spectral_luminosity(q_gamma, tm.volumes_kpc3),
        luminosity_nu_all_flavour=eg.spectral_luminosity(q_nu, tm.volumes_kpc3),
        emissivity_gamma=q_gamma,
        emissivity_nu_all_flavour=q_nu,
    )


class Total(NamedTuple):
    """The isotropic flux at Earth: Milky Way anticentre + all other galaxies [GeV^-1 cm^-2 s^-1 sr^-1]."""

    gamma: jax.Array  # with absorption and cascade
    nu_all_flavour: jax.Array


def total(mw: MilkyWay, other: eg.Extragalactic) -> Total:
    return Total(mw.anticentre_gamma + other.gamma, mw.anticentre_nu_all_flavour + other.nu_all_flavour)


class Prediction(NamedTuple):
    """Everything `forward` predicts (JAX arrays)."""

    j_per_GeV_cm3: jax.Array  # (N_E, N_r)
    local_flux_per_GeV_cm2_s_sr: jax.Array  # (N_E,) protons at R_sun
    milky_way: MilkyWay
    extragalactic: eg.Extragalactic
    total: Total


def sky_and_beyond(params: CoronaParams, model: ForwardModel, G_Gyr):
    """Milky Way, other galaxies and the isotropic total from the solver's G."""
    mw = milky_way(params, model, G_Gyr)
    other = eg.extragalactic(model.extragalactic, mw.luminosity_gamma, mw.luminosity_nu_all_flavour)
    return mw, other, total(mw, other)


def forward(params: CoronaParams, model: ForwardModel, adjoint: str = "discrete") -> Prediction:
    """The whole model for given parameters, normalised by L_CR (pure; jit and grad it)."""
    tm = model.transport
    G = transport.unit_spectrum_density(params, tm, adjoint)
    j = cr_density(params, tm, G)
    return Prediction(j, local_flux(params, tm, G), *sky_and_beyond(params, model, G))


_sky_and_beyond = jax.jit(sky_and_beyond)


class ForwardResult(NamedTuple):
    """run_forward's result: the CR part, the Milky Way sky, the other galaxies (numpy arrays)."""

    cosmic_rays: CosmicRayResult
    model: ForwardModel
    milky_way: MilkyWay
    extragalactic: eg.Extragalactic
    total: Total


def run_forward(
    params: CoronaParams,
    resolution: grids.Resolution = grids.Resolution(),
    normalisation: str = "data",
    cr_data=None,
    model: Optional[ForwardModel] = None,
) -> ForwardResult:
    """CR transport (normalised as run_cosmic_rays does), the Milky Way and the other galaxies."""
    if model is None:
        model = build_forward_model(resolution)
    cr = run_cosmic_rays(params, resolution, normalisation, cr_data, model.transport)
    mw, other, tot = _sky_and_beyond(cr.params, model, jnp.asarray(cr.unit_density_Gyr))
    to_numpy = lambda t: type(t)(*(np.asarray(a) for a in t))  # noqa: E731
    return ForwardResult(cr, model, to_numpy(mw), to_numpy(other), to_numpy(tot))


def xi_report(result: ForwardResult, E_GeV: float = 1.0e5) -> dict:
    """The paper's xi = j_MW / j_EG at one neutrino energy, by its formula (local power law of
    index alpha = -dlnL/dlnE) and from the full model (anticentre / other galaxies)."""
    E = np.asarray(result.model.E_secondary_GeV)
    k = int(np.argmin(np.abs(np.log(E / E_GeV))))
    L = result.milky_way.luminosity_nu_all_flavour
    alpha = -float(np.log(L[k + 1] / L[k - 1]) / np.log(E[k + 1] / E[k - 1]))
    q = result.milky_way.emissivity_nu_all_flavour[k]  # proportional to n_CR n_g
    xi = eg.xi_paper(q, np.ones_like(q), np.asarray(result.model.transport.faces_kpc), alpha)
    full = result.milky_way.anticentre_nu_all_flavour[k] / result.extragalactic.nu_all_flavour[k]
    return {"xi_E_GeV": float(E[k]), "xi_alpha": alpha, "xi_paper_formula": float(xi), "xi_full_model": float(full)}
