"""sigma_pp against measured inelastic cross sections (independent of the fit)."""

import pytest

from corona_jax.interactions import sigma_inelastic_mb
from corona_jax.units import PROTON_MASS_GEV


def test_lhc_inelastic_cross_section():
    # TOTEM, EPL 101 (2013) 21004: sigma_inel = 73.15 +- 1.26 mb at sqrt(s) = 7 TeV
    E_lab = 7000.0**2 / (2 * PROTON_MASS_GEV)
    assert float(sigma_inelastic_mb(E_lab)) == pytest.approx(73.15, rel=0.03)


def test_fixed_target_plateau_and_threshold():
    # PDG compilation: sigma_inel(pp) ~ 30-33 mb for beam momenta 10-300 GeV/c
    for E in (10.0, 100.0, 300.0):
        assert 29.0 < float(sigma_inelastic_mb(E)) < 35.0
    assert float(sigma_inelastic_mb(PROTON_MASS_GEV + 0.27)) == 0.0  # below pion threshold
    assert float(sigma_inelastic_mb(1.0)) == 0.0


def test_emission_matrix_uses_the_proton_velocity():
    # K[s, p] = beta(E_p) c w_p E_p dsigma/dE_s: the collision rate of a proton is n sigma beta c
    import math

    from corona_jax import tables
    from corona_jax.interactions import emission_matrix

    t = tables.load_pp_tables()
    E_p, E_s = t.E_p_GeV[:41], t.E_s_GeV[::4]  # protons 1-100 GeV, 20 per decade
    K = emission_matrix("gamma", E_p, E_s)
    w = math.log(10.0) / 20.0  # trapezoid weight in ln E_p of an inner node
    for p in (5, 8, 20):  # E_p = 1.78, 2.51, 10 GeV
        beta = math.sqrt(1.0 - (0.938272 / E_p[p]) ** 2)
        for s in (0, 1, 2):  # E_s = 0.1, 0.158, 0.251 GeV
            by_hand = 2.99792458e10 * 1e-27 * beta * w * E_p[p] * t.dsigma_dE_mb_per_GeV["gamma"][p, 4 * s]
            assert K[s, p] == pytest.approx(by_hand, rel=1e-12, abs=0.0), (E_p[p], E_s[s])
            assert by_hand > 0
