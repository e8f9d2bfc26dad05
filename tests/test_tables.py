"""pp tables: energy conservation, the low-energy junction, reproducibility, bad files
(docs/physics.md sec. 3 checks)."""

import math
import os

import h5py
import numpy as np
import pytest

from corona_jax import grids, interactions, tables
from corona_jax import table_generation as generation
from corona_jax.errors import ConfigError, DataError
from corona_jax.units import PROTON_MASS_GEV


@pytest.fixture(scope="module")
def shipped():
    return tables.load_pp_tables()


def _energy_fraction(t, name):
    """int E dsigma/dE dE / (sigma_inel E_p) on the shipped grids."""
    moment = generation.energy_moment_GeV_mb(t.E_s_GeV, t.dsigma_dE_mb_per_GeV[name])
    return moment / np.where(t.sigma_inel_mb > 0, t.sigma_inel_mb * t.E_p_GeV, np.inf)


@pytest.mark.parametrize("name, lo, hi", [("gamma", 0.16, 0.19), ("nu_all", 0.22, 0.26)])
def test_shipped_table_energy_fractions(shipped, name, lo, hi):
    # docs/physics.md: photons carry ~16-19 % of E_p, neutrinos ~22-26 %, once the
    # pion multiplicity has grown (checked from 1 TeV to 1e10 GeV). "~": 1 % of the
    # bound is allowed (neutrinos dip to 21.99 % near 3e4 GeV).
    f = _energy_fraction(shipped, name)
    high = shipped.E_p_GeV >= 1.0e3
    assert np.all((f[high] > 0.99 * lo) & (f[high] < 1.01 * hi)), f[high]


def test_secondaries_never_carry_more_than_the_proton(shipped):
    for name in tables.SECONDARIES:
        assert np.all(_energy_fraction(shipped, name) < 0.3)
        # nothing above the kinematic limit E_s <= E_p + m_p
        E_p, E_s = np.meshgrid(shipped.E_p_GeV, shipped.E_s_GeV, indexing="ij")
        assert np.all(shipped.dsigma_dE_mb_per_GeV[name][E_s > E_p + PROTON_MASS_GEV] == 0.0)


def test_low_energy_junction_is_smooth_in_the_shipped_table(shipped):
    # the energy fraction's log-slope across the 4 GeV junction (3.98 -> 4.47 GeV)
    # lies between the slopes of the neighbouring intervals below and above
    for name in tables.SECONDARIES:
        f = _energy_fraction(shipped, name)
        k = int(np.searchsorted(shipped.E_p_GeV, generation.AAFRAG_MIN_E_GeV))  # first AAfrag node
        slopes = np.diff(np.log(f[k - 3 : k + 3]))
        across = slopes[2]
        assert min(slopes[1], slopes[3]) * 0.7 < across < max(slopes[1], slopes[3]) * 1.3, slopes


def test_sigma_inel_is_the_kafexhiu_fit_and_zero_below_threshold(shipped):
    T = shipped.E_p_GeV - PROTON_MASS_GEV
    above = T > interactions.PION_THRESHOLD_KINETIC_GEV
    x = T[above] / interactions.PION_THRESHOLD_KINETIC_GEV
    expected = (30.7 - 0.96 * np.log(x) + 0.18 * np.log(x) ** 2) * (1 - x ** (-1.9)) ** 3  # Eq. (1)
    np.testing.assert_allclose(shipped.sigma_inel_mb[above], expected, rtol=1e-12)
    assert np.all(shipped.sigma_inel_mb[~above] == 0.0)


def test_missing_and_corrupt_tables_give_clear_errors(tmp_path, shipped):
    with pytest.raises(DataError, match="missing"):
        tables.load_pp_tables(str(tmp_path / "nothing.h5"))
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an hdf5 file")
    with pytest.raises(DataError, match="not a valid table"):
        tables.load_pp_tables(str(broken))
    negative = tmp_path / "negative.h5"
    bad = shipped._replace(sigma_inel_mb=-shipped.sigma_inel_mb)
    generation.write_pp_tables(str(negative), bad)
    with pytest.raises(DataError, match="corrupt"):
        tables.load_pp_tables(str(negative))


def test_secondary_grid_must_lie_on_the_table_nodes():
    with pytest.raises(ConfigError, match="divides 20"):
        interactions.emission_matrix("gamma", generation.TABLE_PROTON_E_GeV, np.geomspace(0.1, 1e3, 7 * 4 + 1))
    E_s = grids.secondary_energy_grid(grids.resolution("coarse"))
    K = interactions.emission_matrix("gamma", generation.TABLE_PROTON_E_GeV, E_s)
    assert K.shape == (E_s.size, generation.TABLE_PROTON_E_GeV.size) and np.all(K >= 0)


# --- against aafragpy itself (skipped where it is not installed) --------------------


def test_all_secondaries_conserve_energy():
    pytest.importorskip("aafragpy")
    # sum over every AAfrag secondary of int E dsigma/dE = 0.92-0.98 of sigma_inel (E_p + m_p)
    E_s = np.logspace(-4.0, 11.5, 1551)
    E_p = np.array([1.0e3, 1.0e4, 1.0e5, 1.0e7, 1.0e9])  # 0.918 at 1e2, 0.901 at 1e10 GeV
    total = 0.0
    aafrag, _ = generation._aafragpy()
    for secondary in ("gam", "el", "posi", "nu_all", "p", "ap", "n", "an"):
        cs, _, _ = aafrag.get_cross_section(secondary, "p-p", E_p, E_s)
        total = total + generation.energy_moment_GeV_mb(E_s, cs)
    ratio = total / (generation.sigma_inel_kafexhiu_mb(E_p) * (E_p + PROTON_MASS_GEV))
    assert np.all((ratio > 0.92) & (ratio < 0.98)), ratio


def test_junction_is_continuous_in_secondary_energy():
    pytest.importorskip("aafragpy")
    E_s = generation._MOMENT_E_GeV
    for name in tables.SECONDARIES:
        below, above = generation.production_cross_section(name, [4.0 * (1 - 1e-9), 4.0], E_s)
        m_below, m_above = generation.energy_moment_GeV_mb(E_s, np.stack([below, above]))
        assert m_below == pytest.approx(m_above, rel=1e-6)


def test_regeneration_reproduces_the_shipped_file(tmp_path, shipped):
    pytest.importorskip("aafragpy")
    path = tmp_path / "regenerated.h5"
    generation.write_pp_tables(str(path), generation.generate_pp_tables())
    with h5py.File(tables.default_table_path(), "r") as a, h5py.File(path, "r") as b:
        assert dict(a.attrs) == dict(b.attrs)
        names = []
        a.visit(names.append)
        assert sorted(names) == sorted(_all_names(b))
        for name in names:
            if isinstance(a[name], h5py.Dataset):
                assert np.array_equal(a[name][()], b[name][()]), name
                assert dict(a[name].attrs) == dict(b[name].attrs)


def _all_names(f):
    names = []
    f.visit(names.append)
    return names


def test_proton_grid_quadrature_converges():
    pytest.importorskip("aafragpy")
    # emissivity of an E^-2.4 spectrum: the table's 20 per decade against 40 per decade
    E_s = grids.secondary_energy_grid(grids.resolution("default"))
    E_s = E_s[E_s <= 1.0e4]

    def q(per_decade):
        E_p = np.logspace(0.0, 10.0, 10 * per_decade + 1)
        w = np.full(E_p.size, math.log(E_p[1] / E_p[0]))
        w[[0, -1]] *= 0.5
        K = (w * E_p)[None, :] * generation.production_cross_section("gamma", E_p, E_s).T
        return K @ (E_p**-2.4 * np.exp(-E_p / 1.0e8))

    rel = np.abs(q(20) / q(40) - 1.0)
    assert rel.max() < 0.01  # worst at 0.1 GeV, near the pion threshold
    assert rel[E_s >= 1.0].max() < 0.003


def test_a_tampered_table_is_refused(tmp_path):
    """A table that is still a valid file but has its gamma cross sections x 1000 does not match
    the checksum recorded beside it; the shipped folder records every shipped table."""
    import shutil

    shipped = tables.default_table_path()
    assert set(tables.read_checksums(os.path.dirname(shipped))) >= {
        tables.PP_TABLE_FILE, tables.EBL_TABLE_FILE, tables.CASCADE_TABLE_FILE}
    for name in (tables.PP_TABLE_FILE, tables.CHECKSUM_FILE):
        shutil.copy(tables.default_table_path(name), tmp_path / name)
    copy = str(tmp_path / tables.PP_TABLE_FILE)
    assert tables.load_pp_tables(copy).E_p_GeV.size > 0  # an untouched copy is accepted
    tables.load_pp_tables.cache_clear()
    with h5py.File(copy, "r+") as f:
        f["dsigma_dE_mb_per_GeV/gamma"][...] = 1000.0 * f["dsigma_dE_mb_per_GeV/gamma"][()]
    with pytest.raises(DataError, match="does not match the checksum"):
        tables.load_pp_tables(copy)


# --- the alternative tables of the systematics nuisances (docs/tables.md) --------------------

ALTERNATIVES = (tables.PP_ALTERNATIVE_TABLE_FILE, tables.EBL_ALTERNATIVE_TABLE_FILE,
                tables.CASCADE_ALTERNATIVE_TABLE_FILE)


@pytest.fixture(scope="module")
def kamae():
    return tables.load_pp_tables(tables.table_path(tables.PP_ALTERNATIVE_TABLE_FILE))


def test_alternative_tables_load_with_their_checksums(shipped, kamae):
    directory = os.path.dirname(tables.default_table_path())
    sums = tables.read_checksums(directory)
    for name in ALTERNATIVES:
        assert sums[name] == tables.file_sha256(os.path.join(directory, name)), name
    # same grids and sigma_inel as the shipped pp table, other cross sections
    for a, b in [(kamae.E_p_GeV, shipped.E_p_GeV), (kamae.E_s_GeV, shipped.E_s_GeV),
                 (kamae.sigma_inel_mb, shipped.sigma_inel_mb)]:
        assert np.array_equal(a, b)
    assert kamae.attrs["hadronic_model"] == "kamae2006"
    assert kamae.attrs["junction_E_GeV"] == generation.KAMAE_MAX_E_GeV
    for name in tables.SECONDARIES:
        assert not np.array_equal(kamae.dsigma_dE_mb_per_GeV[name], shipped.dsigma_dE_mb_per_GeV[name])
    ebl = tables.load_ebl_table(tables.table_path(tables.EBL_ALTERNATIVE_TABLE_FILE))
    assert ebl.attrs["ebltable_model"] == "saldana-lopez" and ebl.z[0] == 0.0 and ebl.z[-1] == 6.0
    from corona_jax.cosmology import Cosmology

    for per_decade in tables.CASCADE_E_PER_DECADE:
        E_s = grids.secondary_energy_grid(grids.Resolution(E_per_decade=per_decade))
        C = tables.load_cascade_matrix(E_s, Cosmology(), tables.table_path(tables.CASCADE_ALTERNATIVE_TABLE_FILE))
        C_inoue = tables.load_cascade_matrix(E_s, Cosmology())
        assert C.shape == C_inoue.shape and np.all(C >= 0) and not np.array_equal(C, C_inoue)
    with h5py.File(tables.table_path(tables.CASCADE_ALTERNATIVE_TABLE_FILE), "r") as f:
        assert f.attrs["ebl_table"] == tables.EBL_ALTERNATIVE_TABLE_FILE
        assert "extrapolated linearly" in f.attrs["ebl_z_extrapolation"]


def test_tampered_alternative_tables_are_refused(tmp_path):
    import shutil

    for name in (*ALTERNATIVES, tables.CHECKSUM_FILE):
        shutil.copy(tables.table_path(name), tmp_path / name)
    pp, ebl, casc = (str(tmp_path / name) for name in ALTERNATIVES)
    for path, name in [(pp, "dsigma_dE_mb_per_GeV/nu_all"), (ebl, "tau"), (casc, "E_per_decade_5/C")]:
        with h5py.File(path, "r+") as f:
            f[name][...] = 1.5 * f[name][()]  # still a valid table
    with pytest.raises(DataError, match="does not match the checksum"):
        tables.load_pp_tables(pp)
    with pytest.raises(DataError, match="does not match the checksum"):
        tables.load_ebl_table(ebl)
    from corona_jax.cosmology import Cosmology

    with pytest.raises(DataError, match="does not match the checksum"):
        tables.load_cascade_matrix(grids.secondary_energy_grid(grids.Resolution(E_per_decade=5)), Cosmology(), casc)


def test_kamae_energy_moment_differs_plausibly_from_aafrag_at_1TeV(shipped, kamae):
    # two fits to the same accelerator data: the secondaries' energy agrees to tens of per cent,
    # and the tables are not the same (0.95 for photons, 0.90 for neutrinos when written)
    for name, ratio in generation.pp_energy_moment_ratios(kamae, shipped, (1.0e3,)).items():
        assert 0.75 < ratio[0] < 1.33 and abs(ratio[0] - 1.0) > 0.01, (name, ratio)


def test_kamae_table_energy_fractions_and_kinematics(kamae):
    for name in tables.SECONDARIES:
        f = _energy_fraction(kamae, name)
        assert np.all(f < 0.3)
        high = kamae.E_p_GeV >= 1.0e3
        assert np.all((f[high] > 0.14) & (f[high] < 0.26)), (name, f[high])
        E_p, E_s = np.meshgrid(kamae.E_p_GeV, kamae.E_s_GeV, indexing="ij")
        assert np.all(kamae.dsigma_dE_mb_per_GeV[name][E_s > E_p + PROTON_MASS_GEV] == 0.0)
        # Feynman scaling above the junction: the energy fraction stays at its junction value
        # (the table's 0.1 GeV floor cuts x < 1e-11 only)
        above = kamae.E_p_GeV > generation.KAMAE_MAX_E_GeV
        np.testing.assert_allclose(f[above], f[above][0], rtol=1e-3)


def test_kamae_extension_is_feynman_scaling_from_the_junction():
    pytest.importorskip("aafragpy")
    E_0 = generation.KAMAE_MAX_E_GeV
    x = np.logspace(-6.0, -0.05, 60)
    E_p = np.array([E_0, 2.0e6, 1.0e8, 1.0e10])
    sigma = generation.sigma_inel_kafexhiu_mb(E_p)
    for name in tables.SECONDARIES:
        # E_p dsigma/dE_s(E_p, x E_p) / sigma_inel(E_p) is the same function of x at every E_p >= E_0
        shape = [E * generation.kamae_scaled_dsigma_dE(name, E, x * E)[0] / s for E, s in zip(E_p, sigma)]
        for s in shape[1:]:
            np.testing.assert_allclose(s, shape[0], rtol=1e-12)
        # below the junction it is aafragpy's Kamae as is; aafragpy gives zeros from 512 TeV on
        E_s = generation.TABLE_SECONDARY_E_GeV
        below = np.array([10.0, 1.0e3, E_0])
        assert np.array_equal(generation.kamae_scaled_dsigma_dE(name, below, E_s),
                              generation.kamae_dsigma_dE(name, below, E_s))
        assert np.all(generation.kamae_dsigma_dE(name, generation.KAMAE_FIT_MAX_E_GeV, E_s) == 0.0)
        m_below, m_above = generation.energy_moment_GeV_mb(
            generation._MOMENT_E_GeV, generation.kamae_scaled_dsigma_dE(name, [E_0, E_0 * (1 + 1e-9)],
                                                                         generation._MOMENT_E_GeV))
        assert m_below == pytest.approx(m_above, rel=1e-6)
    with pytest.raises(ConfigError, match="unknown hadronic model"):
        generation.generate_pp_tables(hadronic="sibyll")


def test_alternative_pp_regeneration_reproduces_the_shipped_file(tmp_path):
    pytest.importorskip("aafragpy")
    from h5files import assert_same_h5

    path = tmp_path / "regenerated.h5"
    generation.write_pp_tables(str(path), generation.generate_pp_tables(hadronic="kamae2006"))
    assert_same_h5(tables.table_path(tables.PP_ALTERNATIVE_TABLE_FILE), path)


def test_alternative_ebl_table_regenerates_exactly(tmp_path):
    pytest.importorskip("ebltable")
    from h5files import assert_same_h5

    path = tmp_path / "ebl.h5"
    generation.write_ebl_table(str(path), generation.generate_ebl_table(model="saldana-lopez"))
    assert_same_h5(tables.table_path(tables.EBL_ALTERNATIVE_TABLE_FILE), path)
    with pytest.raises(ConfigError, match="unknown EBL model"):
        generation.generate_ebl_table(model="nonexistent")


def test_saldana_lopez_tau_is_within_a_factor_2_of_inoue():
    from corona_jax import absorption

    inoue = tables.load_ebl_table()
    saldana = tables.load_ebl_table(tables.table_path(tables.EBL_ALTERNATIVE_TABLE_FILE))
    tau_i = absorption.tau_ebl(1.0e3, 0.1, inoue)[0, 0]
    tau_s = absorption.tau_ebl(1.0e3, 0.1, saldana)[0, 0]  # 0.971 against 0.764 when written
    assert 0.5 < tau_s / tau_i < 2.0 and tau_s != tau_i, (tau_s, tau_i)


def test_an_ebl_table_is_extended_to_the_cascade_redshifts_linearly():
    from corona_jax import absorption

    E = np.array([1.0, 10.0, 100.0])
    z = np.array([0.0, 1.0, 2.0])
    tau = np.outer([0.0, 1.0, 4.0], [0.0, 1.0, 3.0])
    t = tables.EBLTable(E, z, tau, {})
    same, note = generation.ebl_table_reaching(t, 2.0)
    assert same is t and note is None
    longer, note = generation.ebl_table_reaching(t, 2.5)
    assert longer.z[-1] == 2.5 and "extrapolated linearly" in note
    np.testing.assert_allclose(longer.tau[:, -1], [0.0, 4.0, 16.0])
    zq = np.array([0.3, 1.7, 2.0])
    np.testing.assert_array_equal(absorption.tau_ebl(E, zq, longer), absorption.tau_ebl(E, zq, t))


def test_the_model_builds_with_the_alternative_tables():
    from corona_jax import extragalactic
    from corona_jax.model import build_model

    model = build_model(resolution="coarse", pp_table=tables.PP_ALTERNATIVE_TABLE_FILE,
                        ebl_table=tables.EBL_ALTERNATIVE_TABLE_FILE,
                        cascade_table=tables.CASCADE_ALTERNATIVE_TABLE_FILE)
    alt = model.extragalactic
    # the same pp table with the shipped (Inoue) EBL and cascade: only the gamma-ray
    # absorption and cascade change, by less than the EBL models differ at high z
    mw = model.milky_way
    inoue = extragalactic.build_extragalactic_model(
        mw.E_secondary_GeV, mw.E_table_GeV, tables.load_pp_tables(tables.table_path(tables.PP_ALTERNATIVE_TABLE_FILE)))

    def the_map(stage, name):  # the (N_s, N_p) map (models may stack maps on leading axes)
        x = np.asarray(getattr(stage, name))
        return x.reshape(-1, *x.shape[-2:])[0]

    for name in ("nu_all", "gamma_unabsorbed"):
        assert np.array_equal(the_map(alt, name), the_map(inoue, name))
    for name in ("gamma_absorbed", "gamma_cascade"):
        a, b = the_map(alt, name), the_map(inoue, name)
        assert np.all(np.isfinite(a)) and np.all(a >= 0) and not np.array_equal(a, b), name
    E = mw.E_secondary_GeV
    band = (E >= 1.0) & (E <= 1.0e3)  # Fermi-LAT band: absorbed gamma rays within 30 %
    a, b = the_map(alt, "gamma_absorbed").sum(axis=1)[band], the_map(inoue, "gamma_absorbed").sum(axis=1)[band]
    assert np.all(np.abs(a / b - 1.0) < 0.3), a / b


@pytest.mark.slow
def test_alternative_cascade_table_regenerates(tmp_path):
    from h5files import assert_same_h5

    path = tmp_path / "cascade.h5"
    generation.write_cascade_tables(
        str(path), generation.generate_cascade_tables(ebl_path=tables.EBL_ALTERNATIVE_TABLE_FILE))
    # to 1e-13 of the largest entry, as the Inoue cascade (LAPACK builds differ in the last bits)
    assert_same_h5(tables.table_path(tables.CASCADE_ALTERNATIVE_TABLE_FILE), path, last_bits=1e-13)
