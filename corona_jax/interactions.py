"""Proton-proton interactions: sigma_inel(E), the emission matrices and the emissivity, Eq. (6).

Cross sections come from the pp table (corona_jax.tables, generated from aafragpy):
sigma_inel is the Kafexhiu et al. (2014) fit, which follows QGSJET-II-04 (the
paper's choice) to a few per cent up to PeV, and vanishes below the pion threshold.
"""

import math

import jax.numpy as jnp
import numpy as np

from . import tables
from .errors import ConfigError
from .units import C_CM_S, MB_CM2, PROTON_MASS_GEV

PION_THRESHOLD_KINETIC_GEV = 0.2797  # E_th = 2 m_pi + m_pi^2 / (2 m_p) (Kafexhiu+ 2014)


def proton_beta(E_GeV):
    """Velocity / c of a proton of total energy E [GeV]: beta = sqrt(1 - (m_p / E)^2)."""
    return jnp.sqrt(1.0 - (PROTON_MASS_GEV / E_GeV) ** 2)


def sigma_inelastic_mb(E_GeV, pp: tables.PPTables = None):
    """Inelastic pp cross section [mb] at proton total energy E [GeV] (numpy).

    Exact at the nodes of the pp table (default: the shipped one), linear in ln E between
    them; zero below threshold.
    """
    t = tables.load_pp_tables() if pp is None else pp
    E = np.asarray(E_GeV, dtype=float)
    if np.any(E > t.E_p_GeV[-1] * (1 + 1e-9)):
        raise ConfigError(f"sigma_pp is tabulated up to {t.E_p_GeV[-1]:g} GeV; E_max_GeV must not exceed it")
    sigma = np.interp(np.log(E), np.log(t.E_p_GeV), t.sigma_inel_mb)
    return np.where(E - PROTON_MASS_GEV > PION_THRESHOLD_KINETIC_GEV, sigma, 0.0)


def emission_matrix(secondary, E_p_GeV, E_s_GeV, pp: tables.PPTables = None):
    """K[s, p] = beta_p c w_p E_p dsigma/dE_s(E_p, E_s) [cm^3 s^-1], so that q = n_g K @ j (numpy).

    Eq. (6) with the collision rate n_g sigma beta c of a proton of total energy E_p;
    w_p: trapezoid weights in ln E_p on the model's proton grid [GeV]; both grids must
    lie on the nodes of the pp table (default: the shipped one). secondary: 'gamma' or 'nu_all'.
    """
    t = tables.load_pp_tables() if pp is None else pp
    ip = tables.grid_indices(t.E_p_GeV, E_p_GeV, "proton")
    is_ = tables.grid_indices(t.E_s_GeV, E_s_GeV, "secondary")
    dsigma = t.dsigma_dE_mb_per_GeV[secondary][np.ix_(ip, is_)]  # (N_p, N_s)
    step = math.log(E_p_GeV[1] / E_p_GeV[0])
    w = np.full(E_p_GeV.size, step)
    w[[0, -1]] *= 0.5
    rate = C_CM_S * MB_CM2 * np.asarray(proton_beta(E_p_GeV)) * w * E_p_GeV
    return rate[None, :] * dsigma.T


def emission_kernel(secondary, E_p_GeV, pp: tables.PPTables = None):
    """E_query -> K[q, p] of emission_matrix at any secondary energies (numpy; (N_q, N_p)): the
    table's dsigma/dE_s interpolated in ln K - ln E_s between its secondary nodes (linearly in
    ln E_s where a neighbour is zero, at a kinematic edge); zero above the table's top. The
    table's K is computed once, when the kernel is made."""
    t = tables.load_pp_tables() if pp is None else pp
    K = emission_matrix(secondary, E_p_GeV, t.E_s_GeV, t)  # (N_table_s, N_p)
    log_E_table = np.log(t.E_s_GeV)

    def at(E_query_GeV):
        log_E = np.log(np.asarray(E_query_GeV, dtype=float))
        if np.any(log_E < log_E_table[0] - 1e-12):
            raise ConfigError(f"secondary energies start at {t.E_s_GeV[0]:g} GeV in the pp table")
        pos = np.interp(log_E, log_E_table, np.arange(t.E_s_GeV.size), left=np.nan, right=np.nan)
        inside = np.isfinite(pos)
        lower = np.clip(np.floor(np.where(inside, pos, 0)).astype(int), 0, t.E_s_GeV.size - 2)
        w = np.where(inside, pos - lower, 0.0)[:, None]
        lo, hi = K[lower], K[lower + 1]
        both = (lo > 0) & (hi > 0)
        log_mix = np.exp((1 - w) * np.log(np.where(both, lo, 1.0)) + w * np.log(np.where(both, hi, 1.0)))
        return np.where(inside[:, None], np.where(both, log_mix, (1 - w) * lo + w * hi), 0.0)

    return at


def interpolate_tables(stack, weight):
    """(1 - weight) stack[0] + weight stack[1] for a stack of two tables' matrices (leading axis 2),
    or stack[0] for a stack of one (a model built without the alternative table)."""
    if stack.shape[0] == 1:
        return stack[0]
    return (1.0 - weight) * stack[0] + weight * stack[1]


def emissivity(n_gas_cm3, emission, j_per_GeV_cm3):
    """q(E_s, r) = n_g(r) sum_p K[s, p] j(E_p, r) [GeV^-1 cm^-3 s^-1], shape (N_s, N_r)."""
    return n_gas_cm3[None, :] * (emission @ j_per_GeV_cm3)
