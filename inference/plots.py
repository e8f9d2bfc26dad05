"""Plots of inference results: the corner plot with the paper's scenarios, posterior-predictive bands."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter
from scipy.ndimage import gaussian_filter

from corona_jax.gadf import PREDICTIVE_PERCENTILES
from corona_jax.plots import save_figure

from .model import paper_scenarios

_PER_AREA = r"GeV$^{-1}$ cm$^{-2}$ s$^{-1}$ sr$^{-1}$"
LABELS = {
    "alpha": r"$\alpha$",
    "log10_Emax_GeV": r"$\log_{10} E_{max}$ [GeV]",
    "log10_D0_cm2_s": r"$\log_{10} D_0$ [cm$^2$ s$^{-1}$]",
    "log10_LCR_erg_s": r"$\log_{10} L_{CR}$ [erg s$^{-1}$]",
    "log10_LCR_minus_log10_D0": r"$\log_{10}(L_{CR}/D_0)$ [erg cm$^{-2}$]",
    "n0_inner_cm3": r"$n_{0,in}$ [cm$^{-3}$]",
    "beta_inner": r"$\beta_{in}$",
    "rc_inner_kpc": r"$r_{c,in}$ [kpc]",
    "n0_outer_cm3": r"$n_{0,out}$ [cm$^{-3}$]",
    "beta_outer": r"$\beta_{out}$",
    "rc_outer_kpc": r"$r_{c,out}$ [kpc]",
    "Rmax_kpc": r"$R_{max}$ [kpc]",
    "fermi_foreground_eta": r"$\eta_{Fermi}$ (foreground systematic)",
    "igrb_foreground_model": r"Fermi foreground model (0 = A, 1 = B, 2 = C)",
    "nu_astro_log10_norm": rf"$\log_{{10}}\,\Phi_\nu$(100 TeV) [{_PER_AREA}]",
    "nu_astro_index": r"$\gamma_\nu$ (astrophysical index)",
    "igrb_log10_norm": rf"$\log_{{10}}\,\Phi_{{IGRB}}$(1 GeV) [{_PER_AREA}]",
    "igrb_index": r"$\gamma_{IGRB}$",
    "igrb_log10_cutoff_GeV": r"$\log_{10} E_{cut,IGRB}$ [GeV]",
    "gas_outer_slope": r"outer gas slope $s$ ($n \propto r^{-s}$)",
    "gas_outer_log10_scale": r"$\log_{10}$ outer gas / paper's",
    "gas_inner_log10_scale": r"$\log_{10}$ inner gas / paper's",
    "hadronic_mix": r"hadronic: AAfrag (0) $\to$ Kamae (1)",
    "ebl_mix": r"EBL: Inoue (0) $\to$ Saldana-Lopez (1)",
    "history_peak": r"history: peak $f$",
    "history_shift_Gyr": r"history: shift [Gyr]",
    "burst_log10_energy_erg": r"burst: $\log_{10} E_b$ [erg]",
    "burst_alpha": r"burst: $\alpha_b$",
    "burst_log10_Emax_GeV": r"burst: $\log_{10} E_{max,b}$ [GeV]",
    "burst_age_Gyr": r"burst: age [Gyr]",
    "share_icecube_100TeV": r"share of IceCube, 100 TeV",
    "share_icecube_1PeV": r"share of IceCube, 1 PeV",
    "derived_mw_over_other_nu_100TeV": r"Milky Way / other galaxies ($\nu$, 100 TeV)",
    "derived_log10_LCR_erg_s": r"$\log_{10} L_{CR}$ [erg s$^{-1}$]",
    "derived_log10_LCR_kinetic_erg_s": r"$\log_{10} L_{CR,kin}$ [erg s$^{-1}$]",
    "derived_gas_mass_Msun": r"gas mass [M$_\odot$]",
}
CORNER_RASTER_MAX = 8  # a larger corner plot draws thinned vector points: matplotlib rasterises each panel
# into a figure-sized canvas, which for 16 x 16 panels took 16 GB
SCENARIO_STYLES = {"baseline": dict(marker="o", color="C3"), "fast-diffusion": dict(marker="s", color="C2"),
                   "hard": dict(marker="^", color="C1")}
MODES = {"bound": "the model must not exceed the data", "measurement": "the model is the measured flux",
         "component": "model + free component = data", "power_law": "a cut-off power law alone = data"}


def _posterior_range(x, pad=0.05):
    """(min, max) of the samples widened by pad of their spread on both sides."""
    lo, hi = float(np.min(x)), float(np.max(x))
    width = max(hi - lo, 1e-6 * max(abs(lo), 1.0))
    return lo - pad * width, hi + pad * width


def _credible_levels(H, fractions=(0.95, 0.68)):
    """Density levels of the highest-density regions holding these fractions of H (increasing)."""
    flat = np.sort(H.ravel())[::-1]
    cumulative = np.cumsum(flat) / flat.sum()
    return np.unique([flat[min(np.searchsorted(cumulative, f), flat.size - 1)] for f in fractions])


def _mark(ax, x, y, style, rank):
    """A paper scenario at (x, y) (y None: a marginal panel, where the marker's height is set by rank):
    its marker inside the axes; outside them, the marker on the frame where the line towards it
    leaves the axes, with an arrow pointing there. Markers grow with rank, so coinciding scenarios
    stay visible. Returns True for an arrow."""
    u, v = (ax.transData + ax.transAxes.inverted()).transform((x, ax.get_ylim()[0] if y is None else y))
    if y is None:
        v = 0.9 - 0.1 * rank
    edge = np.clip([u, v], 0.0, 1.0)
    ax.plot(*edge, ls="none", ms=6 + 2 * rank, mfc="none", mew=1.5, transform=ax.transAxes, clip_on=False, **style)
    if edge[0] == u and edge[1] == v:
        return False
    direction = (np.array([u, v]) - edge) / np.hypot(u - edge[0], v - edge[1])
    ax.annotate("", xy=edge - 0.04 * direction, xytext=edge - 0.16 * direction, xycoords="axes fraction",
                arrowprops=dict(arrowstyle="->", color="0.3", lw=1.5))
    return True


def _median_title(x):
    """median^{+up}_{-down} of the 68 % interval, to two significant digits of the smaller error."""
    lo, mid, hi = np.percentile(x, [16, 50, 84])
    err = min(hi - mid, mid - lo)
    d = max(0, 1 - int(np.floor(np.log10(err)))) if err > 0 else 3
    return rf"${mid:.{d}f}^{{+{hi - mid:.{d}f}}}_{{-{mid - lo:.{d}f}}}$"


def corner_plot(idata, var_names, path, log10_names=()):
    """Pairwise posterior: samples with 68 / 95 % credible contours, marginal histograms with the median
    and 68 % interval; axes follow the posterior. The paper's scenarios are marked where defined; one
    outside the plotted range sits on the frame with an arrow towards it. Variables in log10_names
    (positive, spanning decades: the shares) are shown as log10. Writes PNG and PDF; returns path."""
    samples = {name: idata.posterior[name].values.reshape(-1) for name in var_names}
    samples = {k: np.log10(v) if k in log10_names else v for k, v in samples.items()}
    ranges = {name: _posterior_range(x) for name, x in samples.items()}
    n = len(var_names)
    size = max(2.4 * n, 6.0)
    fig, axes = plt.subplots(n, n, figsize=(size, size + 0.8), squeeze=False, layout="constrained")
    scenarios = paper_scenarios()
    arrows = False
    for i, yname in enumerate(var_names):
        for j, xname in enumerate(var_names):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            ax.set_xlim(ranges[xname])
            if i == j:
                ax.hist(samples[xname], bins=30, range=ranges[xname], histtype="step", color="C0", density=True)
                for q in np.percentile(samples[xname], [16, 50, 84]):
                    ax.axvline(q, color="C0", ls="--", lw=1)
                ax.set_yticks([])
                ax.set_title(_median_title(samples[xname]), fontsize=10)
            else:
                _pair_panel(ax, samples[xname], samples[yname], ranges[xname], ranges[yname], n <= CORNER_RASTER_MAX)
            for rank, (name, point) in enumerate(scenarios.items()):
                if xname in point and (i == j or yname in point):
                    arrows |= _mark(ax, point[xname], None if i == j else point[yname], SCENARIO_STYLES[name], rank)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            if i != j:
                ax.yaxis.set_major_locator(MaxNLocator(4))
            ax.ticklabel_format(useOffset=False, style="plain")
            ax.tick_params(labelsize=8)
            if i == n - 1:
                ax.set_xlabel(_label(xname, log10_names))
                ax.tick_params(axis="x", labelrotation=45)
            else:
                ax.tick_params(labelbottom=False)
            if j == 0 and i > 0:
                ax.set_ylabel(_label(yname, log10_names))
            elif i != j:
                ax.tick_params(labelleft=False)
    fig.legend(handles=_corner_legend(scenarios, var_names, arrows), loc="outside upper center", ncols=2, fontsize=9)
    return save_figure(fig, path)


def _label(name, log10_names):
    label = LABELS.get(name, name)
    return rf"$\log_{{10}}$ ({label})" if name in log10_names else label


def _pair_panel(ax, x, y, xrange, yrange, rasterized=True):
    """Samples as dots with the 68 % (solid) and 95 % (dashed) regions of the smoothed histogram
    (not rasterised: at most 1000 evenly spaced samples as dots)."""
    step = 1 if rasterized else max(1, x.size // 1000)
    ax.plot(x[::step], y[::step], ".", color="0.55", ms=2, alpha=0.5, rasterized=rasterized)
    H, xe, ye = np.histogram2d(x, y, bins=20, range=[xrange, yrange])
    H = gaussian_filter(H, 1.5)
    levels = _credible_levels(H)
    if levels.size == 2:
        centres = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
        ax.contour(*centres, H.T, levels=levels, colors="C0", linestyles=["--", "-"], linewidths=1.2)
    ax.set_ylim(yrange)


def _corner_legend(scenarios, var_names, arrows):
    """Legend entries of the corner plot: what every mark means."""
    handles = [Line2D([], [], ls="none", marker=".", color="0.55", label="posterior samples"),
               Line2D([], [], color="C0", label="68 % credible region (95 %: dashed)"),
               Line2D([], [], color="C0", ls="--", label="marginal: median and 68 % interval")]
    for name, point in scenarios.items():
        shown = ", ".join(f"{LABELS.get(k, k).split(' [')[0]} = {v:.3g}" for k, v in point.items() if k in var_names)
        handles.append(Line2D([], [], ls="none", mfc="none", mew=1.5, **SCENARIO_STYLES[name],
                              label=f"paper, {name}: {shown}"))
    if arrows:
        handles.append(Line2D([], [], ls="none", marker=r"$\longrightarrow$", ms=16, color="0.3",
                              label="arrow to a marker on the frame: paper scenario\n"
                                    "outside the plotted range, in that direction"))
    return handles


def marginals_plot(idata, var_names, priors, path, columns=4):
    """One panel per parameter: the posterior's histogram against its prior's range (uniform priors
    shaded), with the median and the 68 % interval. Writes PNG and PDF; returns path."""
    columns = min(columns, len(var_names))
    rows = -(-len(var_names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.7 * rows), squeeze=False, layout="constrained")
    for ax, name in zip(axes.flat, var_names):
        x = idata.posterior[name].values.reshape(-1)
        prior = priors.get(name)
        span = (prior.a, prior.b) if prior is not None and prior.kind == "uniform" else _posterior_range(x)
        ax.hist(x, bins=30, range=span, density=True, histtype="stepfilled", color="C0", alpha=0.6)
        if prior is not None and prior.kind == "uniform":
            ax.axhline(1.0 / (prior.b - prior.a), color="0.3", ls=":", label="prior")
        for q in np.percentile(x, [16, 50, 84]):
            ax.axvline(q, color="C0", ls="--", lw=1)
        ax.set_xlim(span)
        ax.set_yticks([])
        ax.set_xlabel(LABELS.get(name, name), fontsize=9)
        ax.set_title(_median_title(x), fontsize=10)
    for ax in axes.flat[len(var_names):]:
        ax.set_visible(False)
    return save_figure(fig, path)


def predictive_plot(idata, setup, path, checks=None, columns=3):
    """Posterior-predictive 68 % / 95 % bands of the model at every data point, over the data, one
    panel per data set on a grid, each with a residual panel (data - median model) / sigma under it
    and, given goodness.posterior_checks' table, its posterior-predictive p-value or how often it
    is exceeded. Writes PNG and PDF; returns path."""
    terms = setup.terms
    columns = min(columns, len(terms))
    rows = -(-len(terms) // columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(4.8 * columns, 5.0 * rows + 0.8), squeeze=False,
                             layout="constrained", height_ratios=[3, 1] * rows)
    for k, term in enumerate(terms):
        ax, below = axes[2 * (k // columns), k % columns], axes[2 * (k // columns) + 1, k % columns]
        draws = idata.posterior_predictive[term.name].values.reshape(-1, term.value.size)
        _predictive_panel(ax, draws, term)
        _residual_panel(below, draws, term, None if checks is None else checks.loc[term.name])
        ax.set_xlabel("")
    for k in range(len(terms), rows * columns):
        axes[2 * (k // columns), k % columns].set_visible(False)
        axes[2 * (k // columns) + 1, k % columns].set_visible(False)
    handles = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="outside upper center", ncols=len(handles))
    return save_figure(fig, path)


def _residual_panel(ax, draws, term, check):
    """(data - median model) / sigma (the error on the model's side) per measured point, and the
    data set's goodness of fit (a row of goodness.posterior_checks) as text."""
    from .goodness import residuals

    mid = np.median(draws, axis=0)
    meas = ~np.asarray(term.is_upper_limit)
    x = term.E_GeV[meas]
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.fill_between([x.min() / 1.5, x.max() * 1.5] if x.size else [1, 2], -2, 2, color="0.9", lw=0)
    ax.plot(x, -np.asarray(residuals(term, mid, term.value))[meas], "k.")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(term.x_label)
    ax.set_ylabel("(data − model)/σ", fontsize=8)
    if check is not None:
        if check["likelihood"] == "measurement":
            text = f"ppp = {check['ppp']:.2f}, median χ² = {check['chi2_median']:.1f} / {int(check['n_points'])}"
        else:
            text = f"exceeded in {100 * check['draws_exceeding']:.0f} % of draws"
        ax.text(0.02, 0.95, text, transform=ax.transAxes, va="top", fontsize=7)


def _predictive_panel(ax, draws, term):
    """One data set: the model's 68 / 95 % bands and median at the data's energies, and the data."""
    lo95, lo68, mid, hi68, hi95 = np.percentile(draws, PREDICTIVE_PERCENTILES, axis=0)
    x = term.E_GeV
    scale = x**term.energy_power
    if x.size == 1:  # one point (one event): the bands as bars beside it
        ax.vlines(x * 1.15, scale * lo95, scale * hi95, color="C0", alpha=0.3, lw=8, label="model: 95 % band")
        ax.vlines(x * 1.15, scale * lo68, scale * hi68, color="C0", alpha=0.6, lw=8, label="model: 68 % band")
        ax.plot(x * 1.15, scale * mid, "C0_", ms=14, label="model: median")
        ax.set_xlim(x[0] / 3, x[0] * 3)
    else:
        ax.fill_between(x, scale * lo95, scale * hi95, color="C0", alpha=0.2, lw=0, label="model: 95 % band")
        ax.fill_between(x, scale * lo68, scale * hi68, color="C0", alpha=0.4, lw=0, label="model: 68 % band")
        ax.plot(x, scale * mid, "C0-", label="model: median")
    meas = ~np.asarray(term.is_upper_limit)
    ax.errorbar(x[meas], scale[meas] * term.value[meas],
                yerr=[scale[meas] * term.err_lo[meas], scale[meas] * term.err_hi[meas]], fmt="k.", label="data (±1σ)")
    if np.any(~meas):
        ax.plot(x[~meas], scale[~meas] * term.value[~meas], "kv", label="data: upper limit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # narrow ranges would label the minor ticks
    shown = np.concatenate([scale * mid, scale * term.value])
    bottom = max(np.min(scale * lo95), shown[shown > 0].min() * 1e-3)
    ax.set_ylim(bottom=bottom)
    if np.max(scale * hi95) < bottom:  # the whole band lies far below the data
        ax.text(0.5, 0.1, f"model below this axis:\n95 % band up to {np.max(scale * hi95):.1e}",
                transform=ax.transAxes, ha="center", fontsize=8, color="C0")
    ax.set_xlabel(term.x_label)
    ax.set_ylabel(term.y_label, fontsize=9)
    mode = MODES.get(getattr(term, "mode", None))
    ax.set_title(term.name if mode is None else f"{term.name}\n({mode})", fontsize=10)


def rank_histograms(summary, path, columns=4):
    """SBC rank histograms (inference.calibrate.summarise) with the central 99 % band of a
    uniform histogram's bin counts, one panel per parameter, the chi-square p-value and the
    coverage of the profile-likelihood intervals in each title."""
    names = list(summary.rank_tests)
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, min(columns, len(names)), figsize=(3.2 * min(columns, len(names)), 2.9 * rows),
                             squeeze=False)
    for ax, name in zip(axes.flat, names):
        test = summary.rank_tests[name]
        bins = test.counts.size
        edges = np.arange(bins + 1)
        ax.axhspan(*test.band, color="0.85", label="99 % band (uniform)")
        ax.axhline(test.counts.sum() / bins, color="0.4", lw=1)
        ax.stairs(test.counts, edges, color="C0", lw=1.5, label="ranks")
        ax.set_xlim(0, bins)
        ax.set_xlabel(f"rank bin (of {bins})")
        covered = ", ".join(f"{c.level:.0%}: {c.fraction:.2f}" for c in summary.coverage[name])
        ax.set_title(f"{LABELS.get(name, name)}\np = {test.p_value:.2g}; coverage {covered}", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].set_ylabel("simulations")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"SBC: {summary.done} simulations ({summary.failed} without a proper posterior mode)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def forecast_plot(forecast, path):
    """Forecast 1-sigma errors of each parameter for today's data and with each experiment (left),
    and each data set's sensitivity to the corona (right): the L_CR detected at 3 and 5 sigma and
    the expected 95 % CLs upper limit with its +-1 sigma band, in units of the fiducial L_CR."""
    keys = list(forecast.fisher)
    names = forecast.names
    fig, (ax, ax_lcr) = plt.subplots(1, 2, figsize=(11, 4.0), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        x = np.arange(len(names)) + (k - (len(keys) - 1) / 2) * width
        ax.bar(x, [forecast.errors[key][n] for n in names], width, label=key, color=f"C{k}")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(names)), [LABELS.get(n, n) for n in names], fontsize=7)
    ax.set_ylabel(r"forecast $1\sigma$ error")
    ax.legend(fontsize=7)
    ax.set_title(", ".join(f"{LABELS.get(n, n).split(' [')[0]} = {v:g}" for n, v in forecast.fiducial.items()),
                 fontsize=7)
    rows = list(forecast.sensitivities)
    y = np.arange(len(rows))
    results = [forecast.sensitivities[r].result for r in rows]
    low = [r.mu_upper_minus_1sigma for r in results]
    high = [r.mu_upper_plus_1sigma for r in results]
    ax_lcr.barh(y, np.subtract(high, low), left=low, height=0.5, color="0.85", label=r"95 % CL$_s$ UL, $\pm1\sigma$")
    ax_lcr.plot([r.mu_upper for r in results], y, "k|", ms=12, label=r"95 % CL$_s$ UL, median")
    ax_lcr.plot([r.mu_3sigma for r in results], y, "o", color="C1", label=r"$3\sigma$ discovery")
    ax_lcr.plot([r.mu_5sigma for r in results], y, "s", color="C3", label=r"$5\sigma$ discovery")
    ax_lcr.axvline(1.0, color="0.3", ls="--", lw=1, label="fiducial corona")
    ax_lcr.set_yticks(y, rows, fontsize=7)
    ax_lcr.invert_yaxis()
    ax_lcr.set_xscale("log")
    ax_lcr.set_xlabel(r"$L_{CR}$ / fiducial $L_{CR}$ (Asimov, profiled background)")
    ax_lcr.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.45, -0.16), ncol=3)
    fig.tight_layout()
    return save_figure(fig, path)
