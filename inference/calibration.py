"""Statistics of calibration: SBC rank statistics (Talts et al. 2018, arXiv:1804.06788) and the
frequentist coverage of profile-likelihood intervals.

SBC: draw theta from the prior, data from the likelihood at theta, and L draws from the
posterior of those data. If the posterior is right, the rank of theta among the L draws
(how many draws lie below it) is uniform on 0..L. Binned into B bins of (L + 1) / B ranks,
the counts of N simulations are Binomial(N, 1 / B) each; the chi-square test of the counts
against N / B gives the p-value of uniformity.

Coverage: the profile-likelihood interval of level c holds every value whose profile
statistic t = 2 [min over the others of -log L(value) - min of -log L] is below the
chi-square(1 dof) quantile of c (Wilks). So an interval covers the truth exactly when t at
the truth is below that quantile: coverage needs one profile minimisation per parameter and
simulation, not the interval's two ends.
"""

from typing import NamedTuple

import numpy as np
from scipy import stats

COVERAGE_LEVELS = (0.6827, 0.9545)  # 1 and 2 sigma of a Gaussian, as the 68 % and 95 %


def ranks(truth, draws):
    """Rank of each truth among its posterior draws: truth (N,), draws (N, L) -> int (N,) in 0..L."""
    return np.sum(np.asarray(draws) < np.asarray(truth)[:, None], axis=1)


class RankTest(NamedTuple):
    counts: np.ndarray  # (bins,) simulations per bin of ranks
    band: tuple  # (low, high): the central 99 % range of each bin's count under uniformity
    chi2: float
    p_value: float  # chi-square test of uniform counts


def rank_test(rank_values, n_draws: int, bins: int) -> RankTest:
    """Histogram of ranks in 0..n_draws into `bins` equal bins and its chi-square uniformity test;
    n_draws + 1 must be a multiple of bins (every bin holds as many possible ranks)."""
    if (n_draws + 1) % bins:
        raise ValueError(f"{n_draws + 1} possible ranks do not fill {bins} equal bins")
    rank_values = np.asarray(rank_values)
    counts = np.bincount(rank_values * bins // (n_draws + 1), minlength=bins)
    n = rank_values.size
    chi2, p = stats.chisquare(counts)
    band = stats.binom.ppf([0.005, 0.995], n, 1.0 / bins)
    return RankTest(counts, (float(band[0]), float(band[1])), float(chi2), float(p))


def profile_threshold(level: float) -> float:
    """The chi-square(1) quantile of `level`: the profile statistic's limit of the interval."""
    return float(stats.chi2.ppf(level, 1))


class Coverage(NamedTuple):
    level: float
    fraction: float  # of simulations whose interval covers the truth
    error: float  # binomial standard error of the fraction
    p_value: float  # two-sided binomial test of fraction = level


def coverage(profile_statistic, level: float) -> Coverage:
    """Coverage of the `level` profile-likelihood interval from the statistic t at the truth of
    each simulation (NaN: simulation failed, left out)."""
    t = np.asarray(profile_statistic, dtype=float)
    t = t[np.isfinite(t)]
    covered = int(np.sum(t <= profile_threshold(level)))
    n = t.size
    fraction = covered / n
    return Coverage(level, fraction, float(np.sqrt(fraction * (1 - fraction) / n)),
                    float(stats.binomtest(covered, n, level).pvalue))
