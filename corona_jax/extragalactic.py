"""Coronae of all other galaxies: the redshift integral with absorption and cascades (docs/physics.md sec. 5).

Each galaxy is the Milky Way scaled by stellar mass, so the comoving emissivity is
eps(E, z) = rho*(z) L(E) / M*_MW with L the Milky Way's spectral luminosity, and

    I(E0) = (c / 4 pi) int_0^{z_max} dz eps((1+z) E0, z) exp(-tau(E0, z)) / H(z).

The integral runs on a fine grid uniform in x = ln(1+z) (dz = (1+z) dx): between nodes the
smooth part of the integrand is linear in x and so is tau, and exp(-tau) is integrated
exactly (trapezoid rule without absorption). L((1+z) E0) = K((1+z) E0, E_p) @ p, with p the Milky
Way's proton-gas integral int n_g j dV on the pp table's proton nodes and the emission kernel K
interpolated in ln K - ln E between the table's secondary nodes (20 per decade). So every
intensity is one fixed matrix times p, built once: linear in the protons' spectrum, which is
what lets a sweep contract it per transport solve (corona_jax.batch). The cascade adds C @ L
with C precomputed (corona_jax.cascade). The paper's ratio xi (Sec. IV) is given for comparison.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import absorption, cosmology, grids, tables
from .errors import ConfigError
from .interactions import emission_kernel, interpolate_tables
from .units import C_CM_S, KPC_CM, M_STAR_MW_MSUN, MPC_CM, R_SUN_KPC

N_REDSHIFTS = 400  # nodes of the fine redshift integral, uniform in ln(1+z)
FIRST_STEP_SPLITS = (1e-3, 1e-2, 1e-1)  # extra nodes in the first step, as fractions of it


def redshift_nodes(z_max, n=N_REDSHIFTS):
    """Nodes uniform in ln(1+z) on [0, z_max] and their dz weights (trapezoid in ln(1+z))."""
    x = np.linspace(0.0, math.log1p(z_max), n)
    w = np.full(n, x[1] - x[0])
    w[[0, -1]] *= 0.5
    z = np.expm1(x)
    return z, w * (1 + z)


def log_redshift_nodes(z_max):
    """x = ln(1+z) of the redshift integral: N_REDSHIFTS nodes uniform on [0, ln(1+z_max)], the
    first step split geometrically, since above ~100 TeV the absorption length is kpc-Mpc and
    tau is far from linear in x across it."""
    x = np.linspace(0.0, math.log1p(z_max), N_REDSHIFTS)
    return np.concatenate([[0.0], x[1] * np.asarray(FIRST_STEP_SPLITS), x[1:]])


def exponential_moments(d):
    """a = int_0^1 (1-t) e^(-d t) dt and b = int_0^1 t e^(-d t) dt (series for |d| < 1e-3)."""
    small = np.abs(d) < 1e-3
    s = np.where(small, 1.0, d)  # no division by ~0 in the branch not taken
    em1 = np.expm1(-s)
    a = np.where(small, 0.5 - d / 6 + d**2 / 24 - d**3 / 120, (s + em1) / s**2)
    b = np.where(small, 0.5 - d / 3 + d**2 / 8 - d**3 / 30, (-em1 - s * (1 + em1)) / s**2)
    return a, b


def attenuated_weights(x, tau):
    """w (N, K) with sum_k w[i, k] f(x_k) = int f(x) exp(-tau_i(x)) dx over the nodes x (K,),
    exact when f and tau (N, K) are linear in x between nodes (product integration; the
    trapezoid rule for tau = 0). Resolves absorption lengths far below the node spacing."""
    h = np.diff(x)
    a, b = exponential_moments(np.diff(tau, axis=1))
    start = h * np.exp(-tau[:, :-1])  # exp(-tau) at the start of each interval
    w = np.zeros(np.shape(tau))
    w[:, :-1] += start * a
    w[:, 1:] += start * b
    return w


class RedshiftWeights(NamedTuple):
    """The redshift quadrature of I(E_i) = sum_k w[i, k] L(emitted[i, k]) (numpy, each (N_s, N_z))."""

    emitted_GeV: np.ndarray  # (1 + z_k) E_i
    nu: np.ndarray  # [cm^-2 sr^-1] (c/4pi) w_k (1+z_k) rho*(z_k) / (M*_MW H(z_k)), trapezoid w_k in ln(1+z)
    gamma: np.ndarray  # the same with w_k -> attenuated_weights for tau(E_i, z); zero above the grid's top


def redshift_weights(E_s_GeV, cosmo=cosmology.Cosmology(), stellar_mass_density=None, ebl=None) -> RedshiftWeights:
    """Nodes and weights of the redshift integral at the energies E_s (numpy). Emission above
    the top of E_s is not modelled (weight 0)."""
    cosmology.validate_cosmology(cosmo)
    E = np.asarray(E_s_GeV, dtype=float)
    x = log_redshift_nodes(cosmo.z_max)
    z = np.expm1(x)
    per_x = cosmology.galaxy_intensity_weights_cm2_sr(z, 1 + z, cosmo, stellar_mass_density)  # dz = (1+z) dx
    emitted = E[:, None] * (1 + z)[None, :]
    per_x = np.where(emitted <= E[-1] * (1 + 1e-12), per_x[None, :], 0.0)
    tau = absorption.tau_ebl(E, z, ebl or tables.load_ebl_table()) + absorption.tau_cmb(E, z, cosmo)
    return RedshiftWeights(emitted, per_x * attenuated_weights(x, np.zeros_like(tau)), per_x * attenuated_weights(x, tau))


def redshift_integral(weights, emitted_GeV, spectrum):
    """sum_k weights[i, k] spectrum(emitted[i, k]) (numpy). spectrum: E (N_z,) -> (N_z,) or (N_z, N_f);
    returns (N_s,) or (N_s, N_f)."""
    return np.stack([w @ spectrum(e) for w, e in zip(weights, emitted_GeV)])


class ExtragalacticModel(NamedTuple):
    """Linear maps from the Milky Way's proton-gas integral p(E_p) = int n_g j dV [GeV^-1 cm^-3]
    on the pp-table proton nodes to the intensity of all other galaxies (a pytree; build once).
    Each map is (N_s, N_p) [cm sr^-1 s^-1], the redshift integral of the emission kernel K(E, E_p),
    given per hadronic model h (H = 1, or 2 with the alternative pp table) and, for the absorbed
    and cascade photons, per EBL model b (B = 1 or 2)."""

    nu_all: jax.Array  # (H, N_s, N_p)
    gamma_unabsorbed: jax.Array  # (H, N_s, N_p) no interactions at all (for comparison)
    gamma_absorbed: jax.Array  # (H, B, N_s, N_p) EBL + CMB absorption
    gamma_cascade: jax.Array  # (H, B, N_s, N_p) the cascade photons alone; zero if the cascade is off


def build_extragalactic_model(E_s_GeV, E_p_GeV, pp: tables.PPTables, cosmo=cosmology.Cosmology(),
                              with_cascade=True, stellar_mass_density=None, ebl=None,
                              cascade_table=None, pp_alternative: tables.PPTables = None,
                              ebl_alternative=None, cascade_table_alternative=None) -> ExtragalacticModel:
    """build_extragalactic_maps for the pp table (and pp_alternative) and the EBL (and
    ebl_alternative with its cascade file), stacked as ExtragalacticModel says."""
    hadronic = [pp] if pp_alternative is None else [pp, pp_alternative]
    ebls = [(ebl, cascade_table)] + ([] if ebl_alternative is None else [(ebl_alternative, cascade_table_alternative)])
    maps = [[build_extragalactic_maps(E_s_GeV, E_p_GeV, t, cosmo, with_cascade, stellar_mass_density, e, c)
             for e, c in ebls] for t in hadronic]
    arrays = (np.stack([row[0][0] for row in maps]), np.stack([row[0][1] for row in maps]),
              np.stack([[m[2] for m in row] for row in maps]), np.stack([[m[3] for m in row] for row in maps]))
    return ExtragalacticModel(*(jnp.asarray(a, dtype=jnp.float64) for a in arrays))


def build_extragalactic_maps(E_s_GeV, E_p_GeV, pp: tables.PPTables, cosmo=cosmology.Cosmology(),
                             with_cascade=True, stellar_mass_density=None, ebl=None, cascade_table=None):
    """The redshift integral of the pp emission kernel, with rho*(z) / H(z) and e^-tau, and the
    cascade (numpy). The kernel K((1+z) E, E_p) is interpolated between the pp table's secondary
    nodes (interactions.emission_kernel), so every output is linear in the protons' spectrum.

    stellar_mass_density: optional callable z -> rho* [M_sun Mpc^-3] replacing Madau & Dickinson
    (then the stored cascade matrix, built with the default, is refused). ebl: an EBLTable and
    cascade_table: the path of a cascade-matrix file (defaults: the shipped ones). Returns the
    (N_s, N_p) maps (nu_all, gamma_unabsorbed, gamma_absorbed, gamma_cascade).
    """
    E_p_GeV = np.asarray(E_p_GeV, dtype=float)
    w = redshift_weights(E_s_GeV, cosmo, stellar_mass_density, ebl)
    gamma, nu = emission_kernel("gamma", E_p_GeV, pp), emission_kernel("nu_all", E_p_GeV, pp)
    unabsorbed = redshift_integral(w.nu, w.emitted_GeV, gamma)
    if with_cascade:
        if stellar_mass_density is not None:
            raise ConfigError("the stored cascade matrix assumes Madau & Dickinson rho*(z); "
                              "use with_cascade=False with another stellar-mass density")
        C = tables.load_cascade_matrix(E_s_GeV, cosmo, cascade_table)
        cascade = C @ gamma(E_s_GeV)
    else:
        cascade = np.zeros_like(unabsorbed)
    return (redshift_integral(w.nu, w.emitted_GeV, nu), unabsorbed,
            redshift_integral(w.gamma, w.emitted_GeV, gamma), cascade)


class Extragalactic(NamedTuple):
    """Intensities from all other galaxies [GeV^-1 cm^-2 s^-1 sr^-1], each (N_s,)."""

    nu_all_flavour: jax.Array
    gamma_unabsorbed: jax.Array  # no interactions at all (for comparison)
    gamma_absorbed: jax.Array  # EBL + CMB absorption, no cascade
    gamma_cascade: jax.Array  # the cascade photons alone
    gamma: jax.Array  # absorbed + cascade


def extragalactic(model: ExtragalacticModel, proton_gas_per_GeV_cm3, hadronic_mix=0.0, ebl_mix=0.0) -> Extragalactic:
    """Intensities from the Milky Way's proton-gas integral p = int n_g j dV (N_p,) [GeV^-1 cm^-3],
    with the maps interpolated linearly between the hadronic models and between the EBL models."""

    def mixed(maps):  # (H, B, N_s, N_p) -> (N_s, N_p)
        return interpolate_tables(interpolate_tables(maps, hadronic_mix), ebl_mix)

    p = proton_gas_per_GeV_cm3
    absorbed = mixed(model.gamma_absorbed) @ p
    cascade = mixed(model.gamma_cascade) @ p
    return Extragalactic(
        nu_all_flavour=interpolate_tables(model.nu_all, hadronic_mix) @ p,
        gamma_unabsorbed=interpolate_tables(model.gamma_unabsorbed, hadronic_mix) @ p,
        gamma_absorbed=absorbed,
        gamma_cascade=cascade,
        gamma=absorbed + cascade,
    )


def xi_paper(cr_density_r, n_gas_cm3, faces_kpc, alpha, cosmo=cosmology.Cosmology(), R_sun_kpc=R_SUN_KPC):
    """The paper's xi = j_MW / j_EG (Sec. IV) for a power law dN/dE ~ E^-alpha (numpy).

    Dimensionless reading (docs/physics.md sec. 5): xi = M*_MW I_MW / (4 pi c I_z I_V) with
    I_MW = int_{R_sun}^{R_max} n n_g dr (towards the anticentre), I_V = int_0^{R_max} n n_g r^2 dr,
    I_z = (1/H0) int_0^{z_max} rho*(z) (1+z)^-alpha / E(z) dz; n = CR density at one energy,
    on the cells (faces_kpc), constant within each cell.
    """
    faces = np.asarray(faces_kpc)
    n_ng = np.asarray(cr_density_r) * np.asarray(n_gas_cm3)
    beyond = np.clip(faces[1:], R_sun_kpc, None) - np.clip(faces[:-1], R_sun_kpc, None)  # cell length past R_sun
    I_MW = np.sum(n_ng * beyond) * KPC_CM
    I_V = np.sum(n_ng * (faces[1:] ** 3 - faces[:-1] ** 3) / 3.0) * KPC_CM**3
    z, dz = redshift_nodes(cosmo.z_max, 4000)
    E_z = np.sqrt(cosmo.Omega_M * (1 + z) ** 3 + cosmo.Omega_L)
    rho = cosmology.stellar_mass_density_Msun_Mpc3(z, cosmo) / MPC_CM**3
    I_z = np.sum(dz * rho * (1 + z) ** (-alpha) / E_z) / cosmology.hubble_per_s(0.0, cosmo)
    return M_STAR_MW_MSUN * I_MW / (4 * math.pi * C_CM_S * I_z * I_V)


def xi_report(emissivity_nu, luminosity_nu, anticentre_nu, other_nu, E_secondary_GeV, faces_kpc,
              cosmo=cosmology.Cosmology(), observer_kpc=R_SUN_KPC, E_GeV=1.0e5) -> dict:
    """The paper's xi = j_MW / j_EG at one neutrino energy (numpy), two ways: by its formula with
    the local power-law index alpha = -dlnL/dlnE (xi_paper), and from the full model as the
    Milky Way anticentre over all other galaxies. Arrays: q (N_s, N_r), L, I_anticentre and
    I_other (N_s,) of the neutrinos; the cosmology and observer the model was built with."""
    E = np.asarray(E_secondary_GeV)
    k = grids.nearest_index(E, E_GeV)
    L = np.asarray(luminosity_nu)
    alpha = -float(np.log(L[k + 1] / L[k - 1]) / np.log(E[k + 1] / E[k - 1]))
    q = np.asarray(emissivity_nu)[k]  # proportional to n_CR n_g
    xi = xi_paper(q, np.ones_like(q), np.asarray(faces_kpc), alpha, cosmo, observer_kpc)
    full = float(np.asarray(anticentre_nu)[k] / np.asarray(other_nu)[k])
    return {"xi_E_GeV": float(E[k]), "xi_alpha": alpha, "xi_paper_formula": float(xi), "xi_full_model": full}
