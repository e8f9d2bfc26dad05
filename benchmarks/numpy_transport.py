"""The honest competitor: the same finite-volume BDF2 discretisation in numpy/scipy.

All energies are stacked in one tridiagonal system (no coupling between energy
blocks), factorised once with LAPACK gttrf per matrix and back-substituted each
step with gttrs. Assembled here from the grids alone, independently of
corona_jax.transport, so agreement also checks the JAX assembly.
"""

import math

import numpy as np
from scipy.linalg import lapack

from corona_jax import grids
from corona_jax.gas import beta_profile
from corona_jax.interactions import sigma_inelastic_mb
from corona_jax.units import C_CM_S, GYR_S, KPC_CM, MB_CM2


def solve_numpy(p, res: grids.Resolution):
    """Unit-spectrum density G(E, r) [Gyr] today, outgoing outer boundary."""
    E = grids.energy_grid(res)
    rg = grids.radial_grid(res)
    t = grids.time_steps(res)
    faces, r, V = rg.faces_kpc, rg.centres_kpc, rg.volumes_kpc3
    D = 10**p.log10_D0_cm2_s * GYR_S / KPC_CM**2 * E ** (1 / 3)
    n = np.maximum(beta_profile(r, p.n0_inner_cm3, p.beta_inner, p.rc_inner_kpc),
                   beta_profile(r, p.n0_outer_cm3, p.beta_outer, p.rc_outer_kpc))
    n = n * np.clip((p.Rmax_kpc**3 - faces[:-1] ** 3) / (faces[1:] ** 3 - faces[:-1] ** 3), 0, 1)
    loss = C_CM_S * MB_CM2 * GYR_S * np.outer(np.asarray(sigma_inelastic_mb(E)), n)  # (N_E, N_r)
    a = faces[1:-1] ** 2 / np.diff(r)  # face couplings
    out_flux = np.zeros_like(r)
    out_flux[-1] = r[-1]  # outgoing: flux D j_N r_N
    k_lo = np.concatenate([[0.0], a]) / V
    k_hi = np.concatenate([a, [0.0]]) / V
    S = np.clip((grids.SOURCE_RADIUS_KPC**3 - faces[:-1] ** 3) / (faces[1:] ** 3 - faces[:-1] ** 3), 0, 1)
    dt = t[0]
    f = np.where(t <= 2.0, 1.0 + t, np.where(t <= 6.0, 3.0, 3.0 - 0.5 * (t - 6.0)))  # Eq. (5)
    NE, NR = len(E), len(r)

    def factor(theta_dt):
        lower = -theta_dt * np.outer(D, k_lo)
        upper = -theta_dt * np.outer(D, k_hi)
        diag = 1 + theta_dt * (np.outer(D, k_lo + k_hi + out_flux / V) + loss)
        dl, d, du = lower.reshape(-1)[1:].copy(), diag.reshape(-1), upper.reshape(-1)[:-1].copy()
        fac = lapack.dgttrf(dl, d, du)
        assert fac[-1] == 0
        return fac[:-1]

    euler, bdf2 = factor(dt), factor(2 * dt / 3)
    src = np.tile(S, NE)
    g, _ = lapack.dgttrs(*euler, dt * f[0] * src)
    g_prev = np.zeros_like(g)
    for fk in f[1:]:
        g_new, _ = lapack.dgttrs(*bdf2, (4 / 3) * g - (1 / 3) * g_prev + (2 / 3) * dt * fk * src)
        g_prev, g = g, g_new
    return g.reshape(NE, NR)


def gradient_by_differences(objective, p, h=1e-5):
    """Central differences of objective(params) in every parameter: 2 x 11 solves."""
    grads = []
    for name, value in p._asdict().items():
        step = h * max(1.0, abs(value))
        up = objective(p._replace(**{name: value + step}))
        down = objective(p._replace(**{name: value - step}))
        grads.append((up - down) / (2 * step))
    return grads


if __name__ == "__main__":
    from corona_jax import params

    G = solve_numpy(params.preset("baseline"), grids.resolution("default"))
    print(G.shape, math.isfinite(G.sum()))
