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
