"""`corona-jax paper --quick`: the scenarios' files, Figs. 1-7 and the claims table."""

import json
import math
import os

import h5py
import pytest

from corona_jax import cli, paper, params

CLAIMS = ("gas_profiles_cross", "neutrino_share_icecube", "gamma_share_igrb", "xi", "dipole",
          "fall_off_exponent", "spectral_softening", "d0_variation", "hard_model")


def test_paper_quick_writes_every_figure_and_claim(tmp_path, capsys):
    out = tmp_path / "paper"
    assert cli.main(["paper", "--quick", "--out", str(out)]) == 0
    written = [os.path.join(d, f) for d, _, files in os.walk(out) for f in files]
    assert f"wrote {len(written)} files into" in capsys.readouterr().out  # the count is what is on disk
    figures = sorted(os.listdir(out / "figures"))
    for n in range(1, 8):
        pngs = [f for f in figures if f.startswith(f"fig{n}_") and f.endswith(".png")]
        assert len(pngs) == 1, (n, figures)
        assert os.path.getsize(out / "figures" / pngs[0]) > 10_000
        assert pngs[0].replace(".png", ".pdf") in figures
    for name in paper.SCENARIOS:
        with h5py.File(out / f"{name}.h5") as f:
            assert f.attrs["resolution_n_t"] == 40  # the coarse grid
            assert f["cr"].attrs["normalisation"] == "data"
    claims = json.loads((out / "claims.json").read_text())["claims"]
    assert tuple(c["key"] for c in claims) == CLAIMS
    for c in claims:
        assert c["verdict"] in ("agrees", "differs", "consistent"), c
        assert c["model"] and all(math.isfinite(v) for v in c["model"].values()), c
    table = (out / "claims.md").read_text()
    assert all(f"`{key}`" in table for key in CLAIMS)
    assert not [f for f in os.listdir(out) if f.startswith(".")]  # no temporary file left


def test_gas_crossing_radius_by_hand():
    """Eq. (2) = Eq. (3): 0.738 (1 + (r/3)^2)^(-1.2645) = 0.00153 (1 + (r/3)^2)^(-0.2925) gives
    (1 + (r/3)^2) = (0.738 / 0.00153)^(1/0.972), r = 72.0 kpc (not the paper's ~45 kpc)."""
    p = params.preset("baseline")
    x = (p.n0_inner_cm3 / p.n0_outer_cm3) ** (1.0 / (1.5 * (p.beta_inner - p.beta_outer)))
    assert abs(paper.gas_crossing_kpc(p) - 3.0 * math.sqrt(x - 1.0)) < 1e-3
    assert abs(paper.gas_crossing_kpc(p) - 72.0) < 0.05


def test_the_readme_claims_table_is_the_command_output():
    """The README's claims come from `corona-jax paper --out docs/paper`, never typed by hand."""
    root = os.path.join(os.path.dirname(__file__), os.pardir)
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    block = readme.split("<!-- claims:begin -->\n")[1].split("<!-- claims:end -->")[0]
    with open(os.path.join(root, "docs", "paper", "claims.md"), encoding="utf-8") as f:
        generated = f.read()
    assert block.strip() == generated.split("\n", 1)[1].strip()  # all but the title
    for n in range(1, 8):
        assert any(name.startswith(f"fig{n}_") for name in os.listdir(os.path.join(root, "docs", "paper", "figures")))


def test_fall_off_exponent_and_spectral_index_on_exact_power_laws():
    """j = E^-2.7 r^-1.4 exactly: the fits return 1.4 and 2.7 (their inputs, not the model)."""
    from types import SimpleNamespace

    import numpy as np

    E, r = np.geomspace(1.0, 1e8, 81), np.geomspace(1.0, 300.0, 60)
    j = E[:, None] ** -2.7 * r[None, :] ** -1.4
    cr = SimpleNamespace(E_GeV=E, r_kpc=r, j_per_GeV_cm3=j, local_flux_per_GeV_cm2_s_sr=j[:, 10])
    assert paper.fall_off_exponent(cr) == pytest.approx(1.4, abs=1e-12)
    assert paper.local_spectral_index(cr) == pytest.approx(2.7, abs=1e-12)


def test_segment_flux_is_the_files_constant_e2_flux():
    """Inside a HESE segment E^2 dN/dE is the E2flux_perflavour column of the file."""
    from corona_jax import observations

    hese = observations.load_neutrino_dataset()
    for k in range(3):
        for E in (1.01 * hese.extra["E_lo_GeV"][k], hese.E_GeV[k], 0.99 * hese.extra["E_hi_GeV"][k]):
            assert E**2 * observations.segment_flux(hese, E) == pytest.approx(hese.extra["E2flux_perflavour"][k], rel=0.01)
