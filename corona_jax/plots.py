"""Figures of the paper's Sec. II-III from model results (matplotlib, Agg backend)."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .gas import beta_profile, gas_density  # noqa: E402
from .units import PROTON_MASS_GEV, R_SUN_KPC  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_gas_profile(params, path):
    """Fig. 1: the two beta profiles and n_g = max of them, cut at R_max."""
    r = np.geomspace(1.0, 400.0, 600)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.loglog(r, beta_profile(r, params.n0_inner_cm3, params.beta_inner, params.rc_inner_kpc),
              "--", label="Eq. (2): simulation fit (inner)")
    ax.loglog(r, beta_profile(r, params.n0_outer_cm3, params.beta_outer, params.rc_outer_kpc),
              ":", label="Eq. (3): observational fit (outer)")
    n = np.asarray(gas_density(params, r))
    ax.loglog(r[n > 0], n[n > 0], "k-", lw=2, label=r"$n_g$ used (max, cut at $R_{max}$)")
    ax.set_xlabel("r [kpc]")
    ax.set_ylabel(r"$n_g$ [cm$^{-3}$]")
    ax.set_ylim(1e-5, 1.0)
    ax.legend(fontsize=8)
    ax.set_title("Gas corona (Fig. 1)")
    return _save(fig, path)


def plot_density_vs_radius(results, path, E_GeV=1.0e5):
    """Fig. 2: E j(E, r) at one energy (default 0.1 PeV) for several results (label -> result)."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, res in results.items():
        k = int(np.argmin(np.abs(np.log(res.E_GeV / E_GeV))))
        inside = res.r_kpc <= 300.0
        ax.loglog(res.r_kpc[inside], res.E_GeV[k] * res.j_per_GeV_cm3[k, inside], label=label)
    ax.axvline(R_SUN_KPC, color="0.7", lw=0.8)
    ax.set_xlabel("r [kpc]")
    ax.set_ylabel(rf"$E\,j(E, r)$ [cm$^{{-3}}$] at E = {E_GeV:.0e} GeV")
    ax.legend(fontsize=8)
    ax.set_title("Cosmic-ray density in the corona (Fig. 2)")
    return _save(fig, path)


def plot_spectra_at_radii(result, path, radii_kpc=(8.5, 30.0, 50.0, 100.0, 250.0)):
    """Fig. 3: E^2 j(E) at several radii."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for r in radii_kpc:
        j = np.array([np.interp(r, result.r_kpc, row) for row in result.j_per_GeV_cm3])
        ax.loglog(result.E_GeV, result.E_GeV**2 * j, label=f"r = {r:g} kpc")
    ax.set_xlabel("E [GeV]")
    ax.set_ylabel(r"$E^2 j$ [GeV cm$^{-3}$]")
    top = (result.E_GeV[:, None] ** 2 * result.j_per_GeV_cm3).max()
    ax.set_ylim(top * 1e-8, top * 3)
    ax.legend(fontsize=8)
    ax.set_title("Cosmic-ray spectrum in the corona (Fig. 3)")
    return _save(fig, path)


def plot_local_flux(result, datasets, path):
    """Model flux at R_sun against the CR data used for the normalisation."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    E = result.E_GeV
    ax.loglog(E, E**2.6 * result.local_flux_per_GeV_cm2_s_sr, "k-", lw=2, label="model, r = R_sun")
    for d in datasets:
        E_tot = d.E_GeV + (PROTON_MASS_GEV if d.energy_kind == "kinetic" else 0.0)
        ax.errorbar(E_tot, E_tot**2.6 * d.flux_per_GeV_cm2_s_sr,
                    yerr=[E_tot**2.6 * d.err_lo, E_tot**2.6 * d.err_hi], fmt="o", ms=3,
                    label=f"{d.name} ({d.species})")
    norm = result.normalisation
    if norm is not None:
        E_b = norm.binding_E_GeV
        ax.plot([E_b], [E_b**2.6 * norm.binding_flux], "r*", ms=14, label=f"binding: {norm.binding_dataset}")
    ax.set_xlabel("E [GeV] (total energy per particle)")
    ax.set_ylabel(r"$E^{2.6} J$ [GeV$^{1.6}$ cm$^{-2}$ s$^{-1}$ sr$^{-1}$]")
    ax.set_xlim(10.0, 1e9)
    data_y = np.concatenate([(d.E_GeV**2.6 * d.flux_per_GeV_cm2_s_sr) for d in datasets])
    ax.set_ylim(data_y.min() / 30.0, data_y.max() * 10.0)
    ax.legend(fontsize=7)
    ax.set_title("Local proton flux and the normalisation")
    return _save(fig, path)


def transport_figures(results, datasets, directory):
    """Write Figs. 1-3 and the local-flux plot; results: label -> CosmicRayResult (first = main)."""
    os.makedirs(directory, exist_ok=True)
    main = next(iter(results.values()))
    return [
        plot_gas_profile(main.params, os.path.join(directory, "fig1_gas_profile.png")),
        plot_density_vs_radius(results, os.path.join(directory, "fig2_cr_density_vs_radius.png")),
        plot_spectra_at_radii(main, os.path.join(directory, "fig3_cr_spectrum_at_radii.png")),
        plot_local_flux(main, datasets, os.path.join(directory, "local_flux_vs_data.png")),
    ]
