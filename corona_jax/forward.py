"""The composed model: params -> CR transport -> Milky Way -> other galaxies -> isotropic total.

`forward(params, model)` is one pure, jit-able and differentiable function of the
parameters and of a CoronaModel (corona_jax.model.build_model). It only composes the
stages; each stage lives in its own module.
"""

import warnings
from typing import NamedTuple

import jax
from jax.experimental import checkify

from . import extragalactic as eg
from . import transport
from .cosmic_rays import cr_density, local_flux
from .milky_way import MilkyWay, milky_way
from .model import CoronaModel, build_model
from .errors import ParameterError
from .params import CoronaParams, check_in_range

NEUTRINO_FLAVOURS = 3  # nu_e : nu_mu : nu_tau = 1 : 1 : 1 after oscillation (docs/physics.md sec. 3)


class Total(NamedTuple):
    """The isotropic flux at Earth: Milky Way anticentre + all other galaxies [GeV^-1 cm^-2 s^-1 sr^-1]."""

    gamma: jax.Array  # with absorption and cascade
    nu_all_flavour: jax.Array


def total(mw: MilkyWay, other: eg.Extragalactic) -> Total:
    return Total(mw.anticentre_gamma + other.gamma, mw.anticentre_nu_all_flavour + other.nu_all_flavour)


class Prediction(NamedTuple):
    """Everything `forward` predicts (JAX arrays)."""

    j_per_GeV_cm3: jax.Array  # (N_E, N_r)
    local_flux_per_GeV_cm2_s_sr: jax.Array  # (N_E,) protons at the observer
    milky_way: MilkyWay
    extragalactic: eg.Extragalactic
    total: Total


def sky_and_beyond(params: CoronaParams, model: CoronaModel, G_Gyr, G_burst_Gyr=None):
    """Milky Way, other galaxies and the isotropic total from the solver's G (N_E, N_r) [Gyr]
    (and the burst's)."""
    mw = milky_way(params, model.milky_way, model.transport, G_Gyr, G_burst_Gyr)
    other = eg.extragalactic(model.extragalactic, mw.proton_gas_per_GeV_cm3 * params.nuclear_enhancement,
                             params.hadronic_mix, params.ebl_mix)
    return mw, other, total(mw, other)


def _forward_with_checks(params: CoronaParams, model: CoronaModel) -> Prediction:
    check_in_range(params)
    return forward(params, model)


_checked = jax.jit(checkify.checkify(_forward_with_checks))


def checked_forward(params: CoronaParams, model: CoronaModel) -> Prediction:
    """forward, compiled, with every parameter checked inside the compiled code: a NaN or
    out-of-range value raises ParameterError naming it, instead of returning NaN or a
    plausible-looking number. For fits and samplers use forward (NaN propagates; no NaN
    ever becomes a finite number)."""
    error, prediction = _checked(params, model)
    message = error.get()
    if message:
        raise ParameterError(message.split(" (`check` failed")[0].split(" (check failed")[0].strip())
    return prediction


def forward(params: CoronaParams, model: CoronaModel) -> Prediction:
    """The whole model for given parameters, normalised by L_CR (pure; jit and grad it).

    Reverse-mode gradients run as model.config.adjoint says (model.with_adjoint(...) to change it).
    A model built with burst=True adds the Galactic-centre burst, solved beside the main population.
    """
    if model.config.burst:
        G, G_burst = transport.unit_spectrum_densities_with_burst(params, model.transport, model.config.adjoint)
        return from_unit_density(params, model, G, G_burst)
    G = transport.unit_spectrum_density(params, model.transport, model.config.adjoint)
    return from_unit_density(params, model, G)


def build_forward_model(res=None, observer_kpc=None, cosmology=None, cascade=None, stellar_mass_density=None):
    """Deprecated since 0.2, to be removed in 0.3: use corona_jax.model.build_model, which takes
    the same options by name (resolution=, observer_kpc=, cosmology=, cascade=, stellar_mass_density=)."""
    warnings.warn("corona_jax.forward.build_forward_model is deprecated: use corona_jax.model.build_model("
                  "resolution=..., ...)", DeprecationWarning, stacklevel=2)
    options = dict(resolution=res, observer_kpc=observer_kpc, cosmology=cosmology, cascade=cascade,
                   stellar_mass_density=stellar_mass_density)
    return build_model(**{k: v for k, v in options.items() if v is not None})


def from_unit_density(params: CoronaParams, model: CoronaModel, G_Gyr, G_burst_Gyr=None) -> Prediction:
    """Everything downstream of the transport solve, from its G (N_E, N_r) [Gyr] (and the burst's)."""
    tm = model.transport
    j = cr_density(params, tm, G_Gyr, G_burst_Gyr)
    flux = local_flux(params, tm, G_Gyr, model.config.observer_kpc, G_burst_Gyr)
    return Prediction(j, flux, *sky_and_beyond(params, model, G_Gyr, G_burst_Gyr))
