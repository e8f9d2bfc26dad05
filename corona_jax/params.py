"""The model's parameter pytree, the paper's presets, and input validation.

Quantities that span decades are stored as log10 so that optimisers and samplers
see O(1) scales. The gas numbers are those of Eq. (1)-(3) of Kalashev & Troitsky
(2016): two beta profiles n0 (1 + (r/rc)^2)^(-3 beta/2), combined by max().
"""

import math
from typing import NamedTuple

from .errors import ParameterError


class CoronaParams(NamedTuple):
    """Everything inference may vary. A NamedTuple, hence a JAX pytree."""

    alpha: float  # injection spectral index of Q ~ E^-alpha
    log10_Emax_GeV: float  # exponential cut-off of the injection spectrum
    log10_D0_cm2_s: float  # D(E) = D0 (E/GeV)^(1/3)
    log10_LCR_erg_s: float  # present-day CR luminosity, int_{E>1 GeV} E Q dE dV
    n0_inner_cm3: float = 0.738  # Eq. (2), simulation fit (inner corona)
    beta_inner: float = 0.843
    rc_inner_kpc: float = 3.0
    n0_outer_cm3: float = 0.00153  # Eq. (3), observational best fit (outer corona)
    beta_outer: float = 0.195
    rc_outer_kpc: float = 3.0
    Rmax_kpc: float = 250.0  # gas cut-off radius
    # Eq. (5) generalised: f(t) = 1 + (history_peak - 1) h(t - history_shift_Gyr), h the paper's
    # trapezoid (rise over 2 Gyr, plateau to 6 Gyr, decline to 0 at 10 Gyr); the paper has 3 and 0
    history_peak: float = 3.0
    history_shift_Gyr: float = 0.0
    # Systematics that interpolate linearly between two tables (0: the default table, 1: the
    # alternative; used only by models built with the alternatives, corona_jax.model.ModelConfig)
    hadronic_mix: float = 0.0  # AAfrag (QGSJET-II-04m) -> Kamae et al. (2006)
    ebl_mix: float = 0.0  # Inoue et al. (2013) -> Saldana-Lopez et al. (2021)
    # A burst of the Galactic centre, a second population of its own (used by models built with
    # burst=True): energy int E Q dE dV dt above 1 GeV, spectrum E^-alpha exp(-E/E_max), age
    burst_energy_erg: float = 0.0
    burst_alpha: float = 2.2
    burst_log10_Emax_GeV: float = 7.0
    burst_age_Gyr: float = 2.0
    # The broken spectrum's features (used by models built with spectrum='broken',
    # corona_jax.spectrum): each break's rigidity, index change above it and width in ln R.
    # The defaults are round values near the measured features (docs/physics.md, "Spectral features").
    hardening_log10_R_GV: float = 2.7
    hardening_dindex: float = -0.2
    hardening_width: float = 0.2
    softening_log10_R_GV: float = 4.15
    softening_dindex: float = 0.3
    softening_width: float = 0.2
    rehardening_log10_R_GV: float = 5.2
    rehardening_dindex: float = -0.3
    rehardening_width: float = 0.2
    knee_log10_R_GV: float = 6.5
    knee_dindex: float = 0.8
    knee_width: float = 0.2
    # gamma-ray and neutrino yield of all cosmic-ray nuclei on gas with helium over that of pp alone
    nuclear_enhancement: float = 1.0


# Present-day luminosity used when no normalisation to data is asked for. The
# paper normalises to the local CR flux instead (cosmic_rays.normalise_to_data).
NOMINAL_LOG10_LCR_ERG_S = 40.5

PRESETS = {
    "baseline": CoronaParams(2.4, 8.0, math.log10(1.2e29), NOMINAL_LOG10_LCR_ERG_S),
    "fast-diffusion": CoronaParams(2.4, 8.0, math.log10(4.0e30), NOMINAL_LOG10_LCR_ERG_S),
    "hard": CoronaParams(2.0, 7.0, math.log10(1.2e29), NOMINAL_LOG10_LCR_ERG_S),
}

# Physically sensible ranges (inclusive); outside them the model is not trusted.
# Radii in kpc: the source radius is 5 kpc, so the gas must reach beyond it.
PARAMETER_RANGES = {
    "alpha": (1.0, 4.0),
    "log10_Emax_GeV": (2.0, 11.0),
    "log10_D0_cm2_s": (26.0, 33.0),
    "log10_LCR_erg_s": (30.0, 50.0),
    "n0_inner_cm3": (0.0, 100.0),
    "beta_inner": (0.0, 5.0),
    "rc_inner_kpc": (0.0, 100.0),
    "n0_outer_cm3": (0.0, 100.0),
    "beta_outer": (0.0, 5.0),
    "rc_outer_kpc": (0.0, 100.0),
    "Rmax_kpc": (5.0, 5000.0),
    "history_peak": (0.0, 20.0),
    "history_shift_Gyr": (-4.0, 4.0),
    "hadronic_mix": (0.0, 1.0),
    "ebl_mix": (0.0, 1.0),
    "burst_energy_erg": (0.0, 1e62),
    "burst_alpha": (1.0, 4.0),
    "burst_log10_Emax_GeV": (2.0, 11.0),
    "burst_age_Gyr": (0.5, 9.5),
    # breaks inside the energy grid (1 - 1e10 GeV), index changes of at most 2, widths 0.01 - 3 in ln R
    **{f"{b}_{field}": rng for b in ("hardening", "softening", "rehardening", "knee")
       for field, rng in (("log10_R_GV", (0.0, 10.0)), ("dindex", (-2.0, 2.0)), ("width", (0.01, 3.0)))},
    "nuclear_enhancement": (1.0, 3.0),
}
# Fields whose range starts at 0 and that may be 0 (the others starting at 0 must be positive)
ZERO_ALLOWED = ("hadronic_mix", "ebl_mix", "burst_energy_erg", "hardening_log10_R_GV", "softening_log10_R_GV",
                "rehardening_log10_R_GV", "knee_log10_R_GV")


def preset(name: str) -> CoronaParams:
    """Return one of the paper's presets: 'baseline', 'fast-diffusion' or 'hard'."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ParameterError(
            f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None


def validate_params(params: CoronaParams) -> CoronaParams:
    """Check every field is a finite number inside PARAMETER_RANGES; return params.

    Raises ParameterError naming the first offending field, or breaks of the spectrum out of
    order or with an index outside alpha's range (spectrum.check_breaks). Call this outside jit,
    on concrete values, before handing parameters to the model.
    """
    for name, value in zip(CoronaParams._fields, params):
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {name} must be a number, got {value!r}") from None
        lo, hi = PARAMETER_RANGES[name]
        if not math.isfinite(x):
            raise ParameterError(f"parameter {name} is {x}; it must be finite")
        if not lo <= x <= hi:
            raise ParameterError(f"parameter {name} = {x:g} is outside its range [{lo:g}, {hi:g}]")
        if lo == 0.0 and x == 0.0 and name not in ZERO_ALLOWED:
            raise ParameterError(f"parameter {name} must be positive, got 0")
    from .spectrum import check_breaks

    return check_breaks(params)


def check_in_range(params: CoronaParams):
    """The checks of validate_params for traced values, inside jit: under
    jax.experimental.checkify.checkify, a NaN or out-of-range field becomes an error that
    names it (forward.checked_forward uses this)."""
    import jax.numpy as jnp
    from jax.experimental import checkify

    for name, value in zip(CoronaParams._fields, params):
        lo, hi = PARAMETER_RANGES[name]
        above_low = value > lo if (lo == 0.0 and name not in ZERO_ALLOWED) else value >= lo
        checkify.check(jnp.isfinite(value) & above_low & (value <= hi),
                       f"parameter {name} = {{value}} is NaN or outside its range [{lo:g}, {hi:g}]", value=value)


def from_physical(alpha, Emax_GeV, D0_cm2_s, LCR_erg_s, **gas) -> CoronaParams:
    """Build CoronaParams from linear-unit values, rejecting non-positive ones."""
    for name, value in (("Emax_GeV", Emax_GeV), ("D0_cm2_s", D0_cm2_s), ("LCR_erg_s", LCR_erg_s)):
        if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ParameterError(f"{name} must be a positive finite number, got {value!r}")
    params = CoronaParams(
        float(alpha), math.log10(Emax_GeV), math.log10(D0_cm2_s), math.log10(LCR_erg_s), **gas
    )
    return validate_params(params)
