"""Energy, radial and time grids of the transport solver.

The radial grid is made of finite-volume cells: uniform inside the source
sphere (r <= r_Q = 5 kpc), then logarithmic out to a far outer boundary R_out.
A face sits exactly at r_Q, so the source fills whole cells. No face is put at
the gas edge R_max: the edge cell holds the part of its volume inside R_max,
so the model stays smooth in R_max (a face there would be a kink). Sizes are static:
they are the shapes of the arrays, so jit sees them without extra arguments.
"""

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from .errors import ConfigError
from .units import PROTON_MASS_GEV

SOURCE_RADIUS_KPC = 5.0  # r_Q of Eq. (5)
GAS_EDGE_KPC = 250.0  # the default R_max
T_TODAY_GYR = 10.0  # "today" in the source history of Eq. (5)


@dataclasses.dataclass(frozen=True)
class Resolution:
    """Grid sizes. `refined(k)` multiplies every density of points by k."""

    E_min_GeV: float = 1.0
    E_max_GeV: float = 1.0e10
    E_per_decade: int = 10
    n_r_source: int = 12  # uniform cells in 0 <= r <= r_Q
    r_per_decade: int = 30  # logarithmic cells per decade beyond r_Q
    R_out_kpc: float = 3.0e4  # outer boundary
    n_t: int = 60  # time steps from t = 0 to today (RESULTS.md, "NUTS in minutes")
    E_secondary_min_GeV: float = 0.1  # lowest gamma / neutrino energy (bottom of the Fermi-LAT band)
    n_psi: int = 49  # directions from the centre (psi = 0) to the anticentre (pi) in the output

    def refined(self, k: int) -> "Resolution":
        """Same energies, k times more radial cells, time steps and directions."""
        return dataclasses.replace(
            self, n_r_source=self.n_r_source * k, r_per_decade=self.r_per_decade * k, n_t=self.n_t * k,
            n_psi=(self.n_psi - 1) * k + 1,
        )

    def validate(self) -> "Resolution":
        if not (0 < self.E_min_GeV < self.E_max_GeV) or not math.isfinite(self.E_max_GeV):
            raise ConfigError(f"energy range [{self.E_min_GeV}, {self.E_max_GeV}] GeV is not valid")
        if self.E_min_GeV <= PROTON_MASS_GEV:
            raise ConfigError("E_min_GeV is a total energy and must exceed the proton mass")
        if not 0 < self.E_secondary_min_GeV < self.E_max_GeV:
            raise ConfigError(f"E_secondary_min_GeV must lie in (0, {self.E_max_GeV}) GeV")
        for name in ("E_per_decade", "n_r_source", "r_per_decade", "n_t", "n_psi"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"resolution {name} must be a positive integer")
        if self.n_psi < 2:
            raise ConfigError("resolution n_psi must be at least 2 (the centre and the anticentre)")
        if not self.R_out_kpc >= 2 * GAS_EDGE_KPC:
            raise ConfigError(f"R_out_kpc must be at least {2 * GAS_EDGE_KPC} kpc")
        return self


RESOLUTIONS = {
    "coarse": Resolution(E_per_decade=5, n_r_source=6, r_per_decade=15, n_t=40, n_psi=25),
    "default": Resolution(),
    "fine": Resolution().refined(4),
}


def resolution(name: str) -> Resolution:
    """Named resolution: 'coarse' (quick looks, CI), 'default', 'fine' (reference)."""
    try:
        return RESOLUTIONS[name]
    except KeyError:
        raise ConfigError(f"unknown resolution {name!r}; choose one of {', '.join(RESOLUTIONS)}") from None


class RadialGrid(NamedTuple):
    """Finite-volume cells; geometric factors carry no 4 pi (it cancels)."""

    faces_kpc: np.ndarray  # (N+1,), faces[0] = 0
    centres_kpc: np.ndarray  # (N,), cell midpoints
    volumes_kpc3: np.ndarray  # (N,), (r_hi^3 - r_lo^3)/3 = cell volume / 4 pi
    face_coupling_kpc: np.ndarray  # (N-1,), r_face^2 / (r_{i+1} - r_i) for inner faces


def energy_grid(res: Resolution) -> np.ndarray:
    """Log-spaced proton total energies [GeV], E_per_decade points per decade."""
    n_dec = math.log10(res.E_max_GeV / res.E_min_GeV)
    n = int(round(n_dec * res.E_per_decade)) + 1
    return np.geomspace(res.E_min_GeV, res.E_max_GeV, n)


def secondary_energy_grid(res: Resolution) -> np.ndarray:
    """Log-spaced gamma-ray / neutrino energies [GeV] from E_secondary_min to E_max."""
    n = int(round(math.log10(res.E_max_GeV / res.E_secondary_min_GeV) * res.E_per_decade)) + 1
    return np.geomspace(res.E_secondary_min_GeV, res.E_max_GeV, n)


def _log_faces(r_lo, r_hi, per_decade):
    n = max(1, int(math.ceil(math.log10(r_hi / r_lo) * per_decade)))
    return np.geomspace(r_lo, r_hi, n + 1)[1:]


def radial_grid(res: Resolution) -> RadialGrid:
    """Cell faces: uniform to r_Q, logarithmic from r_Q to R_out."""
    faces = np.concatenate(
        [
            np.linspace(0.0, SOURCE_RADIUS_KPC, res.n_r_source + 1),
            _log_faces(SOURCE_RADIUS_KPC, res.R_out_kpc, res.r_per_decade),
        ]
    )
    centres = 0.5 * (faces[1:] + faces[:-1])
    volumes = (faces[1:] ** 3 - faces[:-1] ** 3) / 3.0
    coupling = faces[1:-1] ** 2 / np.diff(centres)
    return RadialGrid(faces, centres, volumes, coupling)


def time_steps(res: Resolution) -> np.ndarray:
    """End times t_1 ... t_N of uniform steps from 0 to today [Gyr]."""
    return np.linspace(0.0, T_TODAY_GYR, res.n_t + 1)[1:]


def volume_fraction_inside(faces_kpc, radius_kpc, xp=np):
    """Fraction of each cell's volume at r < radius (differentiable in radius)."""
    lo3, hi3 = faces_kpc[:-1] ** 3, faces_kpc[1:] ** 3
    return xp.clip((radius_kpc**3 - lo3) / (hi3 - lo3), 0.0, 1.0)


def nearest_index(E_grid_GeV, E_GeV) -> int:
    """Index of the grid energy closest to E_GeV in ln E."""
    return int(np.argmin(np.abs(np.log(np.asarray(E_grid_GeV) / E_GeV))))
