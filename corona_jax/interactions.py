"""Proton-proton interactions: the inelastic cross section sigma_pp(E).

Default: the fit of Kafexhiu, Aharonian, Taylor & Vila, PRD 90, 123014 (2014),
Eq. (1), which follows QGSJET-II-04 (the paper's choice) to a few per cent up
to PeV energies. It vanishes below the pion-production threshold.
"""

import jax.numpy as jnp

from .units import PROTON_MASS_GEV

PION_THRESHOLD_KINETIC_GEV = 0.2797  # E_th = 2 m_pi + m_pi^2 / (2 m_p) (Kafexhiu+ 2014)


def sigma_inelastic_mb(E_GeV):
    """Inelastic pp cross section [mb] at proton total energy E [GeV], Kafexhiu+ (2014) Eq. (1).

    Zero at and below the threshold (the fit itself turns negative there).
    """
    T = E_GeV - PROTON_MASS_GEV
    above = T > PION_THRESHOLD_KINETIC_GEV
    x = jnp.where(above, T, 2.0 * PION_THRESHOLD_KINETIC_GEV) / PION_THRESHOLD_KINETIC_GEV
    ln_x = jnp.log(x)
    sigma = (30.7 - 0.96 * ln_x + 0.18 * ln_x**2) * (1.0 - x ** (-1.9)) ** 3
    return jnp.where(above, sigma, 0.0)
