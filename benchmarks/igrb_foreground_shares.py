"""The corona's share of each Fermi-LAT IGRB band against foreground models A, B, C and the
interpolation's midpoints (A-B, B-C), at one fixed parameter point: the posterior means of the
README's real-data posterior (docs/posterior_summary.csv, configs/sample.toml).

The corona's band intensity does not depend on the foreground model; only the reference does
(inference.terms.InterpolatedGammaBands.share_reference: the band's intensity at the position,
or its 95 % upper limit where it is below 2 sigma from zero).

Run: python benchmarks/igrb_foreground_shares.py [--out docs/igrb_foreground_shares.csv]
"""

import argparse
import pathlib

import jax
import numpy as np
import pandas as pd

from corona_jax import forward
from corona_jax.inference import config, model as inference_model
from corona_jax.inference.systematics import corona_params
from corona_jax.inference.terms import InterpolatedGammaBands

ROOT = pathlib.Path(__file__).resolve().parents[1]
POSITIONS = {"A": 0.0, "AB": 0.5, "B": 1.0, "BC": 1.5, "C": 2.0}  # igrb_foreground_model


def shares(config_path=ROOT / "configs/sample.toml", summary_path=ROOT / "docs/posterior_summary.csv"):
    """DataFrame: per band, the corona's intensity [cm^-2 s^-1 sr^-1] and its share at each position."""
    text = config_path.read_text().replace('gamma_foreground = "A"', 'gamma_foreground = "interpolated"')
    setup = inference_model.build_setup(config.parse_config(text, str(config_path)))
    means = pd.read_csv(summary_path, index_col=0)["mean"]
    params = corona_params(setup.problem.base_params, {k: float(means[k]) for k in setup.config.priors})
    pred = jax.jit(forward.forward)(params, setup.problem.model)
    term = next(t for t in setup.terms if isinstance(t, InterpolatedGammaBands))
    intensity = np.asarray(term.predict(pred, setup.problem.model))
    out = pd.DataFrame({"E_centre_GeV": np.asarray(term.E_GeV), "corona_intensity_cm2_s_sr": intensity})
    limits = []
    for label, position in POSITIONS.items():
        reference = np.asarray(term.share_reference(position))
        value, err_lo = (np.asarray(x) for x in term.at_position(position)[:2])
        out[f"share_{label}"] = intensity / reference
        limits.append(np.where(value < 2.0 * err_lo, label, ""))
    out["reference_is_upper_limit_for"] = [" ".join(x for x in row if x) for row in zip(*limits)]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs/igrb_foreground_shares.csv"))
    table = shares()
    table.to_csv(parser.parse_args().out, index_label="band", float_format="%.6g")
    print(table.to_string())


if __name__ == "__main__":
    main()
