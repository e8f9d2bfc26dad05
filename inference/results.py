"""Writing inference results: best fits to HDF5 and the posterior summary table
(the plots are in inference/plots.py)."""

import dataclasses
import json
import os

import h5py
import numpy as np

from corona_jax.output import new_hdf5


_SUFFIX_UNITS = (("_GeV", "GeV"), ("_cm2_s", "cm^2 s^-1"), ("_erg_s", "erg s^-1"), ("_kpc", "kpc"), ("_cm3", "cm^-3"))
_NAMED_UNITS = {"log10_LCR_minus_log10_D0": "log10(erg cm^-2)",  # L_CR [erg/s] / D0 [cm^2/s]
                "nu_astro_log10_norm": "log10(GeV^-1 cm^-2 s^-1 sr^-1)",
                "igrb_log10_norm": "log10(GeV^-1 cm^-2 s^-1 sr^-1)"}


def parameter_units(name: str) -> str:
    """Units of a parameter from its name (the package's names end in their units)."""
    if name in _NAMED_UNITS:
        return _NAMED_UNITS[name]
    unit = next((u for suffix, u in _SUFFIX_UNITS if name.endswith(suffix)), "1")
    return f"log10({unit})" if name.startswith("log10_") else unit


_DERIVED_UNITS = {"derived_igrb_band_intensity": "cm^-2 s^-1 sr^-1", "derived_nu_per_flavour_": "GeV^-1 cm^-2 s^-1 sr^-1"}


def derived_units(name: str) -> str:
    """Units of a derived site: shares and ratios are 1, the rest end in their units."""
    if name.startswith("share_") or "_over_" in name:
        return "1"
    for prefix, units in _DERIVED_UNITS.items():
        if name.startswith(prefix):
            return units
    return "M_sun" if name.endswith("_Msun") else parameter_units(name.removeprefix("derived_"))


def _column(group, name, data, units, description):
    d = group.create_dataset(name, data=np.asarray(data))
    d.attrs["units"] = units
    d.attrs["description"] = description


def write_fit(path, result, setup):
    """Best fit, Laplace covariance, every start and the profile into HDF5 (atomic replace).
    Every dataset has a `units` attribute; names have no spaces."""
    from corona_jax import __version__

    with new_hdf5(path) as f:
        f.attrs["corona_jax_version"] = __version__
        f.attrs["config"] = json.dumps(dataclasses.asdict(setup.config), default=str)
        for key, value in setup.model.config.describe().items():
            f.attrs[f"model_{key}"] = value
        f.attrs["objective"] = "-log joint density (priors + likelihood); with uniform priors, -log likelihood"
        f.attrs["parameters"] = ",".join(result.names)
        f.attrs["all_starts_converged"] = all(r.converged for r in result.starts)
        f.attrs["starts_agreeing"] = result.starts_agreeing  # starts within 0.01 nat of the best -log density
        g = f.create_group("best_fit")
        for name in result.names:
            _column(g, name, result.best[name], parameter_units(name), "best-fit value")
            _column(g, f"{name}_laplace_error", result.errors[name], parameter_units(name),
                    "sqrt of the Laplace covariance's diagonal; nan on a prior edge")
            if name in result.at_edge:
                g[name].attrs["at_prior_edge"] = result.at_edge[name]
                _column(g, f"{name}_interval_95", result.intervals[name], parameter_units(name),
                        "95 % one-sided interval (the best fit sits on a prior edge)")
        _column(g, "neg_log_density", result.neg_log_density, "1", "-log joint density at the best fit")
        d = f.create_group("derived")
        for name, value in result.derived.items():
            _column(d, name, value, derived_units(name), "derived quantity at the best fit (inference.systematics)")
        write_goodness(f.create_group("goodness_of_fit"), result.goodness, result.goodness_total)
        cov = f.create_dataset("laplace_covariance", data=result.covariance)
        cov.attrs["axes"] = "(parameters, parameters), in the order of the root attribute 'parameters'"
        cov.attrs["units"] = "product of the two parameters' units"
        starts = f.create_group("starts")
        _column(starts, "neg_log_density", [r.neg_log_density for r in result.starts], "1", "-log density at the end")
        _column(starts, "steps", [r.steps for r in result.starts], "1", "L-BFGS steps taken")
        _column(starts, "converged", [r.converged for r in result.starts], "1",
                "1: gradient or objective change below tolerance; 0: stopped at the step limit")
        _column(starts, "gradient_norm", [r.gradient_norm for r in result.starts], "1",
                "max |gradient| in the unconstrained coordinates at the end")
        for name in result.names:
            _column(starts, f"start_{name}", [r.start[name] for r in result.starts], parameter_units(name), "start")
            _column(starts, f"final_{name}", [r.final[name] for r in result.starts], parameter_units(name), "end")
        if result.profile:
            prof = result.profile
            p = f.create_group("profile")
            p.attrs["parameter"] = prof["parameter"]
            _column(p, "values", prof["values"], parameter_units(prof["parameter"]), "fixed values of the parameter")
            _column(p, "neg_log_density", prof["neg_log_density"], "1", "-log density minimised over the others")
            p.create_dataset("cut_by_prior_edge", data=np.array(prof["at_edge"], dtype=h5py.string_dtype())).attrs[
                "description"] = "other parameters on a prior edge at each point (comma-separated; empty: none)"
    return os.path.abspath(path)


def write_goodness(group, fits, total):
    """goodness.TermFit of every data set (a subgroup each) and the total, into an HDF5 group."""
    group.attrs["description"] = ("measurements: chi2 of the residuals (m - d) / sigma and its p-value with n_points "
                                  "degrees of freedom; bounds: points the model exceeds (inference.goodness)")
    for key, value in total.items():
        _column(group, f"total_{key}", value, "1", "over every measured data set; dof = points - free parameters")
    for fit in fits:
        g = group.create_group(fit.name)
        g.attrs["likelihood"] = "measurement" if fit.measurement else "bound"
        _column(g, "chi2", fit.chi2, "1", "sum of squared residuals (0 for a bound)")
        _column(g, "n_points", fit.n_points, "1", "points (degrees of freedom of this data set's p-value)")
        _column(g, "p_value", fit.p_value, "1", "P(chi2 >= observed) for n_points degrees of freedom (nan: bound)")
        _column(g, "n_exceeding", fit.n_exceeding, "1", "measured points below the model")
        _column(g, "largest_excess_sigma", fit.largest_excess_sigma, "1", "largest (model - data) / sigma")
        _column(g, "residuals", fit.residuals, "1", "(model - data) / sigma per point, sigma on the model's side")


def derived_limits(idata, notes=None):
    """Median, 68 % interval and 95 % upper limit of every derived site of a posterior (share_* and
    derived_*; a vector site such as share_igrb gives one row per element), as a pandas DataFrame;
    notes: row name -> what the row is taken against, where that is not obvious (share_notes)."""
    import pandas as pd

    notes = notes or {}
    rows = {}
    for name, values in idata.posterior.data_vars.items():
        if not name.startswith(("share_", "derived_")):
            continue
        x = np.asarray(values).reshape(values.shape[0] * values.shape[1], -1)
        for i in range(x.shape[1]):
            q = np.quantile(x[:, i], [0.16, 0.5, 0.84, 0.95])
            row = name if x.shape[1] == 1 else f"{name}[{i}]"
            rows[row] = dict(units=derived_units(name), median=q[1], q16=q[0], q84=q[2], upper_limit_95=q[3],
                             note=notes.get(row, ""))
    return pd.DataFrame.from_dict(rows, orient="index")


def share_notes(setup) -> dict:
    """{row: note} for the derived rows whose reference is not a measurement: the IGRB bands whose
    share is taken against their 95 % upper limit (GammaBands.share_reference)."""
    from .terms import GammaBands

    notes = {}
    for term in setup.terms:
        if isinstance(term, GammaBands):
            for i in np.flatnonzero(np.asarray(term.share_is_over_limit())):
                notes[f"share_igrb[{i}]"] = (f"against the 95 % upper limit: the IGRB band centred at "
                                             f"{float(term.E_GeV[i]):.3g} GeV is below 2 sigma")
    return notes


def summary_table(idata, var_names):
    import arviz as az

    return az.summary(idata, var_names=var_names, hdi_prob=0.94)
