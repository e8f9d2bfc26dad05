"""Physical cosmic-ray densities from the unit-spectrum solution G.

Source: Q(E, r, t) = A (E/GeV)^-alpha exp(-E/E_max) B(E) Theta(r_Q - r) f(t) with A in
GeV^-1 cm^-3 s^-1, so that j = A E^-alpha exp(-E/E_max) B(E) G [GeV^-1 cm^-3]; B is 1 for
the paper's spectrum and the product of the injected breaks for the broken one
(corona_jax.spectrum). Breaks read as local multiply only the flux at the observer.

Two ways to fix A:
* by the present-day luminosity L_CR = int_{E > 1 GeV} E Q dE dV [erg/s] at
  t = today (docs/physics.md sec. 2), the parameter log10_LCR_erg_s; E is the total
  energy, so L_CR includes the rest mass (kinetic_luminosity_erg_s gives the kinetic part);
* by the paper's rule ("saturating normalisation"): the largest A for which the
  local flux beta c j(E, R_sun) / 4 pi stays below every observed point.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .errors import DataError
from .interactions import proton_beta
from .params import CoronaParams
from .safe import safe_log
from .spectrum import log_features
from .transport import TransportModel, source_history
from .units import C_CM_S, ERG_PER_GEV, GYR_S, KPC_CM, PROTON_MASS_GEV

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(256)
_CUTOFF_TAIL = math.log(100.0)  # integrate to E = 100 E_max (exp(-100) is negligible)


def power_moment(exponent, log10_Emax_GeV, params=None, break_weights=None):
    """int_1^inf E^exponent exp(-E/E_max) B(E) dE [GeV^(exponent+1)], Gauss-Legendre in ln E;
    B = exp(spectrum.log_features(params, E, break_weights)), 1 without break_weights."""
    u_max = log10_Emax_GeV * math.log(10.0) + _CUTOFF_TAIL
    u = 0.5 * u_max * (jnp.asarray(_GL_NODES) + 1.0)
    log_integrand = (exponent + 1.0) * u - jnp.exp(u - log10_Emax_GeV * math.log(10.0))
    if break_weights is not None:
        log_integrand = log_integrand + log_features(params, jnp.exp(u), break_weights)
    return 0.5 * u_max * jnp.sum(jnp.asarray(_GL_WEIGHTS) * jnp.exp(log_integrand))


def energy_moment(alpha, log10_Emax_GeV, params=None, break_weights=None):
    """int_1^inf E^(1-alpha) exp(-E/E_max) B(E) dE [GeV^(2-alpha)]: the total energy per unit A."""
    return power_moment(1.0 - alpha, log10_Emax_GeV, params, break_weights)


def source_volume_cm3(model: TransportModel, fraction=None):
    """Volume of the source sphere on the grid, 4 pi sum V_i S_i [cm^3] (S: the cells' fractions
    inside it, default the main source's)."""
    S = model.source_fraction if fraction is None else fraction
    return 4.0 * math.pi * jnp.sum(model.volumes_kpc3 * S) * KPC_CM**3


def luminosity_per_amplitude(params: CoronaParams, model: TransportModel):
    """L_CR / A [erg/s per GeV^-1 cm^-3 s^-1] at today's source strength f(today)."""
    moment = energy_moment(params.alpha, params.log10_Emax_GeV, params, model.break_weights_injection)
    return source_history(params, model)[-1] * source_volume_cm3(model) * moment * ERG_PER_GEV


def injection_amplitude(params: CoronaParams, model: TransportModel):
    """A [GeV^-1 cm^-3 s^-1] that gives the luminosity log10_LCR_erg_s."""
    return 10.0**params.log10_LCR_erg_s / luminosity_per_amplitude(params, model)


def kinetic_luminosity_erg_s(params: CoronaParams, model: TransportModel):
    """Kinetic luminosity int_{E > 1 GeV} (E - m_p) Q dE dV [erg/s] today, over the same protons
    as L_CR (total energy E > 1 GeV, i.e. T > 0.062 GeV): L_CR (1 - m_p N / M) with
    N = int_1^inf E^-alpha exp(-E/E_max) dE and M the energy moment. 0.73 L_CR for alpha = 2.4."""
    weights = model.break_weights_injection
    number = power_moment(-params.alpha, params.log10_Emax_GeV, params, weights)
    kinetic_share = 1.0 - PROTON_MASS_GEV * number / energy_moment(params.alpha, params.log10_Emax_GeV, params, weights)
    return 10.0**params.log10_LCR_erg_s * kinetic_share


def log_spectrum_shape(params: CoronaParams, E_GeV, break_weights=None):
    """ln[(E/GeV)^-alpha exp(-E/E_max) B(E)], B the breaks of break_weights (none: B = 1)."""
    shape = -params.alpha * jnp.log(E_GeV) - E_GeV * 10.0 ** (-params.log10_Emax_GeV)
    return shape if break_weights is None else shape + log_features(params, E_GeV, break_weights)


def injected_per_GeV_cm3_gyr(params: CoronaParams, model: TransportModel, E_GeV):
    """A (E/GeV)^-alpha exp(-E/E_max) B(E) x (s per Gyr) [GeV^-1 cm^-3 Gyr^-1]: j = this x G [Gyr]."""
    shape = log_spectrum_shape(params, E_GeV, model.break_weights_injection)
    return injection_amplitude(params, model) * (jnp.exp(shape) * GYR_S)


def burst_amplitude(params: CoronaParams, model: TransportModel):
    """A_b [GeV^-1 cm^-3 s^-1] of the Galactic-centre burst: its energy burst_energy_erg spread over
    its sphere and over its unit pulse in time (dt sum f_b = 1 Gyr, transport.burst_history)."""
    moment = energy_moment(params.burst_alpha, params.burst_log10_Emax_GeV)
    return params.burst_energy_erg / (ERG_PER_GEV * source_volume_cm3(model, model.burst_fraction) * moment * GYR_S)


def burst_injected_per_GeV_cm3_gyr(params: CoronaParams, model: TransportModel, E_GeV):
    """The burst's A_b (E/GeV)^-alpha_b exp(-E/E_max,b) x (s per Gyr): j_b = this x G_b [Gyr]."""
    burst = params._replace(alpha=params.burst_alpha, log10_Emax_GeV=params.burst_log10_Emax_GeV)
    return burst_amplitude(params, model) * (jnp.exp(log_spectrum_shape(burst, E_GeV)) * GYR_S)


def proton_density(params: CoronaParams, model: TransportModel, E_GeV, G_Gyr, G_burst_Gyr=None):
    """j [GeV^-1 cm^-3] at energies E (leading axis of G) from the unit solutions there:
    v G + v_b G_b, the burst's term only when G_burst is given."""
    j = injected_per_GeV_cm3_gyr(params, model, E_GeV)[:, None] * G_Gyr
    if G_burst_Gyr is not None:
        j = j + burst_injected_per_GeV_cm3_gyr(params, model, E_GeV)[:, None] * G_burst_Gyr
    return j


def cr_density(params: CoronaParams, model: TransportModel, G_Gyr, G_burst_Gyr=None):
    """j(E, r) [GeV^-1 cm^-3], shape (N_E, N_r), from the unit-spectrum solutions G [Gyr]."""
    return proton_density(params, model, model.E_GeV, G_Gyr, G_burst_Gyr)


def at_radius(values, model: TransportModel, r_kpc):
    """values (N_E, N_r) > 0 at r_kpc: ln(values) interpolated linearly in r between
    cell centres (exact for the exponential tail of a diffusion front)."""
    log_v = safe_log(values)  # floor: no NaN where a tail underflows
    return jnp.exp(jax.vmap(lambda v: jnp.interp(r_kpc, model.centres_kpc, v))(log_v))


def local_flux(params: CoronaParams, model: TransportModel, G_Gyr, observer_kpc, G_burst_Gyr=None):
    """J(E) = beta c j(E, r) / 4 pi at the observer's radius [GeV^-1 cm^-2 s^-1 sr^-1]."""
    G_burst_observer = None if G_burst_Gyr is None else at_radius(G_burst_Gyr, model, observer_kpc)
    return flux_from_observer_density(params, model, at_radius(G_Gyr, model, observer_kpc), G_burst_observer)


def flux_from_observer_density(params: CoronaParams, model: TransportModel, G_observer_Gyr, G_burst_observer_Gyr=None):
    """local_flux from G (and G_b) at the observer (N_E,) [Gyr]."""
    G_b = None if G_burst_observer_Gyr is None else G_burst_observer_Gyr[:, None]
    j = proton_density(params, model, model.E_GeV, G_observer_Gyr[:, None], G_b)[:, 0]
    j = j * jnp.exp(log_features(params, model.E_GeV, model.break_weights_observer))
    return proton_beta(model.E_GeV) * C_CM_S * j / (4.0 * math.pi)


class Normalisation(NamedTuple):
    """Result of the saturating normalisation, and which point binds it."""

    params: CoronaParams  # input params with log10_LCR_erg_s set by the rule
    amplitude_per_GeV_cm3_s: float
    binding_dataset: str
    binding_E_GeV: float  # energy as the data set gives it: kinetic T for direct data, total E for air showers
    binding_energy_kind: str  # 'kinetic' or 'total': which energy binding_E_GeV is (SpectralData.energy_kind)
    binding_flux: float  # observed flux at the binding point [GeV^-1 cm^-2 s^-1 sr^-1]
    ratios: dict  # data set -> observed / model flux at A = 1, per point


def normalise_to_data(params: CoronaParams, model: TransportModel, G_Gyr, datasets, observer_kpc):
    """The paper's rule: the largest A with J(E, observer) <= observed flux at every point.

    datasets: SpectralData (corona_jax.observations). Kinetic energies of direct
    data are turned into total energies; the model is interpolated in ln E.
    """
    if not datasets:
        raise DataError("the saturating normalisation needs at least one data set")
    E = model.E_GeV
    G_sun = at_radius(G_Gyr, model, observer_kpc)
    log_flux_unit = (
        jnp.log(proton_beta(E) * C_CM_S * GYR_S / (4.0 * math.pi) * G_sun)
        + log_spectrum_shape(params, E, model.break_weights_injection)
        + log_features(params, E, model.break_weights_observer)
    )
    ratios, best = {}, None
    for data in datasets:
        E_total = data.E_GeV + (PROTON_MASS_GEV if data.energy_kind == "kinetic" else 0.0)
        if E_total.min() < float(E[0]) or E_total.max() > float(E[-1]):
            raise DataError(f"data set {data.name} lies outside the model's energy grid")
        model_unit = np.exp(np.interp(np.log(E_total), np.log(np.asarray(E)), np.asarray(log_flux_unit)))
        r = data.flux_per_GeV_cm2_s_sr / model_unit
        ratios[data.name] = r
        k = int(np.argmin(r))
        if best is None or r[k] < best[0]:
            best = (float(r[k]), data.name, float(data.E_GeV[k]), data.energy_kind,
                    float(data.flux_per_GeV_cm2_s_sr[k]))
    amplitude, name, E_bind, kind, flux_bind = best
    L = amplitude * float(luminosity_per_amplitude(params, model))
    new_params = params._replace(log10_LCR_erg_s=math.log10(L))
    return Normalisation(new_params, amplitude, name, E_bind, kind, flux_bind, ratios)
