"""Figures of the paper's Secs. II-V from model results (matplotlib, Agg backend).

Every figure is written as PNG and, beside it, as PDF, each atomically (`save_figure`)."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as patheffects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.legend_handler import HandlerTuple  # noqa: E402
import numpy as np  # noqa: E402

from .absorption import cmb_attenuation_length_kpc  # noqa: E402
from .forward import NEUTRINO_FLAVOURS  # noqa: E402
from .gas import beta_profile, gas_density  # noqa: E402
from .grids import T_TODAY_GYR, nearest_index  # noqa: E402
from .output import atomic_write  # noqa: E402
from .sky import galactic_psi_rad, intensity_at_psi  # noqa: E402
from .spectrum import break_weights  # noqa: E402
from .transport import diffusion_coefficient_kpc2_gyr  # noqa: E402
from .units import PROTON_MASS_GEV  # noqa: E402

INTENSITY_UNITS = r"GeV cm$^{-2}$ s$^{-1}$ sr$^{-1}$"  # of E^2 I


def save_figure(fig, path):
    """Write fig as PNG at path and as PDF beside it, each atomically; close it; return path."""
    try:
        for target, fmt in ((path, "png"), (os.path.splitext(path)[0] + ".pdf", "pdf")):
            with atomic_write(target, "." + fmt) as tmp:
                fig.savefig(tmp, format=fmt, dpi=150,  # no creation date: the same figure gives the same file
                            metadata={"CreationDate": None} if fmt == "pdf" else None)
    finally:
        plt.close(fig)
    return path


def sci(x, digits=2):
    """x as mathtext (without $): plain for 1 <= x < 1000, else 1.2\\times10^{29} or 10^{8}."""
    exponent = int(np.floor(np.log10(abs(x))))
    if 0 <= exponent < 3:
        return f"{x:.{digits}g}"
    mantissa = float(f"{x / 10.0**exponent:.{digits}g}")
    if mantissa == 10.0:
        mantissa, exponent = 1.0, exponent + 1
    power = rf"10^{{{exponent}}}"
    return power if mantissa == 1.0 else rf"{mantissa:g}\times{power}"


def _figure(width, height, **kwargs):
    return plt.subplots(figsize=(width, height), layout="constrained", **kwargs)


def plot_gas_profile(params, path):
    """Fig. 1: the two beta profiles and n_g = max of them, cut at R_max."""
    r = np.geomspace(1.0, 400.0, 600)
    fig, ax = _figure(6, 4.2)
    ax.loglog(r, beta_profile(r, params.n0_inner_cm3, params.beta_inner, params.rc_inner_kpc),
              "--", label="Eq. (2): simulation fit (inner)")
    ax.loglog(r, beta_profile(r, params.n0_outer_cm3, params.beta_outer, params.rc_outer_kpc),
              ":", label="Eq. (3): observational fit (outer)")
    n = np.asarray(gas_density(params, r))
    ax.loglog(r[n > 0], n[n > 0], "k-", lw=2,
              label=rf"$n_g$ used: the larger, cut at $R_{{max}}$ = {params.Rmax_kpc:g} kpc")
    ax.set_xlabel("r [kpc]")
    ax.set_ylabel(r"$n_g$ [cm$^{-3}$]")
    ax.set_ylim(1e-5, 1.0)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Gas corona (Fig. 1)")
    return save_figure(fig, path)


def plot_density_vs_radius(results, path, E_GeV=1.0e5):
    """Fig. 2: E j(E, r) at one energy (default 0.1 PeV) for several results (label -> result)."""
    fig, ax = _figure(6, 4.2)
    for label, res in results.items():
        k = nearest_index(res.E_GeV, E_GeV)
        inside = res.r_kpc <= 300.0
        ax.loglog(res.r_kpc[inside], res.E_GeV[k] * res.j_per_GeV_cm3[k, inside], label=label)
    observer = next(iter(results.values())).config.observer_kpc
    ax.axvline(observer, color="0.6", lw=0.8, ls="--", label=rf"observer, $R_\odot$ = {observer:g} kpc")
    ax.set_xlabel("r [kpc]")
    ax.set_ylabel(r"$E\,j(E, r)$ [cm$^{-3}$]")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(rf"Cosmic-ray density in the corona at E = ${sci(E_GeV)}$ GeV (Fig. 2)", fontsize=11)
    return save_figure(fig, path)


def _right_edge_GeV(E, curves, floor):
    """Twice the largest E at which one of curves (arrays over E) lies above floor: the x-axis end."""
    return 2.0 * max(E[c > floor].max() for c in curves)


def plot_spectra_at_radii(result, path, radii_kpc=(8.5, 30.0, 50.0, 100.0, 250.0)):
    """Fig. 3: E^2 j(E) at several radii.

    Far out, the spectrum turns over at low energy: there the diffusion time r^2 / 6D(E) exceeds
    the age of the source (T_TODAY_GYR = 10 Gyr), so those cosmic rays have not filled radius r
    yet. For the baseline D0 = 1.2e29 cm^2/s (D = 400 kpc^2/Gyr at 1 GeV), r^2 / 6D at 250 kpc is
    26 Gyr at 1 GeV and falls to 10 Gyr at 20 GeV, close to the peak of E^2 j there (16 GeV): j at
    250 kpc over j at 100 kpc is 0.007 at 1 GeV, 0.28 at 1 TeV, 0.45 (near 100/250, the steady
    1/r) at 10 PeV. At 100 kpc r^2 / 6D is 4 Gyr at 1 GeV. The gas edge at 250 kpc plays no part
    (pp losses take > 100 Gyr there). That energy is marked and explained for each radius that has one."""
    E = result.E_GeV
    D = np.asarray(diffusion_coefficient_kpc2_gyr(
        result.params, E, break_weights(result.config.spectrum, result.config.features)["diffusion"]))
    fig, ax = _figure(6, 4.2)
    curves = []
    for r in radii_kpc:
        curve = E**2 * np.array([np.interp(r, result.r_kpc, row) for row in result.j_per_GeV_cm3])
        late = r**2 / (6.0 * D) > T_TODAY_GYR  # not yet filled (D grows with E: the lowest energies)
        (line,) = ax.loglog(E, curve, label=f"r = {r:g} kpc")
        if late[0] and not late.all():
            k = int(np.argmin(late))
            ax.plot(E[k], curve[k], "o", ms=7, mfc="none", color=line.get_color())
            ax.annotate(f"r = {r:g} kpc: below {E[k]:.2g} GeV the diffusion time\n"
                        rf"$r^2/6D(E)$ exceeds the age, {T_TODAY_GYR:g} Gyr: not yet filled",
                        xy=(E[k], curve[k]), xytext=(0.03, 0.04 + 0.1 * len(ax.texts)), textcoords="axes fraction",
                        fontsize=8, color=line.get_color(), arrowprops=dict(arrowstyle="->", color=line.get_color()))
        curves.append(curve)
    ax.set_xlabel("E [GeV] (proton total energy)")
    ax.set_ylabel(r"$E^2 j$ [GeV cm$^{-3}$]")
    top = max(c.max() for c in curves)
    ax.set_ylim(top * 1e-8, top * 3)
    ax.set_xlim(E[0], _right_edge_GeV(E, curves, top * 1e-8))
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Cosmic-ray spectrum in the corona (Fig. 3)")
    return save_figure(fig, path)


def plot_local_flux(result, datasets, path):
    """Model flux at R_sun against the CR data used for the normalisation."""
    fig, ax = _figure(8.5, 4.5)
    E = result.E_GeV
    ax.loglog(E, E**2.6 * result.local_flux_per_GeV_cm2_s_sr, "k-", lw=2,
              label=rf"model: protons at $R_\odot$ = {result.config.observer_kpc:g} kpc")
    for d in datasets:
        E_tot = d.E_GeV + (PROTON_MASS_GEV if d.energy_kind == "kinetic" else 0.0)
        ax.errorbar(E_tot, E_tot**2.6 * d.flux_per_GeV_cm2_s_sr,
                    yerr=[E_tot**2.6 * d.err_lo, E_tot**2.6 * d.err_hi], fmt="o", ms=3,
                    label=f"{d.name} ({d.species})")
    norm = result.normalisation
    if norm is not None:
        E_b = norm.binding_E_GeV + (PROTON_MASS_GEV if norm.binding_energy_kind == "kinetic" else 0.0)
        ax.plot([E_b], [E_b**2.6 * norm.binding_flux], "r*", ms=14,
                label=f"binding point of the normalisation ({norm.binding_dataset})")
    ax.set_xlabel("E [GeV] (total energy per particle)")
    ax.set_ylabel(r"$E^{2.6} J$ [GeV$^{1.6}$ cm$^{-2}$ s$^{-1}$ sr$^{-1}$]")
    ax.set_xlim(10.0, 1e9)
    data_y = np.concatenate([(d.E_GeV**2.6 * d.flux_per_GeV_cm2_s_sr) for d in datasets])
    ax.set_ylim(data_y.min() / 30.0, data_y.max() * 10.0)
    fig.legend(fontsize=8, loc="outside right upper")
    ax.set_title("Local cosmic-ray flux and the normalisation")
    return save_figure(fig, path)


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
    """E^2 dN/dE with error bars; upper limits as downward arrows. Returns the artists."""
    E, f = data.E_GeV, data.flux_per_GeV_cm2_s_sr
    meas = ~data.is_upper_limit
    E2 = E**2
    artists = [ax.errorbar(E[meas], E2[meas] * f[meas], yerr=[E2[meas] * data.err_lo[meas], E2[meas] * data.err_hi[meas]],
                           fmt="o", ms=3, color=color, label=label)]
    if np.any(~meas):
        artists.append(ax.errorbar(E[~meas], E2[~meas] * f[~meas], yerr=0.4 * E2[~meas] * f[~meas],
                                   uplims=True, fmt="none", color=color, label=f"{data.name}: upper limit"))
    return artists


def _highest_point(data):
    """The top of the highest error bar of the measured points, in E^2 dN/dE."""
    top = data.E_GeV**2 * (data.flux_per_GeV_cm2_s_sr + data.err_hi)
    return top[~data.is_upper_limit].max()


def plot_spectra(result, gamma_data, neutrino_data, path, cr_data=()):
    """Figs. 4 and 7: E^2 I of gamma rays (red) and per-flavour neutrinos (blue): Milky Way sky
    mean (dashed), its isotropic part (dotted), other galaxies (thin dotted) and the total
    isotropic flux (solid), over the Fermi-LAT IGRB (its foreground-model systematic a band),
    IceCube and, for scale, the range of the all-particle cosmic rays (KASCADE), written in the
    frame. The axes span the model curves and the gamma-ray and neutrino data, six decades down
    from the highest; the cosmic rays, orders of magnitude above, do not set them."""
    mw, other, tot = result.milky_way, result.extragalactic, result.total
    E = np.asarray(result.model.milky_way.E_secondary_GeV)
    per = 1.0 / NEUTRINO_FLAVOURS
    fig, ax = _figure(8.5, 6.4)

    def curve(flux, style, lw=1.5):
        return ax.loglog(E, E**2 * flux, style, lw=lw)[0]

    entries = [((curve(tot.gamma, "r-", 2), curve(tot.nu_all_flavour * per, "b-", 2)),
                "isotropic total: MW anticentre + other galaxies"),
               ((curve(mw.sky_mean_gamma, "r--"), curve(mw.sky_mean_nu_all_flavour * per, "b--")),
                "Milky Way corona, sky mean"),
               (curve(mw.anticentre_gamma, "k:"), r"Milky Way corona, isotropic part (anticentre), $\gamma$"),
               ((curve(other.gamma_absorbed, "r:", 0.8), curve(other.gamma_cascade, "m:", 0.8)),
                r"other galaxies, $\gamma$: absorbed, cascade")]
    curves = [line.get_ydata() for line in ax.get_lines()]
    highest = [y.max() for y in curves] + [_highest_point(d) for d in (gamma_data, neutrino_data) if d is not None]
    if gamma_data is not None:
        entries.append((_data_points(ax, gamma_data, "red", "")[0], f"{gamma_data.name}: Fermi-LAT IGRB"))
        if "fgsyst_hi" in gamma_data.extra:
            f, E2 = gamma_data.flux_per_GeV_cm2_s_sr, gamma_data.E_GeV**2
            low = np.maximum(f - gamma_data.extra["fgsyst_lo"], 1e-30 * f)  # down to 0, off the axes
            label = f"{gamma_data.name}: foreground-model systematic"
            entries.append((ax.fill_between(gamma_data.E_GeV, E2 * low, E2 * (f + gamma_data.extra["fgsyst_hi"]),
                                            color="red", alpha=0.15, lw=0, label=label), label))
    if neutrino_data is not None:
        entries.append((tuple(_data_points(ax, neutrino_data, "blue", "")),
                        f"{neutrino_data.name}: astrophysical $\\nu$ per flavour; arrow: upper limit"))
    if cr_data:  # orders of magnitude above the frame: their numbers, written in it
        E_cr = np.concatenate([d.E_GeV for d in cr_data])
        E2J = np.concatenate([d.E_GeV**2 * d.flux_per_GeV_cm2_s_sr for d in cr_data])
        ax.text(0.98, 0.97, f"For scale: cosmic rays, all particles ({', '.join(d.name for d in cr_data)}),\n"
                rf"$E^2 J$ = ${sci(E2J.min())}$ to ${sci(E2J.max())}$ {INTENSITY_UNITS} "
                rf"at ${sci(E_cr.min())}$ to ${sci(E_cr.max())}$ GeV", transform=ax.transAxes, ha="right", va="top",
                fontsize=8, color="0.3")
    top = 3.0 * max(highest)
    ax.set_ylim(top * 1e-6, top)
    ax.set_xlim(E[0], _right_edge_GeV(E, curves, top * 1e-6))
    ax.set_xlabel("E [GeV] (photon or neutrino energy)")
    ax.set_ylabel(rf"$E^2 I$ [{INTENSITY_UNITS}]")
    handles, labels = zip(*entries)
    fig.legend(handles, labels, handler_map={tuple: HandlerTuple(ndivide=None)}, ncols=2, fontsize=8,
               loc="outside lower center", title=r"red: $\gamma$; blue: $\nu$ per flavour", title_fontsize=8)
    p = result.cosmic_rays.params
    ax.set_title(rf"$\alpha$ = {p.alpha:g}, $E_{{max}}$ = ${sci(10 ** p.log10_Emax_GeV)}$ GeV, "
                 rf"$D_0$ = ${sci(10 ** p.log10_D0_cm2_s)}$ cm$^2$ s$^{{-1}}$, "
                 rf"$L_{{CR}}$ = ${sci(10 ** p.log10_LCR_erg_s)}$ erg s$^{{-1}}$ (Figs. 4, 7)", fontsize=10)
    return save_figure(fig, path)


def plot_d0_variation(results, gamma_data, neutrino_data, path):
    """Fig. 6: E^2 I of the isotropic gamma rays and of the all-sky per-flavour neutrinos for
    several D0 (label -> ForwardResult), each normalised by the paper's rule."""
    fig, ax = _figure(11.0, 5.2)
    entries = []
    for (label, result), style in zip(results.items(), ("-", "--", "-.", ":")):
        E = np.asarray(result.model.milky_way.E_secondary_GeV)
        nu = (result.milky_way.sky_mean_nu_all_flavour + result.extragalactic.nu_all_flavour) / NEUTRINO_FLAVOURS
        entries += ax.loglog(E, E**2 * result.total.gamma, "r" + style, lw=2,
                             label=rf"$\gamma$, isotropic total: {label}")
        entries += ax.loglog(E, E**2 * nu, "b" + style, lw=2, label=rf"$\nu$ per flavour, all-sky mean: {label}")
    entries += _data_points(ax, gamma_data, "red", f"{gamma_data.name}: Fermi-LAT IGRB")
    entries += _data_points(ax, neutrino_data, "blue", f"{neutrino_data.name}: astrophysical $\\nu$ per flavour")
    ax.set_xlim(0.1, 1.0e9)
    ax.set_ylim(1e-12, 1e-5)
    ax.set_xlabel("E [GeV]")
    ax.set_ylabel(rf"$E^2 I$ [{INTENSITY_UNITS}]")
    ax.set_title("D$_0$ varied, each normalised to the local cosmic rays (Fig. 6)", fontsize=10)
    fig.legend(handles=entries, fontsize=8, loc="outside right upper")
    return save_figure(fig, path)


def plot_dipole(result, path, energies_GeV=(1.0, 1.0e3)):
    """Fig. 5: the Legendre dipole coefficient 3<I cos psi>/<I> of gamma rays and neutrinos
    against energy, its axis zoomed on the dip near 2 PeV (pair production on the CMB, attenuation
    length ~7 kpc there, dims the long sight lines towards the Galactic centre); and the angular
    profile I(psi) / I(pi) of gamma rays at energies_GeV and at the dip. Below ~100 TeV that profile
    does not depend on energy: nothing absorbs the photons, and within 50 kpc, where ~98 % of the
    intensity arises, the cosmic rays' radial profile is the same at every energy (within 3 %
    from 10 GeV to 10 TeV, Fig. 3). Curves that coincide are drawn in different styles and the
    figure says so."""
    mw, m = result.milky_way, result.model.milky_way
    E, psi = np.asarray(m.E_secondary_GeV), np.degrees(np.asarray(m.psi_rad))
    fig, (dipole, profile) = _figure(11, 4.4, ncols=2)
    for I, mean, a1, style, label in ((mw.gamma, mw.sky_mean_gamma, mw.dipole_gamma, "r-", r"$\gamma$"),
                                      (mw.nu_all_flavour, mw.sky_mean_nu_all_flavour, mw.dipole_nu, "b--", r"$\nu$")):
        lit = (mean > 0) & (I[0] + I[-1] > 0)
        dipole.semilogx(E[lit], a1[lit], style, label=label)
    k_dip = np.argmin(np.where(mw.sky_mean_gamma > 0, mw.dipole_gamma, np.inf))
    length_kpc = float(cmb_attenuation_length_kpc(E[k_dip]))
    dipole.annotate(rf"CMB absorption, $\gamma\gamma \to e^+e^-$:" "\n"
                    rf"attenuation length {length_kpc:.2g} kpc at ${sci(E[k_dip])}$ GeV"
                    "\ndims the far side, towards the centre", xy=(E[k_dip], mw.dipole_gamma[k_dip]),
                    xytext=(0.03, 0.35), textcoords="axes fraction", fontsize=8,
                    arrowprops=dict(arrowstyle="->", color="0.3"))
    dipole.set_xlabel(r"E [GeV] ($\gamma$ or $\nu$)")
    dipole.set_ylabel(r"$3\langle I\cos\psi\rangle \,/\, \langle I\rangle$")
    dipole.set_title(r"Legendre dipole coefficient ($= a$ for $I \propto 1 + a\,\cos\psi$; axis zoomed)",
                     fontsize=10)
    dipole.legend(loc="lower left")
    styles = [dict(ls="-", lw=3, marker="o", markevery=(0, 4)), dict(ls="--", marker="s", markevery=(1, 4)),
              dict(ls=":", marker="^", markevery=(2, 4)), dict(ls="-.", marker="D", markevery=(3, 4))]
    shown, coinciding = [], []
    for i, k in enumerate([nearest_index(E, e) for e in energies_GeV] + [k_dip]):
        ratio = mw.gamma[:, k] / mw.gamma[-1, k]
        label = rf"$\gamma$, E = ${sci(E[k])}$ GeV" + (" (dip)" if k == k_dip else "")
        same = [e for e, other in shown if np.max(np.abs(ratio / other - 1.0)) < 0.02]
        if same:
            label += rf" (coincides with ${sci(same[0])}$ GeV)"
            coinciding.append(rf"${sci(same[0])}$ and ${sci(E[k])}$ GeV")
        profile.semilogy(psi, ratio, ms=5, mfc="none", **styles[i % len(styles)], label=label)
        shown.append((E[k], ratio))
    if coinciding:
        profile.text(0.97, 0.62, f"{', '.join(coinciding)} coincide: nothing absorbs\nphotons below ~100 TeV, "
                     "and within 50 kpc,\nwhere the intensity arises, the cosmic rays'\nradial profile is the same "
                     "at these energies", transform=profile.transAxes, ha="right", va="top", fontsize=8)
    profile.set_xticks(np.arange(0, 181, 30))
    profile.set_xlabel(r"$\psi$, angle from the Galactic centre [deg]")
    profile.set_ylabel(r"$I(\psi) \,/\, I(180^\circ)$")
    profile.legend(loc="upper right", fontsize=8)
    profile.set_title("Angular profile", fontsize=10)
    fig.suptitle("Milky Way corona: dipole towards the Galactic centre (Fig. 5)")
    return save_figure(fig, path)


def plot_sky_map(result, path, E_GeV):
    """Mollweide map in Galactic coordinates of the gamma-ray intensity at one energy."""
    m = result.model.milky_way
    E = np.asarray(m.E_secondary_GeV)
    k = nearest_index(E, E_GeV)
    l_deg, b_deg = np.meshgrid(np.linspace(-180.0, 180.0, 361), np.linspace(-90.0, 90.0, 181))
    I = intensity_at_psi(result.milky_way.gamma[:, k], np.asarray(m.psi_rad), galactic_psi_rad(l_deg, b_deg))
    fig = plt.figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot(projection="mollweide")
    # astronomers' convention: l increases to the left
    mesh = ax.pcolormesh(-np.radians(l_deg), np.radians(b_deg), np.log10(E[k] ** 2 * I), shading="auto",
                         cmap="inferno", rasterized=True)
    ax.set_xticks(np.radians([-120, -60, 0, 60, 120]))
    ax.set_xticklabels(["120°", "60°", "0°", "300°", "240°"])
    ax.set_yticks(np.radians([-60, -30, 0, 30, 60]))
    outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]
    for label in ax.get_xticklabels():
        label.set(color="white", fontweight="bold", path_effects=outline)
    ax.grid(color="white", alpha=0.3)
    ax.text(0.5, -0.04, "Galactic longitude $l$ (increasing to the left)", transform=ax.transAxes,
            ha="center", va="top")
    ax.text(-0.07, 0.5, "Galactic latitude $b$", transform=ax.transAxes, rotation=90, ha="right", va="center")
    fig.colorbar(mesh, orientation="horizontal", shrink=0.7,
                 label=rf"$\log_{{10}}\,[E^2 I_\gamma$ / ({INTENSITY_UNITS})] at E = ${sci(E[k])}$ GeV")
    ax.set_title("Milky Way corona: gamma rays, Galactic coordinates", pad=18)
    return save_figure(fig, path)


def forward_figures(result, gamma_data, neutrino_data, directory, map_E_GeV=10.0, cr_data=()):
    """Write the spectra with data (Figs. 4, 7), the dipole (Fig. 5) and the sky map (PNG and PDF)."""
    os.makedirs(directory, exist_ok=True)
    return [
        plot_spectra(result, gamma_data, neutrino_data, os.path.join(directory, "fig4_spectra.png"), cr_data),
        plot_dipole(result, os.path.join(directory, "fig5_dipole.png")),
        plot_sky_map(result, os.path.join(directory, "sky_map_gamma.png"), map_E_GeV),
    ]
