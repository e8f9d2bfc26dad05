"""Accuracy of the transport solver: convergence table, outer-boundary sensitivity
and the paper's statements (n ~ r^-A, spectral softening), for benchmarks/RESULTS.md.

Run: python benchmarks/transport_accuracy.py   (about a minute on 2 cores)
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from corona_jax import cosmic_rays, grids, params, transport

E_CHECK = (1.0, 1e3, 1e5, 1e7, 1e9)
R_CHECK = (1.0, 8.5, 30.0, 100.0, 250.0)
solve = jax.jit(transport.unit_spectrum_density)


def at_points(p, res, **kw):
    m = transport.build_transport_model(res, **kw)
    G = solve(p, m)
    E = np.asarray(m.E_GeV)
    rows = [grids.nearest_index(E, e) for e in E_CHECK]
    return np.asarray(cosmic_rays.at_radius(G[np.array(rows)], m, jnp.asarray(R_CHECK)))


def full_error(p, res, ref_res):
    """Max relative error at r <= 250 kpc where j > 1e-10 of its maximum."""
    m, f = transport.build_transport_model(res), transport.build_transport_model(ref_res)
    r = np.asarray(m.centres_kpc)
    r = r[r <= 250.0]
    ref = np.asarray(cosmic_rays.at_radius(solve(p, f), f, jnp.asarray(r)))
    got = np.asarray(solve(p, m))[:, : r.size]
    j = ref * np.exp(np.asarray(cosmic_rays.log_spectrum_shape(p, m.E_GeV)))[:, None]
    matters = j > 1e-10 * j.max()
    err = np.abs(got / ref - 1)
    k = np.unravel_index(np.argmax(np.where(matters, err, 0)), err.shape)
    return err[matters].max(), float(m.E_GeV[k[0]]), float(r[k[1]])


def table(errors):
    head = "| E [GeV] \\ r [kpc] | " + " | ".join(f"{r:g}" for r in R_CHECK) + " |"
    lines = [head, "|---" * (len(R_CHECK) + 1) + "|"]
    for e, row in zip(E_CHECK, errors):
        lines.append(f"| {e:.0e} | " + " | ".join(f"{x:+.2e}" for x in row) + " |")
    return "\n".join(lines)


def main():
    base = grids.resolution("default")
    ref_res = base.refined(8)
    # G depends on D0 and the gas only: 'hard' has the same G as 'baseline'.
    for name in ("baseline", "fast-diffusion"):
        p = params.preset(name)
        ref = at_points(p, ref_res)
        print(f"\n### {name}: relative error of G versus an 8x finer run "
              f"({ref_res.n_t} steps, {ref_res.r_per_decade} cells/decade)\n")
        print(table(at_points(p, base) / ref - 1))
        for k in (1, 2, 4):
            e, E_at, r_at = full_error(p, base.refined(k), ref_res)
            print(f"\n- refined x{k}: max error where j > 1e-10 max, r <= 250 kpc: {e:.2e} (at E = {E_at:.3g} GeV, r = {r_at:.3g} kpc)", end="")
        far = at_points(p, dataclasses.replace(base, R_out_kpc=2 * base.R_out_kpc))
        print(f"\n- R_out 30 -> 60 Mpc: max change at the check points {np.max(np.abs(at_points(p, base) / far - 1)):.1e}")

    p = params.preset("baseline")
    print("\n### The paper's statements (baseline, default resolution)\n")
    print("| history | E [GeV] | A in n ~ r^-A, 30-200 kpc |")
    print("|---|---|---|")
    slopes = {}
    for history in ("constant", "paper"):
        m = transport.build_transport_model(base, history=history)
        G = np.asarray(solve(p, m))
        r, E = np.asarray(m.centres_kpc), np.asarray(m.E_GeV)
        sel = (r >= 30) & (r <= 200)
        for e in (1e2, 1e4, 1e5, 1e6, 1e8):
            k = grids.nearest_index(E, e)
            print(f"| {history} | {e:.0e} | {-np.polyfit(np.log(r[sel]), np.log(G[k, sel]), 1)[0]:.3f} |")
        band = (E >= 1e3) & (E <= 1e6)
        slopes[history] = [np.polyfit(np.log(E[band]), np.log(G[band, int(np.argmin(np.abs(r - r0)))]), 1)[0]
                           for r0 in (8.5, 50.0, 100.0)]
    print("\nSpectral index of G (j = A E^-alpha exp(-E/Emax) G) over 1e3-1e6 GeV at r = 8.5, 50, 100 kpc:")
    for history, s in slopes.items():
        print(f"- {history} source: " + ", ".join(f"{x:+.3f}" for x in s) + " (expected about -1/3)")

    near = transport.build_transport_model(dataclasses.replace(base, R_out_kpc=500.0), boundary="absorbing")
    m = transport.build_transport_model(base)
    k = grids.nearest_index(m.E_GeV, 1e8)
    a = lambda mm: float(cosmic_rays.at_radius(solve(p, mm), mm, 100.0)[k])
    print(f"\nAbsorbing boundary at 0.5 Mpc: n(1e8 GeV, 100 kpc) low by {1 - a(near) / a(m):.1%} (docs/physics.md: ~25 %)")


if __name__ == "__main__":
    main()
