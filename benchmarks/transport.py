"""Speed of the transport solve and its gradient, JAX against numpy/LAPACK.

Run: python benchmarks/transport.py [--resolution default] [--repeat 20]
Prints a markdown table for benchmarks/RESULTS.md.
"""

import os
import platform
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from corona_jax import cosmic_rays, grids, params, transport
from corona_jax.units import R_SUN_KPC

sys.path.insert(0, os.path.dirname(__file__))
from numpy_transport import gradient_by_differences, solve_numpy  # noqa: E402
from timing import arguments, best_of  # noqa: E402


def main():
    args = arguments(__doc__.splitlines()[0])
    res = grids.resolution(args.resolution)
    p = params.preset("baseline")
    model = transport.build_transport_model(res)
    NE, NR = model.E_GeV.shape[0], model.centres_kpc.shape[0]

    def objective(q, m, adjoint=transport.DiscreteAdjoint()):
        """Sum over energies of log J(E, R_sun) in the data range (a fit-like scalar)."""
        G = transport.unit_spectrum_density(q, m, adjoint)
        flux = cosmic_rays.local_flux(q, m, G, R_SUN_KPC)
        return jnp.sum(jnp.log(flux[20:90]))

    solve = jax.jit(transport.unit_spectrum_density)
    vg = jax.jit(jax.value_and_grad(objective))
    vg_auto = jax.jit(jax.value_and_grad(lambda q, m: objective(q, m, transport.AutodiffAdjoint())))
    t0 = time.perf_counter()
    jax.block_until_ready(solve(p, model))
    compile_solve = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(vg(p, model))
    compile_vg = time.perf_counter() - t0
    jax.block_until_ready(vg_auto(p, model))
    t_solve = best_of(lambda: solve(p, model), args.repeat)
    t_vg = best_of(lambda: vg(p, model), args.repeat)
    t_vg_auto = best_of(lambda: vg_auto(p, model), args.repeat)
    mem_vg = vg.lower(p, model).compile().memory_analysis().temp_size_in_bytes
    mem_auto = vg_auto.lower(p, model).compile().memory_analysis().temp_size_in_bytes

    # numpy competitor: same discretisation
    G_np = solve_numpy(p, res)
    G_jax = np.asarray(solve(p, model))
    agree = np.max(np.abs(G_np / G_jax - 1)[G_jax > 1e-200])
    t_np = best_of(lambda: solve_numpy(p, res), max(3, args.repeat // 4))

    def np_objective(q):
        G = solve_numpy(q, res)
        return float(objective_from_G(q, G))

    def objective_from_G(q, G):
        flux = cosmic_rays.local_flux(q, model, jnp.asarray(G), R_SUN_KPC)
        return jnp.sum(jnp.log(flux[20:90]))

    t0 = time.perf_counter()
    g_np = gradient_by_differences(np_objective, p)
    t_np_grad = time.perf_counter() - t0 + t_np[0]
    g_jax = vg(p, model)[1]
    rel = {n: abs(a / float(b) - 1) for n, a, b in zip(p._fields, g_np, g_jax) if float(b) != 0.0}
    worst = max(rel, key=rel.get)
    fd_agree = f"{rel[worst]:.1e} (largest for {worst})"

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, numpy {np.__version__}")
    print(f"grid: {NE} energies x {NR} cells x {res.n_t} steps ({args.resolution})\n")
    print("| quantity | time (best / median) |")
    print("|---|---|")
    print(f"| JAX solve, all energies | {t_solve[0]*1e3:.1f} / {t_solve[1]*1e3:.1f} ms |")
    print(f"| JAX value+gradient, all 11 parameters (discrete adjoint) | {t_vg[0]*1e3:.1f} / {t_vg[1]*1e3:.1f} ms "
          f"({t_vg[0]/t_solve[0]:.1f}x solve; temp memory {mem_vg/1e6:.1f} MB) |")
    print(f"| JAX value+gradient (autodiff through checkpointed scan) | {t_vg_auto[0]*1e3:.1f} / {t_vg_auto[1]*1e3:.1f} ms "
          f"({t_vg_auto[0]/t_solve[0]:.1f}x; temp memory {mem_auto/1e6:.1f} MB) |")
    print(f"| numpy/LAPACK gttrf+gttrs solve, same discretisation | {t_np[0]*1e3:.1f} / {t_np[1]*1e3:.1f} ms |")
    print(f"| numpy value+gradient by central differences (1 + 22 solves) | {t_np_grad*1e3:.0f} ms |")
    print(f"| compilation: solve / value+gradient | {compile_solve:.1f} s / {compile_vg:.1f} s |")
    print(f"\nJAX and numpy solutions agree to {agree:.1e} (relative, max over E, r); "
          f"JAX gradient vs numpy central differences: max relative difference {fd_agree}; "
          f"speed-up JAX/numpy: solve {t_np[0]/t_solve[0]:.1f}x, value+gradient {t_np_grad/t_vg[0]:.0f}x; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1e3:.0f} MB")


if __name__ == "__main__":
    main()
