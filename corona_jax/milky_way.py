"""The Milky Way stage: the pp emissivity of its corona, Eq. (6), and what an observer inside
it sees (docs/physics.md sec. 3-4).

q(E_s, r) = n_g(r) sum_p K[s, p] j(E_p, r) on the pp table's proton nodes, then the
intensity along lines of sight, the all-sky mean, the anticentre (the isotropic part) and
the dipole. Every output is linear in q, so the geometry is precomputed once into
matrices (corona_jax.sky) held by a MilkyWayModel.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import grids, sky
from .absorption import cmb_absorption_per_kpc
from .cosmic_rays import proton_density
from .gas import gas_density_cells
from .interactions import emission_matrix, emissivity, interpolate_tables
from .params import CoronaParams
from .safe import safe_log
from .tables import PPTables
from .transport import TransportModel
from .units import KPC_CM


class MilkyWayModel(NamedTuple):
    """Static arrays of the Milky Way stage (a pytree; build once with build_milky_way_model)."""

    E_table_GeV: jax.Array  # (N_f,) proton energies of the emissivity integral (pp-table nodes)
    table_lower: jax.Array  # (N_f,) int: index of the solver energy just below each E_table
    table_weight: jax.Array  # (N_f,) weight of the upper neighbour in ln E
    E_secondary_GeV: jax.Array  # (N_s,) gamma / neutrino energies
    psi_rad: jax.Array  # (N_psi,) directions from the Galactic centre
    emission_gamma: jax.Array  # (H, N_s, N_f) [cm^3 s^-1]: q = n_g K @ j, per hadronic model (H = 1 or 2)
    emission_nu_all: jax.Array  # (H, N_s, N_f)
    path_gamma_kpc: jax.Array  # (N_psi, N_s, N_r) CMB-absorbed path through each shell
    path_nu_kpc: jax.Array  # (N_psi, N_r) plain chord lengths
    sky_mean_gamma_kpc: jax.Array  # (N_s, N_r) <P_k> over the sky, with absorption
    sky_first_gamma_kpc: jax.Array  # (N_s, N_r) <cos psi P_k>
    sky_mean_nu_kpc: jax.Array  # (N_r,)
    sky_first_nu_kpc: jax.Array  # (N_r,)
    cmb_absorption_per_kpc: jax.Array  # (N_s,) 1 / lambda_gamma gamma


def build_milky_way_model(tm: TransportModel, res: grids.Resolution, observer_kpc: float,
                          pp: PPTables, pp_alternative: PPTables = None) -> MilkyWayModel:
    """Emission matrices from the pp table and line-of-sight matrices from the observer (numpy, once).
    With pp_alternative, the emission matrices of both tables (params.hadronic_mix interpolates).

    The emissivity integral over proton energy runs on the pp table's own nodes (20 per
    decade), whatever the solver's energy grid: the solver's G is interpolated there in
    ln G - ln E, and the injected spectrum is evaluated exactly.
    """
    E_p = np.asarray(tm.E_GeV)
    E_f = pp.E_p_GeV[(pp.E_p_GeV >= E_p[0] * (1 - 1e-12)) & (pp.E_p_GeV <= E_p[-1] * (1 + 1e-12))]
    lower = np.clip(np.searchsorted(E_p, E_f * (1 + 1e-12)) - 1, 0, E_p.size - 2)
    weight = np.clip(np.log(E_f / E_p[lower]) / np.log(E_p[lower + 1] / E_p[lower]), 0.0, 1.0)
    E_s = grids.secondary_energy_grid(res)
    psi = sky.psi_grid_rad(res.n_psi)
    kappa = cmb_absorption_per_kpc(E_s)
    faces = np.asarray(tm.faces_kpc)
    mean_gamma, first_gamma = sky.sky_average_matrices_kpc(faces, observer_kpc, kappa)
    mean_nu, first_nu = sky.sky_average_matrices_kpc(faces, observer_kpc, np.zeros(1))
    hadronic = [pp] if pp_alternative is None else [pp, pp_alternative]
    arrays = dict(
        E_table_GeV=E_f,
        table_weight=weight,
        E_secondary_GeV=E_s,
        psi_rad=psi,
        emission_gamma=np.stack([emission_matrix("gamma", E_f, E_s, t) for t in hadronic]),
        emission_nu_all=np.stack([emission_matrix("nu_all", E_f, E_s, t) for t in hadronic]),
        path_gamma_kpc=sky.shell_path_matrix_kpc(faces, observer_kpc, np.cos(psi), kappa),
        path_nu_kpc=sky.shell_path_matrix_kpc(faces, observer_kpc, np.cos(psi), np.zeros(1))[:, 0, :],
        sky_mean_gamma_kpc=mean_gamma,
        sky_first_gamma_kpc=first_gamma,
        sky_mean_nu_kpc=mean_nu[0],
        sky_first_nu_kpc=first_nu[0],
        cmb_absorption_per_kpc=kappa,
    )
    arrays = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in arrays.items()}
    return MilkyWayModel(table_lower=jnp.asarray(lower), **arrays)


def proton_density_on_table_grid(params: CoronaParams, model: MilkyWayModel, tm: TransportModel, G_Gyr,
                                 G_burst_Gyr=None):
    """j(E_table, r) [GeV^-1 cm^-3]: G (and G_b) interpolated linearly in ln G - ln E, spectra exact."""
    G_b = None if G_burst_Gyr is None else unit_density_on_table_grid(model, G_burst_Gyr)
    return proton_density(params, tm, model.E_table_GeV, unit_density_on_table_grid(model, G_Gyr), G_b)


def emission_matrices(params: CoronaParams, model: MilkyWayModel):
    """(K_gamma, K_nu_all) (N_s, N_f) [cm^3 s^-1] of the hadronic model params.hadronic_mix, times the
    nuclear enhancement (the yield of all nuclei over that of pp; 1 for protons only)."""
    return (interpolate_tables(model.emission_gamma, params.hadronic_mix) * params.nuclear_enhancement,
            interpolate_tables(model.emission_nu_all, params.hadronic_mix) * params.nuclear_enhancement)


def unit_density_on_table_grid(model: MilkyWayModel, G_Gyr):
    """G (N_E, N_r) [Gyr] at the pp table's proton energies, interpolated linearly in ln G - ln E."""
    log_G = safe_log(G_Gyr)
    w = model.table_weight[:, None]
    return jnp.exp((1.0 - w) * log_G[model.table_lower] + w * log_G[model.table_lower + 1])


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
    luminosity_gamma: jax.Array  # L(E) = int q dV = K @ p [GeV^-1 s^-1], no absorption
    luminosity_nu_all_flavour: jax.Array
    proton_gas_per_GeV_cm3: jax.Array  # p(E_table) = int n_g j dV, on the pp-table proton nodes
    emissivity_gamma: jax.Array  # q(E, r) [GeV^-1 cm^-3 s^-1], Eq. (6)
    emissivity_nu_all_flavour: jax.Array


def volume_integral(values, volumes_kpc3):
    """int values 4 pi r^2 dr over the cells (last axis) [values x cm^3]; volumes are cell volume / 4 pi [kpc^3]."""
    return values @ (4.0 * np.pi * volumes_kpc3 * KPC_CM**3)


def milky_way(params: CoronaParams, model: MilkyWayModel, tm: TransportModel, G_Gyr, G_burst_Gyr=None) -> MilkyWay:
    """Emissivity (Eq. 6) and line-of-sight integrals, from the solver's G (N_E, N_r) [Gyr]
    (and the burst's G_b)."""
    n_gas = gas_density_cells(params, tm.faces_kpc, tm.centres_kpc)
    j = proton_density_on_table_grid(params, model, tm, G_Gyr, G_burst_Gyr)
    p = volume_integral(n_gas[None, :] * j, tm.volumes_kpc3)
    K_gamma, K_nu = emission_matrices(params, model)
    q_gamma = emissivity(n_gas, K_gamma, j)
    q_nu = emissivity(n_gas, K_nu, j)
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
        luminosity_gamma=K_gamma @ p,
        luminosity_nu_all_flavour=K_nu @ p,
        proton_gas_per_GeV_cm3=p,
        emissivity_gamma=q_gamma,
        emissivity_nu_all_flavour=q_nu,
    )
