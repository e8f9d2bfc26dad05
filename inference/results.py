"""Writing inference results: best fits to HDF5 and the posterior summary table
(the plots are in inference/plots.py)."""

import dataclasses
import json
import os

import h5py
import numpy as np

from corona_jax.output import atomic_write


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
