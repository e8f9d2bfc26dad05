"""Discovery significance and expected upper limits of a fixed-shape signal over a profiled
background, from Asimov data (Cowan, Cranmer, Gross & Vitells 2011, Eur. Phys. J. C 71, 1554).

Flux points at energies E_i with Gaussian errors sigma_i, and the expectation

    m_i(mu, a) = mu s_i + b_i(a),    ln b_i(a) = a0 + a1 x_i + a2 x_i^2,    x_i = ln(E_i / E_ref),

where s is the signal at mu = 1 and b a log-parabola background: its normalisation a0 and
index a1 are free, its curvature a2 (the shape nuisance) carries the Gaussian constraint
N(a2_hat, sigma_a2) of today's measurement (BackgroundShape). Then

    chi2(mu, a) = sum_i ((d_i - m_i(mu, a)) / sigma_i)^2 + ((a2 - a2_hat) / sigma_a2)^2.

* Discovery (Cowan et al. Sec. 3.2 and 3.8): on the Asimov data d = b(a_hat) + mu s, the one-sided
  q0 = min_a chi2(0, a) - min_{mu', a} chi2(mu', a) = min_a chi2(0, a) (the free fit is exact), and
  the median significance is Z = sqrt(q0). The mu detected at n sigma solves sqrt(q0(mu)) = n.
* Upper limits (CLs, Read 2002, J. Phys. G 28, 2693): on the background-only Asimov data
  d = b(a_hat), q_mu = min_a chi2(mu, a), and sigma_A = mu / sqrt(q_mu) (Cowan et al. Eq. 31).
  With mu_hat ~ N(mu, sigma_A), an observation mu_hat = N sigma_A gives
  CLs(mu) = Phi(N - mu / sigma_A) / Phi(N), so the expected 1 - alpha limit at background
  fluctuation N is sigma_A (N + Phi^-1(1 - alpha Phi(N))): the median (N = 0) solves
  q_mu = Phi^-1(1 - alpha / 2)^2 on the direct profile.

Every number is computed twice: by the direct profile (scipy's least squares on the Asimov
data, nonlinear in a), and linearised, from the Fisher matrix F of (mu, a) at the truth,
sigma_mu = sqrt((F^-1)_mu,mu), Z = mu / sigma_mu and limits proportional to sigma_mu. The two agree
where the background's nonlinearity is negligible over the profiled range.
"""

from typing import NamedTuple

import numpy as np
from scipy import optimize, stats

from corona_jax.errors import ConfigError

CLS_ALPHA = 0.05  # 95 % confidence level of the upper limits
MAX_SIGNAL_OVER_BACKGROUND = 1e4  # searches stop where the signal would exceed the background this
# many times at every point: a signal that large that the background's shape still absorbs is reported
# as never detected (inf)


class BackgroundShape(NamedTuple):
    """A log-parabola background ln b = a0 + a1 x + a2 x^2 in x = ln(E / E_ref_GeV), with the
    curvature's Gaussian constraint (curvature_sigma = 0: a power law, a2 fixed at 0)."""

    E_ref_GeV: float
    coefficients: np.ndarray  # (a0, a1, a2)
    curvature_sigma: float

    @property
    def free(self):
        """The profiled coefficients: (a0, a1, a2), or (a0, a1) for a power law."""
        return 3 if self.curvature_sigma > 0 else 2

    def design(self, E_GeV):
        """(N, 3): the columns 1, x, x^2."""
        x = np.log(np.asarray(E_GeV, float) / self.E_ref_GeV)
        return np.stack([np.ones_like(x), x, x * x], axis=1)

    def values(self, E_GeV, a=None):
        a = self.coefficients if a is None else self._full(a)
        return np.exp(self.design(E_GeV) @ a)

    def _full(self, a):
        return np.concatenate([a, [0.0]]) if len(a) == 2 else np.asarray(a)


def _log_linear_start(X, target, sigma):
    """Coefficients of exp(X a) ~ target from a weighted linear fit of ln(target) (positive rows)."""
    positive = target > 0
    w = target[positive] / sigma[positive]
    return np.linalg.lstsq(X[positive] * w[:, None], np.log(target[positive]) * w, rcond=None)[0]


def _fit_exp_linear(X, target, sigma, starts, curvature=None):
    """min over a of sum ((target - exp(X a)) / sigma)^2 (+ ((a[2] - c) / s)^2 for curvature = (c, s)),
    by scipy's Levenberg-Marquardt from each start: (best result, its Jacobian at the optimum)."""
    def residuals(a):
        r = (target - np.exp(X @ a)) / sigma
        return np.append(r, (a[2] - curvature[0]) / curvature[1]) if curvature else r

    def jacobian(a):
        J = -(np.exp(X @ a) / sigma)[:, None] * X
        return np.vstack([J, [0.0, 0.0, 1.0 / curvature[1]]]) if curvature else J

    with np.errstate(over="ignore", invalid="ignore"):
        best = min((optimize.least_squares(residuals, a, jac=jacobian, method="lm", xtol=1e-15, ftol=1e-15,
                                           gtol=1e-15) for a in starts), key=lambda r: r.cost)
    return best, jacobian(best.x)


def fit_background(E_GeV, value, sigma, E_ref_GeV, curvature=True) -> BackgroundShape:
    """The log-parabola (or power law) that best fits measured points (value +- sigma), with the
    curvature's 1-sigma error as the shape nuisance's constraint."""
    E_GeV, value, sigma = (np.asarray(v, float) for v in (E_GeV, value, sigma))
    keep = value > 0
    if keep.sum() < 4:
        raise ConfigError(f"a background shape needs at least 4 measured points with positive flux, got {keep.sum()}")
    E_GeV, value, sigma = E_GeV[keep], value[keep], sigma[keep]
    columns = 3 if curvature else 2
    X = BackgroundShape(E_ref_GeV, np.zeros(3), 0.0).design(E_GeV)[:, :columns]
    result, J = _fit_exp_linear(X, value, sigma, [_log_linear_start(X, value, sigma)])
    a = np.concatenate([result.x, np.zeros(3 - columns)])
    sigma_a2 = float(np.sqrt(np.linalg.inv(J.T @ J)[2, 2])) if curvature else 0.0
    return BackgroundShape(E_ref_GeV, a, sigma_a2)


class Asimov(NamedTuple):
    """Asimov data of one experiment: the points' energies, errors, the signal at mu = 1 and the
    background's true shape."""

    E_GeV: np.ndarray
    sigma: np.ndarray
    signal: np.ndarray
    background: BackgroundShape

    def data(self, mu):
        return self.background.values(self.E_GeV) + mu * self.signal

    def profile_chi2(self, mu, d):
        """min over the background's coefficients of chi2(mu, a) on the data d (module docstring)."""
        bg = self.background
        X = bg.design(self.E_GeV)[:, :bg.free]
        rest = d - mu * self.signal
        starts = [bg.coefficients[:bg.free]]
        if np.sum(rest > 0) > bg.free:  # and the log-linear fit of what the signal leaves
            starts.append(_log_linear_start(X, rest, self.sigma))
        curvature = (bg.coefficients[2], bg.curvature_sigma) if bg.free == 3 else None
        return float(2.0 * _fit_exp_linear(X, rest, self.sigma, starts, curvature)[0].cost)

    def q0(self, mu):
        """Discovery statistic of the Asimov data with signal mu."""
        return self.profile_chi2(0.0, self.data(mu))

    def q_mu(self, mu):
        """Upper-limit statistic of mu on the background-only Asimov data."""
        return self.profile_chi2(mu, self.data(0.0))

    def sigma_mu(self):
        """Linearised: sqrt((F^-1)_mu,mu) of the Fisher matrix of (mu, a) at the background's truth."""
        bg = self.background
        b = bg.values(self.E_GeV)
        J = np.column_stack([self.signal, b[:, None] * bg.design(self.E_GeV)[:, :bg.free]]) / self.sigma[:, None]
        F = J.T @ J
        if bg.free == 3:
            F[3, 3] += 1.0 / bg.curvature_sigma**2
        return float(np.sqrt(np.linalg.inv(F)[0, 0]))


def _solve(statistic, target, mu_guess, mu_max):
    """The mu in (0, mu_max] at which statistic(mu) = target (statistic rising from 0 at mu = 0);
    inf if it stays below target up to mu_max."""
    f = lambda log_mu: statistic(np.exp(log_mu)) - target  # noqa: E731
    top = np.log(mu_max)
    lo, hi = min(np.log(mu_guess), top) - 1.0, min(np.log(mu_guess) + 1.0, top)
    while f(lo) > 0:
        lo -= 1.0
    while f(hi) < 0:
        if hi >= top:
            return float("inf")
        hi = min(hi + 1.0, top)
    return float(np.exp(optimize.brentq(f, lo, hi, xtol=1e-10)))


class Sensitivity(NamedTuple):
    """All in units of the signal's normalisation mu (1 = the signal as given)."""

    Z: float  # median discovery significance of mu = 1
    Z_linear: float
    mu_3sigma: float  # mu detected at 3 and 5 sigma (median)
    mu_5sigma: float
    mu_3sigma_linear: float
    mu_5sigma_linear: float
    mu_upper: float  # median expected CLs upper limit at 1 - CLS_ALPHA
    mu_upper_minus_1sigma: float  # its band at background fluctuations of -1 and +1 sigma
    mu_upper_plus_1sigma: float
    mu_upper_linear: float


def _cls_band(N, alpha=CLS_ALPHA):
    """mu_up / sigma_A at background fluctuation N (module docstring)."""
    return N + stats.norm.ppf(1.0 - alpha * stats.norm.cdf(N))


def sensitivity(asimov: Asimov) -> Sensitivity:
    if not np.all(asimov.sigma > 0) or not np.any(asimov.signal > 0):
        raise ConfigError("a sensitivity needs positive errors and a positive signal")
    sigma_mu = asimov.sigma_mu()
    Z = np.sqrt(asimov.q0(1.0))
    ratio = asimov.signal / asimov.background.values(asimov.E_GeV)
    mu_max = MAX_SIGNAL_OVER_BACKGROUND / np.min(ratio[ratio > 0])
    mu3, mu5 = (_solve(asimov.q0, n * n, n * sigma_mu, mu_max) for n in (3.0, 5.0))
    median = _cls_band(0.0)
    mu_up = _solve(asimov.q_mu, median**2, median * sigma_mu, mu_max)
    sigma_A = mu_up / median
    return Sensitivity(float(Z), 1.0 / sigma_mu, mu3, mu5, 3.0 * sigma_mu, 5.0 * sigma_mu, mu_up,
                       sigma_A * _cls_band(-1.0), sigma_A * _cls_band(1.0), median * sigma_mu)
