"""Convergence of the Milky Way sky under refinement (radial cells, time steps, directions).

Run: python benchmarks/milky_way_accuracy.py
Prints, per resolution, the largest relative difference from a run refined 8x in space,
time and direction and 2x in proton energy (20 per decade), of the
sky mean, anticentre and dipole at 0.1 GeV - 10 PeV (gamma and neutrinos), baseline preset.
"""

import dataclasses

import jax
import numpy as np

from corona_jax import forward, grids, params
from corona_jax.model import build_model


def sky(res, p):
    model = build_model(resolution=res)
    mw = jax.jit(forward.forward)(p, model).milky_way
    return np.asarray(model.milky_way.E_secondary_GeV), {k: np.asarray(v) for k, v in mw._asdict().items()}


def main():
    p = params.preset("baseline")
    base = grids.resolution("default")
    E, ref = sky(dataclasses.replace(base.refined(8), E_per_decade=20), p)
    fields = ("sky_mean_gamma", "anticentre_gamma", "dipole_gamma", "sky_mean_nu_all_flavour",
              "anticentre_nu_all_flavour", "dipole_nu")
    print("| resolution | " + " | ".join(fields) + " |")
    print("|---" * (len(fields) + 1) + "|")
    for label, res in (("coarse", grids.resolution("coarse")), ("default", base), ("2x", base.refined(2)),
                       ("4x", base.refined(4)), ("default, 20 energies per decade", dataclasses.replace(base, E_per_decade=20))):
        E_r, mw = sky(res, p)
        band = E_r <= 1.0e7
        at = np.searchsorted(E, E_r[band] * (1 - 1e-9))  # coarse energies are a subset of the others
        assert np.allclose(E[at], E_r[band], rtol=1e-9)
        cells = []
        for f in fields:
            cells.append(f"{np.max(np.abs(mw[f][band] / ref[f][at] - 1)) * 100:.2f} %")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
