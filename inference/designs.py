"""Designs of a sweep: which parameter points to evaluate ([design] of a sweep configuration).

kind = 'grid' (every combination of evenly spaced values), 'random' (uniform), 'lhs' (Latin
hypercube) or 'sobol' (scrambled Sobol sequence); the last three come from scipy.stats.qmc.
Each swept parameter is given as [low, high] (and, for a grid, [low, high, points]).
"""

import dataclasses
import itertools

import numpy as np
from scipy.stats import qmc

from corona_jax.errors import ConfigError

from .config import PRIOR_RANGES, _number, _seed

DESIGN_KINDS = ("grid", "random", "lhs", "sobol")


@dataclasses.dataclass(frozen=True)
class Design:
    kind: str
    ranges: tuple  # ((name, low, high, points or 0), ...) in the configuration's order
    n: int = 0  # number of points of a random, lhs or sobol design
    seed: int = 0

    @property
    def names(self):
        return tuple(r[0] for r in self.ranges)

    def points(self) -> np.ndarray:
        """The design's points, (N, number of parameters)."""
        lows = np.array([r[1] for r in self.ranges])
        highs = np.array([r[2] for r in self.ranges])
        if self.kind == "grid":
            axes = [np.linspace(lo, hi, k) for _, lo, hi, k in self.ranges]
            return np.array(list(itertools.product(*axes)), dtype=np.float64)
        d = len(self.ranges)
        if self.kind == "random":
            unit = np.random.default_rng(self.seed).random((self.n, d))
        elif self.kind == "lhs":
            unit = qmc.LatinHypercube(d, seed=self.seed).random(self.n)
        else:
            unit = qmc.Sobol(d, scramble=True, seed=self.seed).random_base2(int(np.log2(self.n)))
        return qmc.scale(unit, lows, highs)


def parse_design(table, source="config") -> Design:
    """The checked [design] section; ConfigError names the first problem."""
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{source}: a sweep needs a [design] section (kind and [design.parameters])")
    allowed = {"kind", "n", "seed", "parameters"}
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key '{key}' in [design]; allowed: {', '.join(sorted(allowed))}")
    kind = table.get("kind")
    if kind not in DESIGN_KINDS:
        raise ConfigError(f"unknown design {kind!r}; choose one of {', '.join(DESIGN_KINDS)}")
    parameters = table.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise ConfigError("[design.parameters] must give at least one parameter as name = [low, high]")
    if "log10_LCR_erg_s" in parameters and "log10_LCR_minus_log10_D0" in parameters:
        raise ConfigError("[design.parameters] may give log10_LCR_minus_log10_D0 or log10_LCR_erg_s, not both")
    ranges = []
    for name, spec in parameters.items():
        if name not in PRIOR_RANGES:
            raise ConfigError(f"unknown parameter '{name}' in [design.parameters]; choose from {', '.join(PRIOR_RANGES)}")
        form = "[low, high, points]" if kind == "grid" else "[low, high]"
        if not isinstance(spec, list) or len(spec) != (3 if kind == "grid" else 2):
            raise ConfigError(f"[design.parameters] {name} must be {form} for a {kind} design, got {spec!r}")
        lo, hi = (float(_number(x, f"[design.parameters] {name}")) for x in spec[:2])
        lo_ok, hi_ok = PRIOR_RANGES[name]
        if not lo_ok <= lo <= hi <= hi_ok or (lo == hi and kind != "grid"):
            raise ConfigError(f"[design.parameters] {name} must satisfy {lo_ok} <= low < high <= {hi_ok}, got [{lo}, {hi}]")
        points = _number(spec[2], f"[design.parameters] {name} points", integer=True, positive=True) if kind == "grid" else 0
        if kind == "grid" and points == 1 and lo != hi:
            raise ConfigError(f"[design.parameters] {name} = [{lo}, {hi}, 1] has one point for a range: give "
                              f"[x, x, 1] to hold it at x, or 2 or more points to span [{lo}, {hi}]")
        if kind == "grid" and points > 1 and lo == hi:
            raise ConfigError(f"[design.parameters] {name} repeats {lo} {points} times: give [{lo}, {lo}, 1]")
        ranges.append((name, lo, hi, points))
    n = 0
    if kind == "grid":
        if "n" in table:
            raise ConfigError("a grid design takes its size from the points of each parameter; remove [design] n")
    else:
        if "n" not in table:
            raise ConfigError(f"a {kind} design needs [design] n, the number of points")
        n = _number(table["n"], "[design] n", integer=True, positive=True)
        if kind == "sobol" and n & (n - 1):
            raise ConfigError(f"a sobol design needs n = a power of 2 (its balance holds for those only), got {n}")
    return Design(kind, tuple(ranges), n, _seed(table.get("seed", 0), "[design] seed"))
