"""Solar modulation of the direct proton data in the force-field approximation (Gleeson & Axford
1968), with one potential per experiment's epoch as a nuisance (docs/systematics.md, "Solar
modulation").

The model's flux at the observer is the local interstellar spectrum (LIS). A proton seen at
total energy E near the Earth had E + Phi in interstellar space, Phi = (Z e / A) phi = phi for
protons (phi in GV, Phi in GeV), and the phase-space density J / p^2 is conserved:

    J_TOA(E) = J_LIS(E + Phi) * (E^2 - m^2) / ((E + Phi)^2 - m^2).

An experiment's energy scale (inference.energy_scale) acts first: it moves the reported energy to
the true one at the top of the atmosphere, where the force field then applies.
"""

import dataclasses

from corona_jax.errors import ConfigError
from corona_jax.units import PROTON_MASS_GEV

# experiment -> (prior mean [GV], prior sd [GV], epoch, source). Only the direct experiments whose
# data reach down to tens of GeV: at the lowest CREAM-III energy (~1 TeV) phi = 0.6 GV changes the
# flux by 0.3 %, far below its errors. A force-field phi depends on the interstellar spectrum it was
# derived with, by ~0.1 GV between conventions, hence sds wider than the monthly scatter.
_OULU = ("the Oulu neutron-monitor reconstruction of phi (Usoskin et al., cosmicrays.oulu.fi/phi), monthly "
         "values as redistributed in github.com/cdgomezo/cosmogenic, data/solar_phi/oulu_phi.csv (commit "
         "06bf99c1); the LIS convention of that table is not certain")
EPOCH_POTENTIALS = {
    "AMS02": (0.60, 0.15, "May 2011 - Nov 2013",
              "our choice: we found no tabulated phi for this epoch to cite; it rose towards the maximum of "
              "solar cycle 24, above the 0.40 GV of the DAMPE epoch, hence the wide prior"),
    "DAMPE": (0.40, 0.10, "Dec 2015 - Jun 2018", "mean of the 31 months (0.32-0.56 GV) in " + _OULU),
    "CALET": (0.36, 0.10, "Oct 2015 - Dec 2021", "mean of the 75 months (0.27-0.60 GV) in " + _OULU),
}
PRIOR_SIGMAS = 4.0  # truncation of the normal priors, as for the energy scales
DATASET_EXPERIMENT = {"AMS02": "AMS02", "DAMPE": "DAMPE", "CALET": "CALET"}


def site_name(experiment: str) -> str:
    return f"solar_phi_{experiment}_GV"


def force_field(E_GeV, phi_GV):
    """(E_LIS [GeV], J_TOA / J_LIS(E_LIS)) for protons seen at total energies E_GeV."""
    E_lis = E_GeV + phi_GV
    return E_lis, (E_GeV**2 - PROTON_MASS_GEV**2) / (E_lis**2 - PROTON_MASS_GEV**2)


def prior_bounds(mean: float, sd: float) -> tuple:
    """The truncation of the potential's normal prior: PRIOR_SIGMAS sd, and never below zero."""
    return max(mean - PRIOR_SIGMAS * sd, 0.0), mean + PRIOR_SIGMAS * sd


def with_solar_modulation(term):
    """The ProtonSpectrum term with its epoch's force-field potential as a nuisance; terms of
    experiments without an entry in EPOCH_POTENTIALS are returned unchanged."""
    experiment = DATASET_EXPERIMENT.get(term.name)
    if experiment is None:
        return term
    mean, sd, _, _ = EPOCH_POTENTIALS[experiment]
    return dataclasses.replace(term, phi_site=site_name(experiment), phi_mean_GV=mean, phi_sd_GV=sd)


def check_selects_modulated(names) -> None:
    """ConfigError unless one of the cosmic-ray data sets `names` has an epoch potential."""
    if not any(n in DATASET_EXPERIMENT for n in names):
        raise ConfigError("[systematics] solar_modulation = true needs a direct proton data set that reaches "
                          f"low energies ({', '.join(DATASET_EXPERIMENT)}) in [data] cosmic_rays")


def modulated(flux_at, E_GeV, phi_GV):
    """J_TOA at total energies E_GeV from flux_at(E) (the LIS) and the potential phi [GV] (jnp)."""
    E_lis, factor = force_field(E_GeV, phi_GV)
    return factor * flux_at(E_lis)

