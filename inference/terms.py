"""Likelihood terms: each data set is one object that declares its nuisance parameters with
their priors, predicts its values from a Prediction and the model, and returns its
log-likelihood (docs/architecture.md, "Likelihood semantics"). The NumPyro model sums them.

Terms are JAX pytrees: the data are traced arrays, the name and the mode static. A
registry, DATA_SOURCES, maps each key of a run configuration's [data] section to the data
sets it may name, its likelihood modes and the function that builds its terms; adding a
data set means writing one term class and one registry entry.

Which flux is compared with which data:

* cosmic rays: the proton flux at the observer (total energy; kinetic energies of direct
  data are converted) against direct proton spectra (in the configured mode) and air-shower
  all-particle spectra (one-sided: protons cannot exceed all particles; with mock data,
  which are the model's protons, in the configured mode);
* IceCube (per flavour): the all-sky mean, Milky Way + other galaxies, at the data's energies;
* Fermi-LAT IGRB: the isotropic part (Milky Way anticentre + other galaxies) integrated over
  each band, against the band intensities shifted by one correlated foreground nuisance
  eta ~ N(0, 1) (eta > 0 moves every band up by eta * fgsyst_hi, eta < 0 down by |eta| * fgsyst_lo);
  with gamma_foreground = 'interpolated' the intensities, errors and fgsyst bands are piecewise
  linear in a second nuisance igrb_foreground_model ~ U(0, 2) between models A (0), B (1), C (2)
  (docs/systematics.md, "Fermi-LAT foreground models").

* KM3NeT KM3-230213A (one event): the expected number of events mu = 4 pi T int A_eff Phi_1f dE
  of the per-flavour all-sky mean Phi_1f over the event's 90 % energy range, with ARCA's published
  effective area A_eff and livetime T; the joint KM3NeT + IceCube + Auger estimate, which has no
  single exposure, as an E^-2-equivalent flux: E^2 dN/dE averaged over ln E across the range,
  over the quoted flux (exact for an exposure proportional to E). 'measurement': Poisson
  log mu - mu, 'bound': only mu > 1 penalised, log mu - mu + 1 (the Poisson likelihood ratio
  against mu = 1); docs/physics.md, "KM3-230213A";
* LHAASO-KM2A diffuse gamma rays: the sky I(psi) of the Milky Way averaged over the region's
  footprint (sky.region_average_weights) plus the isotropic other galaxies. The Galactic disk's
  own emission is not modelled, so these are bounds (default mode 'bound'); the data's source
  masks are not reproduced (the corona is smooth on their scale).
* IceCube Galactic-plane templates (pi0, KRA-gamma; Science 380, 1338, 2023): bound only. The flux that
  the same template fit would give the corona: its per-flavour sky (Milky Way + other galaxies)
  projected on a uniform plane template |b| < 5 deg whose mean over right ascension at each
  declination is removed, as the analysis's background came from data scrambled in right ascension
  (sky.plane_template_weights; isotropic parts give 0). The curve's rows share one normalisation
  error, so one number is bounded: model / data averaged over ln E (docs/physics.md, "IceCube
  Galactic-plane templates").

Modes: 'bound' = one-sided (the corona must not exceed the data), 'measurement' = the corona
is the whole measured flux (split normal), 'component' = data = corona + a free nuisance
spectrum (IceCube: a power law; Fermi: a power law with an exponential cut-off).
"""

import abc
import dataclasses
import functools
import inspect
import warnings
from typing import Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from corona_jax import observations, sky
from corona_jax.errors import ConfigError
from corona_jax.forward import NEUTRINO_FLAVOURS, Prediction
from corona_jax.model import CoronaModel
from corona_jax.safe import safe_log
from corona_jax.units import PROTON_MASS_GEV

from . import energy_scale, likelihoods, solar_modulation

_BAND_NODES, _BAND_WEIGHTS = np.polynomial.legendre.leggauss(8)
NU_PIVOT_GeV = 1.0e5


def static_field(**kwargs):
    """A dataclass field that is part of the pytree's structure (not traced)."""
    return dataclasses.field(metadata=dict(static=True), **kwargs)


def pytree_dataclass(cls):
    """Class decorator: a frozen dataclass registered as a JAX pytree (static_field = metadata)."""
    return jax.tree_util.register_dataclass(dataclasses.dataclass(frozen=True, eq=False)(cls))


def loglog_interp(E_grid, values, E_query):
    """values (> 0 or 0) interpolated linearly in ln value - ln E."""
    return jnp.exp(jnp.interp(jnp.log(E_query), jnp.log(E_grid), safe_log(values)))


def exposure_quadrature(E_table_GeV, area_cm2, E_lo_GeV, E_hi_GeV, nodes_per_interval=4):
    """(ln E nodes, weights [GeV cm^2]) with int_{E_lo}^{E_hi} A(E) f(E) dE = sum(weights * f(exp(nodes)))
    for an effective area tabulated at E_table, linear in E between rows and zero outside them (as
    KM3NeT's notebook): Gauss-Legendre in ln E on every table interval inside [E_lo, E_hi] (numpy)."""
    inside = E_table_GeV[(E_table_GeV > E_lo_GeV) & (E_table_GeV < E_hi_GeV)]
    edges = np.log(np.concatenate([[E_lo_GeV], inside, [E_hi_GeV]]))
    x, w = np.polynomial.legendre.leggauss(nodes_per_interval)
    a, b = edges[:-1, None], edges[1:, None]
    nodes = (0.5 * (b - a) * x[None, :] + 0.5 * (a + b)).ravel()
    E = np.exp(nodes)
    area = np.interp(E, E_table_GeV, area_cm2, left=0.0, right=0.0)
    return nodes, (0.5 * (b - a) * w[None, :]).ravel() * E * area


def band_quadrature(E_lo_GeV, E_hi_GeV):
    """Nodes [GeV] and weights [GeV] with int_{E_lo}^{E_hi} f dE = sum(weights * f(nodes), axis=1):
    8-point Gauss-Legendre in ln E per band, shapes (N_bands, 8) (numpy)."""
    a, b = np.log(E_lo_GeV)[:, None], np.log(E_hi_GeV)[:, None]
    nodes = np.exp(0.5 * (b - a) * _BAND_NODES[None, :] + 0.5 * (a + b))
    return nodes, 0.5 * (b - a) * _BAND_WEIGHTS[None, :] * nodes


class LikelihoodTerm(abc.ABC):
    """Interface of a data set in the likelihood. Subclasses are @pytree_dataclass dataclasses
    with at least name, E_GeV, value, err_lo, err_hi and is_upper_limit (for the results), and
    must define predict and log_likelihood (a subclass without them cannot be instantiated)."""

    def __init_subclass__(cls, **kwargs):
        """A subclass written for the older predict(prediction, model) still works, with a
        DeprecationWarning: its predict is wrapped to take (and ignore) nuisances."""
        super().__init_subclass__(**kwargs)
        old = cls.__dict__.get("predict")
        if old is None or "nuisances" in inspect.signature(old).parameters:
            return
        warnings.warn(f"{cls.__name__}.predict(prediction, model) is deprecated: give it a third argument, "
                      "nuisances=None (LikelihoodTerm.predict)", DeprecationWarning, stacklevel=2)

        @functools.wraps(old)
        def predict(self, prediction, model, nuisances=None):
            return old(self, prediction, model)

        cls.predict = predict

    energy_power: ClassVar[int] = 2  # plots show E^power x value
    value_units: ClassVar[str] = "GeV^-1 cm^-2 s^-1 sr^-1"
    x_label: ClassVar[str] = "E [GeV]"
    y_label: ClassVar[str] = r"$E^2\,dN/dE$ [GeV cm$^{-2}$ s$^{-1}$ sr$^{-1}$]"

    def nuisance_priors(self) -> dict:
        """{site name: numpyro distribution} of this term's own nuisance parameters."""
        return {}

    @abc.abstractmethod
    def predict(self, prediction: Prediction, model: CoronaModel, nuisances: dict = None):
        """The model at this data set's points, in the data's units (nuisances: the values of the
        sampled nuisance sites that move the model's points, such as energy scales; None: nominal)."""

    @abc.abstractmethod
    def log_likelihood(self, predicted, nuisances: dict):
        """log L of the data given the predicted values and this term's nuisance values."""

    def compared(self, predicted, nuisances: dict):
        """(model, data) as the likelihood compares them: the corona plus any nuisance spectrum,
        and the data moved by any nuisance (inference.goodness uses these)."""
        return predicted, self.value

    @property
    def is_measurement(self) -> bool:
        """Whether the likelihood reads the data as a measurement of the model (else as a bound)."""
        return self.mode != "bound"

    def relative_errors(self) -> np.ndarray:
        """Each row's relative error as a mock draws it: the mean of err_lo and err_hi over the value,
        and 1 (100 %) for upper-limit rows."""
        value = np.asarray(self.value)
        return np.where(np.asarray(self.is_upper_limit) | (value <= 0), 1.0,
                        0.5 * (np.asarray(self.err_lo) + np.asarray(self.err_hi)) / np.where(value > 0, value, 1.0))

    def with_mock(self, value, sigma) -> "LikelihoodTerm":
        """The same term with mock values and symmetric errors sigma, every row a measurement."""
        return dataclasses.replace(self, value=value, err_lo=sigma, err_hi=sigma,
                                   is_upper_limit=np.zeros_like(np.asarray(self.is_upper_limit)))

    def mocked(self, predicted, rng: np.random.Generator) -> "LikelihoodTerm":
        """The same term with its values replaced by `predicted` plus Gaussian noise of each row's
        relative error (relative_errors)."""
        m = np.asarray(predicted)
        sigma = self.relative_errors() * m
        return self.with_mock(np.maximum(m + sigma * rng.standard_normal(m.shape), 1e-3 * m), sigma)


@pytree_dataclass
class ProtonSpectrum(LikelihoodTerm):
    """A cosmic-ray spectrum against the proton flux at the observer (direct protons, or all
    particles from air showers, which the protons must not exceed: mode 'bound')."""

    E_GeV: np.ndarray  # total energy
    value: np.ndarray  # dN/dE [GeV^-1 cm^-2 s^-1 sr^-1]
    err_lo: np.ndarray
    err_hi: np.ndarray
    is_upper_limit: np.ndarray
    name: str = static_field()
    mode: str = static_field()  # 'bound' or 'measurement'
    # lower Cholesky factor of the data's covariance (inference.covariance), or None: independent errors
    cov_cholesky: np.ndarray = None
    # the experiment's energy-scale nuisance (inference.energy_scale): its site, form and prior sd
    scale_site: str = static_field(default="")
    scale_form: str = static_field(default="")
    scale_sd: float = static_field(default=0.0)
    # the epoch's force-field potential (inference.solar_modulation): its site and normal prior [GV]
    phi_site: str = static_field(default="")
    phi_mean_GV: float = static_field(default=0.0)
    phi_sd_GV: float = static_field(default=0.0)

    def nuisance_priors(self):
        priors = {}
        if self.scale_site:
            bound = energy_scale.PRIOR_SIGMAS * self.scale_sd  # bounded, so no sampler or fit step leaves it
            priors[self.scale_site] = dist.TruncatedNormal(0.0, self.scale_sd, low=-bound, high=bound)
        if self.phi_site:
            low, high = solar_modulation.prior_bounds(self.phi_mean_GV, self.phi_sd_GV)
            priors[self.phi_site] = dist.TruncatedNormal(self.phi_mean_GV, self.phi_sd_GV, low=low, high=high)
        return priors

    def predict(self, prediction, model, nuisances=None):
        """The model flux in the data's frame: the energy scale moves the reported energies to the
        true ones, the force field maps those to the interstellar flux the model computes."""
        def lis(E):
            return loglog_interp(model.transport.E_GeV, prediction.local_flux_per_GeV_cm2_s_sr, E)

        E, jacobian = self.E_GeV, 1.0
        if self.scale_site:
            shift = 0.0 if nuisances is None else nuisances[self.scale_site]
            E, jacobian = energy_scale.true_energy(self.E_GeV, self.scale_form, shift)
        if self.phi_site:
            phi = self.phi_mean_GV if nuisances is None else nuisances[self.phi_site]
            return jacobian * solar_modulation.modulated(lis, E, phi)
        return jacobian * lis(E)

    def log_likelihood(self, predicted, nuisances):
        if self.cov_cholesky is not None and self.mode == "measurement":
            return likelihoods.correlated_normal(predicted, self.value, self.cov_cholesky)
        return likelihoods.spectrum(predicted, self.value, self.err_lo, self.err_hi, self.is_upper_limit, self.mode)

    def mocked(self, predicted, rng):
        """With a covariance: the model plus correlated noise, errors and covariance kept."""
        if self.cov_cholesky is None:
            return super().mocked(predicted, rng)
        noise = np.asarray(self.cov_cholesky) @ rng.standard_normal(np.shape(predicted))
        return dataclasses.replace(self, value=np.asarray(predicted) + noise)


@pytree_dataclass
class NeutrinoSpectrum(LikelihoodTerm):
    """IceCube per-flavour spectrum against the all-sky mean (Milky Way + other galaxies);
    mode 'component' adds an astrophysical power law with its own normalisation and index."""

    E_GeV: np.ndarray
    value: np.ndarray  # per flavour, nu + nubar [GeV^-1 cm^-2 s^-1 sr^-1]
    err_lo: np.ndarray
    err_hi: np.ndarray
    is_upper_limit: np.ndarray
    name: str = static_field()
    mode: str = static_field()  # 'bound', 'measurement' or 'component'

    def nuisance_priors(self):
        if self.mode != "component":
            return {}
        return {"nu_astro_log10_norm": dist.Uniform(-20.0, -16.0),  # per-flavour dN/dE at 100 TeV
                "nu_astro_index": dist.Uniform(1.5, 3.5)}

    def predict(self, prediction, model, nuisances=None):
        mean = prediction.milky_way.sky_mean_nu_all_flavour + prediction.extragalactic.nu_all_flavour
        return loglog_interp(model.milky_way.E_secondary_GeV, mean / NEUTRINO_FLAVOURS, self.E_GeV)

    def compared(self, predicted, nuisances):
        if self.mode == "component":
            astro = 10.0 ** nuisances["nu_astro_log10_norm"] * (self.E_GeV / NU_PIVOT_GeV) ** (-nuisances["nu_astro_index"])
            predicted = predicted + astro
        return predicted, self.value

    def log_likelihood(self, predicted, nuisances):
        mode = "measurement" if self.mode == "component" else self.mode
        model, data = self.compared(predicted, nuisances)
        return likelihoods.spectrum(model, data, self.err_lo, self.err_hi, self.is_upper_limit, mode)


SHARE_SIGNIFICANCE = 2.0  # a band below 2 sigma from zero: its share is taken against its upper limit
UPPER_LIMIT_95_SIGMA = 1.645  # one-sided 95 % of a normal


@pytree_dataclass
class GammaBands(LikelihoodTerm):
    """Fermi-LAT IGRB band intensities against the isotropic gamma rays integrated over each band,
    with the correlated foreground nuisance eta; mode 'component' adds a cut-off power law, and
    mode 'power_law' has the cut-off power law alone (no corona: the other hypothesis of a Bayes
    factor for a corona component in the IGRB)."""

    E_GeV: np.ndarray  # band centres sqrt(E_lo E_hi)
    value: np.ndarray  # band intensity [cm^-2 s^-1 sr^-1]
    err_lo: np.ndarray
    err_hi: np.ndarray
    is_upper_limit: np.ndarray  # all False
    fgsyst_lo: np.ndarray  # foreground systematic, correlated across bands
    fgsyst_hi: np.ndarray
    nodes_GeV: np.ndarray  # (N_bands, 8) band_quadrature
    weights_GeV: np.ndarray
    name: str = static_field()
    mode: str = static_field()

    energy_power: ClassVar[int] = 1
    value_units: ClassVar[str] = "cm^-2 s^-1 sr^-1"
    x_label: ClassVar[str] = "band centre [GeV]"
    y_label: ClassVar[str] = r"$E_c \times$ band intensity [GeV cm$^{-2}$ s$^{-1}$ sr$^{-1}$]"

    def nuisance_priors(self):
        priors = {"fermi_foreground_eta": dist.Normal(0.0, 1.0)}
        if self.mode in ("component", "power_law"):
            priors.update(igrb_log10_norm=dist.Uniform(-9.0, -5.0),  # dN/dE at 1 GeV
                          igrb_index=dist.Uniform(1.8, 2.8),
                          igrb_log10_cutoff_GeV=dist.Uniform(1.5, 3.5))
        return priors

    def share_reference(self):
        """What the corona's share of each band is taken against: the measured intensity where it
        lies at least SHARE_SIGNIFICANCE err_lo above zero, else its 95 % upper limit,
        value + 1.645 err_hi (a share of a value consistent with zero would mean nothing)."""
        return share_reference(self.value, self.err_lo, self.err_hi)

    def share_is_over_limit(self):
        """Bands whose share is taken against the 95 % upper limit (share_reference)."""
        return self.value < SHARE_SIGNIFICANCE * self.err_lo

    def foreground(self, nuisances):
        """(value, err_lo, err_hi, fgsyst_lo, fgsyst_hi) [cm^-2 s^-1 sr^-1] of the foreground model the
        likelihood compares with (here the one model the term was built for)."""
        return self.value, self.err_lo, self.err_hi, self.fgsyst_lo, self.fgsyst_hi

    def band_integrals(self, dN_dE):
        """int dN/dE dE over each band, dN_dE evaluated at the quadrature nodes (callable)."""
        return jnp.sum(self.weights_GeV * dN_dE(self.nodes_GeV), axis=1)

    def predict(self, prediction, model, nuisances=None):
        E_s = model.milky_way.E_secondary_GeV
        return self.band_integrals(lambda E: loglog_interp(E_s, prediction.total.gamma, E))

    def compared(self, predicted, nuisances):
        value, _, _, fgsyst_lo, fgsyst_hi = self.foreground(nuisances)
        eta = nuisances["fermi_foreground_eta"]
        shifted = value + jnp.where(eta > 0, eta * fgsyst_hi, eta * fgsyst_lo)
        if self.mode in ("component", "power_law"):
            norm, index = 10.0 ** nuisances["igrb_log10_norm"], nuisances["igrb_index"]
            cutoff = 10.0 ** nuisances["igrb_log10_cutoff_GeV"]
            corona = predicted if self.mode == "component" else 0.0
            predicted = corona + self.band_integrals(lambda E: norm * E ** (-index) * jnp.exp(-E / cutoff))
        return predicted, shifted

    def log_likelihood(self, predicted, nuisances):
        model, shifted = self.compared(predicted, nuisances)
        _, err_lo, err_hi, _, _ = self.foreground(nuisances)
        if self.mode == "bound":
            return likelihoods.must_not_exceed(model, shifted, err_hi)
        return likelihoods.split_normal(model, shifted, err_lo, err_hi)

    def mocked(self, predicted, rng):
        zero = np.zeros_like(np.asarray(self.value))
        return dataclasses.replace(super().mocked(predicted, rng), fgsyst_lo=zero, fgsyst_hi=zero)


def share_reference(value, err_lo, err_hi):
    """A band's share reference (GammaBands.share_reference): value, or its 95 % upper limit
    value + 1.645 err_hi where value < SHARE_SIGNIFICANCE err_lo."""
    return jnp.where(value < SHARE_SIGNIFICANCE * err_lo, value + UPPER_LIMIT_95_SIGMA * err_hi, value)


FOREGROUND_SITE = "igrb_foreground_model"
FOREGROUND_INTERPOLATED = "interpolated"
FOREGROUND_POSITION_MAX = float(len(observations.FOREGROUND_MODELS) - 1)  # 2: A = 0, B = 1, C = 2


def check_foreground_position(position):
    """ConfigError for a concrete position outside [0, 2] (traced values are bounded by the prior)."""
    if isinstance(position, jax.core.Tracer):
        return
    p = np.asarray(position, dtype=float)
    if not np.all(np.isfinite(p) & (p >= 0.0) & (p <= FOREGROUND_POSITION_MAX)):
        raise ConfigError(f"{FOREGROUND_SITE} must lie in [0, {FOREGROUND_POSITION_MAX:g}] "
                          f"(0 = model A, 1 = B, 2 = C), got {position!r}")


@pytree_dataclass
class InterpolatedGammaBands(GammaBands):
    """The Fermi-LAT IGRB between foreground models A, B and C: intensities, errors and fgsyst bands
    piecewise linear in igrb_foreground_model ~ U(0, 2) (0 = A, 1 = B, 2 = C), shifted by eta as in
    GammaBands; at 0, 1, 2 exactly the single-model terms. value, err_* and fgsyst_* hold model A's
    (plots, tables and the derived shares, which stay against model A: docs/systematics.md)."""

    node_bands: np.ndarray = None  # (5, 3, N_bands): value, err_lo, err_hi, fgsyst_lo, fgsyst_hi of A, B, C

    def nuisance_priors(self):
        return {**super().nuisance_priors(), FOREGROUND_SITE: dist.Uniform(0.0, FOREGROUND_POSITION_MAX)}

    def at_position(self, position):
        """(value, err_lo, err_hi, fgsyst_lo, fgsyst_hi) [cm^-2 s^-1 sr^-1] at position in [0, 2]:
        linear between the neighbouring models."""
        check_foreground_position(position)
        lower = jnp.clip(jnp.floor(position), 0.0, FOREGROUND_POSITION_MAX - 1.0)
        fraction = position - lower
        k = lower.astype(int)
        bands = jnp.asarray(self.node_bands)
        below, above = jnp.take(bands, k, axis=1), jnp.take(bands, k + 1, axis=1)
        return tuple((1.0 - fraction) * below + fraction * above)

    def foreground(self, nuisances):
        return self.at_position(nuisances[FOREGROUND_SITE])

    def share_reference(self, position=0.0):
        """share_reference of the bands at a foreground position (default 0: model A)."""
        value, err_lo, err_hi, _, _ = self.at_position(position)
        return share_reference(value, err_lo, err_hi)

    def mocked(self, predicted, rng):
        """Mock data have no foreground: every model is the mock, the position a flat nuisance."""
        mock = super().mocked(predicted, rng)
        rows = [mock.value, mock.err_lo, mock.err_hi, mock.fgsyst_lo, mock.fgsyst_hi]
        return dataclasses.replace(mock, node_bands=np.stack([np.stack([np.asarray(r)] * 3) for r in rows]))


@pytree_dataclass
class NeutrinoEvent(LikelihoodTerm):
    """A one-event flux estimate (KM3-230213A) against the corona's per-flavour all-sky flux over the
    event's energy range; Poisson in the expected number of events mu = predicted / value, where
    predicted = sum(flux_weights * dN/dE(E_nodes)) is the quoted flux times the model's expected
    events (module docstring)."""

    E_GeV: np.ndarray  # (1,) the quoted energy
    value: np.ndarray  # (1,) per-flavour dN/dE at E_GeV of the E^-2 estimate
    err_lo: np.ndarray
    err_hi: np.ndarray
    is_upper_limit: np.ndarray
    log_E_nodes: np.ndarray  # (1, n) ln(E/GeV) quadrature nodes over the energy range
    flux_weights: np.ndarray  # (1, n) dimensionless: the quoted flux x 4 pi T A_eff dE, or the ln E mean x (E/E_GeV)^2
    name: str = static_field()
    mode: str = static_field()  # 'bound' or 'measurement'

    energy_power: ClassVar[int] = 2

    @property
    def log_E_weights(self):
        """Removed in 0.2.2 (the weights now carry the exposure): flux_weights."""
        raise AttributeError("NeutrinoEvent.log_E_weights was removed in 0.2.2: the term now counts events with the "
                             "exposure; use NeutrinoEvent.flux_weights (terms.event_flux_weights)")

    def predict(self, prediction, model, nuisances=None):
        mean = prediction.milky_way.sky_mean_nu_all_flavour + prediction.extragalactic.nu_all_flavour
        E = jnp.exp(self.log_E_nodes)
        flux = loglog_interp(model.milky_way.E_secondary_GeV, mean / NEUTRINO_FLAVOURS, E)
        return jnp.sum(self.flux_weights * flux, axis=1)

    def log_likelihood(self, predicted, nuisances):
        mu = predicted / self.value
        if self.mode == "bound":
            return jnp.sum(jnp.where(mu > 1.0, safe_log(mu) - mu + 1.0, 0.0))
        return jnp.sum(safe_log(mu) - mu)

    def mocked(self, predicted, rng):
        """The event is the mock's expectation (one event cannot be redrawn as a Gaussian)."""
        return dataclasses.replace(self, value=np.asarray(predicted))


@pytree_dataclass
class GammaRegion(LikelihoodTerm):
    """Diffuse gamma rays averaged over a sky region (LHAASO-KM2A) against the corona's sky averaged
    over the same footprint plus the other galaxies; 'bound' (default) or 'measurement'."""

    E_GeV: np.ndarray
    value: np.ndarray  # dN/dE [GeV^-1 cm^-2 s^-1 sr^-1], region average
    err_lo: np.ndarray
    err_hi: np.ndarray
    is_upper_limit: np.ndarray
    psi_weights: np.ndarray  # (N_psi,) sky.region_average_weights on the model's psi nodes
    name: str = static_field()
    mode: str = static_field()

    def predict(self, prediction, model, nuisances=None):
        region = self.psi_weights @ prediction.milky_way.gamma + prediction.extragalactic.gamma
        return loglog_interp(model.milky_way.E_secondary_GeV, region, self.E_GeV)

    def log_likelihood(self, predicted, nuisances):
        return likelihoods.spectrum(predicted, self.value, self.err_lo, self.err_hi, self.is_upper_limit, self.mode)


@pytree_dataclass
class NeutrinoTemplate(LikelihoodTerm):
    """A Galactic-plane template's fitted neutrino flux (IceCube 2023) as a bound on the flux that
    the same template fit would attribute to the corona: the corona's per-flavour sky projected on
    the plane template with the background scrambled in right ascension (sky.plane_template_weights),
    / 4 pi sr like the data. The curve's rows share one normalisation error, so the likelihood bounds
    one number: the ratio model / data averaged over ln E (ln_E_weights), one-sided against 1 with
    the relative error of the normalisation (module docstring)."""

    E_GeV: np.ndarray  # curve points
    value: np.ndarray  # per-flavour all-sky mean of the template's flux [GeV^-1 cm^-2 s^-1 sr^-1]
    err_lo: np.ndarray  # the normalisation's error, 100 % correlated across rows
    err_hi: np.ndarray
    is_upper_limit: np.ndarray
    psi_weights: np.ndarray  # (N_psi,) [sr / 4 pi sr]: sky.plane_template_weights / (4 pi)
    ln_E_weights: np.ndarray  # (N_E,) trapezoid weights in ln E, summing to 1
    name: str = static_field()
    mode: str = static_field()  # 'bound'

    def predict(self, prediction, model, nuisances=None):
        sky_nu = prediction.milky_way.nu_all_flavour + prediction.extragalactic.nu_all_flavour[None, :]
        projected = self.psi_weights @ sky_nu / NEUTRINO_FLAVOURS  # < 0: the fit would go down, no bound
        return loglog_interp(model.milky_way.E_secondary_GeV, jnp.maximum(projected, 0.0), self.E_GeV)

    def normalisation_ratio(self, predicted):
        """(model / data averaged over ln E, the normalisation's relative upper error)."""
        return (jnp.sum(self.ln_E_weights * predicted / self.value),
                jnp.sum(self.ln_E_weights * self.err_hi / self.value))

    def log_likelihood(self, predicted, nuisances):
        ratio, relative_err_hi = self.normalisation_ratio(predicted)
        return likelihoods.must_not_exceed(ratio, 1.0, relative_err_hi)

    def mocked(self, predicted, rng):
        """The model's curve times one draw of the shared normalisation, 1 + relative error x z
        (floored at 1e-3), with that relative error on every row."""
        m = np.asarray(predicted)
        relative = float(np.mean(self.relative_errors()))
        return self.with_mock(max(1.0 + relative * rng.standard_normal(), 1e-3) * m, relative * m)


def _spectrum_arrays(d: observations.SpectralData):
    """(E_GeV total, value, err_lo, err_hi, is_upper_limit) of a spectrum; upper-limit rows carry no errors."""
    E = d.E_GeV + (PROTON_MASS_GEV if d.energy_kind == "kinetic" else 0.0)
    err_lo = np.where(d.is_upper_limit, 0.0, np.nan_to_num(d.err_lo))
    err_hi = np.where(d.is_upper_limit, 0.0, np.nan_to_num(d.err_hi))
    return dict(E_GeV=E, value=d.flux_per_GeV_cm2_s_sr, err_lo=err_lo, err_hi=err_hi, is_upper_limit=d.is_upper_limit)


def cosmic_ray_terms(names, mode, mock, model):
    terms = []
    for n in names:
        d = observations.load_cosmic_ray_dataset(n)
        # protons can never exceed the all-particle flux ... but mock data are the model's protons
        term_mode = mode if (d.species != "all-particle" or mock) else "bound"
        terms.append(ProtonSpectrum(**_spectrum_arrays(d), name=n, mode=term_mode))
    return terms


def neutrino_terms(name, mode, mock, model):
    return [NeutrinoSpectrum(**_spectrum_arrays(observations.load_neutrino_dataset(name)), name=name, mode=mode)]


def event_flux_weights(d: observations.SpectralData, area: observations.EffectiveArea = None):
    """(ln E nodes, flux_weights), each (1, n), of NeutrinoEvent over the event's energy range.

    With an effective area: flux_weights = value x 4 pi T x exposure_quadrature weights, so that
    predicted / value = 4 pi T int A_eff Phi_1f dE (KM3NeT's notebook "Expected events per flux").
    Without: an 8-point Gauss-Legendre mean of E^2 dN/dE over ln E, over E_GeV^2 (the E^-2-equivalent
    flux: exact for an exposure proportional to E)."""
    E_lo, E_hi = float(d.extra["E_lo_GeV"][0]), float(d.extra["E_hi_GeV"][0])
    if area is not None:
        nodes, weights = exposure_quadrature(area.E_GeV, area.area_cm2, E_lo, E_hi)
        return nodes[None, :], (d.flux_per_GeV_cm2_s_sr[0] * 4.0 * np.pi * area.livetime_s * weights)[None, :]
    a, b = np.log(E_lo), np.log(E_hi)
    nodes = 0.5 * (b - a) * _BAND_NODES + 0.5 * (a + b)
    return nodes[None, :], (0.5 * _BAND_WEIGHTS * np.exp(nodes) ** 2 / d.E_GeV[0] ** 2)[None, :]


def neutrino_event_terms(name, mode, mock, model):
    d = observations.load_neutrino_event(name)
    area = observations.load_effective_area(name) if name in observations.EFFECTIVE_AREAS else None
    nodes, weights = event_flux_weights(d, area)
    return [NeutrinoEvent(**_spectrum_arrays(d), log_E_nodes=nodes, flux_weights=weights, name=name, mode=mode)]


def gamma_region_terms(names, mode, mock, model):
    terms = []
    for n in names:
        d, l_range, b_max = observations.load_gamma_region(n)
        weights = sky.region_average_weights(np.asarray(model.milky_way.psi_rad), l_range, b_max)
        terms.append(GammaRegion(**_spectrum_arrays(d), psi_weights=weights, name=n, mode=mode))
    return terms


def ln_E_mean_weights(E_GeV):
    """Trapezoid weights (summing to 1) of the mean over ln E of a function at the points E_GeV."""
    ln_E = np.log(np.asarray(E_GeV, dtype=float))
    widths = np.diff(ln_E)
    return (np.r_[widths, 0.0] + np.r_[0.0, widths]) / (2.0 * (ln_E[-1] - ln_E[0]))


def neutrino_template_terms(names, mode, mock, model):
    weights = sky.plane_template_weights(np.asarray(model.milky_way.psi_rad),
                                         observations.NEUTRINO_TEMPLATE_PLANE_B_MAX_DEG) / (4.0 * np.pi)
    terms = []
    for n in names:
        d = observations.load_neutrino_template(n)
        terms.append(NeutrinoTemplate(**_spectrum_arrays(d), psi_weights=weights, ln_E_weights=ln_E_mean_weights(d.E_GeV),
                                      name=n, mode=mode))
    return terms


def gamma_band_terms(model_name, mode, mock, model):
    """[GammaBands] of one foreground model, or [InterpolatedGammaBands] for 'interpolated'."""
    models = observations.FOREGROUND_MODELS if model_name == FOREGROUND_INTERPOLATED else (model_name,)
    bands = [observations.load_gamma_bands(m) for m in models]
    b = bands[0]
    nodes, weights = band_quadrature(b.E_lo_GeV, b.E_hi_GeV)
    fields = (np.sqrt(b.E_lo_GeV * b.E_hi_GeV), b.intensity_per_cm2_s_sr, b.err_lo, b.err_hi,
              np.zeros(b.E_lo_GeV.size, bool), b.fgsyst_lo, b.fgsyst_hi, nodes, weights)
    if len(bands) == 1:
        return [GammaBands(*fields, name=b.name, mode=mode)]
    if any(not np.array_equal(c.E_lo_GeV, b.E_lo_GeV) for c in bands):
        raise ConfigError("the Fermi-LAT foreground models' bands differ; they cannot be interpolated")
    rows = ("intensity_per_cm2_s_sr", "err_lo", "err_hi", "fgsyst_lo", "fgsyst_hi")
    node_bands = np.array([[getattr(c, r) for c in bands] for r in rows])
    return [InterpolatedGammaBands(*fields, name="Fermi-IGRB-interpolated", mode=mode, node_bands=node_bands)]


@dataclasses.dataclass(frozen=True)
class DataSource:
    """One key of the [data] section: the data sets it may name, its modes, and its terms.

    build(value, mode, mock, model) -> list of terms (model: the CoronaModel they are compared
    with); value is a list of names when `many`, else one name or 'none' (no term). mode_key
    names the key of its likelihood mode (None: no modes).
    """

    choices: tuple
    default: object
    build: Callable
    what: str  # 'cosmic-ray data set', ... for messages
    many: bool = False
    mode_key: str = None
    modes: tuple = ()
    default_mode: str = None

    def check(self, key, value):
        """ConfigError unless value names data sets of this source."""
        if self.many:
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                raise ConfigError(f"[data] {key} must be a list of data-set names")
            names = value
        else:
            if not isinstance(value, str):
                raise ConfigError(f"[data] {key} must be a data-set name or 'none', got {value!r}")
            names = [] if value == "none" else [value]
        for n in names:
            if n not in self.choices:
                choices = ", ".join(self.choices) + ("" if self.many else " or 'none'")
                raise ConfigError(f"unknown {self.what} {n!r}; choose from {choices}")
        return tuple(value) if self.many else value

    def selects(self, value) -> bool:
        """Whether value names at least one data set."""
        return bool(value) if self.many else value != "none"

    def terms(self, value, mode, mock, model):
        return self.build(value, mode, mock, model) if self.selects(value) else []


DATA_SOURCES = {
    "cosmic_rays": DataSource(tuple(observations.COSMIC_RAY_DATASETS), observations.DEFAULT_CR_DATASETS,
                              cosmic_ray_terms, "cosmic-ray data set", many=True, mode_key="cosmic_ray_mode",
                              modes=("bound", "measurement"), default_mode="bound"),
    "neutrinos": DataSource(tuple(observations.NEUTRINO_DATASETS), observations.DEFAULT_NEUTRINO_DATASET,
                            neutrino_terms, "neutrino data set", mode_key="neutrino_mode",
                            modes=("bound", "component", "measurement"), default_mode="bound"),
    "gamma_foreground": DataSource((*observations.FOREGROUND_MODELS, FOREGROUND_INTERPOLATED), "A", gamma_band_terms,
                                   "Fermi-LAT foreground model", mode_key="gamma_mode",
                                   modes=("bound", "component", "measurement", "power_law"), default_mode="bound"),
    "neutrino_event": DataSource(tuple(observations.NEUTRINO_EVENT_DATASETS), "none", neutrino_event_terms,
                                 "neutrino event", mode_key="neutrino_event_mode",
                                 modes=("bound", "measurement"), default_mode="bound"),
    "neutrino_templates": DataSource(tuple(observations.NEUTRINO_TEMPLATE_DATASETS), (), neutrino_template_terms,
                                     "neutrino template data set", many=True, mode_key="neutrino_template_mode",
                                     modes=("bound",), default_mode="bound"),
    "gamma_regions": DataSource(tuple(observations.GAMMA_REGION_DATASETS), (), gamma_region_terms,
                                "gamma-ray region data set", many=True, mode_key="gamma_region_mode",
                                modes=("bound", "measurement"), default_mode="bound"),
}
