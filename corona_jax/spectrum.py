"""The shape of the injected proton spectrum (docs/physics.md, "Spectral features").

Two families, chosen when the model is built (ModelConfig.spectrum):

* 'cutoff', the paper's: Q ~ (E/GeV)^-alpha exp(-E/E_max);
* 'broken': the same times a smoothly broken power law in rigidity with the features the
  local protons show, each break b a factor

      [1 + (R/R_b)^(1/w_b)]^(-Delta_b w_b)

  which raises the index by Delta_b above R_b over a width w_b in ln R and is 1 well below
  R_b. The breaks are, in order, the hardening (~0.5 TV), the softening (~14 TV), the
  re-hardening (~150 TV) and the knee (~3 PV); the exponential cut-off stays as a cut-off
  beyond the knee.

Where a feature acts is a reading of the data (ModelConfig.features), kept as weights on
the TransportModel so that one compiled program serves every reading:

* 'injection': every feature is the Galaxy's injection, so the corona sees it;
* 'local': the hardening, softening and re-hardening are local (a nearby source): they
  multiply only the flux at the observer; the corona sees the smooth spectrum and the knee;
* 'diffusion': the hardening is a break of D(E) (Genolini et al. 2017), which changes the
  corona's transport; the other features are injected.
"""

import math

import jax.numpy as jnp
import numpy as np

from .errors import ConfigError, ParameterError
from .units import PROTON_MASS_GEV

SPECTRA = ("cutoff", "broken")
FEATURE_READINGS = ("injection", "local", "diffusion")
BREAKS = ("hardening", "softening", "rehardening", "knee")


def break_fields(name: str):
    """The CoronaParams fields of one break: (log10 rigidity [GV], index change, width in ln R)."""
    return f"{name}_log10_R_GV", f"{name}_dindex", f"{name}_width"


def break_weights(spectrum: str, features: str) -> dict:
    """{'injection' | 'observer' | 'diffusion': (len(BREAKS),) 0/1 weights} of a model: where each
    break acts. All zero for the paper's spectrum."""
    if spectrum not in SPECTRA:
        raise ConfigError(f"unknown spectrum {spectrum!r}; choose one of {', '.join(SPECTRA)}")
    if features not in FEATURE_READINGS:
        raise ConfigError(f"unknown reading of the spectral features {features!r}; "
                          f"choose one of {', '.join(FEATURE_READINGS)}")
    zero = np.zeros(len(BREAKS))
    weights = {"injection": zero, "observer": zero, "diffusion": zero}
    if spectrum == "cutoff":
        return weights
    knee, hardening = (np.array([b == name for b in BREAKS], dtype=float) for name in ("knee", "hardening"))
    if features == "injection":
        weights["injection"] = np.ones(len(BREAKS))
    elif features == "local":
        weights.update(injection=knee, observer=1.0 - knee)
    else:
        weights.update(injection=1.0 - hardening, diffusion=hardening)
    return weights


def rigidity_GV(E_GeV):
    """R = p c / (Z e) [GV] of a proton of total energy E [GeV]."""
    return jnp.sqrt(jnp.maximum(E_GeV**2 - PROTON_MASS_GEV**2, 1e-12))


def log_break_factor(R_GV, log10_R_break_GV, dindex, width):
    """ln [1 + (R/R_b)^(1/w)]^(-Delta w) = -Delta w softplus(ln(R/R_b) / w)."""
    x = (jnp.log(R_GV) - log10_R_break_GV * math.log(10.0)) / width
    return -dindex * width * jnp.logaddexp(0.0, x)


def log_features(params, E_GeV, weights):
    """sum_b weights[b] ln(factor of break b) at total energies E [GeV] (weights: (len(BREAKS),))."""
    R = rigidity_GV(E_GeV)
    out = 0.0
    for k, name in enumerate(BREAKS):
        log10_R, dindex, width = (getattr(params, f) for f in break_fields(name))
        out = out + weights[k] * log_break_factor(R, log10_R, dindex, width)
    return out


def check_breaks(params):
    """ParameterError unless the breaks are in order of rigidity and the injected spectrum falls
    after every break (alpha + the index changes up to it > 0; concrete values)."""
    rigidities = [float(getattr(params, break_fields(b)[0])) for b in BREAKS]
    for (a, ra), (b, rb) in zip(zip(BREAKS, rigidities), zip(BREAKS[1:], rigidities[1:])):
        if not ra < rb:
            raise ParameterError(f"the spectral breaks are out of order: {a}_log10_R_GV = {ra:g} must lie below "
                                 f"{b}_log10_R_GV = {rb:g}")
    index = float(params.alpha)
    for b in BREAKS:
        index += float(getattr(params, break_fields(b)[1]))
        if not index > 0.0:
            raise ParameterError(f"the injected index above the {b} (alpha + the index changes up to it) is "
                                 f"{index:g}: the spectrum would grow without bound; it must stay above 0")
    return params
