import numpy as np
import pytest

from corona_jax import DataError
from corona_jax import observations as datasets


@pytest.mark.parametrize("name", sorted(datasets.COSMIC_RAY_DATASETS))
def test_every_cosmic_ray_set_loads_with_provenance(name):
    d = datasets.load_cosmic_ray_dataset(name)
    assert len(d.E_GeV) > 3 and np.all(np.diff(d.E_GeV) > 0)
    assert np.all(d.flux_per_GeV_cm2_s_sr > 0)
    assert d.reference and "source" in d.meta
    # E^2.6 J of protons / all particles sits at the classic 1e3-1e4 GeV^1.6 m^-2 s^-1 sr^-1 level
    level = d.E_GeV**2.6 * d.flux_per_GeV_cm2_s_sr * 1e4
    assert np.all((level > 3e2) & (level < 3e4)), name


def test_ams02_starts_above_solar_modulation():
    assert datasets.load_cosmic_ray_dataset("AMS02").E_GeV.min() >= 20.0


def test_unknown_dataset_is_named():
    with pytest.raises(DataError, match="unknown cosmic-ray data set 'PAMELA'"):
        datasets.load_cosmic_ray_dataset("PAMELA")


@pytest.mark.parametrize(
    "text, message",
    [
        ("# dataset: x\n# reference: y\n# source: z\nE_GeV,flux\n1,2\n", "missing column"),
        ("# dataset: x\n", "no table"),
        ("# dataset: x\n# reference: y\nE_GeV,E_lo_GeV,E_hi_GeV,flux,err_lo,err_hi,is_upper_limit\n1,,,2,0.1,0.1,0\n", "source"),
        ("# dataset: x\n# reference: y\n# source: z\nE_GeV,E_lo_GeV,E_hi_GeV,flux,err_lo,err_hi,is_upper_limit\n1,,,abc,0.1,0.1,0\n", "not numeric"),
        ("# dataset: x\n# reference: y\n# source: z\nE_GeV,E_lo_GeV,E_hi_GeV,flux,err_lo,err_hi,is_upper_limit\n-1,,,2,0.1,0.1,0\n", "energies"),
    ],
)
def test_corrupt_files_get_clear_errors(text, message):
    with pytest.raises(DataError, match=message):
        datasets.parse_spectrum_csv(text, "bad.csv")


def test_neutrino_and_gamma_loaders():

    hese = datasets.load_neutrino_dataset()
    assert hese.name == "IceCube-HESE-7.5yr" and hese.species == "neutrino per flavour"
    assert hese.is_upper_limit.tolist() == [False] * 6 + [True]  # last segment: a limit
    # per flavour: the file's all-flavour column is three times the flux
    np.testing.assert_allclose(hese.extra["flux_allflavour"], 3 * hese.flux_per_GeV_cm2_s_sr, rtol=1e-6)
    for model in "ABC":
        igrb = datasets.load_gamma_dataset(f"Fermi-IGRB-{model}")
        assert igrb.E_GeV.size == 26 and igrb.E_GeV.min() < 0.12 and igrb.E_GeV.max() > 500
        assert np.all(igrb.extra["fgsyst_hi"] >= 0)
    with pytest.raises(DataError, match="unknown gamma data set"):
        datasets.load_gamma_dataset("Fermi-IGRB-D")
