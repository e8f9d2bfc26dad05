"""The circumgalactic gas density n_g(r), Eq. (1)-(3) of Kalashev & Troitsky (2016).

n_g = max(n_inner, n_outer) for r <= R_max and 0 beyond. Note: the paper's text
says the two profiles take over from each other near 45 kpc, but Eq. (1)-(3) as
printed cross at r = 72.0 kpc (n = 2.38e-4 cm^-3); we implement the equations.
"""

import jax.numpy as jnp

from .grids import volume_fraction_inside
from .params import CoronaParams


def beta_profile(r_kpc, n0_cm3, beta, rc_kpc):
    """Eq. (1): n0 (1 + (r/rc)^2)^(-3 beta / 2) [cm^-3]."""
    return n0_cm3 * (1.0 + (r_kpc / rc_kpc) ** 2) ** (-1.5 * beta)


def gas_density_untruncated(params: CoronaParams, r_kpc, smooth_max_dex=0.0):
    """max of the two beta profiles [cm^-3], without the R_max cut.

    smooth_max_dex > 0 replaces max() by a log-sum-exp over log10 n with that
    temperature in dex (0 = the paper's hard max, the default).
    """
    n1 = beta_profile(r_kpc, params.n0_inner_cm3, params.beta_inner, params.rc_inner_kpc)
    n2 = beta_profile(r_kpc, params.n0_outer_cm3, params.beta_outer, params.rc_outer_kpc)
    if smooth_max_dex > 0.0:
        s = smooth_max_dex * jnp.log(10.0)
        return jnp.exp(s * jnp.logaddexp(jnp.log(n1) / s, jnp.log(n2) / s))
    return jnp.maximum(n1, n2)


def gas_density(params: CoronaParams, r_kpc, smooth_max_dex=0.0):
    """n_g(r) [cm^-3] of Eq. (1)-(3): zero for r > R_max."""
    n = gas_density_untruncated(params, r_kpc, smooth_max_dex)
    return jnp.where(r_kpc <= params.Rmax_kpc, n, 0.0)


def gas_density_cells(params: CoronaParams, faces_kpc, centres_kpc, smooth_max_dex=0.0):
    """Gas density of each finite-volume cell [cm^-3].

    The profile at the cell centre times the fraction of the cell inside R_max,
    so that the result is continuous and differentiable in R_max.
    """
    n = gas_density_untruncated(params, centres_kpc, smooth_max_dex)
    return n * volume_fraction_inside(faces_kpc, params.Rmax_kpc, xp=jnp)
