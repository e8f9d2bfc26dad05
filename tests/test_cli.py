import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from corona_jax import cli


@pytest.fixture(scope="module")
def transport_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("transport")
    rc = cli.main(["transport", "--preset", "baseline", "--resolution", "coarse",
                   "--out", str(d / "cr.h5"), "--plot", str(d / "figs")])
    return rc, d


def test_transport_writes_documented_file(transport_run):
    rc, d = transport_run
    assert rc == 0
    with h5py.File(d / "cr.h5") as f:
        for name in ("grids/E_GeV", "grids/r_kpc", "gas/n_cm3", "cr/j_per_GeV_cm3",
                     "cr/local_flux_per_GeV_cm2_s_sr", "cr/unit_density_Gyr"):
            assert "units" in f[name].attrs, name
        j = f["cr/j_per_GeV_cm3"][()]
        assert j.shape == (f["grids/E_GeV"].shape[0], f["grids/r_kpc"].shape[0])
        assert np.all(np.isfinite(j)) and j.dtype == np.float64
        assert f.attrs["param_alpha"] == 2.4 and f.attrs["resolution_n_t"] > 0
        assert f["cr"].attrs["binding_dataset"] == "CREAM-III"
        assert 40.0 < f.attrs["param_log10_LCR_erg_s"] < 41.0


def test_transport_records_the_kinetic_luminosity_and_the_binding_energy_kind(transport_run):
    _, d = transport_run
    with h5py.File(d / "cr.h5") as f:
        ratio = f.attrs["LCR_kinetic_erg_s"] / 10 ** f.attrs["param_log10_LCR_erg_s"]
        assert ratio == pytest.approx(0.73, abs=0.01)  # alpha = 2.4: L_CR (total energy) is 1.37 x kinetic
        assert f["cr"].attrs["binding_energy_kind"] == "kinetic"  # CREAM-III gives kinetic energies


def test_transport_writes_figures(transport_run):
    _, d = transport_run
    names = sorted(n for n in os.listdir(d / "figs") if n.endswith(".png"))
    assert names == ["fig1_gas_profile.png", "fig2_cr_density_vs_radius.png",
                     "fig3_cr_spectrum_at_radii.png", "local_flux_vs_data.png"]
    assert all(os.path.getsize(d / "figs" / n) > 10_000 for n in names)
    assert sorted(os.listdir(d / "figs")) == sorted(names + [n.replace(".png", ".pdf") for n in names])


@pytest.fixture(scope="module")
def forward_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("forward")
    rc = cli.main(["forward", "--preset", "hard", "--resolution", "coarse",
                   "--out", str(d / "result.h5"), "--plot", str(d / "figs")])
    return rc, d


def test_forward_writes_milky_way_group(forward_run):
    rc, d = forward_run
    assert rc == 0
    with h5py.File(d / "result.h5") as f:
        n_psi, n_E = f["grids/psi_rad"].shape[0], f["grids/E_secondary_GeV"].shape[0]
        assert f["grids/psi_rad"][0] == 0.0 and f["grids/psi_rad"][-1] == pytest.approx(np.pi)
        for name in ("intensity_gamma", "intensity_nu_all_flavour", "intensity_nu_per_flavour"):
            assert f["milky_way"][name].shape == (n_psi, n_E)
            assert f["milky_way"][name].attrs["units"] == "GeV^-1 cm^-2 s^-1 sr^-1"
        mw = f["milky_way"]
        np.testing.assert_allclose(mw["anticentre_gamma"][()], mw["intensity_gamma"][-1])
        np.testing.assert_allclose(3 * mw["sky_mean_nu_per_flavour"][()], mw["sky_mean_nu_all_flavour"][()])
        assert "cr" in f and "gas" in f and f.attrs["param_alpha"] == 2.0
        assert "healpix" not in mw
        eg, tot = f["extragalactic"], f["total"]
        for name in ("nu_all_flavour", "nu_per_flavour", "gamma_unabsorbed", "gamma_absorbed", "gamma_cascade", "gamma"):
            assert eg[name].shape == (n_E,) and eg[name].attrs["units"] == "GeV^-1 cm^-2 s^-1 sr^-1"
        np.testing.assert_allclose(tot["nu_all_flavour"][()], mw["anticentre_nu_all_flavour"][()] + eg["nu_all_flavour"][()])
        assert eg.attrs["xi_paper_formula"] > 0 and eg.attrs["cosmology_z_max"] == 6.0


def test_forward_writes_figures(forward_run):
    _, d = forward_run
    names = sorted(n for n in os.listdir(d / "figs") if n.endswith(".png"))
    assert names == ["fig4_spectra.png", "fig5_dipole.png", "sky_map_gamma.png"]
    assert all(os.path.getsize(d / "figs" / n) > 10_000 for n in names)
    assert sorted(os.listdir(d / "figs")) == sorted(names + [n.replace(".png", ".pdf") for n in names])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gamma-data", "Fermi-IGRB-D"], "unknown gamma data set 'Fermi-IGRB-D'"),
        (["--neutrino-data", "ANTARES"], "unknown neutrino per flavour data set 'ANTARES'"),
        (["--map-E-GeV", "0"], "--map-E-GeV must be positive"),
        (["--healpix-nside", "12"], "nside must be a positive power of 2"),
    ],
)
def test_forward_bad_input(tmp_path, capsys, args, message):
    if "--healpix-nside" in args:
        pytest.importorskip("healpy")
    out = tmp_path / "x.h5"
    assert _exit_code(["forward", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def _exit_code(argv):
    """cli.main's return code, or the code argparse exits with."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--D0-cm2-s=-1e29"], "--D0-cm2-s must be positive"),
        (["--alpha", "nan"], "--alpha must be finite"),
        (["--alpha", "7"], "alpha = 7 is outside"),
        (["--resolution", "ultra"], "unknown resolution"),
        (["--cr-data", "AMS02,PAMELA"], "unknown cosmic-ray data set 'PAMELA'"),
    ],
)
def test_bad_input_one_line_and_nonzero_exit(tmp_path, capsys, args, message):
    out = tmp_path / "x.h5"
    assert _exit_code(["transport", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_unwritable_output_keeps_existing_file(tmp_path, capsys):
    existing = tmp_path / "keep.h5"
    existing.write_bytes(b"precious")
    assert cli.main(["transport", "--out", str(tmp_path / "missing" / "x.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["transport", "--out", str(tmp_path)]) == 2
    assert existing.read_bytes() == b"precious"


def test_console_script_help_runs_from_elsewhere(tmp_path):
    """The installed package works outside the repository (data via importlib.resources)."""
    code = ("import corona_jax.observations as d, corona_jax.cli as c;"
            "print(len(d.load_cosmic_ray_dataset('KASCADE2011').E_GeV))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert int(out.stdout) > 10
    help_text = subprocess.run([sys.executable, "-m", "corona_jax.cli", "transport", "--help"],
                               cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "--preset" in help_text and "--normalisation" in help_text


@pytest.mark.parametrize("command", ["fit", "sample"])
def test_fit_and_sample_reject_bad_configs_in_one_line(tmp_path, capsys, command):
    pytest.importorskip("numpyro")
    bad = tmp_path / "bad.toml"
    bad.write_text("[priors]\nalpha = { uniform = [2.0, 2.8] }\n[data]\nneutrinos = 'ANTARES'\n")
    out = tmp_path / "out.h5"
    assert cli.main([command, "--config", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown neutrino data set 'ANTARES'" in err and len(err.splitlines()) == 1
    assert cli.main([command, "--config", str(tmp_path / "missing.toml"), "--out", str(out)]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert not out.exists()


def test_fit_writes_best_fit_file(tmp_path):
    pytest.importorskip("numpyro")
    cfg = tmp_path / "fit.toml"
    cfg.write_text('[model]\nresolution = "coarse"\n[priors]\nlog10_LCR_erg_s = { uniform = [39.0, 42.0] }\n'
                   '[data]\ncosmic_rays = ["CREAM-III"]\ncosmic_ray_mode = "measurement"\nneutrinos = "none"\n'
                   'gamma_foreground = "none"\n[fit]\nstarts = 2\nmax_steps = 60\n')
    out = tmp_path / "fit.h5"
    assert cli.main(["fit", "--config", str(cfg), "--out", str(out)]) == 0
    with h5py.File(out) as f:
        best = f["best_fit/log10_LCR_erg_s"][()]
        err = f["best_fit/log10_LCR_erg_s_laplace_error"][()]
        assert 39.0 < best < 42.0 and 0 < err < 0.1
        assert f["starts/neg_log_density"].shape == (2,)


def test_a_missing_extra_names_the_exact_install_command(monkeypatch):
    """From a clone the extra is installed with pip install ".[inference]", not a registry name."""
    import importlib

    real = importlib.import_module

    def without_numpyro(name, package=None):
        if name.startswith(".inference"):
            raise ImportError("No module named 'numpyro'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_numpyro)
    with pytest.raises(cli.CoronaError) as err:
        cli._inference("sample", "sample")
    assert 'needs the inference extra: pip install ".[inference]" in the repository\'s root' in str(err.value)
