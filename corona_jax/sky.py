"""Milky Way corona seen from the Sun: lines of sight, sky averages, dipole, HEALPix (docs/physics.md sec. 4).

The model is spherically symmetric, so the sky depends only on the angle psi from
the Galactic centre (cos psi = cos l cos b). A ray from the Sun (at d = R_sun from
the centre) in direction mu = cos psi is at r(s)^2 = d^2 + s^2 - 2 d s mu. The
emissivity is constant in each finite-volume cell (a spherical shell), so

    I(E, psi) = (1/4 pi) sum_k q(E, r_k) P_k(E, psi),
    P_k = int_{ray in shell k} exp(-s / lambda(E)) ds,

with P_k from the exact chord of the ray through the shell (no radial sampling).
I(E, psi) is given on a uniform grid in psi from 0 to pi. The sky mean
and the dipole are linear in q too: their shell weights <P_k> and <mu P_k> are
averaged once over many directions (SKY_AVERAGE_DIRECTIONS), because the chords
have kinks in mu (rays tangent to shells inside R_sun) that a few nodes resolve badly.
"""

import math
import jax.numpy as jnp
import numpy as np

from .errors import ConfigError, install_hint
from .units import KPC_CM

SKY_AVERAGE_DIRECTIONS = 1024  # Gauss-Legendre nodes in mu for <P_k> and <mu P_k>


def psi_grid_rad(n_psi: int) -> np.ndarray:
    """n_psi directions uniform in psi from the centre (0) to the anticentre (pi)."""
    return np.linspace(0.0, math.pi, n_psi)


def ball_path_integral_kpc(R_kpc, d_kpc, mu, kappa_per_kpc):
    """int exp(-kappa s) ds over the part of the ray (from distance d, direction mu) inside r < R.

    Broadcasts over all arguments; kappa = 0 gives the chord length [kpc].
    """
    R, mu, kappa = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (R_kpc, mu, kappa_per_kpc)))
    b2 = d_kpc**2 * (1.0 - mu**2)  # squared impact parameter
    h = np.sqrt(np.clip(R**2 - b2, 0.0, None))
    s_lo = np.clip(d_kpc * mu - h, 0.0, None)
    s_hi = np.clip(d_kpc * mu + h, 0.0, None)
    length = s_hi - s_lo
    safe = np.where(kappa > 0, kappa, 1.0)
    absorbed = np.exp(-safe * s_lo) * -np.expm1(-safe * length) / safe
    return np.where(R**2 > b2, np.where(kappa > 0, absorbed, length), 0.0)


def shell_path_matrix_kpc(faces_kpc, d_kpc, mu, kappa_per_kpc):
    """P[psi, E, k]: the absorbed path length of each ray through each shell k [kpc].

    faces_kpc (N_r+1,), mu (N_psi,), kappa_per_kpc (N_E,) -> (N_psi, N_E, N_r).
    """
    A = ball_path_integral_kpc(
        faces_kpc[None, None, :], d_kpc, mu[:, None, None], np.asarray(kappa_per_kpc)[None, :, None]
    )
    return np.diff(A, axis=-1)


def intensity(path_matrix_kpc, q_per_GeV_cm3_s):
    """I(psi, E) [GeV^-1 cm^-2 s^-1 sr^-1] from q (N_E, N_r) and P (N_psi, N_E, N_r) or (N_psi, N_r)."""
    if path_matrix_kpc.ndim == 2:
        los = jnp.einsum("pk,ek->pe", path_matrix_kpc, q_per_GeV_cm3_s)
    else:
        los = jnp.einsum("pek,ek->pe", path_matrix_kpc, q_per_GeV_cm3_s)
    return (KPC_CM / (4.0 * math.pi)) * los


def sky_average_matrices_kpc(faces_kpc, d_kpc, kappa_per_kpc, n_mu=SKY_AVERAGE_DIRECTIONS, chunk=64):
    """(<P_k>, <mu P_k>) over the sky [kpc], each (N_E, N_r): <f> = (1/2) int f dmu."""
    x, w = np.polynomial.legendre.leggauss(n_mu)
    kappa = np.asarray(kappa_per_kpc, dtype=float)
    mean = np.zeros((kappa.size, faces_kpc.size - 1))
    first = np.zeros_like(mean)
    for start in range(0, n_mu, chunk):
        mu, weight = x[start : start + chunk], 0.5 * w[start : start + chunk]
        P = shell_path_matrix_kpc(faces_kpc, d_kpc, mu, kappa)
        mean += np.einsum("p,pek->ek", weight, P)
        first += np.einsum("p,pek->ek", weight * mu, P)
    return mean, first


def sky_average(average_matrix_kpc, q_per_GeV_cm3_s):
    """Sky average of I (or of I cos psi) per energy, from a sky_average_matrices_kpc matrix."""
    return (KPC_CM / (4.0 * math.pi)) * jnp.sum(jnp.broadcast_to(average_matrix_kpc, q_per_GeV_cm3_s.shape) * q_per_GeV_cm3_s, axis=-1)


def dipole_amplitude(mean, first_moment):
    """3 <I cos psi> / <I> per energy (0 where the sky is dark); > 0 points to the centre."""
    return jnp.where(mean > 0, 3.0 * first_moment / jnp.where(mean > 0, mean, 1.0), 0.0)


def galactic_psi_rad(l_deg, b_deg):
    """Angle from the Galactic centre of Galactic coordinates (l, b) [deg]."""
    l, b = np.radians(l_deg), np.radians(b_deg)
    return np.arccos(np.clip(np.cos(l) * np.cos(b), -1.0, 1.0))


def intensity_at_psi(I_psi, psi_rad, psi_query_rad):
    """I at any psi, interpolated in ln I between the direction nodes (numpy)."""
    log_I = np.log(np.maximum(I_psi, 1e-300))
    return np.exp(np.interp(psi_query_rad, psi_rad, log_I))


def healpix_map(I_psi, psi_rad, nside):
    """HEALPix map (RING order, Galactic coordinates) of an intensity given on psi nodes."""
    try:
        import healpy
    except ImportError:
        raise ConfigError(f"HEALPix maps need healpy: {install_hint('sky')}") from None
    if not (isinstance(nside, int) and nside > 0 and nside & (nside - 1) == 0):
        raise ConfigError(f"HEALPix nside must be a positive power of 2, got {nside!r}")
    l_deg, b_deg = healpy.pix2ang(nside, np.arange(healpy.nside2npix(nside)), lonlat=True)
    return intensity_at_psi(np.asarray(I_psi), psi_rad, galactic_psi_rad(l_deg, b_deg))


def _psi_node_weights(psi_rad, psi_query_rad, weight):
    """w (N_psi,) with sum_i w_i I(psi_i) = sum_j weight_j I(psi_query_j), I linear in psi between
    the nodes psi_rad (numpy)."""
    psi = np.asarray(psi_rad, dtype=float)
    position = np.interp(np.ravel(psi_query_rad), psi, np.arange(psi.size))
    lower = np.clip(np.floor(position).astype(int), 0, psi.size - 2)
    frac = position - lower
    weight = np.ravel(weight)
    return np.bincount(lower, weight * (1 - frac), psi.size) + np.bincount(lower + 1, weight * frac, psi.size)


def region_average_weights(psi_rad, l_range_deg, b_max_deg, n_l=720, n_b=64):
    """w (N_psi,) with sum_i w_i I(psi_i) = the solid-angle average of I over the region
    l_min < l < l_max, |b| < b_max (Galactic coordinates, degrees; l_max may exceed 180), I linear
    in psi between the direction nodes psi_rad (uniform, as psi_grid_rad). Midpoint rule in l,
    Gauss-Legendre in sin b (numpy)."""
    l_lo, l_hi = np.radians(l_range_deg)
    l = l_lo + (np.arange(n_l) + 0.5) * (l_hi - l_lo) / n_l
    x, w_b = np.polynomial.legendre.leggauss(n_b)
    sin_b = np.sin(np.radians(b_max_deg)) * x  # uniform in sin b = uniform in solid angle
    cos_psi = np.cos(l)[:, None] * np.sqrt(1.0 - sin_b**2)[None, :]
    weight = np.broadcast_to(w_b[None, :], cos_psi.shape)
    out = _psi_node_weights(psi_rad, np.arccos(np.clip(cos_psi, -1.0, 1.0)), weight)
    return out / out.sum()


# The Galactic frame in ICRS (J2000) coordinates: the north Galactic pole and the Galactic longitude
# of the north celestial pole (ESA 1997, The Hipparcos and Tycho Catalogues, Vol. 1, sec. 1.5.3)
NGP_RA_DEG, NGP_DEC_DEG, NCP_L_DEG = 192.85948, 27.12825, 122.93192


def equatorial_to_galactic(ra_deg, dec_deg):
    """(l, b) [deg] of equatorial (ICRS) directions (ra, dec) [deg] (numpy; l in [0, 360))."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    ra_p, dec_p = np.radians(NGP_RA_DEG), np.radians(NGP_DEC_DEG)
    sin_b = np.sin(dec) * np.sin(dec_p) + np.cos(dec) * np.cos(dec_p) * np.cos(ra - ra_p)
    y = np.cos(dec) * np.sin(ra - ra_p)  # cos b sin(l_NCP - l)
    x = np.sin(dec) * np.cos(dec_p) - np.cos(dec) * np.sin(dec_p) * np.cos(ra - ra_p)  # cos b cos(l_NCP - l)
    l_deg = np.mod(NCP_L_DEG - np.degrees(np.arctan2(y, x)), 360.0)
    return l_deg, np.degrees(np.arcsin(np.clip(sin_b, -1.0, 1.0)))


def plane_template_weights(psi_rad, b_max_deg, scrambled=True, n_ra=1440, n_dec=720):
    """w (N_psi,) [sr] with sum_i w_i I(psi_i) = the flux that a template fit of the Galactic plane
    |b| < b_max (a uniform template T) attributes to a sky I(psi): the template's flux Omega_T times
    its fitted intensity <T', I> / <T', T'> (solid-angle products over the sky). Without scrambling
    T' = T and this is the flux of I inside the plane; with it (scrambled=True) T' = T - <T>_RA, the
    template less its mean over right ascension at each declination, as in a likelihood whose
    background comes from data scrambled in right ascension: a sky that does not depend on right
    ascension (an isotropic one) gives 0. Equal weight per solid angle (the detector's acceptance
    and angular resolution are left out). Midpoint rule in right ascension, Gauss-Legendre in
    sin(dec) (numpy)."""
    ra = (np.arange(n_ra) + 0.5) * 360.0 / n_ra
    x, w_dec = np.polynomial.legendre.leggauss(n_dec)
    dec = np.degrees(np.arcsin(x))
    solid_angle = np.broadcast_to((2.0 * np.pi / n_ra) * w_dec[:, None], (n_dec, n_ra))
    l_deg, b_deg = equatorial_to_galactic(ra[None, :], dec[:, None])
    template = (np.abs(b_deg) < b_max_deg).astype(float)
    template_flux_sr = np.sum(solid_angle * template)
    if scrambled:
        template = template - template.mean(axis=1, keepdims=True)
    weight = solid_angle * template * template_flux_sr / np.sum(solid_angle * template**2)
    return _psi_node_weights(psi_rad, galactic_psi_rad(l_deg, b_deg), weight)
