"""Flat Lambda-CDM background and the comoving stellar-mass density rho*(z) (docs/physics.md sec. 5).

rho*(z) = (1 - R) int_z^inf psi(z') dz' / ((1 + z') H(z')), with the cosmic star-formation
history of Madau & Dickinson (2014), ARA&A 52, 415, Eq. (15),
psi(z) = 0.015 (1+z)^2.7 / (1 + ((1+z)/2.9)^5.6) M_sun yr^-1 Mpc^-3, and return fraction R = 0.27.
"""

import math
from typing import NamedTuple

import numpy as np

from .errors import ConfigError
from .units import C_CM_S, KM_CM, M_STAR_MW_MSUN, MPC_CM, YEAR_S


class Cosmology(NamedTuple):
    """Flat LambdaCDM; defaults of docs/physics.md sec. 5. z_max: the largest source redshift."""

    H0_km_s_Mpc: float = 67.7
    Omega_M: float = 0.31
    Omega_L: float = 0.69
    z_max: float = 6.0
    return_fraction: float = 0.27


def validate_cosmology(c: Cosmology) -> Cosmology:
    for name, value in c._asdict().items():
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ConfigError(f"cosmology {name} must be a finite number, got {value!r}")
    if c.H0_km_s_Mpc <= 0 or c.Omega_M < 0 or c.Omega_L < 0 or c.z_max <= 0:
        raise ConfigError("cosmology needs H0 > 0, Omega_M >= 0, Omega_L >= 0 and z_max > 0")
    if abs(c.Omega_M + c.Omega_L - 1.0) > 1e-3:
        raise ConfigError(f"only flat cosmologies: Omega_M + Omega_L = {c.Omega_M + c.Omega_L:g}, not 1")
    if not 0 <= c.return_fraction < 1:
        raise ConfigError("return_fraction must lie in [0, 1)")
    return c


def hubble_per_s(z, c: Cosmology = Cosmology()):
    """H(z) = H0 sqrt(Omega_M (1+z)^3 + Omega_L) [1/s]."""
    z = np.asarray(z, dtype=float)
    return c.H0_km_s_Mpc * KM_CM / MPC_CM * np.sqrt(c.Omega_M * (1 + z) ** 3 + c.Omega_L)


def distance_per_redshift_cm(z, c: Cosmology = Cosmology()):
    """Proper distance per unit redshift along a light ray, dl/dz = c / ((1+z) H(z)) [cm]."""
    return C_CM_S / ((1 + np.asarray(z, dtype=float)) * hubble_per_s(z, c))


def madau_dickinson_sfr(z):
    """Cosmic star-formation rate density psi(z) [M_sun yr^-1 Mpc^-3], Madau & Dickinson (2014) Eq. (15)."""
    zp1 = 1 + np.asarray(z, dtype=float)
    return 0.015 * zp1**2.7 / (1 + (zp1 / 2.9) ** 5.6)


def stellar_mass_density_Msun_Mpc3(z, c: Cosmology = Cosmology(), n=4000, z_top=60.0):
    """rho*(z) [M_sun per comoving Mpc^3]: (1 - R) times the stars formed before z."""
    x = np.linspace(0.0, math.log1p(z_top), n)  # x = ln(1+z')
    zz = np.expm1(x)
    integrand = madau_dickinson_sfr(zz) / (hubble_per_s(zz, c) * YEAR_S)  # dz'/((1+z')H) = dx / H
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(x))])
    formed_before = cumulative[-1] - np.interp(np.log1p(np.asarray(z, dtype=float)), x, cumulative)
    return (1 - c.return_fraction) * formed_before


def galaxy_intensity_weights_cm2_sr(z, weights, c: Cosmology = Cosmology(), stellar_mass_density=None):
    """(c / 4 pi) w_k rho*(z_k) / (M*_MW H(z_k)) [cm^-2 sr^-1]: the redshift weights of all other galaxies.

    Each galaxy is the Milky Way scaled by stellar mass, so the intensity today is
    I(E0) = sum_k W_k L((1+z_k) E0) for the Milky Way's spectral luminosity L [GeV^-1 s^-1],
    with w_k the weights of a redshift quadrature rule (docs/physics.md sec. 5). The one
    definition used by the redshift integral and by the cascade matrix.

    stellar_mass_density: optional z -> rho* [M_sun Mpc^-3]; default Madau & Dickinson (2014).
    """
    rho = stellar_mass_density or (lambda zz: stellar_mass_density_Msun_Mpc3(zz, c))
    return (C_CM_S / (4 * math.pi)) * weights * rho(z) / (M_STAR_MW_MSUN * MPC_CM**3 * hubble_per_s(z, c))
