"""Plots of inference results: the corner plot with the paper's scenarios, posterior-predictive bands."""

import numpy as np

from .model import paper_scenarios


def corner_plot(idata, var_names, path):
    """Pairwise posterior with the paper's three scenarios marked where they are defined."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = az.plot_pair(idata, var_names=var_names, kind="kde", marginals=True, figsize=(2.4 * len(var_names),) * 2)
    axes = np.atleast_2d(axes)
    marks = {"baseline": "o", "fast-diffusion": "s", "hard": "^"}
    for name, point in paper_scenarios().items():
        for i, yname in enumerate(var_names):
            for j, xname in enumerate(var_names):
                if j < i and xname in point and yname in point:
                    axes[i, j].plot(point[xname], point[yname], marks[name], color="red", ms=6, mfc="none", label=name)
    fig = axes.ravel()[0].figure
    handles = {}
    for ax in axes.ravel():
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        fig.legend(list(handles.values()), [f"paper: {k}" for k in handles], loc="upper right")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def predictive_plot(idata, setup, path):
    """Posterior-predictive 68 % / 95 % bands of the model at every data point, over the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(setup.terms)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
    for ax, o in zip(axes[0], setup.terms):
        draws = idata.posterior_predictive[o.name].values.reshape(-1, o.value.size)
        lo95, lo68, mid, hi68, hi95 = np.percentile(draws, [2.5, 16, 50, 84, 97.5], axis=0)
        x = o.E_GeV
        scale = x**o.energy_power
        ax.fill_between(x, scale * lo95, scale * hi95, color="C0", alpha=0.2, label="model 95 %")
        ax.fill_between(x, scale * lo68, scale * hi68, color="C0", alpha=0.4, label="model 68 %")
        ax.plot(x, scale * mid, "C0-")
        meas = ~o.is_upper_limit
        ax.errorbar(x[meas], scale[meas] * o.value[meas], yerr=[scale[meas] * o.err_lo[meas], scale[meas] * o.err_hi[meas]],
                    fmt="k.", label=o.name)
        if np.any(~meas):
            ax.plot(x[~meas], scale[~meas] * o.value[~meas], "kv", label="upper limit")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(o.x_label)
        ax.set_ylabel(o.y_label)
        ax.legend(fontsize=6)
        ax.set_title(o.name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
