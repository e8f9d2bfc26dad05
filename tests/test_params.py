import math

import pytest

from corona_jax import ParameterError, params


def test_presets_match_the_paper():
    b, f, h = (params.preset(n) for n in ("baseline", "fast-diffusion", "hard"))
    assert (b.alpha, 10**b.log10_Emax_GeV, 10**b.log10_D0_cm2_s) == pytest.approx((2.4, 1e8, 1.2e29))
    assert 10**f.log10_D0_cm2_s == pytest.approx(4e30)
    assert (h.alpha, 10**h.log10_Emax_GeV) == pytest.approx((2.0, 1e7))


def test_unknown_preset_is_named():
    with pytest.raises(ParameterError, match="unknown preset 'nope'"):
        params.preset("nope")


@pytest.mark.parametrize("field, value", [("alpha", math.nan), ("n0_outer_cm3", -1e-3),
                                           ("beta_inner", 0.0), ("Rmax_kpc", math.inf)])
def test_bad_values_are_rejected_by_name(field, value):
    p = params.preset("baseline")._replace(**{field: value})
    with pytest.raises(ParameterError, match=field):
        params.validate_params(p)


def test_from_physical_rejects_negative_D0():
    with pytest.raises(ParameterError, match="D0_cm2_s"):
        params.from_physical(2.4, 1e8, -1e29, 1e40)
    p = params.from_physical(2.4, 1e8, 1.2e29, 1e40)
    assert p.log10_LCR_erg_s == pytest.approx(40.0)
