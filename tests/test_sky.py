"""Lines of sight, sky averages, dipole and CMB absorption against closed forms
(docs/physics.md sec. 4 checks)."""

import math

import numpy as np
import pytest

from corona_jax import sky
from corona_jax.absorption import breit_wheeler_cm2, cmb_absorption_per_kpc, cmb_attenuation_length_kpc
from corona_jax.units import ELECTRON_MASS_GEV, HBAR_C_GEV_CM, K_BOLTZMANN_GEV_K, KPC_CM, SIGMA_THOMSON_CM2, T_CMB_K

FACES = np.concatenate([np.linspace(0.0, 5.0, 13), np.geomspace(5.0, 3.0e4, 115)[1:]])
D_SUN = 8.5


def _ball_intensity(R, d, mu, kappa=0.0):
    """(1/4pi) int q ds for q = 1 in r < R, by summing the shells inside R."""
    inside = FACES <= R
    q = np.where(inside[1:], 1.0, 0.0)
    P = sky.shell_path_matrix_kpc(FACES, d, mu, np.atleast_1d(kappa))[:, 0, :]
    return np.asarray(sky.intensity(P, q[None, :]))[:, 0] * 4 * math.pi / KPC_CM


def test_uniform_ball_seen_from_inside():
    R = FACES[FACES > 100][0]
    mu = np.linspace(-1, 1, 41)
    chord = D_SUN * mu + np.sqrt(R**2 - D_SUN**2 * (1 - mu**2))
    np.testing.assert_allclose(_ball_intensity(R, D_SUN, mu), chord, rtol=1e-12)
    lam = 37.0  # with absorption: lambda (1 - exp(-L / lambda))
    np.testing.assert_allclose(_ball_intensity(R, D_SUN, mu, 1 / lam), lam * -np.expm1(-chord / lam), rtol=1e-12)


def test_uniform_ball_seen_from_outside():
    R = FACES[FACES < 5][-1]
    mu = np.linspace(-1, 1, 201)
    b2 = D_SUN**2 * (1 - mu**2)
    chord = np.where((mu > 0) & (b2 < R**2), 2 * np.sqrt(np.clip(R**2 - b2, 0, None)), 0.0)
    np.testing.assert_allclose(_ball_intensity(R, D_SUN, mu), chord, rtol=1e-12, atol=1e-12)


def _radial_identity_mean(q_shells, d):
    """<I> = (1/4pi) int q(r) (r / 2d) ln((r+d)/|r-d|) dr for shell-constant q (exact)."""
    r = FACES
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(r == d, 0.0, (r**2 - d**2) / 2 * np.log((r + d) / np.abs(r - d)))
    F = (log_term + d * r) / (2 * d)
    return np.sum(q_shells * np.diff(F)) / (4 * math.pi)


@pytest.mark.parametrize("kappa", [0.0, 1.0 / 50.0])
def test_sky_averages_converge_in_the_number_of_directions(kappa):
    # 1024 directions against 4096, for a corona-like emissivity: mean and dipole moment
    # (single thin shells just inside R_sun converge slowest, to 0.2-0.5 %; they weigh little)
    centres = 0.5 * (FACES[1:] + FACES[:-1])
    q = ((1 + (centres / 3) ** 2) ** -1.25 * (centres < 250))[None, :]
    a = sky.sky_average_matrices_kpc(FACES, D_SUN, [kappa])
    b = sky.sky_average_matrices_kpc(FACES, D_SUN, [kappa], n_mu=4096)
    for x, y in zip(a, b):
        assert float(sky.sky_average(x, q)[0]) == pytest.approx(float(sky.sky_average(y, q)[0]), rel=5e-5)


@pytest.mark.parametrize("d", [D_SUN, 0.3, 300.0])
def test_sky_mean_matches_the_radial_identity(d):
    # int I dOmega = (1/4pi) int q dV / s^2: the angular average against the exact
    # radial integral, for a corona-like q ~ r^-2.5 cut at 250 kpc, observer inside and outside
    centres = 0.5 * (FACES[1:] + FACES[:-1])
    q = (1 + (centres / 3) ** 2) ** -1.25 * (centres < 250)
    mean, _ = sky.sky_average_matrices_kpc(FACES, d, [0.0])
    got = float(sky.sky_average(mean, q[None, :])[0]) / KPC_CM
    assert got == pytest.approx(_radial_identity_mean(q, d), rel=1e-4)


def test_observer_at_centre_sees_int_q_dr():
    centres = 0.5 * (FACES[1:] + FACES[:-1])
    q = np.exp(-centres / 30.0)
    mu = np.cos(sky.psi_grid_rad(9))
    P = sky.shell_path_matrix_kpc(FACES, 0.0, mu, np.zeros(1))[:, 0, :]
    I = np.asarray(sky.intensity(P, q[None, :]))[:, 0] / KPC_CM
    np.testing.assert_allclose(I, np.sum(q * np.diff(FACES)) / (4 * math.pi), rtol=1e-12)


def test_dipole_of_a_uniform_ball_and_its_direction():
    # inside a uniform ball: I ~ d mu + sqrt(a^2 + d^2 mu^2), a^2 = R^2 - d^2, so
    # 3 <I mu> / <I> = d / <I>, <I> = [sqrt(a^2 + d^2) + (a^2 / d) asinh(d / a)] / 2
    R = FACES[FACES > 100][0]
    a = math.sqrt(R**2 - D_SUN**2)
    expected_mean = 0.5 * (math.sqrt(a**2 + D_SUN**2) + a**2 / D_SUN * math.asinh(D_SUN / a))
    q = np.where(FACES[1:] <= R, 1.0, 0.0)[None, :]
    mean_matrix, first_matrix = sky.sky_average_matrices_kpc(FACES, D_SUN, [0.0])
    mean = sky.sky_average(mean_matrix, q) * 4 * math.pi / KPC_CM
    dipole = float(sky.dipole_amplitude(mean, sky.sky_average(first_matrix, q) * 4 * math.pi / KPC_CM)[0])
    assert float(mean[0]) == pytest.approx(expected_mean, rel=1e-10)
    assert dipole == pytest.approx(D_SUN / expected_mean, rel=1e-10)
    assert 0 < dipole <= 3
    assert float(sky.dipole_amplitude(np.zeros(1), np.zeros(1))[0]) == 0.0


def test_cmb_attenuation_length_minimum():
    E = np.geomspace(3e5, 2e7, 400)
    lam = cmb_attenuation_length_kpc(E)
    k = int(np.argmin(lam))
    assert lam[k] == pytest.approx(7.1, abs=0.1)  # docs/physics.md: ~7.1 kpc
    assert E[k] == pytest.approx(2.2e6, rel=0.05)  # near 2.2 PeV
    assert np.isinf(cmb_attenuation_length_kpc(1.0e3))  # far below threshold: transparent


def test_cmb_absorption_against_direct_double_integral():
    # 1/lambda = int d eps n(eps) int dmu (1 - mu)/2 sigma(s = 2 E eps (1 - mu)), the
    # definition, without the Phi(y) reduction used in the module
    integrate = pytest.importorskip("scipy.integrate")
    kT = K_BOLTZMANN_GEV_K * T_CMB_K
    for E in (3.0e5, 2.2e6, 1.0e8):
        def inner(x):
            eps = x * kT
            n = eps**2 / (math.pi**2 * HBAR_C_GEV_CM**3) / math.expm1(x) * kT  # per unit x
            mu_max = 1 - 2 * ELECTRON_MASS_GEV**2 / (E * eps)
            if mu_max <= -1:
                return 0.0
            f = lambda m: 0.5 * (1 - m) * float(breit_wheeler_cm2(E * eps * (1 - m) / (2 * ELECTRON_MASS_GEV**2)))
            return n * integrate.quad(f, -1.0, mu_max, epsabs=0, epsrel=1e-9, limit=200)[0]

        x_th = ELECTRON_MASS_GEV**2 / (E * kT)
        direct = integrate.quad(inner, x_th, 60.0, epsabs=0, epsrel=1e-8, limit=400)[0] * KPC_CM
        assert float(cmb_absorption_per_kpc(E)) == pytest.approx(direct, rel=2e-4)


def test_breit_wheeler_peak():
    # the cross section peaks at ~0.26 sigma_T near s0 ~ 2 (Gould & Schreder 1967)
    s0 = np.linspace(1.0, 10.0, 9001)
    sigma = breit_wheeler_cm2(s0)
    assert sigma[0] == 0.0
    assert 0.24 < sigma.max() / SIGMA_THOMSON_CM2 < 0.27
    assert 1.8 < s0[np.argmax(sigma)] < 2.2


def test_healpix_without_healpy_says_what_to_install(monkeypatch):
    import sys

    from corona_jax.errors import ConfigError

    monkeypatch.setitem(sys.modules, "healpy", None)  # import healpy now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "\.\[sky\]" in the repository'):
        sky.healpix_map(np.ones(3), np.linspace(0, math.pi, 3), 8)
