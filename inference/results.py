"""Writing inference results: best fits to HDF5, posteriors to netCDF with a summary table,
and their plots (corner plot with the paper's scenarios, posterior-predictive bands)."""

import dataclasses
import json
import os

import h5py
import numpy as np

from corona_jax.output import atomic_write

from .model import paper_scenarios


def write_fit(path, result, setup):
    """Best fit, Laplace covariance, every start and the profile into HDF5 (atomic replace)."""
    from corona_jax import __version__

    with atomic_write(path, ".h5.tmp") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["corona_jax_version"] = __version__
        f.attrs["config"] = json.dumps(dataclasses.asdict(setup.config), default=str)
        for key, value in setup.model.config.describe().items():
            f.attrs[f"model_{key}"] = value
        f.attrs["objective"] = "-log joint density (priors + likelihood); with uniform priors, -log likelihood"
        f.attrs["parameters"] = ",".join(result.names)
        g = f.create_group("best_fit")
        for name in result.names:
            g.attrs[name] = result.best[name]
            g.attrs[f"{name}_laplace_error"] = result.errors[name]
        g.attrs["neg_log_density"] = result.neg_log_density
        f.create_dataset("laplace_covariance", data=result.covariance).attrs["axes"] = "(parameters, parameters)"
        starts = f.create_group("starts")
        starts.create_dataset("neg_log_density", data=np.array([r[2] for r in result.starts]))
        starts.create_dataset("steps", data=np.array([r[3] for r in result.starts]))
        for name in result.names:
            starts.create_dataset(f"start {name}", data=np.array([r[0][name] for r in result.starts]))
            starts.create_dataset(f"final {name}", data=np.array([r[1][name] for r in result.starts]))
        if result.profile:
            p = f.create_group("profile")
            p.attrs["parameter"] = result.profile["parameter"]
            p.create_dataset("values", data=result.profile["values"])
            p.create_dataset("neg_log_density", data=result.profile["neg_log_density"])
    return os.path.abspath(path)


def summary_table(idata, var_names):
    import arviz as az

    return az.summary(idata, var_names=var_names, hdi_prob=0.94)


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
