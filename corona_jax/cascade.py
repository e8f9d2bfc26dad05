"""Electromagnetic cascades of absorbed gamma rays: a 1-D, energy-only transfer matrix (docs/physics.md sec. 5).

Photons travel from their source redshift to z = 0 on a log energy grid with
PER_DECADE nodes per decade, in redshift steps 1 + z_k = 10^(k / PER_DECADE), so that
redshifting is a shift by one node. In each step:

* photons are absorbed on the EBL and the CMB with probability 1 - exp(-d tau), d tau
  taken from the same optical depths as the absorption-only flux (telescoping to it);
* an absorbed photon of energy E makes an e+ e- pair, each lepton with E / 2 (the
  energy-only approximation);
* each lepton cools at once by inverse Compton scattering on the CMB at T0 (1+z), with
  the full Klein-Nishina kernel of Blumenthal & Gould (1970), Rev. Mod. Phys. 42, 237,
  Eq. (2.48), followed scattering by scattering (the electron loses each photon's energy,
  so losses in the Klein-Nishina regime are catastrophic, not continuous);
* IC photons above the pair threshold are absorbed again within the step.

Assumptions: no magnetic field (no synchrotron, no deflection), IC on the EBL neglected,
leptons cool instantly (true above ~100 GeV, where t_IC < 12 Myr; leptons below 1 GeV
keep their energy, which is counted as lost), cascade photons below 1e-8 GeV are dropped.

Every step is a linear map of photon spectra, and so is the sum over source redshifts
weighted by rho*(z) (trapezoid in ln(1+z); in the first step, where sources just above
z = 0 are absorbed too, the absorbed fraction is integrated exactly: first_step_correction);
`cascade_matrix` returns that sum (observed cascade photons per injected spectrum) on the
model's energy grid, built once and stored in HDF5.
"""

import math
from typing import NamedTuple

import numpy as np
from scipy.linalg import solve_triangular

from . import absorption, cosmology
from .extragalactic import exponential_moments
from .units import ELECTRON_MASS_GEV, K_BOLTZMANN_GEV_K, T_CMB_K

PER_DECADE = 40  # internal energy nodes per decade; sets the redshift step too
E_MIN_GeV = 1.0e-8  # lowest photon energy followed
E_MAX_GeV = 1.0e10
LEPTON_MIN_GeV = 1.0  # leptons below this keep their energy (counted as lost)
_BB_NODES, _BB_WEIGHTS = np.polynomial.legendre.leggauss(48)


class CascadeGrid(NamedTuple):
    E_GeV: np.ndarray  # internal photon/lepton nodes
    width_GeV: np.ndarray  # bin widths E ln(10)/PER_DECADE
    z: np.ndarray  # step redshifts: 1 + z_k = 10^(k / PER_DECADE), k = 0..K


def cascade_grid(z_max: float) -> CascadeGrid:
    n = int(round(math.log10(E_MAX_GeV / E_MIN_GeV) * PER_DECADE)) + 1
    E = E_MIN_GeV * 10.0 ** (np.arange(n) / PER_DECADE)
    K = int(math.ceil(math.log10(1 + z_max) * PER_DECADE - 1e-9))
    z = 10.0 ** (np.arange(K + 1) / PER_DECADE) - 1
    return CascadeGrid(E, E * math.log(10.0) / PER_DECADE, z)


def ic_spectrum_shape(E_e_GeV, eps1_GeV, T_K):
    """dN/(dt d eps1) of an electron of energy E_e on a blackbody at T, up to a constant.

    Blumenthal & Gould (1970) Eq. (2.48) averaged over the Planck spectrum (Gauss-Legendre
    in ln of the target-photon energy, 1e-4 to 40 kT). Shape (N_e, N_1).
    """
    kT = K_BOLTZMANN_GEV_K * T_K
    gamma = np.asarray(E_e_GeV, dtype=float)[:, None, None] / ELECTRON_MASS_GEV
    lo, hi = math.log(1e-4), math.log(40.0)
    x = np.exp(0.5 * (hi - lo) * (_BB_NODES + 1) + lo)[None, None, :]  # eps / kT
    w = (0.5 * (hi - lo) * _BB_WEIGHTS)[None, None, :]
    eps = x * kT
    E1 = np.asarray(eps1_GeV, dtype=float)[None, :, None] / (gamma * ELECTRON_MASS_GEV)
    Gam = 4.0 * eps * gamma / ELECTRON_MASS_GEV
    with np.errstate(divide="ignore", invalid="ignore"):
        q = E1 / (Gam * (1.0 - E1))
        F = 2 * q * np.log(q) + (1 + 2 * q) * (1 - q) + 0.5 * (Gam * q) ** 2 * (1 - q) / (1 + Gam * q)
    allowed = (E1 < 1.0) & (q >= 1.0 / (4.0 * gamma**2)) & (q <= 1.0)
    F = np.where(allowed, F, 0.0)
    # n(eps) d eps / eps with n ~ eps^2 / (e^x - 1):  x^2/(e^x-1) dx/x * 1/x -> d ln x * x / (e^x - 1)
    return np.sum(w * x / np.expm1(x) * F, axis=-1) / gamma[:, :, 0]


def _energy_split(E_GeV, target_GeV):
    """Lower node index and its weight for energy-conserving placement of target between nodes."""
    m = np.searchsorted(E_GeV, target_GeV, side="right") - 1
    m_hi = np.minimum(m + 1, E_GeV.size - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        w_lo = np.where(m_hi > m, (E_GeV[m_hi] - target_GeV) / (E_GeV[m_hi] - E_GeV[np.maximum(m, 0)]), 1.0)
    return m, w_lo


def lepton_cooling_matrix(grid: CascadeGrid, T_K):
    """Y[e, i]: IC photons per bin i made by one lepton at node e cooling completely (N, N)."""
    E = grid.E_GeV
    N = E.size
    first = int(np.searchsorted(E, LEPTON_MIN_GeV * (1 - 1e-12)))
    rates = ic_spectrum_shape(E[first:], E, T_K) * grid.width_GeV[None, :]
    Y = np.zeros((N, N))
    for e in range(first, N):
        p = rates[e - first]
        p = np.where(E < E[e], p, 0.0)
        total = p.sum()
        if total <= 0:
            continue
        p = p / total
        photons = p.copy()
        m, w_lo = _energy_split(E, E[e] - E)  # the lepton after emitting a photon at node i
        landing = np.zeros(N)
        ok = (p > 0) & (m >= first)  # leptons landing below LEPTON_MIN keep their energy
        np.add.at(landing, m[ok], p[ok] * w_lo[ok])
        np.add.at(landing, np.minimum(m[ok] + 1, N - 1), p[ok] * (1 - w_lo[ok]))
        stay = landing[e]
        landing[e] = 0.0
        Y[e] = (photons + landing[:e] @ Y[:e]) / (1.0 - stay)
    return Y


def pair_matrix(grid: CascadeGrid, Y):
    """K[:, m]: cascade photons from one absorbed photon at node m (two leptons of E/2 each)."""
    E = grid.E_GeV
    m, w_lo = _energy_split(E, 0.5 * E)
    ok = m >= 0
    K = np.zeros((E.size, E.size))
    K[:, ok] = 2.0 * (w_lo[ok] * Y[m[ok]].T + (1 - w_lo[ok]) * Y[np.minimum(m[ok] + 1, E.size - 1)].T)
    return K


def step_matrices(grid: CascadeGrid, k, tau_observed, T0_K=T_CMB_K):
    """Maps of photons per bin at z_k to photons per bin at z_{k-1}: (with cascade, absorption only).

    tau_observed(E0, z): total optical depth (EBL + CMB) for a photon observed at E0 [GeV].
    """
    E = grid.E_GeV
    N = E.size
    E0 = E / (1 + grid.z[k])  # node m at z_k is observed at node m - k
    d_tau = np.maximum(tau_observed(E0, grid.z[k]) - tau_observed(E0, grid.z[k - 1]), 0.0)
    absorbed = -np.expm1(-d_tau)
    absorbed_half = -np.expm1(-0.5 * d_tau)  # for cascade photons born inside the step
    K = pair_matrix(grid, lepton_cooling_matrix(grid, T0_K * (1 + grid.z[k])))
    # cascade photons g = K (a in) + K (a_h g): K[i, m] != 0 only for E_i < E_m, so I - K a_h is
    # unit upper triangular
    G = solve_triangular(np.eye(N) - K * absorbed_half[None, :], K * absorbed[None, :], lower=False,
                         unit_diagonal=True)
    survive = np.diag(1.0 - absorbed)
    with_cascade = survive + (1.0 - absorbed_half)[:, None] * G
    shift = np.eye(N, k=1)  # node m -> m - 1: redshift by one node
    return shift @ with_cascade, shift @ survive


def injection_matrix(grid: CascadeGrid, E_model_GeV):
    """P (N, N_model): photons per internal bin from dN/dE on the model grid (a subset of nodes);
    E^2 dN/dE is interpolated linearly in ln E between model nodes."""
    E = grid.E_GeV
    idx = np.rint(np.log10(E_model_GeV / E_MIN_GeV) * PER_DECADE).astype(int)
    if not np.allclose(E[idx], E_model_GeV, rtol=1e-9):
        raise ValueError("model energies must lie on the cascade grid")
    P = np.zeros((E.size, E_model_GeV.size))
    for a in range(idx.size - 1):
        lo, hi = idx[a], idx[a + 1]
        for m in range(lo, hi + (a == idx.size - 2)):
            t = (m - lo) / (hi - lo)
            P[m, a] += (1 - t) * E_model_GeV[a] ** 2 / E[m] ** 2 * grid.width_GeV[m]
            if t > 0:
                P[m, a + 1] += t * E_model_GeV[a + 1] ** 2 / E[m] ** 2 * grid.width_GeV[m]
    return P


def observation_matrix(grid: CascadeGrid, E_model_GeV):
    """R (N_model, N): dN/dE at the model nodes from photons per internal bin, rebinned with
    a triangular kernel over the neighbouring model nodes (number conserving)."""
    E = grid.E_GeV
    idx = np.rint(np.log10(E_model_GeV / E_MIN_GeV) * PER_DECADE).astype(int)
    R = np.zeros((E_model_GeV.size, E.size))
    for a in range(idx.size):
        lo = idx[a - 1] if a > 0 else idx[a]
        hi = idx[a + 1] if a < idx.size - 1 else idx[a]
        for m in range(lo, hi + 1):
            span = (idx[a] - lo) if m < idx[a] else (hi - idx[a])
            R[a, m] = 1.0 if span == 0 else 1.0 - abs(m - idx[a]) / span
        width = (E_model_GeV[min(a + 1, idx.size - 1)] - E_model_GeV[max(a - 1, 0)]) / 2
        R[a] /= width if width > 0 else 1.0
    return R


def cascade_matrix(E_model_GeV, cosmo: cosmology.Cosmology, ebl_table, progress=None, stellar_mass_density=None):
    """C (N_model, N_model) [cm^-2 sr^-1]: the observed cascade intensity I_c = C @ L
    [GeV^-1 cm^-2 s^-1 sr^-1] for the Milky Way's spectral luminosity L [GeV^-1 s^-1],
    with every galaxy scaled by stellar mass (the surviving primaries are left to the
    absorption-only integral):

    I_c(E0) dE0 = (c / 4 pi) int dx rho*(z) / (M*_MW H(z)) [T(z) (L dE)](E0),  x = ln(1+z),

    T(z) the cascade transfer from redshift z to today, on the step redshifts (trapezoid in x).
    stellar_mass_density: z -> rho* [M_sun Mpc^-3]; default Madau & Dickinson (2014).
    """
    grid = cascade_grid(cosmo.z_max)
    P = injection_matrix(grid, E_model_GeV)
    R = observation_matrix(grid, E_model_GeV)

    tau = optical_depth(cosmo, ebl_table)
    density = cosmology.galaxy_intensity_weights_cm2_sr(grid.z, 1.0, cosmo, stellar_mass_density)  # per unit x
    factor = density * log_redshift_weights(grid.z, cosmo.z_max)
    first = first_step_correction(grid, density, tau, cosmo.z_max)[:, None] * P
    # Horner: X = f_0 P + M_1 (f_1 P + M_2 (f_2 P + ...)), with and without cascade
    X_full = factor[-1] * P
    X_surv = factor[-1] * P
    for k in range(grid.z.size - 1, 0, -1):
        M_full, M_surv = step_matrices(grid, k, tau)
        extra = first if k == 1 else 0.0  # cancels in X_full - X_surv except for its cascade
        X_full = factor[k - 1] * P + M_full @ (X_full + extra)
        X_surv = factor[k - 1] * P + M_surv @ (X_surv + extra)
        if progress is not None:
            progress(grid.z.size - k, grid.z.size - 1)
    return R @ (X_full - X_surv)


def optical_depth(cosmo, ebl_table):
    """tau(E0, z) = tau_EBL + tau_CMB for observed energies E0 (N,) and one redshift z -> (N,)."""

    def tau(E0, z):
        return (absorption.tau_ebl(E0, z, ebl_table) + absorption.tau_cmb(E0, z, cosmo))[:, 0]

    return tau


def propagate(grid: CascadeGrid, k_source, photons_per_bin, tau):
    """Photons per bin at z = 0 from photons per bin injected at z_{k_source}: (with cascade, absorbed only)."""
    full = surv = np.asarray(photons_per_bin, dtype=float)
    for k in range(k_source, 0, -1):
        M_full, M_surv = step_matrices(grid, k, tau)
        full, surv = M_full @ full, M_surv @ surv
    return full, surv


def first_step_correction(grid: CascadeGrid, density, tau, z_max):
    """What the cascade from sources at 0 < z < z_1 adds to the trapezoid weight of node 1,
    per internal node (N,) [the unit of density].

    The trapezoid rule weighs the first step by its ends, and a source at z = 0 makes no
    cascade; but where the step is optically thick, sources just above z = 0 are absorbed too,
    and the rule misses half of the step. Here the cascade of a source at x = ln(1+z) is that
    of a source at z_1 times (1 - e^-tau(x)) / (1 - e^-tau(x_1)), tau linear in x over the step,
    and int [density_0 (1 - t) + density_1 t] (1 - e^-tau) h dt, t = x / h, is done exactly
    (up to x_max = ln(1+z_max) if the grid's first step passes it).
    """
    h = math.log1p(grid.z[1])
    T = min(1.0, math.log1p(z_max) / h)
    E0 = grid.E_GeV / (1 + grid.z[1])
    d = np.maximum(tau(E0, grid.z[1]) - tau(E0, 0.0), 0.0)
    a, b = exponential_moments(d * T)
    absorbed_until_T = T * (1 - a - b)  # int_0^T (1 - e^-d t) dt
    node1 = T**2 * (0.5 - b)  # int_0^T t (1 - e^-d t) dt
    node0 = absorbed_until_T - node1
    p = -np.expm1(-d)  # absorbed fraction over the step, as in step_matrices
    weighted = h * (density[0] * node0 + density[1] * node1)
    per_absorbed = np.divide(weighted, p, out=np.zeros_like(p), where=p > 0)
    return per_absorbed - density[1] * h * T**2 / 2


def log_redshift_weights(z_nodes, z_max):
    """Trapezoid weights w_k for int_0^{ln(1+z_max)} f dx = sum w_k f(z_k), x = ln(1+z).

    The nodes may run past z_max: the last interval is integrated only up to z_max, with f
    interpolated linearly in x there.
    """
    x = np.log1p(z_nodes)
    x_max = math.log1p(z_max)
    w = np.zeros_like(x)
    for k in range(x.size - 1):
        a, b = x[k], min(x[k + 1], x_max)
        if b <= a:
            break
        h, t = x[k + 1] - x[k], (b - a) / (x[k + 1] - x[k])
        w[k] += h * (t - 0.5 * t * t)
        w[k + 1] += h * 0.5 * t * t
    return w
