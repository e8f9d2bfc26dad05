import math

import jax
import numpy as np
import pytest
from scipy.integrate import quad

from corona_jax import cosmic_rays, params, transport
from corona_jax import observations as datasets
from corona_jax.units import PROTON_MASS_GEV, R_SUN_KPC


@pytest.mark.parametrize("alpha, log10_Emax", [(2.4, 8.0), (2.0, 7.0), (1.8, 5.0), (3.0, 9.0)])
def test_energy_moment_against_quad(alpha, log10_Emax):
    ref, _ = quad(lambda u: math.exp((2 - alpha) * u - math.exp(u) / 10**log10_Emax), 0, 60, limit=500)
    assert float(cosmic_rays.energy_moment(alpha, log10_Emax)) == pytest.approx(ref, rel=1e-10)


def test_luminosity_round_trip(default_model):
    p = params.preset("baseline")._replace(log10_LCR_erg_s=40.3)
    A = cosmic_rays.injection_amplitude(p, default_model)
    L = A * cosmic_rays.luminosity_per_amplitude(p, default_model)
    assert float(L) == pytest.approx(10**40.3, rel=1e-12)
    # source volume on the grid is exactly the sphere r < 5 kpc
    V = float(cosmic_rays.source_volume_cm3(default_model))
    assert V == pytest.approx(4 / 3 * math.pi * (5 * 3.0856775814913673e21) ** 3, rel=1e-12)


def test_density_is_linear_in_luminosity(default_model):
    p = params.preset("baseline")
    G = transport.unit_spectrum_density(p, default_model)
    j1 = cosmic_rays.cr_density(p, default_model, G)
    j2 = cosmic_rays.cr_density(p._replace(log10_LCR_erg_s=p.log10_LCR_erg_s + 1), default_model, G)
    np.testing.assert_allclose(np.asarray(j2), 10 * np.asarray(j1), rtol=1e-12)


@pytest.fixture(scope="module")
def baseline_solution(default_model):
    p = params.preset("baseline")
    return p, jax.jit(transport.unit_spectrum_density)(p, default_model)


def test_saturating_normalisation_touches_and_never_exceeds(default_model, baseline_solution):
    p, G = baseline_solution
    data = [datasets.load_cosmic_ray_dataset(n) for n in datasets.DEFAULT_CR_DATASETS]
    norm = cosmic_rays.normalise_to_data(p, default_model, G, data, R_SUN_KPC)
    flux = np.asarray(cosmic_rays.local_flux(norm.params, default_model, G, R_SUN_KPC))
    lnE = np.log(np.asarray(default_model.E_GeV))
    worst = 0.0
    for d in data:
        E = d.E_GeV + (PROTON_MASS_GEV if d.energy_kind == "kinetic" else 0.0)
        model = np.exp(np.interp(np.log(E), lnE, np.log(flux)))
        worst = max(worst, float(np.max(model / d.flux_per_GeV_cm2_s_sr)))
    assert worst == pytest.approx(1.0, rel=1e-9)
    assert norm.binding_dataset == "CREAM-III" and norm.binding_energy_kind == "kinetic"
    assert 1e40 < 10**norm.params.log10_LCR_erg_s < 1e41  # the Galactic CR luminosity range


def test_air_shower_data_alone_bind_at_one_kascade_bin_and_allow_3x_more(default_model, baseline_solution):
    """docs/physics.md sec. 2: air-shower points alone bind near 3.5e7 GeV; with direct data A drops ~3x."""
    p, G = baseline_solution
    showers = [datasets.load_cosmic_ray_dataset(n) for n in ("KASCADE2011", "KASCADE-Grande2013")]
    direct = [datasets.load_cosmic_ray_dataset(n) for n in ("AMS02", "DAMPE", "CREAM-III")]
    only_showers = cosmic_rays.normalise_to_data(p, default_model, G, showers, R_SUN_KPC)
    everything = cosmic_rays.normalise_to_data(p, default_model, G, showers + direct, R_SUN_KPC)
    assert only_showers.binding_dataset == "KASCADE2011" and only_showers.binding_energy_kind == "total"
    assert only_showers.binding_E_GeV == pytest.approx(3.5e7, rel=0.05)
    ratio = only_showers.amplitude_per_GeV_cm3_s / everything.amplitude_per_GeV_cm3_s
    assert 2.5 < ratio < 3.5


def test_local_flux_uses_velocity():
    assert float(cosmic_rays.proton_beta(1.0)) == pytest.approx(math.sqrt(1 - PROTON_MASS_GEV**2), rel=1e-12)
    assert float(cosmic_rays.proton_beta(1e4)) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("preset", ["baseline", "hard"])
def test_kinetic_luminosity_against_quad(default_model, preset):
    # L_CR counts the total energy E (rest mass included) of protons with E > 1 GeV; the kinetic
    # luminosity counts E - m_p over the same protons
    p = params.preset(preset)
    E_max = 10**p.log10_Emax_GeV

    def moment(weight):
        return quad(lambda u: weight(math.exp(u)) * math.exp((1 - p.alpha) * u - math.exp(u) / E_max),
                    0, math.log(100 * E_max), limit=500, epsrel=1e-12)[0]

    kinetic_share = moment(lambda E: E - PROTON_MASS_GEV) / moment(lambda E: E)
    L_kin = float(cosmic_rays.kinetic_luminosity_erg_s(p, default_model))
    assert L_kin == pytest.approx(kinetic_share * 10**p.log10_LCR_erg_s, rel=1e-10)


def test_kinetic_luminosity_of_a_pure_power_law_by_hand(default_model):
    # E^-2.4 from 1 GeV, no cut-off: L_kin / L_CR = 1 - m_p (1/1.4) / (1/0.4) = 0.7319
    p = params.preset("baseline")._replace(log10_Emax_GeV=10.0)  # the cut-off changes the ratio by 4e-5
    ratio = float(cosmic_rays.kinetic_luminosity_erg_s(p, default_model)) / 10**p.log10_LCR_erg_s
    assert ratio == pytest.approx(1 - PROTON_MASS_GEV * 0.4 / 1.4, rel=2e-4)
