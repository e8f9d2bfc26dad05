"""Systematics as nuisance parameters, and the derived quantities every posterior and fit reports.

A run configuration's [systematics] section switches on groups of nuisance parameters; each
group adds sampled sites with the documented default priors of SYSTEMATICS (a prior of the
same name in [priors] replaces the default). Sites are either CoronaParams fields or the
reparameterisations of REPARAMETERISED, which `corona_params` turns into CoronaParams:

* gas (the corona of Eq. 1-3): the outer profile's large-radius slope s = 3 beta_outer and its
  normalisation at GAS_PIVOT_KPC, the inner profile's normalisation, and R_max. Observed ranges:
  n ~ r^-(0.45...0.75) (Troitsky 2016, arXiv:1607.05442), n_e ~ r^-(0.9...1.1) with a hot-gas
  mass of (2.4-8.7)e10 M_sun (Martynenko 2021, arXiv:2105.02557), beta ~ 0.5, i.e. s ~ 1.5
  (Miller & Bregman 2015), and a factor of up to 2 for the cold and warm gas the paper mentions;
* hadronic: hadronic_mix in [0, 1] from AAfrag (QGSJET-II-04m) to Kamae et al. (2006);
* ebl: ebl_mix in [0, 1] from Inoue et al. (2013) to Saldana-Lopez et al. (2021);
* history: the peak and the timing of the star-formation enhancement of Eq. (5);
* nuclei: the nuclear enhancement, the gamma-ray and neutrino yield of all cosmic-ray nuclei on
  gas with helium over that of pp alone;
* burst: a Galactic-centre burst, a second population with its own spectrum, energy and age.
"""

import math

import jax.numpy as jnp

from corona_jax import observations, tables
from corona_jax.cosmic_rays import kinetic_luminosity_erg_s
from corona_jax.forward import NEUTRINO_FLAVOURS
from corona_jax.gas import gas_density_cells
from corona_jax.params import CoronaParams
from corona_jax.units import KPC_CM, M_SUN_G, PROTON_MASS_G

from .terms import loglog_interp

RATIO_PARAMETER = "log10_LCR_minus_log10_D0"
GAS_PIVOT_KPC = 100.0  # where the outer profile's normalisation is held when its slope varies

# site -> (low, high) it may take in any prior; beside the CoronaParams fields
REPARAMETERISED = {
    RATIO_PARAMETER: (-3.0, 24.0),  # log10 of L_CR [erg/s] / D0 [cm^2/s]
    "gas_outer_slope": (0.1, 3.0),  # s of n_outer ~ r^-s at large r (s = 3 beta_outer)
    "gas_outer_log10_scale": (-1.0, 1.0),  # log10 of n_outer(GAS_PIVOT_KPC) / the paper's
    "gas_inner_log10_scale": (-1.0, 1.0),  # log10 of n0_inner / the paper's
    "burst_log10_energy_erg": (50.0, 62.0),  # log10 of burst_energy_erg
}

# group -> {site: (kind, a, b)}: uniform [a, b] or normal (mean a, sd b); docs/systematics.md
SYSTEMATICS = {
    "gas": {
        "gas_outer_slope": ("uniform", 0.45, 1.5),  # Troitsky 2016 ... Miller & Bregman 2015
        "gas_outer_log10_scale": ("uniform", -0.301, 0.301),  # a factor of 2 either way
        "gas_inner_log10_scale": ("uniform", -0.301, 0.301),
        "Rmax_kpc": ("uniform", 150.0, 350.0),  # around the virial radius, 250 kpc in the paper
    },
    "hadronic": {"hadronic_mix": ("uniform", 0.0, 1.0)},
    "ebl": {"ebl_mix": ("uniform", 0.0, 1.0)},
    "history": {
        "history_peak": ("uniform", 1.5, 6.0),  # f at the plateau; 3 in the paper, f(today) = 1
        "history_shift_Gyr": ("uniform", -2.0, 2.0),
    },
    # Kafexhiu et al. (2014), Eq. (24): 1.69-1.82 from 1 PeV to 2 GeV; Mori (2009) and Kachelriess,
    # Moskalenko & Ostapchenko (2014): 1.8-2.0 (docs/systematics.md, "Nuclei")
    "nuclei": {"nuclear_enhancement": ("uniform", 1.6, 2.1)},
    "burst": {
        "burst_log10_energy_erg": ("uniform", 53.0, 57.5),  # Fermi-bubble-like outbursts; docs/systematics.md
        "burst_alpha": ("uniform", 1.8, 2.8),
        "burst_log10_Emax_GeV": ("uniform", 5.0, 8.0),
        "burst_age_Gyr": ("uniform", 0.5, 8.0),
    },
}
BURST_SITES = ("burst_log10_energy_erg", "burst_energy_erg", "burst_alpha", "burst_log10_Emax_GeV", "burst_age_Gyr")


def corona_params(base: CoronaParams, values: dict) -> CoronaParams:
    """CoronaParams from sampled values: CoronaParams fields directly, REPARAMETERISED sites turned
    into the fields they stand for (works on floats and on traced values)."""
    values = dict(values)
    if RATIO_PARAMETER in values:
        D0 = values.get("log10_D0_cm2_s", base.log10_D0_cm2_s)
        values["log10_LCR_erg_s"] = values.pop(RATIO_PARAMETER) + D0
    if "burst_log10_energy_erg" in values:
        values["burst_energy_erg"] = 10.0 ** values.pop("burst_log10_energy_erg")
    if "gas_inner_log10_scale" in values:
        values["n0_inner_cm3"] = base.n0_inner_cm3 * 10.0 ** values.pop("gas_inner_log10_scale")
    slope = values.pop("gas_outer_slope", None)
    scale = values.pop("gas_outer_log10_scale", None)
    if slope is not None or scale is not None:
        x = 1.0 + (GAS_PIVOT_KPC / base.rc_outer_kpc) ** 2
        beta = base.beta_outer if slope is None else slope / 3.0
        n_pivot = base.n0_outer_cm3 * x ** (-1.5 * base.beta_outer) * (1.0 if scale is None else 10.0 ** scale)
        values["beta_outer"] = beta
        values["n0_outer_cm3"] = n_pivot * x ** (1.5 * beta)
    return base._replace(**values)


def model_options(free_sites) -> dict:
    """build_model options the free sites need: the alternative tables of the mixes, the burst."""
    options = {}
    if "hadronic_mix" in free_sites:
        options["pp_table_alternative"] = tables.PP_ALTERNATIVE_TABLE_FILE
    if "ebl_mix" in free_sites:
        options.update(ebl_table_alternative=tables.EBL_ALTERNATIVE_TABLE_FILE,
                       cascade_table_alternative=tables.CASCADE_ALTERNATIVE_TABLE_FILE)
    if any(s in free_sites for s in BURST_SITES):
        options["burst"] = True
    return options


SHARE_ENERGIES_GeV = {"100TeV": 1.0e5, "1PeV": 1.0e6}
DERIVED_ENERGY_GeV = 1.0e5  # of the Milky Way / other galaxies ratio


def neutrino_references(name: str) -> dict:
    """{'100TeV': flux, '1PeV': flux}: IceCube's per-flavour dN/dE [GeV^-1 cm^-2 s^-1 sr^-1] of the
    segmented data set `name` at SHARE_ENERGIES_GeV (the segment's upper end for a limit row)."""
    data = observations.load_neutrino_dataset(name)
    return {k: observations.segment_flux(data, E) for k, E in SHARE_ENERGIES_GeV.items()}


def gas_mass_Msun(params: CoronaParams, model):
    """m_p int n_g dV inside R_max [M_sun]: the gas as hydrogen nucleons (helium adds ~1.4x)."""
    tm = model.transport
    n = gas_density_cells(params, tm.faces_kpc, tm.centres_kpc)
    return PROTON_MASS_G * 4.0 * math.pi * jnp.sum(n * tm.volumes_kpc3) * KPC_CM**3 / M_SUN_G


def derived_quantities(prediction, params: CoronaParams, model, neutrino_reference=None, igrb_term=None) -> dict:
    """The derived sites of every posterior and fit (names begin with share_ or derived_):

    share_icecube_100TeV, share_icecube_1PeV: the corona's per-flavour all-sky mean (Milky Way +
    other galaxies) over IceCube's (neutrino_reference, neutrino_references), and that flux itself,
    derived_nu_per_flavour_100TeV and _1PeV [GeV^-1 cm^-2 s^-1 sr^-1]; share_igrb: the isotropic
    corona over the Fermi-LAT IGRB per band (igrb_term: the GammaBands term), against the band's
    95 % upper limit where the IGRB is below 2 sigma (GammaBands.share_reference), and the corona's
    band intensity itself, derived_igrb_band_intensity [cm^-2 s^-1 sr^-1];
    derived_mw_over_other_nu_100TeV: Milky Way all-sky mean over the other galaxies, neutrinos at
    100 TeV; derived_log10_LCR_erg_s and derived_log10_LCR_kinetic_erg_s: total and kinetic
    L_CR; derived_gas_mass_Msun."""
    E_s = model.milky_way.E_secondary_GeV
    mw_nu = prediction.milky_way.sky_mean_nu_all_flavour
    other_nu = prediction.extragalactic.nu_all_flavour
    out = {}
    if neutrino_reference is not None:
        corona = (mw_nu + other_nu) / NEUTRINO_FLAVOURS
        for key, E in SHARE_ENERGIES_GeV.items():
            flux = loglog_interp(E_s, corona, jnp.asarray(E))
            out[f"share_icecube_{key}"] = flux / neutrino_reference[key]
            out[f"derived_nu_per_flavour_{key}"] = flux
    if igrb_term is not None:
        intensity = igrb_term.predict(prediction, model)
        out["share_igrb"] = intensity / igrb_term.share_reference()
        out["derived_igrb_band_intensity"] = intensity
    E0 = jnp.asarray(DERIVED_ENERGY_GeV)
    out["derived_mw_over_other_nu_100TeV"] = loglog_interp(E_s, mw_nu, E0) / loglog_interp(E_s, other_nu, E0)
    out["derived_log10_LCR_erg_s"] = jnp.asarray(params.log10_LCR_erg_s, dtype=jnp.float64)
    out["derived_log10_LCR_kinetic_erg_s"] = jnp.log10(kinetic_luminosity_erg_s(params, model.transport))
    out["derived_gas_mass_Msun"] = gas_mass_Msun(params, model)
    return out
