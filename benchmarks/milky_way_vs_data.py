"""The Milky Way corona against the data, for the paper's three scenarios.

Run: python benchmarks/milky_way_vs_data.py
Each preset normalised by the paper's rule (default CR data sets). Prints, for the
Fermi-LAT IGRB (model A) bands, model / IGRB for the gamma-ray sky mean and the
anticentre (isotropic) part, and for the IceCube HESE 7.5-yr segments, model / data of
the per-flavour neutrino sky mean.
"""

import numpy as np

from corona_jax import forward, grids, params
from corona_jax import observations as datasets
from corona_jax.drivers import run_forward
from corona_jax.model import build_model


def main():
    res = grids.resolution("default")
    model = build_model(resolution=res)
    cr_data = [datasets.load_cosmic_ray_dataset(n) for n in datasets.DEFAULT_CR_DATASETS]
    igrb, hese = datasets.load_gamma_dataset("Fermi-IGRB-A"), datasets.load_neutrino_dataset()
    E = np.asarray(model.milky_way.E_secondary_GeV)

    def at(values, E_data):
        return np.exp(np.interp(np.log(E_data), np.log(E), np.log(np.maximum(values, 1e-300))))

    for name in params.PRESETS:
        r = run_forward(params.preset(name), model, "data", cr_data)
        mw = r.milky_way
        print(f"\n### {name}: L_CR = {10 ** r.cosmic_rays.params.log10_LCR_erg_s:.3g} erg/s "
              f"(binding {r.cosmic_rays.normalisation.binding_dataset})\n")
        print("| E [GeV] | sky mean / IGRB | anticentre / IGRB |")
        print("|---|---|---|")
        for k in (0, 4, 8, 12, 16, 20, 24):
            e = igrb.E_GeV[k]
            f = igrb.flux_per_GeV_cm2_s_sr[k]
            print(f"| {e:.3g} | {at(mw.sky_mean_gamma, e) / f:.2f} | {at(mw.anticentre_gamma, e) / f:.2f} |")
        print("\n| IceCube HESE segment [GeV] | nu per flavour sky mean / data | anticentre / data |")
        print("|---|---|---|")
        for k in range(hese.E_GeV.size):
            e, f = hese.E_GeV[k], hese.flux_per_GeV_cm2_s_sr[k]
            kind = " (upper limit)" if hese.is_upper_limit[k] else ""
            mean = at(mw.sky_mean_nu_all_flavour, e) / forward.NEUTRINO_FLAVOURS
            anti = at(mw.anticentre_nu_all_flavour, e) / forward.NEUTRINO_FLAVOURS
            print(f"| {e:.3g}{kind} | {mean / f:.2%} | {anti / f:.2%} |")


if __name__ == "__main__":
    main()
