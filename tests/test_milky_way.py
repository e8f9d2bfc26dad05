"""The composed Milky Way model: structure of the sky, gradients against finite
differences, refinement (docs/physics.md sec. 3-4 checks)."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from corona_jax import forward, gas, grids, milky_way, params, sky, transport
from corona_jax.model import build_model
from corona_jax.units import KPC_CM

BASELINE = params.preset("baseline")


@pytest.fixture(scope="module")
def baseline_sky(coarse_forward_model):
    return jax.jit(forward.forward)(BASELINE, coarse_forward_model)


def test_dipole_points_to_the_centre(baseline_sky, coarse_forward_model):
    mw = baseline_sky.milky_way
    bright = np.asarray(mw.sky_mean_gamma) > 0
    for dip in (np.asarray(mw.dipole_gamma)[bright], np.asarray(mw.dipole_nu)[bright]):
        assert np.all((dip > 0) & (dip <= 3))
    # brightest towards the centre, faintest at the anticentre, monotonic in psi
    I = np.asarray(mw.nu_all_flavour)[:, bright]
    assert np.all(np.diff(I, axis=0) <= 0)


def test_neutrinos_are_not_absorbed_and_photons_are(coarse_forward_model):
    m = coarse_forward_model
    E = np.asarray(m.milky_way.E_secondary_GeV)
    low = E < 1.0e4  # CMB transparent: gamma paths equal the plain chords
    np.testing.assert_array_equal(np.asarray(m.milky_way.path_gamma_kpc)[:, low, :],
                                  np.broadcast_to(np.asarray(m.milky_way.path_nu_kpc)[:, None, :], (m.milky_way.psi_rad.size, low.sum(), m.milky_way.path_nu_kpc.shape[1])))
    pev = np.argmin(np.abs(E - 2.2e6))
    # towards the anticentre (~240 kpc of gas) at 2 PeV only a few per cent get through
    ratio = np.asarray(m.milky_way.path_gamma_kpc)[-1, pev].sum() / np.asarray(m.milky_way.path_nu_kpc)[-1].sum()
    assert ratio < 0.1


def test_linear_in_luminosity(coarse_forward_model):
    f = jax.jit(forward.forward)
    base = f(BASELINE, coarse_forward_model).milky_way.sky_mean_nu_all_flavour
    brighter = f(BASELINE._replace(log10_LCR_erg_s=BASELINE.log10_LCR_erg_s + 1), coarse_forward_model)
    np.testing.assert_allclose(brighter.milky_way.sky_mean_nu_all_flavour, 10 * base, rtol=1e-10)


def test_sky_mean_of_the_model_matches_the_radial_identity(baseline_sky, coarse_forward_model):
    # the corona's own neutrino emissivity: (1/4pi) int q dV / s^2 done radially, exactly
    m = coarse_forward_model
    faces = np.asarray(m.transport.faces_kpc)
    d = 8.5
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(faces == d, 0.0, (faces**2 - d**2) / 2 * np.log((faces + d) / np.abs(faces - d)))
    weights = np.diff((log_term + d * faces) / (2 * d)) * KPC_CM / (4 * np.pi)
    tm = m.transport
    n = np.asarray(gas.gas_density_cells(BASELINE, tm.faces_kpc, tm.centres_kpc))
    G = transport.unit_spectrum_density(BASELINE, tm)
    j = milky_way.proton_density_on_table_grid(BASELINE, m.milky_way, tm, G)
    q = n[None, :] * (np.asarray(m.milky_way.emission_nu_all[0]) @ np.asarray(j))
    expected = q @ weights
    got = np.asarray(baseline_sky.milky_way.sky_mean_nu_all_flavour)
    ok = expected > 0
    np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-4)


def _icecube_band_log_flux(p, model):
    """ln of the sky-mean per-flavour neutrino energy flux over 100 TeV - 1 PeV."""
    mw = forward.forward(p, model).milky_way
    E = model.milky_way.E_secondary_GeV
    band = (E >= 1.0e5) & (E <= 1.0e6)
    return jnp.log(jnp.sum(jnp.where(band, E * mw.sky_mean_nu_all_flavour, 0.0)) / 3)


def test_gradient_of_icecube_band_flux_matches_finite_differences(coarse_forward_model):
    m = coarse_forward_model
    # the history's kinks off the time nodes (central differences straddle a kink otherwise)
    p = jax.tree.map(jnp.asarray, BASELINE._replace(history_peak=2.5, history_shift_Gyr=0.1))
    f = jax.jit(_icecube_band_log_flux)
    value, grad = jax.value_and_grad(_icecube_band_log_flux)(p, m)
    for name in params.CoronaParams._fields:
        x = float(getattr(p, name))
        h = 1e-4 * (abs(x) or 1.0)
        up = f(p._replace(**{name: x + h}), m)
        down = f(p._replace(**{name: x - h}), m)
        fd = float(up - down) / (2 * h)
        g = float(getattr(grad, name))
        assert g == pytest.approx(fd, rel=2e-4, abs=1e-7), name
    assert np.isfinite(float(value))


@pytest.mark.slow
def test_milky_way_converges_under_refinement():
    # sky mean and anticentre at 1, 1e3, 1e5 GeV: default against 2x radial/time/angle
    res = grids.resolution("default")
    results = []
    for r in (res, res.refined(2)):
        m = build_model(resolution=r)
        results.append(jax.jit(forward.forward)(BASELINE, m).milky_way)
    E = np.asarray(build_model(resolution=res).milky_way.E_secondary_GeV)
    idx = [int(np.argmin(np.abs(E - e))) for e in (1.0, 1.0e3, 1.0e5)]
    for field in ("sky_mean_gamma", "anticentre_gamma", "sky_mean_nu_all_flavour", "dipole_nu"):
        a, b = (np.asarray(getattr(mw, field))[idx] for mw in results)
        np.testing.assert_allclose(a, b, rtol=0.01, err_msg=field)


def test_healpix_map(baseline_sky, coarse_forward_model):
    healpy = pytest.importorskip("healpy")
    m = coarse_forward_model
    I = np.asarray(baseline_sky.milky_way.gamma)[:, 20]
    psi = np.asarray(m.milky_way.psi_rad)
    hmap = sky.healpix_map(I, psi, 32)
    assert hmap.size == healpy.nside2npix(32)
    assert hmap[healpy.ang2pix(32, 0.0, 0.0, lonlat=True)] == pytest.approx(I[0], rel=0.02)
    assert hmap[healpy.ang2pix(32, 180.0, 0.0, lonlat=True)] == pytest.approx(I[-1], rel=0.02)
    assert hmap.mean() == pytest.approx(float(baseline_sky.milky_way.sky_mean_gamma[20]), rel=0.02)
