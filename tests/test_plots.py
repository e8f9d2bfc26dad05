"""The figures: PNG and PDF written atomically, legends clear of the data, axes that follow the
model curves, the dipole's CMB dip resolved, no panel that repeats another."""

import os
import types

import matplotlib.collections
import matplotlib.figure
import matplotlib.text
import numpy as np
import pytest

import corona_jax
from corona_jax import observations, plots
from corona_jax.drivers import run_forward


@pytest.fixture(scope="module")
def forward_result(coarse_forward_model):
    return run_forward(corona_jax.preset("baseline"), coarse_forward_model)


@pytest.fixture
def drawn(monkeypatch):
    """Figures passed to save_figure (in corona_jax.plots and the inference plots), drawn after saving."""
    figures = []

    def keep(fig, path, save=plots.save_figure):
        path = save(fig, path)
        fig.canvas.draw()
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    try:
        from corona_jax.inference import plots as inference_plots

        monkeypatch.setattr(inference_plots, "save_figure", keep)
    except ImportError:
        pass
    return figures


def _check_written(path):
    """PNG at path and PDF beside it, of sensible size, nothing else hidden in the folder; PNG (width, height)."""
    pdf = os.path.splitext(path)[0] + ".pdf"
    with open(path, "rb") as f:
        png = f.read()
    with open(pdf, "rb") as f:
        assert f.read(5) == b"%PDF-"
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert 20e3 < len(png) < 3e6
    assert 5e3 < os.path.getsize(pdf) < 3e6
    assert not [name for name in os.listdir(os.path.dirname(path)) if name.startswith(".")]
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _inside(points, box):
    return (points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)


def _drawn_points(ax):
    """Display coordinates along every line of ax (segments sampled finely), inside the axes."""
    t = np.linspace(0.0, 1.0, 25)[:, None, None]
    points = []
    for line in ax.get_lines():
        xy = line.get_transform().transform(line.get_xydata())
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        if len(xy) > 1:
            points.append((xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2))
    points = np.concatenate(points)
    return points[_inside(points, ax.get_window_extent())]


def _legend_clear_of_lines(ax):
    legend = ax.get_legend()
    assert legend is not None
    covered = _inside(_drawn_points(ax), legend.get_window_extent())
    assert not covered.any(), f"legend of '{ax.get_title()}' covers a curve"


def _legend_outside_axes(fig):
    assert fig.legends
    for legend in fig.legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            if ax.get_visible():
                assert not box.overlaps(ax.get_window_extent()), f"legend covers '{ax.get_title()}'"


def test_transport_figures(forward_result, drawn, tmp_path):
    datasets = [observations.load_cosmic_ray_dataset(n) for n in observations.DEFAULT_CR_DATASETS]
    paths = plots.transport_figures({"baseline": forward_result.cosmic_rays}, datasets, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["fig1_gas_profile.png", "fig2_cr_density_vs_radius.png",
                                                    "fig3_cr_spectrum_at_radii.png", "local_flux_vs_data.png"]
    for path in paths:
        _check_written(path)
    assert len(os.listdir(tmp_path)) == 8
    gas, density, spectra, local = drawn
    for fig in (gas, density, spectra):
        _legend_clear_of_lines(fig.axes[0])
    _legend_outside_axes(local)
    assert "e+" not in density.axes[0].get_title()


def _curves(ax):
    """Lines of ax drawn as lines (the model curves; data points have no line style)."""
    return [line for line in ax.get_lines() if line.get_linestyle() not in ("None", "none", "")]


def _last_visible_E(ax):
    """The largest x at which a curve of ax lies above the lower y limit."""
    return max(np.asarray(line.get_xdata())[np.asarray(line.get_ydata()) > ax.get_ylim()[0]].max()
               for line in _curves(ax))


def _legend_labels(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def _texts(fig):
    """Every legend entry and text written on fig."""
    return _legend_labels(fig) + [t.get_text() for ax in fig.axes for t in ax.texts]


def _air_showers():
    return [observations.load_cosmic_ray_dataset(n) for n in ("KASCADE2011", "KASCADE-Grande2013")]


def test_spectra(forward_result, drawn, tmp_path):
    path = plots.plot_spectra(forward_result, observations.load_gamma_dataset(), observations.load_neutrino_dataset(),
                              str(tmp_path / "fig4.png"), _air_showers())
    assert path == str(tmp_path / "fig4.png")
    _check_written(path)
    (fig,) = drawn
    _legend_outside_axes(fig)
    labels = _texts(fig)
    assert sum("all particles" in label and "for scale" in label.lower() for label in labels) == 1
    assert any("foreground-model systematic" in label for label in labels)
    title = fig.axes[0].get_title()
    assert "e+" not in title and r"10^{8}" in title


def test_spectra_legend_is_compact(forward_result, drawn, tmp_path):
    plots.plot_spectra(forward_result, observations.load_gamma_dataset(), observations.load_neutrino_dataset(),
                       str(tmp_path / "fig4.png"), _air_showers())
    (fig,) = drawn
    assert len(_legend_labels(fig)) <= 8
    _legend_outside_axes(fig)
    (ax,) = fig.axes
    assert ax.get_window_extent().width > 0.8 * fig.get_window_extent().width  # no legend column beside it


def test_spectra_axes_follow_the_model_not_the_cosmic_rays(forward_result, drawn, tmp_path):
    igrb, icecube = observations.load_gamma_dataset(), observations.load_neutrino_dataset()
    plots.plot_spectra(forward_result, igrb, icecube, str(tmp_path / "fig4.png"), _air_showers())
    (fig,) = drawn
    (ax,) = fig.axes
    end = _last_visible_E(ax)
    assert end <= ax.get_xlim()[1] <= 3.0 * end
    compared = max(max(line.get_ydata().max() for line in _curves(ax)),
                   (igrb.E_GeV**2 * (igrb.flux_per_GeV_cm2_s_sr + igrb.err_hi)).max())
    cosmic_rays = max((d.E_GeV**2 * d.flux_per_GeV_cm2_s_sr).max() for d in _air_showers())
    assert ax.get_ylim()[1] <= 10.0 * compared < cosmic_rays


def test_fermi_systematic_is_not_drawn_as_upper_limits(forward_result, drawn, tmp_path):
    plots.plot_spectra(forward_result, observations.load_gamma_dataset(), None, str(tmp_path / "fig4.png"))
    (fig,) = drawn
    (ax,) = fig.axes
    systematic = [a for a in ax.get_children() if "systematic" in str(a.get_label())]
    assert systematic
    for artist in systematic:  # an area, not markers (a cap or an arrow reads as an upper limit)
        assert isinstance(artist, matplotlib.collections.PolyCollection)


def test_spectra_at_radii_follow_the_curves_and_explain_the_outermost(forward_result, drawn, tmp_path):
    plots.plot_spectra_at_radii(forward_result.cosmic_rays, str(tmp_path / "fig3.png"))
    (fig,) = drawn
    (ax,) = fig.axes
    end = _last_visible_E(ax)
    assert end <= ax.get_xlim()[1] <= 3.0 * end
    assert any("250 kpc" in text and "diffusion" in text for text in _texts(fig))
    _legend_clear_of_lines(ax)


def test_dipole(forward_result, drawn, tmp_path):
    _check_written(plots.plot_dipole(forward_result, str(tmp_path / "fig5.png")))
    (fig,) = drawn
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len({ax.get_ylabel() for ax in panels}) == len(panels)
    (dipole,) = [ax for ax in panels if "E [GeV]" in ax.get_xlabel()]  # one panel for the dipole against E
    assert r"3\langle I\cos\psi\rangle" in dipole.get_ylabel()
    mw = forward_result.milky_way
    lit = mw.sky_mean_gamma > 0
    curves = {line.get_label(): line for line in dipole.get_lines() if not line.get_label().startswith("_")}
    assert set(curves) == {r"$\gamma$", r"$\nu$"}
    assert np.allclose(curves[r"$\gamma$"].get_ydata(), mw.dipole_gamma[lit])
    for ax in panels:
        _legend_clear_of_lines(ax)


def test_dipole_panel_resolves_the_cmb_dip(forward_result, drawn, tmp_path):
    plots.plot_dipole(forward_result, str(tmp_path / "fig5.png"))
    (fig,) = drawn
    (dipole,) = [ax for ax in fig.axes if ax.get_visible() and "E [GeV]" in ax.get_xlabel()]
    gamma = next(line for line in dipole.get_lines() if line.get_label() == r"$\gamma$")
    y = gamma.get_transform().transform(gamma.get_xydata())[:, 1]  # display coordinates
    box = dipole.get_window_extent()
    assert box.y0 <= y.min() and y.max() <= box.y1
    assert (y.max() - y.min()) / box.height > 0.2


def test_dipole_profiles_that_coincide_are_told_apart(forward_result, drawn, tmp_path):
    plots.plot_dipole(forward_result, str(tmp_path / "fig5.png"))
    (fig,) = drawn
    (profile,) = [ax for ax in fig.axes if ax.get_visible() and "psi" in ax.get_xlabel()]
    lines = profile.get_lines()
    assert len({(line.get_linestyle(), line.get_marker()) for line in lines}) == len(lines) >= 3
    close = [(a, b) for i, a in enumerate(lines) for b in lines[i + 1:]
             if np.max(np.abs(a.get_ydata() / b.get_ydata() - 1.0)) < 0.02]
    assert close  # 1 GeV and 1 TeV: the same profile
    assert any("coincide" in text for text in _texts(fig))


def test_sky_map(forward_result, drawn, tmp_path):
    _check_written(plots.plot_sky_map(forward_result, str(tmp_path / "sky.png"), 10.0))
    (fig,) = drawn
    labels = fig.axes[0].get_xticklabels()
    assert [t.get_text() for t in labels] == ["120°", "60°", "0°", "300°", "240°"]
    assert all(t.get_color() == "white" and t.get_path_effects() for t in labels)


def test_forward_figures_replace_old_files_and_leave_nothing_behind(forward_result, tmp_path, monkeypatch):
    paths = plots.forward_figures(forward_result, None, None, str(tmp_path))
    assert len(os.listdir(tmp_path)) == 2 * len(paths)
    before = {p: open(p, "rb").read() for p in paths}

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    with pytest.raises(RuntimeError):
        plots.plot_dipole(forward_result, paths[1])
    assert {p: open(p, "rb").read() for p in paths} == before
    names = [os.path.basename(p) for p in paths]
    assert sorted(os.listdir(tmp_path)) == sorted(names + [n.replace(".png", ".pdf") for n in names])


def test_sci_notation():
    assert plots.sci(1.2e29) == r"1.2\times10^{29}"
    assert plots.sci(1e8) == r"10^{8}"
    assert plots.sci(9.999e7) == r"10^{8}"
    assert plots.sci(10.0) == "10"


@pytest.fixture(scope="module")
def fake_inference():
    """A small InferenceData (posterior and posterior predictive) and a setup with four real terms."""
    az = pytest.importorskip("arviz")
    pytest.importorskip("numpyro")
    from corona_jax.inference import terms

    setup = types.SimpleNamespace(terms=(terms.cosmic_ray_terms(["AMS02", "KASCADE2011"], "measurement", False, None)
                                         + terms.neutrino_terms("IceCube-HESE-7.5yr", "bound", False, None)
                                         + terms.gamma_band_terms("A", "bound", False, None)))
    rng = np.random.default_rng(0)
    shape = (2, 150)
    D0 = 30.25 + 0.08 * rng.standard_normal(shape)
    posterior = {"alpha": 2.443 + 0.002 * rng.standard_normal(shape),
                 "log10_Emax_GeV": rng.uniform(6.5, 9.0, shape),
                 "log10_D0_cm2_s": D0,
                 "log10_LCR_erg_s": D0 + 11.9 + 0.005 * rng.standard_normal(shape),
                 "fermi_foreground_eta": rng.standard_normal(shape)}
    predictive = {t.name: np.asarray(t.value) * np.exp(0.3 * rng.standard_normal(shape + (t.value.size,)))
                  for t in setup.terms}
    return az.from_dict(posterior=posterior, posterior_predictive=predictive), setup


def test_corner_plot_follows_the_posterior(fake_inference, drawn, tmp_path):
    from corona_jax.inference import plots as inference_plots

    idata, _ = fake_inference
    names = ["alpha", "log10_Emax_GeV", "log10_D0_cm2_s", "log10_LCR_erg_s", "fermi_foreground_eta"]
    _check_written(inference_plots.corner_plot(idata, names, str(tmp_path / "corner.png")))
    (fig,) = drawn
    _legend_outside_axes(fig)
    axes = np.array(fig.axes).reshape(len(names), len(names))
    alpha = idata.posterior["alpha"].values
    lo, hi = alpha.min(), alpha.max()
    margin = 0.1 * (hi - lo)
    for i in range(len(names)):
        x0, x1 = axes[i, 0].get_xlim()
        assert lo - margin <= x0 <= lo and hi <= x1 <= hi + margin
    arrows = [c for c in axes[0, 0].get_children() if isinstance(c, matplotlib.text.Annotation)]
    assert arrows, "the hard scenario (alpha = 2.0) must be pointed at from the edge"
    assert axes[-1, 0].get_xlabel() == r"$\alpha$"
    assert "[cm$^2$ s$^{-1}$]" in axes[-1, 2].get_xlabel() and "[erg s$^{-1}$]" in axes[-1, 3].get_xlabel()
    assert "eta" in axes[-1, -1].get_xlabel() and "Fermi" in axes[-1, -1].get_xlabel()


def test_predictive_plot_is_a_readable_grid(fake_inference, drawn, tmp_path):
    from corona_jax.inference import plots as inference_plots

    idata, setup = fake_inference
    width, height = _check_written(inference_plots.predictive_plot(idata, setup, str(tmp_path / "pp.png")))
    assert width < 2.5 * height
    (fig,) = drawn
    _legend_outside_axes(fig)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    data = [ax for ax in panels if "cm$^{-2}$ s$^{-1}$ sr$^{-1}$]" in ax.get_ylabel()]
    residual = [ax for ax in panels if "σ" in ax.get_ylabel()]
    assert len(data) == len(residual) == len(setup.terms) and len(panels) == 2 * len(setup.terms)
    assert len({round(ax.get_position().x0, 3) for ax in data}) == 3
    for ax in residual:  # under each data set, sharing its energy axis label
        assert "[GeV]" in ax.get_xlabel()
    for ax in panels:
        assert min(t.get_fontsize() for t in ax.get_xticklabels() + [ax.xaxis.label, ax.yaxis.label]) >= 8


def test_nuisance_marginals_span_their_priors(fake_inference, drawn, tmp_path):
    from corona_jax.inference import config
    from corona_jax.inference import plots as inference_plots

    idata, _ = fake_inference
    priors = {"log10_Emax_GeV": config.Prior("uniform", 6.0, 9.5), "fermi_foreground_eta": config.Prior("normal", 0, 1)}
    _check_written(inference_plots.marginals_plot(idata, list(priors), priors, str(tmp_path / "nuisances.png")))
    (fig,) = drawn
    uniform, normal = [ax for ax in fig.axes if ax.get_visible()]
    assert uniform.get_xlim() == (6.0, 9.5)  # a uniform prior's range, its density drawn
    assert any(line.get_label() == "prior" for line in uniform.get_lines())
    eta = idata.posterior["fermi_foreground_eta"].values
    assert normal.get_xlim()[0] <= eta.min() and eta.max() <= normal.get_xlim()[1]


def test_corner_plot_shows_shares_in_log10(fake_inference, drawn, tmp_path):
    from corona_jax.inference import plots as inference_plots

    idata, _ = fake_inference
    idata = idata.copy()
    idata.posterior["share_icecube_100TeV"] = 10.0 ** (-3 + 100 * (idata.posterior["alpha"] - 2.443))
    names = ["alpha", "share_icecube_100TeV"]
    inference_plots.corner_plot(idata, names, str(tmp_path / "c.png"), log10_names=["share_icecube_100TeV"])
    (fig,) = drawn
    axes = np.array(fig.axes).reshape(2, 2)
    assert axes[1, 1].get_xlabel().startswith(r"$\log_{10}$")
    assert axes[1, 1].get_xlim()[0] < -3 < axes[1, 1].get_xlim()[1]
