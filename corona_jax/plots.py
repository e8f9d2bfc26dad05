"""Figures of the paper's Secs. II-V from model results (matplotlib, Agg backend)."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .forward import NEUTRINO_FLAVOURS  # noqa: E402
from .gas import beta_profile, gas_density  # noqa: E402
from .sky import galactic_psi_rad, intensity_at_psi  # noqa: E402
from .grids import nearest_index  # noqa: E402
from .units import PROTON_MASS_GEV  # noqa: E402


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
        k = nearest_index(res.E_GeV, E_GeV)
        inside = res.r_kpc <= 300.0
        ax.loglog(res.r_kpc[inside], res.E_GeV[k] * res.j_per_GeV_cm3[k, inside], label=label)
    ax.axvline(next(iter(results.values())).config.observer_kpc, color="0.7", lw=0.8)
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


def _data_points(ax, data, color, label):
    """E^2 dN/dE with error bars; upper limits as downward arrows."""
    E, f = data.E_GeV, data.flux_per_GeV_cm2_s_sr
    meas = ~data.is_upper_limit
    ax.errorbar(E[meas], E[meas] ** 2 * f[meas], yerr=[E[meas] ** 2 * data.err_lo[meas], E[meas] ** 2 * data.err_hi[meas]],
                fmt="o", ms=3, color=color, label=label)
    if np.any(~meas):
        ax.errorbar(E[~meas], E[~meas] ** 2 * f[~meas], yerr=0.4 * E[~meas] ** 2 * f[~meas], uplims=True,
                    fmt="none", color=color)


def plot_spectra(result, gamma_data, neutrino_data, path, cr_data=()):
    """Figs. 4 and 7: E^2 I of gamma rays and per-flavour neutrinos, Milky Way (dashed), its
    isotropic part (dotted) and the total isotropic flux with all other galaxies (solid),
    over the Fermi-LAT IGRB, IceCube and the KASCADE cosmic-ray points."""
    mw, other, tot = result.milky_way, result.extragalactic, result.total
    E = np.asarray(result.model.milky_way.E_secondary_GeV)
    per = 1.0 / NEUTRINO_FLAVOURS
    fig, ax = plt.subplots(figsize=(7.0, 5.0))
    ax.loglog(E, E**2 * mw.sky_mean_gamma, "r--", label=r"$\gamma$: Milky Way corona, sky mean")
    ax.loglog(E, E**2 * mw.anticentre_gamma, "k:", label=r"$\gamma$: its isotropic part (anticentre)")
    ax.loglog(E, E**2 * other.gamma_absorbed, "r:", lw=0.8, label=r"$\gamma$: other galaxies, absorbed")
    ax.loglog(E, E**2 * other.gamma_cascade, "m:", lw=0.8, label=r"$\gamma$: other galaxies, cascade")
    ax.loglog(E, E**2 * tot.gamma, "r-", lw=2, label=r"$\gamma$: isotropic total (MW anticentre + galaxies)")
    ax.loglog(E, E**2 * mw.sky_mean_nu_all_flavour * per, "b--", label=r"$\nu$ per flavour: Milky Way, sky mean")
    ax.loglog(E, E**2 * tot.nu_all_flavour * per, "b-", lw=2, label=r"$\nu$ per flavour: isotropic total")
    if gamma_data is not None:
        _data_points(ax, gamma_data, "red", f"{gamma_data.name} (IGRB)")
        if "fgsyst_hi" in gamma_data.extra:  # the upper level allowed by the foreground model
            top = gamma_data.flux_per_GeV_cm2_s_sr + gamma_data.extra["fgsyst_hi"]
            ax.plot(gamma_data.E_GeV, gamma_data.E_GeV**2 * top, "r_", ms=8)
    if neutrino_data is not None:
        _data_points(ax, neutrino_data, "blue", f"{neutrino_data.name} (per flavour)")
    for d in cr_data:
        ax.plot(d.E_GeV, d.E_GeV**2 * d.flux_per_GeV_cm2_s_sr, "x", color="0.4", ms=4, label=f"{d.name} (cosmic rays)")
    ax.set_xlim(0.1, 1.0e9)
    ax.set_ylim(1e-12, 1e-3)
    ax.set_xlabel("E [GeV]")
    ax.set_ylabel(r"$E^2 I$ [GeV cm$^{-2}$ s$^{-1}$ sr$^{-1}$]")
    ax.legend(fontsize=6, loc="lower left")
    p = result.cosmic_rays.params
    ax.set_title(rf"$\alpha$ = {p.alpha:g}, $E_{{max}}$ = {10 ** p.log10_Emax_GeV:.2g} GeV, "
                 rf"$D_0$ = {10 ** p.log10_D0_cm2_s:.2g} cm$^2$/s (Figs. 4, 7)", fontsize=10)
    return _save(fig, path)


def plot_dipole(result, path, energies_GeV=(1.0, 1.0e3, 1.0e6)):
    """Fig. 5: dipole amplitude versus energy; and I(psi) / I(pi) at a few energies."""
    mw, m = result.milky_way, result.model.milky_way
    E, psi = np.asarray(m.E_secondary_GeV), np.degrees(np.asarray(m.psi_rad))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    lit_gamma, lit_nu = mw.sky_mean_gamma > 0, mw.sky_mean_nu_all_flavour > 0
    left.semilogx(E[lit_gamma], mw.dipole_gamma[lit_gamma], "r-", label=r"$\gamma$")
    left.semilogx(E[lit_nu], mw.dipole_nu[lit_nu], "b--", label=r"$\nu$")
    left.set_ylim(0.0, 3.0)
    left.set_xlabel("E [GeV]")
    left.set_ylabel(r"dipole $3\langle I\cos\psi\rangle / \langle I\rangle$")
    left.legend()
    left.set_title("Dipole towards the Galactic centre (Fig. 5)")
    for e in energies_GeV:
        k = nearest_index(E, e)
        right.semilogy(psi, mw.gamma[:, k] / mw.gamma[-1, k], label=rf"$\gamma$, E = {E[k]:.3g} GeV")
    right.set_xlabel(r"$\psi$ from the Galactic centre [deg]")
    right.set_ylabel(r"$I(\psi) / I(180^\circ)$")
    right.legend(fontsize=8)
    right.set_title("Angular profile")
    return _save(fig, path)


def plot_sky_map(result, path, E_GeV):
    """Mollweide map in Galactic coordinates of the gamma-ray intensity at one energy."""
    m = result.model.milky_way
    E = np.asarray(m.E_secondary_GeV)
    k = nearest_index(E, E_GeV)
    l_deg, b_deg = np.meshgrid(np.linspace(-180.0, 180.0, 361), np.linspace(-90.0, 90.0, 181))
    I = intensity_at_psi(result.milky_way.gamma[:, k], np.asarray(m.psi_rad), galactic_psi_rad(l_deg, b_deg))
    fig = plt.figure(figsize=(8, 4.6))
    ax = fig.add_subplot(projection="mollweide")
    # astronomers' convention: l increases to the left
    mesh = ax.pcolormesh(-np.radians(l_deg), np.radians(b_deg), np.log10(E[k] ** 2 * I), shading="auto", cmap="inferno")
    ax.set_xticks(np.radians([-120, -60, 0, 60, 120]))
    ax.set_xticklabels(["120°", "60°", "0°", "300°", "240°"])
    ax.grid(alpha=0.3)
    fig.colorbar(mesh, orientation="horizontal", pad=0.06, shrink=0.7,
                 label=rf"$\log_{{10}} E^2 I_\gamma$ [GeV cm$^{{-2}}$ s$^{{-1}}$ sr$^{{-1}}$] at {E[k]:.3g} GeV")
    ax.set_title("Milky Way corona, Galactic coordinates")
    return _save(fig, path)


def forward_figures(result, gamma_data, neutrino_data, directory, map_E_GeV=10.0, cr_data=()):
    """Write the spectra with data (Figs. 4, 7), the dipole (Fig. 5) and the sky map as PNG."""
    os.makedirs(directory, exist_ok=True)
    return [
        plot_spectra(result, gamma_data, neutrino_data, os.path.join(directory, "fig4_spectra.png"), cr_data),
        plot_dipole(result, os.path.join(directory, "fig5_dipole.png")),
        plot_sky_map(result, os.path.join(directory, "sky_map_gamma.png"), map_E_GeV),
    ]
