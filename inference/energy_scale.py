"""Each experiment's energy (or rigidity) scale as a nuisance parameter (docs/systematics.md,
"Energy scales").

A data point reported at energy E_meas with flux Phi_meas was truly at E_true = g(E_meas) with
Phi_true(E_true) = Phi_meas / g'(E_meas) (the same particles per bin). So the model, compared
in the data's frame, is g'(E) Phi_model(g(E)), against the data and errors as published. Two
forms, as the experiments publish them:

* 'fraction': a calorimeter's or air-shower array's scale, E_true = (1 + s) E, g' = 1 + s;
* 'inverse_rigidity_per_TV': a magnetic spectrometer's residual misalignment, an offset of
  1/R, 1/R_true = 1/R_meas + eps (eps in 1/TV), so that R_true = R / (1 + eps R), a shift that
  grows with R.

Each experiment has one site, shared by its data sets (both LHAASO knee tables, say). Its prior
is a normal of the published sd, truncated at PRIOR_SIGMAS sd (a mass of 6e-5 left out), so
that no step of a sampler or optimiser reaches a scale that turns energies negative.
"""

import dataclasses
import math

import jax.numpy as jnp

from corona_jax.errors import ConfigError
from corona_jax.units import PROTON_MASS_GEV

# experiment -> (form, prior sd, where the number comes from)
EXPERIMENT_SCALES = {
    "AMS02": ("inverse_rigidity_per_TV", 1.0 / 26.0,
              "Aguilar et al. (AMS), PRL 114, 171103 (2015): rigidity scale from the residual tracker "
              "misalignment, 1/(26 TV)"),
    "DAMPE": ("fraction", 0.03, "DAMPE calorimeter absolute scale 1.013 +- 0.012 (stat) +- 0.026 (syst) "
                                "from electrons near the geomagnetic cut-off; our sd rounds their sum in quadrature"),
    "CALET": ("fraction", 0.02, "Adriani et al. (CALET), PRL 129, 101102 (2022): energy scale known to 2 %"),
    "CREAM-III": ("fraction", 0.05, "Yoon et al. (CREAM), ApJ 839, 5 (2017) quote no separate scale; "
                                    "our choice, between the space calorimeters and the air showers"),
    "LHAASO": ("fraction", 0.05, "LHAASO, arXiv:2505.14447 (2025): the spread of its two hadronic-model "
                                 "tables is a 4-8 % scale, the all-particle knee 3.67 +- 0.15 (syst) PeV; our choice"),
    "GRAPES-3": ("fraction", 0.05, "GRAPES-3, PRL 132, 051002 (2024), Supplemental Material: energy bias within "
                                   "2 % in simulation, no absolute scale quoted; our choice"),
    "KASCADE": ("fraction", 0.20, "Antoni et al. (KASCADE), Astropart. Phys. 24, 1 (2005): energy scale ~20 %"),
    "KASCADE-Grande": ("fraction", 0.20, "Apel et al. (KASCADE-Grande), Astropart. Phys. 36, 183 (2012): ~20 %"),
}

# cosmic-ray data set (corona_jax.observations.COSMIC_RAY_DATASETS) -> experiment
DATASET_EXPERIMENT = {
    "AMS02": "AMS02", "DAMPE": "DAMPE", "CALET": "CALET", "CREAM-III": "CREAM-III",
    "KASCADE2011": "KASCADE", "KASCADE2005-SIBYLL": "KASCADE",
    "KASCADE-Grande2013": "KASCADE-Grande", "KASCADE-Grande-QGSJETII-04": "KASCADE-Grande",
    "GRAPES-3-2024": "GRAPES-3", "LHAASO-2025-knee": "LHAASO", "LHAASO-2025-knee-EPOS-LHC": "LHAASO",
    "LHAASO-2024-allparticle": "LHAASO", "LHAASO-2024-allparticle-EPOS-LHC": "LHAASO",
    "LHAASO-2024-allparticle-SIBYLL-2.3d": "LHAASO",
}
PRIOR_SIGMAS = 4.0  # priors are normal, truncated this many sd out, where the data's energies must stay valid


def site_name(experiment: str) -> str:
    form = EXPERIMENT_SCALES[experiment][0]
    return f"rigidity_offset_{experiment}_per_TV" if form == "inverse_rigidity_per_TV" else f"energy_scale_{experiment}"


def true_energy(E_GeV, form: str, value):
    """(E_true [GeV], dE_true/dE_meas) of reported total energies E under a scale nuisance value."""
    if form == "fraction":
        return (1.0 + value) * E_GeV, (1.0 + value) * jnp.ones_like(E_GeV)
    R = jnp.sqrt(E_GeV**2 - PROTON_MASS_GEV**2)
    stretch = 1.0 + value * R / 1000.0  # R in GV, value in 1/TV
    R_true = R / stretch
    E_true = jnp.sqrt(R_true**2 + PROTON_MASS_GEV**2)
    return E_true, (R_true / E_true) * (E_GeV / R) / stretch**2


def check_prior(experiment: str, sd: float, E_GeV, E_grid_GeV):
    """ConfigError unless PRIOR_SIGMAS sd of the scale keep every energy of the data set positive and
    inside the model's grid (E_grid_GeV: its lowest and highest energy)."""
    form = EXPERIMENT_SCALES[experiment][0]
    if not (isinstance(sd, (int, float)) and math.isfinite(sd) and sd > 0):
        raise ConfigError(f"the energy-scale sd of {experiment} must be a positive number, got {sd!r}")
    E_lo, E_hi = float(min(E_GeV)), float(max(E_GeV))
    if form == "fraction":
        shifts = [(1.0 - PRIOR_SIGMAS * sd) * E_lo, (1.0 + PRIOR_SIGMAS * sd) * E_hi]
        ok = 1.0 - PRIOR_SIGMAS * sd > 0
    else:
        R_hi = math.sqrt(E_hi**2 - PROTON_MASS_GEV**2)
        ok = 1.0 - PRIOR_SIGMAS * sd * R_hi / 1000.0 > 0
        shifts = [E_lo, E_hi / max(1.0 - PRIOR_SIGMAS * sd * R_hi / 1000.0, 1e-300)]
    if not ok or shifts[0] < E_grid_GeV[0] or shifts[1] > E_grid_GeV[1]:
        raise ConfigError(f"the energy-scale prior of {experiment} (sd {sd:g}) is wider than its data allow: "
                          f"{PRIOR_SIGMAS:g} sd would move its energies ({E_lo:.3g}-{E_hi:.3g} GeV) "
                          f"out of the model's grid or through zero")


def with_energy_scale(term, model, sd_overrides=None):
    """The ProtonSpectrum term with its experiment's scale nuisance (prior sd from EXPERIMENT_SCALES
    or sd_overrides {experiment: sd}), checked against its energies."""
    experiment = DATASET_EXPERIMENT[term.name]
    form, sd, _ = EXPERIMENT_SCALES[experiment]
    sd = (sd_overrides or {}).get(experiment, sd)
    E = model.transport.E_GeV
    check_prior(experiment, sd, term.E_GeV, (float(E[0]), float(E[-1])))
    return dataclasses.replace(term, scale_site=site_name(experiment), scale_form=form, scale_sd=float(sd))
