"""Gamma-ray absorption by pair production on the CMB, gamma gamma -> e+ e- (docs/physics.md sec. 4).

The Breit-Wheeler cross section, in s0 = s / (4 m_e^2) with beta^2 = 1 - 1/s0,

    sigma(s0) = (3 sigma_T / 16) (1 - beta^2) [(3 - beta^4) ln((1+beta)/(1-beta)) - 2 beta (2 - beta^2)],

integrated over an isotropic blackbody (Gould & Schreder 1967, Phys. Rev. 155, 1404):

    1/lambda(E) = 2 m_e^4 / (pi^2 (hbar c)^3 E^2) int d eps Phi(E eps / m_e^2) / (exp(eps/kT) - 1),
    Phi(y) = int_1^y s0 sigma(s0) ds0.

Computed once with numpy quadrature (no table needed); T scales as (1+z) at redshift z.
"""

import functools
import math

import numpy as np

from .units import ELECTRON_MASS_GEV, HBAR_C_GEV_CM, K_BOLTZMANN_GEV_K, KPC_CM, SIGMA_THOMSON_CM2, T_CMB_K

_Y_MAX = 1.0e12  # Phi is tabulated for 1 <= s0 <= _Y_MAX (Phi grows only like ln^2 y beyond)


def breit_wheeler_cm2(s0):
    """Pair-production cross section [cm^2] at s0 = s / (4 m_e^2) (zero below threshold s0 = 1)."""
    s0 = np.asarray(s0, dtype=float)
    beta = np.sqrt(np.clip(1.0 - 1.0 / np.maximum(s0, 1.0), 0.0, 1.0))
    log_term = 2.0 * np.arctanh(np.minimum(beta, 1.0 - 1e-16))
    sigma = (3.0 * SIGMA_THOMSON_CM2 / 16.0) * (1.0 - beta**2) * (
        (3.0 - beta**4) * log_term - 2.0 * beta * (2.0 - beta**2)
    )
    return np.where(s0 > 1.0, sigma, 0.0)


def _phi_table(n=20001):
    """Phi(y) = int_1^y s0 sigma ds0 [cm^2] on ln y = t^2 (smooth at threshold, where sigma ~ sqrt)."""
    t = np.linspace(0.0, math.sqrt(math.log(_Y_MAX)), n)
    s0 = np.exp(t**2)
    integrand = s0 * breit_wheeler_cm2(s0) * s0 * 2.0 * t  # s0 sigma ds0/dt
    phi = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(t))])
    return t**2, phi


_LN_Y, _PHI = _phi_table()


def cmb_absorption_per_kpc(E_GeV, T_K=T_CMB_K, n_x=4000, x_max=60.0):
    """Inverse attenuation length 1/lambda [1/kpc] of photons of energy E [GeV] in a blackbody at T."""
    E = np.atleast_1d(np.asarray(E_GeV, dtype=float))
    kT = K_BOLTZMANN_GEV_K * T_K
    m2 = ELECTRON_MASS_GEV**2
    out = np.zeros_like(E)
    for i, e in enumerate(E):
        x_th = m2 / (e * kT)  # eps / kT at threshold for a head-on collision
        if x_th >= x_max:
            continue
        x = np.geomspace(x_th, x_max, n_x)
        phi = np.interp(np.log(e * kT * x / m2), _LN_Y, _PHI)
        integrand = phi / np.expm1(x) * x  # d eps = kT x d ln x
        out[i] = kT * np.trapezoid(integrand, np.log(x))
    prefactor = 2.0 * ELECTRON_MASS_GEV**4 / (math.pi**2 * HBAR_C_GEV_CM**3 * E**2)
    return (prefactor * out * KPC_CM).reshape(np.shape(E_GeV))


def cmb_attenuation_length_kpc(E_GeV, T_K=T_CMB_K):
    """lambda_gamma gamma(E) [kpc] on the CMB at temperature T (inf where no absorption)."""
    kappa = cmb_absorption_per_kpc(E_GeV, T_K)
    with np.errstate(divide="ignore"):
        return np.where(kappa > 0, 1.0 / np.where(kappa > 0, kappa, 1.0), np.inf)


# --- optical depth to redshift z: CMB (computed) + EBL (table) ---------------------

_CMB_TABLE_E_GeV = np.logspace(3.0, 13.0, 401)  # 1/lambda vanishes (x_th > 60) below ~1e4 GeV


@functools.lru_cache(maxsize=1)
def _cmb_table():
    return np.log(_CMB_TABLE_E_GeV), np.log(np.maximum(cmb_absorption_per_kpc(_CMB_TABLE_E_GeV), 1e-300))


def cmb_absorption_today_per_kpc(E_GeV):
    """1/lambda at T = 2.7255 K [1/kpc], interpolated in ln-ln from a 40-per-decade table."""
    log_E, log_k = _cmb_table()
    E = np.asarray(E_GeV, dtype=float)
    k = np.exp(np.interp(np.log(E), log_E, log_k, left=-np.inf, right=log_k[-1]))
    return np.where(k > 1e-290, k, 0.0)


def tau_cmb(E0_GeV, z, cosmo, n_per_unit_z=400):
    """Optical depth on the CMB for a photon observed at E0 [GeV] from redshift z, shape (N_E, N_z).

    At z' the photon has energy (1+z') E0 and the blackbody has T = (1+z') T0; since the
    rate depends on E and T only through E T (and scales as T^3 at fixed E T),
    1/lambda = (1+z')^3 / lambda_0((1+z')^2 E0). Integrated along dl = c dz' / ((1+z') H(z'))
    with the trapezoid rule on a fine redshift grid that contains the requested z (so that
    depths at z far below the grid spacing, kpc paths, are integrated, not interpolated).
    """
    from .cosmology import distance_per_redshift_cm

    E0 = np.atleast_1d(np.asarray(E0_GeV, dtype=float))
    z = np.atleast_1d(np.asarray(z, dtype=float))
    fine = np.union1d(np.linspace(0.0, z.max(), max(2, int(np.ceil(z.max() * n_per_unit_z)) + 1)), z)
    rate = (1 + fine) ** 3 * cmb_absorption_today_per_kpc((1 + fine)[None, :] ** 2 * E0[:, None])
    rate = rate * (distance_per_redshift_cm(fine, cosmo) / KPC_CM)[None, :]  # d tau / dz
    cumulative = np.concatenate([np.zeros((E0.size, 1)),
                                 np.cumsum(0.5 * (rate[:, 1:] + rate[:, :-1]) * np.diff(fine), axis=1)], axis=1)
    return np.stack([np.interp(z, fine, row) for row in cumulative])


def tau_ebl(E0_GeV, z, table):
    """EBL optical depth from the ebltable table (tables.EBLTable), shape (N_E, N_z).

    Bilinear in (log10 E0, z) inside the table, as ebltable itself. Outside it, explicitly:
    E0 below the table (1 GeV): 0 (the table's tau at 1 GeV is < 2e-4 for every z);
    E0 above it (89 TeV): held at the top value, a lower bound there, where the CMB
    dominates and tau >> 1 beyond z ~ 0.01; z beyond the table: ConfigError.
    """
    from .errors import ConfigError

    E0 = np.atleast_1d(np.asarray(E0_GeV, dtype=float))
    z = np.atleast_1d(np.asarray(z, dtype=float))
    if np.any(z < 0) or np.any(z > table.z[-1]):
        raise ConfigError(f"EBL optical depth is tabulated for 0 <= z <= {table.z[-1]:g}")
    x = np.log10(table.E0_GeV)
    xq = np.clip(np.log10(E0), x[0], x[-1])
    i = np.clip(np.searchsorted(x, xq) - 1, 0, x.size - 2)
    u = (xq - x[i]) / (x[i + 1] - x[i])
    j = np.clip(np.searchsorted(table.z, z) - 1, 0, table.z.size - 2)
    v = (z - table.z[j]) / (table.z[j + 1] - table.z[j])
    t = table.tau
    tau = ((1 - u)[:, None] * ((1 - v) * t[i][:, j] + v * t[i][:, j + 1])
           + u[:, None] * ((1 - v) * t[i + 1][:, j] + v * t[i + 1][:, j + 1]))
    return np.where((E0 < table.E0_GeV[0])[:, None], 0.0, tau)
