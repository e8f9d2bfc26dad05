"""gammapy formats (corona_jax.gadf): flux points read back by gammapy with their numbers and units,
the corona as gammapy models, and the export command's bad input."""

import argparse
import dataclasses
import json
import os

import h5py
import numpy as np
import pytest

pytest.importorskip("gammapy")

import astropy.units as u  # noqa: E402

from corona_jax import cli, gadf, observations, sky  # noqa: E402
from corona_jax.errors import CoronaError, ConfigError, DataError, OutputError  # noqa: E402

UNITS = {"dnde": u.Unit(gadf.INTENSITY_UNIT), "flux": u.Unit(gadf.BAND_UNIT)}


def export(argv):
    """Run `export` as the command line will (main's one line and exit 2 for a CoronaError)."""
    parser = argparse.ArgumentParser()
    gadf.add_export_parser(parser.add_subparsers())
    args = parser.parse_args(["export", *argv])
    try:
        return args.func(args)
    except CoronaError as exc:
        print(f"corona-jax: error: {exc}")
        return 2


@pytest.fixture(scope="module")
def forward_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("forward") / "baseline.h5"
    assert cli.main(["forward", "--preset", "baseline", "--resolution", "coarse", "--out", str(path)]) == 0
    return str(path)


def assert_round_trip(path, table):
    """gammapy reads back every number of the table, in its units."""
    fp = gadf.read_flux_points(path)
    sed = table.meta["SED_TYPE"]
    assert fp.sed_type_init == sed
    # gammapy's energy_ref is the bins' log centre where they are given: e_ref to the data's ten digits
    np.testing.assert_allclose(fp.energy_ref.to_value(u.GeV), table["e_ref"].quantity.to_value(u.GeV),
                               rtol=gadf.EDGE_CENTRE_RTOL)
    if "e_min" in table.colnames:
        np.testing.assert_allclose(fp.energy_min.to_value(u.GeV), table["e_min"].quantity.to_value(u.GeV), rtol=1e-12)
    ul = np.asarray(table["is_ul"])
    np.testing.assert_array_equal(fp.is_ul.data.ravel(), ul)
    for column in (sed, f"{sed}_errn", f"{sed}_errp", f"{sed}_ul"):
        if column in table.colnames:
            q = getattr(fp, column).quantity.ravel()
            assert q.unit == UNITS[sed]
            rows = ul if column.endswith("_ul") else ~ul
            np.testing.assert_allclose(q.value[rows], table[column].quantity.to_value(UNITS[sed])[rows], rtol=1e-12)


@pytest.mark.parametrize("name", ["IceCube-HESE-7.5yr", "Fermi-IGRB-A-bands", "Fermi-IGRB-B", "LHAASO-KM2A-inner",
                                  "KM3NeT-KM3-230213A", "AMS02", "KASCADE2011"])
def test_data_round_trip(tmp_path, name):
    assert export(["--data", name, "--out", str(tmp_path)]) == 0
    path = tmp_path / f"{name}.ecsv"
    table = gadf.data_table(name)
    assert_round_trip(path, table)
    if name == "IceCube-HESE-7.5yr":  # its last segment is an upper limit: the limit comes back as dnde_ul
        d = observations.load_neutrino_dataset(name)
        assert d.is_upper_limit.any()
        fp = gadf.read_flux_points(path)
        np.testing.assert_allclose(fp.dnde_ul.quantity.ravel()[d.is_upper_limit].value,
                                   d.flux_per_GeV_cm2_s_sr[d.is_upper_limit], rtol=1e-12)
    if name == "Fermi-IGRB-A-bands":  # band intensities, sed type flux, with the bands' edges
        b = observations.load_gamma_bands("A")
        fp = gadf.read_flux_points(path)
        np.testing.assert_allclose(fp.flux.quantity.ravel().to_value(gadf.BAND_UNIT), b.intensity_per_cm2_s_sr)
        np.testing.assert_allclose(fp.energy_max.to_value(u.GeV), b.E_hi_GeV)


def test_every_data_set_exports(tmp_path):
    assert export(["--data", "all", "--out", str(tmp_path)]) == 0
    assert sorted(os.listdir(tmp_path)) == sorted(f"{n}.ecsv" for n in gadf.dataset_names())


def test_ecsv_units_survive_gammapys_known_problems(tmp_path):
    """gammapy reads flux points in its own default units (gammapy issue #5783) and refuses sr^-1
    without a matching reference model: the file keeps the units, and read_flux_points gives them back."""
    from astropy.table import Table

    gadf.ecsv_writers({"x": gadf.data_table("Fermi-IGRB-A")})["x.ecsv"](str(tmp_path / "x.ecsv"))
    raw = Table.read(tmp_path / "x.ecsv", format="ascii.ecsv")
    assert raw["dnde"].unit == UNITS["dnde"] and raw["e_ref"].unit == u.GeV
    fp = gadf.read_flux_points(tmp_path / "x.ecsv")
    assert fp.dnde.unit == UNITS["dnde"]
    e2 = fp.e2dnde.quantity.ravel()
    np.testing.assert_allclose(e2.to_value("GeV cm-2 s-1 sr-1"),
                               (raw["e_ref"].quantity ** 2 * raw["dnde"].quantity).to_value("GeV cm-2 s-1 sr-1"),
                               rtol=3 * gadf.EDGE_CENTRE_RTOL)


def test_forward_export_round_trip(tmp_path, forward_file):
    assert export(["--forward", forward_file, "--out", str(tmp_path)]) == 0
    with h5py.File(forward_file) as f:
        E, gamma, nu = f["grids/E_secondary_GeV"][()], f["total/gamma"][()], f["total/nu_per_flavour"][()]
    for stem, values in (("forward_isotropic_gamma", gamma), ("forward_isotropic_nu_per_flavour", nu)):
        fp = gadf.read_flux_points(tmp_path / f"{stem}.ecsv")
        np.testing.assert_allclose(fp.energy_ref.to_value(u.GeV), E, rtol=1e-12)
        np.testing.assert_allclose(fp.dnde.quantity.ravel().to_value(gadf.INTENSITY_UNIT), values, rtol=1e-12)


def test_posterior_bands_are_the_predictive_plots(tmp_path):
    """The median and the 68 / 95 % bands are the percentiles inference.plots draws, per data set."""
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(1)
    hese = observations.load_neutrino_dataset("IceCube-HESE-7.5yr")
    bands = observations.load_gamma_bands("A")
    points = {"IceCube-HESE-7.5yr": hese.E_GeV, "Fermi-IGRB-A": np.sqrt(bands.E_lo_GeV * bands.E_hi_GeV)}
    draws = {k: np.exp(rng.normal(-40, 1, (2, 50, E.size))) for k, E in points.items()}
    constant = {f"{k} E_GeV": E for k, E in points.items()}
    dims = {k: [f"{k} point"] for k in points} | {f"{k} E_GeV": [f"{k} point"] for k in points}
    idata = az.from_dict(posterior={"alpha": rng.normal(2.4, 0.1, (2, 50))}, posterior_predictive=draws,
                         constant_data=constant, dims=dims)
    path = str(tmp_path / "posterior.nc")
    idata.to_netcdf(path)
    assert export(["--posterior", path, "--out", str(tmp_path)]) == 0
    for name, E in points.items():
        lo95, lo68, mid, hi68, hi95 = np.percentile(draws[name].reshape(-1, E.size), [2.5, 16, 50, 84, 97.5], axis=0)
        sed = "flux" if name == "Fermi-IGRB-A" else "dnde"
        for level, lo, hi in ((68, lo68, hi68), (95, lo95, hi95)):
            fp = gadf.read_flux_points(tmp_path / f"posterior_{name}_{level}.ecsv")
            assert fp.sed_type_init == sed
            value = getattr(fp, sed).quantity.ravel()
            assert value.unit == UNITS[sed]
            np.testing.assert_allclose(value.value, mid, rtol=1e-12)
            np.testing.assert_allclose(getattr(fp, f"{sed}_errn").quantity.ravel().value, mid - lo, rtol=1e-12)
            np.testing.assert_allclose(getattr(fp, f"{sed}_errp").quantity.ravel().value, hi - mid, rtol=1e-12)
    np.testing.assert_allclose(gadf.read_flux_points(tmp_path / "posterior_Fermi-IGRB-A_68.ecsv")
                               .energy_min.to_value(u.GeV), bands.E_lo_GeV)


@pytest.mark.slow
def test_fit_export_is_the_model_at_the_best_fit(tmp_path):
    """A fit file's best fit is exported as the model at the data and its isotropic spectra."""
    from corona_jax import forward
    from corona_jax.inference.config import Prior, RunConfig
    from corona_jax.inference.model import build_setup

    cfg = RunConfig(resolution="coarse", priors={"log10_LCR_erg_s": Prior("uniform", 38.0, 42.0)})
    path = tmp_path / "fit.h5"
    with h5py.File(path, "w") as f:
        f.attrs["config"] = json.dumps(dataclasses.asdict(cfg), default=str)
        f.attrs["parameters"] = "log10_LCR_erg_s,fermi_foreground_eta"
        f.create_dataset("best_fit/log10_LCR_erg_s", data=40.5)
        f.create_dataset("best_fit/fermi_foreground_eta", data=0.3)
    out = tmp_path / "out"
    out.mkdir()
    assert export(["--fit", str(path), "--out", str(out)]) == 0
    setup = build_setup(cfg)
    params = setup.problem.base_params._replace(log10_LCR_erg_s=40.5)
    pred = forward.forward(params, setup.model)
    fp = gadf.read_flux_points(out / "fit_isotropic_gamma.ecsv")
    np.testing.assert_allclose(fp.dnde.quantity.ravel().value, np.asarray(pred.total.gamma), rtol=1e-10)
    for term in setup.terms:
        fp = gadf.read_flux_points(out / f"fit_{term.name}.ecsv")
        sed = fp.sed_type_init
        np.testing.assert_allclose(getattr(fp, sed).quantity.ravel().value,
                                   np.asarray(term.predict(pred, setup.model)), rtol=1e-10)


def test_isotropic_sky_model_is_the_intensity_per_sr(forward_file):
    """The SkyModel evaluates to the isotropic intensity per sr anywhere; its integral over an IGRB band
    times the spatial 1 sr^-1 equals the band integral of the IGRB likelihood term."""
    from corona_jax.inference.terms import band_quadrature, loglog_interp

    with h5py.File(forward_file) as f:
        E, gamma = f["grids/E_secondary_GeV"][()], f["total/gamma"][()]
    model = gadf.isotropic_sky_model(E, gamma)
    k = np.flatnonzero(gamma > 0)[len(gamma) // 3]
    for lon, lat in ((0.0, 0.0), (123.0, -45.0)):
        value = model.evaluate(lon * u.deg, lat * u.deg, E[k] * u.GeV)
        np.testing.assert_allclose(value.to_value(gadf.INTENSITY_UNIT), gamma[k], rtol=1e-6)
    b = observations.load_gamma_bands("A")
    nodes, weights = band_quadrature(b.E_lo_GeV, b.E_hi_GeV)
    own = np.sum(weights * np.asarray(loglog_interp(E, gamma, nodes)), axis=1)
    per_sr = model.spectral_model.integral(b.E_lo_GeV * u.GeV, b.E_hi_GeV * u.GeV) * model.spatial_model.value
    np.testing.assert_allclose(per_sr.to_value(gadf.BAND_UNIT), own, rtol=2e-4)


def test_milky_way_cube_is_the_sky(tmp_path, forward_file):
    """The map cube (written and read back as a gammapy model) at a direction and energy node equals
    corona_jax's sky there; the files load with gammapy's Models.read."""
    from gammapy.modeling.models import Models

    assert export(["--forward", forward_file, "--gammapy-model", "--map-binsz-deg", "5", "--out", str(tmp_path)]) == 0
    with h5py.File(forward_file) as f:
        E, psi, I = f["grids/E_secondary_GeV"][()], f["grids/psi_rad"][()], f["milky_way/intensity_gamma"][()]
        other = f["extragalactic/gamma"][()]
    cwd = os.getcwd()
    assert not os.path.exists(os.path.join(cwd, "corona-milky-way.fits"))  # the map file goes only to --out
    os.chdir(tmp_path)  # the YAML names its map file relative to where it is read
    try:
        models = Models.read("corona_sky.yaml")
        iso = Models.read("corona_isotropic.yaml")["corona-isotropic"]
    finally:
        os.chdir(cwd)
    mw = models["corona-milky-way"]
    k = len(E) // 2
    l_deg, b_deg = 32.5, 17.5  # a pixel centre of the 5 deg CAR grid
    expected = sky.intensity_at_psi(I[:, k], psi, sky.galactic_psi_rad(l_deg, b_deg))
    value = mw.evaluate(l_deg * u.deg, b_deg * u.deg, E[k] * u.GeV)
    np.testing.assert_allclose(value.to_value(gadf.INTENSITY_UNIT), expected, rtol=1e-6)
    np.testing.assert_allclose(models["corona-other-galaxies"].evaluate(0 * u.deg, 0 * u.deg, E[k] * u.GeV)
                               .to_value(gadf.INTENSITY_UNIT), other[k], rtol=1e-6)
    assert iso.spatial_model.tag[0] == "ConstantSpatialModel"


@pytest.mark.parametrize("argv, message", [
    (["--data", "no-such-data"], "unknown data set 'no-such-data'"),
    (["--forward", "missing.h5"], "no such file"),
    (["--gammapy-model", "--data", "AMS02"], "--gammapy-model needs --forward"),
    ([], "needs at least one of"),
])
def test_bad_input(tmp_path, capsys, argv, message):
    assert export([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().out.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert os.listdir(tmp_path) == []


def test_existing_file_is_refused_without_overwrite(tmp_path, capsys):
    (tmp_path / "AMS02.ecsv").write_text("keep me")
    assert export(["--data", "AMS02", "--data", "DAMPE", "--out", str(tmp_path)]) == 2
    assert "give --overwrite" in capsys.readouterr().out
    assert (tmp_path / "AMS02.ecsv").read_text() == "keep me" and not (tmp_path / "DAMPE.ecsv").exists()
    assert export(["--data", "AMS02", "--out", str(tmp_path), "--overwrite"]) == 0
    assert_round_trip(tmp_path / "AMS02.ecsv", gadf.data_table("AMS02"))


def test_unwritable_targets(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        gadf.check_targets(["a.ecsv"], str(tmp_path / "nowhere"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user writes into read-only folders (root)")
        with pytest.raises(OutputError, match="not writable"):
            gadf.check_targets(["a.ecsv"], str(locked))
    finally:
        locked.chmod(0o700)


def test_without_gammapy_one_line_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_gammapy(name, *args, **kwargs):
        if name == "gammapy" or name.startswith("gammapy."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gammapy)
    with pytest.raises(ConfigError, match=r'pip install "\.\[gammapy\]"'):
        gadf.read_flux_points("x.ecsv")
    with pytest.raises(DataError):
        gadf.data_table("no-such-data")
