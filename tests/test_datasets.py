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


# ---- LHAASO all-particle 2024, its lnA (documentation only), IceCube Galactic-plane templates ----
# The numbers below were read by hand from the CSV files in data/observations.


def test_lhaaso_2024_all_particle_loader_matches_the_file():
    d = datasets.load_cosmic_ray_dataset("LHAASO-2024-allparticle")
    assert d.species == "all-particle" and d.energy_kind == "total"  # a bound for the proton model
    assert d.E_GeV.size == 20
    # first row: 0.316-0.398 PeV; row 6: 1.00-1.26 PeV; last row: 25.1-31.6 PeV (QGSJET-II-04)
    np.testing.assert_allclose(d.E_GeV[[0, 5, 19]], [354813.3892, 1122018.454, 28183829.31], rtol=1e-9)
    np.testing.assert_allclose(d.flux_per_GeV_cm2_s_sr[[0, 5, 19]], [5.3527e-15, 2.271e-16, 1.5795e-20], rtol=1e-9)
    np.testing.assert_allclose(d.err_lo[[0, 19]], [1.795033704e-16, 5.723250824e-22], rtol=1e-9)
    np.testing.assert_allclose(d.err_hi, d.err_lo)
    assert not d.is_upper_limit.any()
    assert "PhysRevLett.132.131002" in d.reference and "2403.10010" in d.reference
    # the other hadronic models, first row
    for name, flux in (("LHAASO-2024-allparticle-EPOS-LHC", 5.1413e-15), ("LHAASO-2024-allparticle-SIBYLL-2.3d", 5.1952e-15)):
        other = datasets.load_cosmic_ray_dataset(name)
        assert other.species == "all-particle"
        np.testing.assert_array_equal(other.E_GeV, d.E_GeV)
        assert other.flux_per_GeV_cm2_s_sr[0] == pytest.approx(flux, rel=1e-9)


def test_lhaaso_protons_lie_below_lhaaso_all_particles():
    allp = datasets.load_cosmic_ray_dataset("LHAASO-2024-allparticle")  # QGSJET-II-04
    p = datasets.load_cosmic_ray_dataset("LHAASO-2025-knee")  # QGSJET-II-04
    inside = (p.E_GeV > allp.E_GeV[0]) & (p.E_GeV < allp.E_GeV[-1])
    all_at_p = np.exp(np.interp(np.log(p.E_GeV[inside]), np.log(allp.E_GeV), np.log(allp.flux_per_GeV_cm2_s_sr)))
    share = p.flux_per_GeV_cm2_s_sr[inside] / all_at_p
    assert inside.sum() >= 10 and np.all((share > 0.05) & (share < 1.0))


def test_lhaaso_mean_log_mass_is_documentation_only():
    filename = "composition_LHAASO2024_lnA.csv"
    registries = (datasets.COSMIC_RAY_DATASETS, datasets.NEUTRINO_DATASETS, datasets.NEUTRINO_EVENT_DATASETS,
                  datasets.GAMMA_DATASETS, datasets.GAMMA_REGION_DATASETS, datasets.NEUTRINO_TEMPLATE_DATASETS)
    registered = {v[0] if isinstance(v, tuple) else v for r in registries for v in r.values()}
    assert filename not in registered
    meta, rows = datasets._split_header(datasets._read_text(filename))
    assert "2403.10010" in meta["reference"] and "source" in meta
    header, first, last = rows[0].split(","), rows[1].split(","), rows[-1].split(",")
    assert header[:4] == ["E_GeV", "E_lo_GeV", "E_hi_GeV", "lnA_QGSJETII-04"] and len(rows) == 21
    assert float(first[3]) == 1.6246 and float(last[3]) == 2.5605 and float(last[9]) == 2.3011


def test_icecube_galactic_plane_templates_load_and_are_not_all_sky_data():
    kra5 = datasets.load_neutrino_template("IceCube-GP-2023-KRA5")
    kra50 = datasets.load_neutrino_template("IceCube-GP-2023-KRA50")
    assert kra5.E_GeV.size == kra50.E_GeV.size == 16
    np.testing.assert_allclose([kra5.E_GeV[0], kra5.flux_per_GeV_cm2_s_sr[0]], [1017.17, 1.073729019e-14], rtol=1e-9)
    np.testing.assert_allclose([kra50.E_GeV[-1], kra50.flux_per_GeV_cm2_s_sr[-1]], [146676.0, 4.705290537e-20], rtol=1e-9)
    np.testing.assert_allclose([kra50.err_lo[0], kra50.err_hi[0]], [1.757414969e-15, 2.076944964e-15], rtol=1e-9)
    for d in (kra5, kra50):
        # all-sky mean = sky-integrated / 4 pi; one normalisation's relative error on every row
        np.testing.assert_allclose(d.extra["flux_skyintegrated"], 4 * np.pi * d.flux_per_GeV_cm2_s_sr, rtol=1e-8)
        rel = d.err_hi / d.flux_per_GeV_cm2_s_sr
        np.testing.assert_allclose(rel, rel[0], rtol=1e-7)
        assert "2307.04427" in d.reference
    np.testing.assert_allclose(kra5.err_hi / kra5.flux_per_GeV_cm2_s_sr, 0.18 / 0.55, rtol=1e-7)
    # a plane-concentrated template is no all-sky spectrum: not among the likelihood's neutrino data sets
    assert not set(datasets.NEUTRINO_TEMPLATE_DATASETS) & set(datasets.NEUTRINO_DATASETS)
    with pytest.raises(DataError, match="unknown neutrino template data set"):
        datasets.load_neutrino_template("IceCube-GP-2023-CRINGE")


def test_icecube_pi0_template_is_table_1s_power_law():
    """Table 1 of Science 380, 1338: E^2 dN/dE(100 TeV) = 21.8 +5.3 -4.9 x 10^-12 TeV cm^-2 s^-1 sky-integrated per
    flavour, E^-2.7; the first row read from the file by hand."""
    pi0 = datasets.load_neutrino_template("IceCube-GP-2023-pi0")
    assert pi0.E_GeV.size == 16 and pi0.E_GeV[0] == 796.0 and pi0.E_GeV[-1] == 68869.0
    assert pi0.flux_per_GeV_cm2_s_sr[0] == 8.068287157e-14 and pi0.extra["flux_skyintegrated"][0] == 1.013890866e-12
    sky = pi0.extra["flux_skyintegrated"]
    np.testing.assert_allclose(sky * pi0.E_GeV**2 * (pi0.E_GeV / 1e5) ** 0.7, 21.8e-9, rtol=1e-8)  # GeV cm^-2 s^-1
    np.testing.assert_allclose(pi0.err_lo / pi0.flux_per_GeV_cm2_s_sr, 4.9 / 21.8, rtol=1e-8)
    np.testing.assert_allclose(pi0.err_hi / pi0.flux_per_GeV_cm2_s_sr, 5.3 / 21.8, rtol=1e-8)
    assert "Table 1" in pi0.reference and "randomize" in pi0.meta["usage"]
