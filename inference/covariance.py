"""Correlated errors: a data set's covariance across energy from its published error sources
(docs/systematics.md, "Correlated errors").

A systematic error is not independent from bin to bin: an acceptance or unfolding correction
moves neighbouring bins together. Following the construction of Derome et al. (2019, A&A 627,
A158) for AMS-02's B/C and of Heisig, Korsmeier & Winkler (2020, Phys. Rev. Research 2, 043017)
for its antiprotons, each source k with errors sigma_k,i gives a Gaussian correlation in
x = log10 R of length l_k, and the statistical errors stay on the diagonal:

    C_ij = sigma_stat,i^2 delta_ij + sum_k exp(-(x_i - x_j)^2 / (2 l_k^2)) sigma_k,i sigma_k,j.

The rigidity scale is one number, so its errors are fully correlated (l = infinity); when the
experiment's energy-scale nuisance is free (inference.energy_scale) that nuisance takes its
place and sigma_scale is left out, so that it is not counted twice.
"""

import dataclasses
import math

import numpy as np

from corona_jax import observations
from corona_jax.errors import DataError
from corona_jax.units import PROTON_MASS_GEV

# source -> correlation length [decades of rigidity]. Our choice (the papers above derive lengths
# for their own data sets, which we do not reuse): the trigger efficiency is measured smoothly
# over the whole range, acceptance corrections vary over a few tens of per cent in rigidity,
# unfolding over about half a decade. docs/systematics.md shows the fit's chi^2 under x0.5 and x2.
CORRELATION_LENGTHS_DECADES = {"trig": 1.0, "acc": 0.3, "unf": 0.5, "scale": math.inf}


def correlation(x, length: float):
    """exp(-(x_i - x_j)^2 / (2 length^2)); length = inf: all ones."""
    if math.isinf(length):
        return np.ones((x.size, x.size))
    return np.exp(-0.5 * ((x[:, None] - x[None, :]) / length) ** 2)


def covariance(name: str, E_GeV, flux, include_scale: bool = True, lengths=None) -> np.ndarray:
    """(N, N) covariance of data set `name` at its rows (total energies E_GeV [GeV] and fluxes in
    the data's units): each row takes its rigidity bin's relative errors, which do not depend on
    whether the flux is per GV or per GeV. lengths: {source: length} replacing the defaults."""
    table = observations.load_error_breakdown(name)
    lengths = {**CORRELATION_LENGTHS_DECADES, **(lengths or {})}
    R = np.sqrt(np.asarray(E_GeV, float) ** 2 - PROTON_MASS_GEV**2)
    bins = np.searchsorted(table["Rigidity_GV_sup"], R, side="right")
    inside = (bins < table["Phi"].size) & (R >= table["Rigidity_GV_inf"][np.minimum(bins, table["Phi"].size - 1)])
    if not np.all(inside) or np.unique(bins).size != bins.size:
        raise DataError(f"{name}: the error breakdown's rigidity bins do not hold each data row once")
    # the parts, published to 2-3 digits, are rescaled in each bin to add up in quadrature to the
    # published sigma_syst (their rounding alone moves the sum by up to 3 %)
    parts = {k: table[f"sigma_{k}"][bins] for k in lengths}
    rounding = table["sigma_syst"][bins] / np.sqrt(sum(p**2 for p in parts.values()))
    scale = np.asarray(flux, float) / table["Phi"][bins]
    x = np.log10(R)
    cov = np.diag((table["sigma_stat"][bins] * scale) ** 2)
    for source, length in lengths.items():
        if source == "scale" and not include_scale:
            continue
        sigma = parts[source] * rounding * scale
        cov += correlation(x, length) * np.outer(sigma, sigma)
    return cov


def with_covariance(term, include_scale: bool):
    """The ProtonSpectrum term with the Cholesky factor of its data set's covariance (terms of data
    sets without an error breakdown are returned unchanged)."""
    if term.name not in observations.ERROR_BREAKDOWNS:
        return term
    cov = covariance(term.name, term.E_GeV, term.value, include_scale)
    return dataclasses.replace(term, cov_cholesky=np.linalg.cholesky(cov))
