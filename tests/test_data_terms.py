"""The KM3-230213A term with ARCA's published exposure and the joint flux; the Fermi-LAT IGRB
interpolated between foreground models A, B and C; the IceCube Galactic-plane templates as a bound
on the corona's projection (docs/physics.md, "KM3-230213A"; docs/systematics.md, "Fermi-LAT
foreground models" and "IceCube Galactic-plane templates")."""

import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from corona_jax import forward, observations, sky
from corona_jax.errors import ConfigError, DataError
from corona_jax.inference import config, terms
from corona_jax.params import preset

KM3 = "KM3NeT-KM3-230213A"
JOINT = "KM3NeT-IceCube-Auger-joint"


def _neutrino_prediction(E_GeV, per_flavour_flux):
    """A stand-in Prediction and model whose per-flavour all-sky mean is per_flavour_flux(E)."""
    nu = jnp.asarray(3.0 * per_flavour_flux(E_GeV))
    pred = SimpleNamespace(milky_way=SimpleNamespace(sky_mean_nu_all_flavour=nu),
                           extragalactic=SimpleNamespace(nu_all_flavour=jnp.zeros_like(nu)))
    return pred, SimpleNamespace(milky_way=SimpleNamespace(E_secondary_GeV=jnp.asarray(E_GeV)))


def _expected_events(name, per_flavour_flux):
    term = terms.neutrino_event_terms(name, "measurement", False, None)[0]
    pred, model = _neutrino_prediction(np.geomspace(1e4, 1e12, 1601), per_flavour_flux)
    return float(term.predict(pred, model)[0] / term.value[0]), term


def test_effective_area_loads_the_numbers_in_the_file():
    area = observations.load_effective_area(KM3)
    assert area.E_GeV.size == 60 and area.livetime_s == 335 * 86400
    assert area.E_GeV[0] == 112201.845 and area.area_cm2[0] == 0.0  # first row
    assert area.E_GeV[6] == 446683.592 and area.area_cm2[6] == 45.9646734  # first non-zero row
    assert area.E_GeV[-1] == 89125093800.0 and area.area_cm2[-1] == 35343948.1  # last row
    assert "github.com/KM3NeT/KM3-230213A-data" in area.meta["source"]
    joint = observations.load_neutrino_event(JOINT)
    assert joint.flux_per_GeV_cm2_s_sr[0] * 2.2e8**2 == pytest.approx(7.5e-10, rel=1e-12)
    assert joint.extra["E_lo_GeV"][0] == 7.2e7 and joint.extra["E_hi_GeV"][0] == 2.6e9
    with pytest.raises(DataError, match="no effective area for 'IceCube'"):
        observations.load_effective_area("IceCube")


def test_km3net_quoted_flux_expects_one_event_with_the_published_exposure():
    """KM3NeT's E^-2 flux (5.8e-8 per flavour) is the one that expects one event in ARCA over the
    event's 90 % range: with the paper's rounded range (72 PeV - 2.6 EeV) the term gives 1.005;
    with the notebook's unrounded quantiles the integral gives 1.000."""
    mu, term = _expected_events(KM3, lambda E: 5.8e-8 / E**2)
    assert mu == pytest.approx(1.0, rel=0.01)
    area = observations.load_effective_area(KM3)
    q5, _, q95 = (float(q) for q in area.meta["event_energy_quantiles_GeV"].split("(")[0].split(","))
    nodes, weights = terms.exposure_quadrature(area.E_GeV, area.area_cm2, q5, q95)
    mu_notebook = 4 * math.pi * area.livetime_s * np.sum(weights * 5.8e-8 / np.exp(nodes) ** 2)
    assert mu_notebook == pytest.approx(1.0, abs=1e-3)
    assert float(term.log_likelihood(term.predict(*_neutrino_prediction(
        np.geomspace(1e4, 1e12, 1601), lambda E: 5.8e-8 / E**2)), {})) == pytest.approx(math.log(mu) - mu, rel=1e-9)


@pytest.mark.parametrize("slope", [1.0, 0.5, 1.7])
def test_exposure_quadrature_matches_a_power_law_closed_form(slope):
    """int_{a}^{b} c E^s E^-g dE = c (b^(s-g+1) - a^(s-g+1)) / (s-g+1); a table linear in E is exact
    for s = 1 and converges for other slopes on a fine table."""
    E_table = np.geomspace(1e6, 1e10, 4001 if slope != 1.0 else 11)
    c, g, a, b = 3.0e-3, 2.6, 7.2e7, 2.6e9
    nodes, weights = terms.exposure_quadrature(E_table, c * E_table**slope, a, b)
    k = slope - g + 1.0
    exact = c * (b**k - a**k) / k
    assert np.sum(weights * np.exp(nodes) ** -g) == pytest.approx(exact, rel=1e-12 if slope == 1.0 else 1e-6)
    outside = terms.exposure_quadrature(E_table, c * E_table**slope, 1e10, 1e11)  # zero beyond the table
    assert np.all(outside[1] == 0.0)


def test_exposure_proportional_to_energy_recovers_the_e2_equivalent_average():
    """An exposure A = k E, with k set so that the quoted flux expects one event, gives the same
    expected events as the ln E average of E^2 dN/dE over the quoted E^2 flux, for any spectrum."""
    d = observations.load_neutrino_event(KM3)
    E_table = np.geomspace(1e7, 1e10, 7)
    E_lo, E_hi = d.extra["E_lo_GeV"][0], d.extra["E_hi_GeV"][0]
    k = 1.0 / (5.8e-8 * math.log(E_hi / E_lo))  # 4 pi T int k E 5.8e-8 E^-2 dE = 1
    area = observations.EffectiveArea("linear", E_table, k * E_table / (4 * math.pi), 1.0, "", {})
    with_area, approx = terms.event_flux_weights(d, area), terms.event_flux_weights(d)
    for flux in (lambda E: 1e-20 * (E / 1e8) ** -2.7, lambda E: 1e-22 * (E / 1e8) ** -1.5 * np.exp(-E / 3e8)):
        exact = np.sum(with_area[1] * flux(np.exp(with_area[0])))
        assert exact == pytest.approx(np.sum(approx[1] * flux(np.exp(approx[0]))), rel=1e-8)


def test_joint_flux_is_selectable_and_77_times_tighter():
    text = "[priors]\nalpha = {{ uniform = [2, 3] }}\n[data]\ncosmic_rays = []\nneutrinos = 'none'\ngamma_foreground = 'none'\nneutrino_event = '{}'\n"
    assert config.parse_config(text.format(JOINT)).data["neutrino_event"] == JOINT
    with pytest.raises(ConfigError, match="unknown neutrino event 'KM3NeT-joint'; choose from"):
        config.parse_config(text.format("KM3NeT-joint"))
    flux = lambda E: 2e-9 / E**2  # noqa: E731
    mu_joint, _ = _expected_events(JOINT, flux)
    assert mu_joint == pytest.approx(2e-9 / 7.5e-10, rel=1e-10)  # the E^-2-equivalent average is exact for E^-2
    mu_km3, _ = _expected_events(KM3, flux)
    assert mu_joint / mu_km3 == pytest.approx(5.8e-8 / 7.5e-10, rel=0.01)


# --- Fermi-LAT foreground models A, B, C --------------------------------------------------------

@pytest.fixture(scope="module")
def bands():
    interpolated = terms.gamma_band_terms("interpolated", "measurement", False, None)[0]
    single = {m: terms.gamma_band_terms(m, "measurement", False, None)[0] for m in "ABC"}
    return interpolated, single


def test_interpolation_reproduces_models_a_b_c_at_the_nodes(bands):
    interpolated, single = bands
    for position, m in ((0.0, "A"), (1.0, "B"), (2.0, "C")):
        got = interpolated.at_position(position)
        want = (single[m].value, single[m].err_lo, single[m].err_hi, single[m].fgsyst_lo, single[m].fgsyst_hi)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    assert interpolated.nuisance_priors()[terms.FOREGROUND_SITE].support.upper_bound == 2.0


def test_interpolation_is_continuous_and_linear_between_nodes(bands):
    interpolated, single = bands
    value = lambda t: np.asarray(interpolated.at_position(t)[0])  # noqa: E731
    for node in (1.0,):
        np.testing.assert_allclose(value(node - 1e-9), value(node + 1e-9), rtol=1e-7)
    np.testing.assert_allclose(value(0.25), 0.75 * single["A"].value + 0.25 * single["B"].value, rtol=1e-13)
    np.testing.assert_allclose(value(1.5), 0.5 * single["B"].value + 0.5 * single["C"].value, rtol=1e-13)


def test_interpolated_likelihood_equals_single_models_at_nodes_and_has_finite_gradients(bands):
    interpolated, single = bands
    predicted = 0.5 * jnp.asarray(single["A"].value)
    for mode in ("bound", "measurement"):
        term = terms.gamma_band_terms("interpolated", mode, False, None)[0]
        for position, m in ((0.0, "A"), (1.0, "B"), (2.0, "C")):
            one = terms.gamma_band_terms(m, mode, False, None)[0]
            for eta in (-0.7, 0.0, 1.3):
                nuisances = {"fermi_foreground_eta": eta, terms.FOREGROUND_SITE: position}
                assert float(term.log_likelihood(predicted, nuisances)) == pytest.approx(
                    float(one.log_likelihood(predicted, {"fermi_foreground_eta": eta})), rel=1e-12, abs=1e-12)

    def log_l(t):
        return interpolated.log_likelihood(predicted, {"fermi_foreground_eta": 0.4, terms.FOREGROUND_SITE: t})

    for t in (0.3, 1.2, 1.7):
        grad = float(jax.grad(log_l)(t))
        h = 1e-6
        assert math.isfinite(grad)
        assert grad == pytest.approx(float(log_l(t + h) - log_l(t - h)) / (2 * h), rel=1e-5)
    assert math.isfinite(float(jax.jit(jax.grad(log_l))(1.0)))


def test_interpolated_shares_and_bad_positions(bands):
    interpolated, single = bands
    np.testing.assert_array_equal(np.asarray(interpolated.share_reference()), np.asarray(single["A"].share_reference()))
    np.testing.assert_array_equal(np.asarray(interpolated.share_reference(2.0)), np.asarray(single["C"].share_reference()))
    for bad in (-0.1, 2.5, float("nan")):
        with pytest.raises(ConfigError, match="igrb_foreground_model must lie in"):
            interpolated.at_position(bad)
    text = "[priors]\nalpha = {{ uniform = [2, 3] }}\n[data]\ncosmic_rays = []\nneutrinos = 'none'\ngamma_foreground = '{}'\n"
    assert config.parse_config(text.format("interpolated")).data["gamma_foreground"] == "interpolated"
    with pytest.raises(ConfigError, match="unknown Fermi-LAT foreground model 'D'"):
        config.parse_config(text.format("D"))


def test_interpolated_mock_has_no_foreground(bands):
    interpolated, _ = bands
    mock = interpolated.mocked(np.asarray(interpolated.value), np.random.default_rng(1))
    for t in (0.0, 0.7, 2.0):
        value, _, _, fg_lo, fg_hi = (np.asarray(x) for x in mock.at_position(t))
        np.testing.assert_allclose(value, np.asarray(mock.value), rtol=1e-14)
        assert not fg_lo.any() and not fg_hi.any()


def test_a_sweep_with_the_interpolated_foreground_takes_its_shares_against_model_a():
    """The sweep's derived shares (inference.sweep.Shares) against model A, as a posterior's are."""
    from corona_jax.inference import sweep

    text = "[priors]\nalpha = { uniform = [2, 3] }\n[data]\ncosmic_rays = []\nneutrinos = 'none'\ngamma_foreground = '%s'\n"
    interpolated = sweep.Shares.build(config.parse_config(text % "interpolated"))
    model_a = sweep.Shares.build(config.parse_config(text % "A"))
    np.testing.assert_array_equal(np.asarray(interpolated.igrb.share_reference()), np.asarray(model_a.igrb.share_reference()))


def test_the_removed_weights_name_says_what_replaces_it():
    event = terms.neutrino_event_terms(KM3, "bound", False, None)[0]
    with pytest.raises(AttributeError, match="flux_weights"):
        event.log_E_weights


# --- IceCube Galactic-plane templates -------------------------------------------------------------

GP_TEMPLATES = ("IceCube-GP-2023-KRA5", "IceCube-GP-2023-KRA50", "IceCube-GP-2023-pi0")


def test_equatorial_to_galactic_matches_astropy():
    coordinates = pytest.importorskip("astropy.coordinates")
    import astropy.units as u

    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 2000), np.degrees(np.arcsin(rng.uniform(-1, 1, 2000)))
    want = coordinates.SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").galactic
    l_deg, b_deg = sky.equatorial_to_galactic(ra, dec)
    assert np.max(np.abs(np.mod(l_deg - want.l.deg + 180, 360) - 180) * np.cos(np.radians(b_deg))) < 1 / 3600
    assert np.max(np.abs(b_deg - want.b.deg)) < 1 / 3600


def test_plane_template_weights_closed_forms():
    psi = sky.psi_grid_rad(91)
    plain = sky.plane_template_weights(psi, 5.0, scrambled=False)
    scrambled = sky.plane_template_weights(psi, 5.0)
    # a uniform sky of intensity 1: its flux in |b| < 5 deg is 4 pi sin 5 deg; scrambling removes all of it
    assert plain.sum() == pytest.approx(4 * np.pi * np.sin(np.radians(5.0)), rel=1e-3)
    assert abs(scrambled.sum()) < 1e-12
    # cos^2 psi = cos^2 l cos^2 b: its flux in the plane is pi (2 s - 2 s^3 / 3), s = sin 5 deg
    s = np.sin(np.radians(5.0))
    assert plain @ np.cos(psi) ** 2 == pytest.approx(np.pi * (2 * s - 2 * s**3 / 3), rel=2e-3)
    # a sky peaked towards the Galactic centre keeps part of its flux in the plane through the scrambling
    assert 0 < scrambled @ np.exp(-psi) < plain @ np.exp(-psi)


def test_plane_template_weights_match_a_healpix_integration(coarse_forward_model):
    healpy = pytest.importorskip("healpy")
    m = coarse_forward_model
    I = np.asarray(jax.jit(forward.forward)(preset("baseline"), m).milky_way.nu_all_flavour)
    psi = np.asarray(m.milky_way.psi_rad)
    I_E = I[:, np.searchsorted(np.asarray(m.milky_way.E_secondary_GeV), 3.0e4)]
    nside = 512  # equatorial map: its rings are circles of constant declination
    theta, ra_rad = healpy.pix2ang(nside, np.arange(healpy.nside2npix(nside)))
    l_deg, b_deg = sky.equatorial_to_galactic(np.degrees(ra_rad), 90.0 - np.degrees(theta))
    sky_I = sky.intensity_at_psi(I_E, psi, sky.galactic_psi_rad(l_deg, b_deg))
    pixel_sr = healpy.nside2pixarea(nside)
    template = (np.abs(b_deg) < 5.0).astype(float)
    _, ring = np.unique(theta, return_inverse=True)
    ring_mean = np.bincount(ring, template) / np.bincount(ring)
    for scrambled, t in ((False, template), (True, template - ring_mean[ring])):
        direct = pixel_sr * template.sum() * np.sum(t * sky_I) / np.sum(t * t)
        got = sky.plane_template_weights(psi, 5.0, scrambled=scrambled) @ I_E
        assert got == pytest.approx(direct, rel=5e-3), scrambled


def _template_term(name, model):
    return terms.neutrino_template_terms((name,), "bound", False, model)[0]


def test_template_term_bounds_one_normalisation(coarse_forward_model):
    m = coarse_forward_model
    prediction = jax.jit(forward.forward)(preset("baseline"), m)
    for name in GP_TEMPLATES:
        term = _template_term(name, m)
        predicted = term.predict(prediction, m)
        ratio, relative_err_hi = (float(x) for x in term.normalisation_ratio(predicted))
        assert relative_err_hi == pytest.approx(float(term.err_hi[0] / term.value[0]), rel=1e-9)
        # the paper's corona projects to about 1 % of the template's flux: far inside the bound
        assert 0.003 < ratio < 0.05
        assert float(term.log_likelihood(predicted, {})) == 0.0
        k = 3.0 / ratio  # a corona 3x the template's flux costs ((3 - 1) / sigma)^2 / 2
        assert float(term.log_likelihood(k * predicted, {})) == pytest.approx(-0.5 * (2.0 / relative_err_hi) ** 2,
                                                                               rel=1e-9)
        assert float(term.ln_E_weights.sum()) == pytest.approx(1.0, rel=1e-12)


def test_a_mocked_template_draws_one_normalisation(coarse_forward_model):
    """The rows' errors are one normalisation's, so a mock moves the whole curve by one draw."""
    m = coarse_forward_model
    term = _template_term(GP_TEMPLATES[0], m)
    predicted = np.asarray(term.predict(jax.jit(forward.forward)(preset("baseline"), m), m))
    rel = float(np.mean(0.5 * (term.err_lo + term.err_hi) / term.value))
    draws = []
    for seed in range(200):
        mock = term.mocked(predicted, np.random.default_rng(seed))
        scale = np.asarray(mock.value) / predicted
        assert np.ptp(scale) < 1e-12 * scale[0]
        assert np.asarray(mock.err_hi) / np.asarray(mock.value) == pytest.approx(rel / scale[0], rel=1e-9)
        draws.append(scale[0])
    assert np.std(draws) == pytest.approx(rel, rel=0.2) and abs(np.mean(draws) - 1.0) < 3 * rel / math.sqrt(200)


def test_template_term_ignores_what_does_not_depend_on_right_ascension(coarse_forward_model):
    m = coarse_forward_model
    term = _template_term(GP_TEMPLATES[0], m)
    E = np.asarray(m.milky_way.E_secondary_GeV)
    flat = jnp.ones((np.asarray(m.milky_way.psi_rad).size, E.size)) * 1e-12 * E[None, :] ** -2.0
    pred = SimpleNamespace(milky_way=SimpleNamespace(nu_all_flavour=flat),
                           extragalactic=SimpleNamespace(nu_all_flavour=jnp.asarray(1e-12 * E ** -2.0)))
    predicted = np.asarray(term.predict(pred, m))
    assert np.all(predicted < 1e-9 * np.asarray(term.value))


def test_template_data_sets_in_a_run_configuration():
    text = ("[priors]\nalpha = {{ uniform = [2, 3] }}\n[data]\ncosmic_rays = []\nneutrinos = 'none'\n"
            "gamma_foreground = 'none'\nneutrino_templates = {}\n")
    assert config.parse_config(text.format(list(GP_TEMPLATES))).data["neutrino_templates"] == GP_TEMPLATES
    with pytest.raises(ConfigError, match="unknown neutrino template data set 'IceCube-GP-2023-CRINGE'; choose from"):
        config.parse_config(text.format(["IceCube-GP-2023-CRINGE"]))
