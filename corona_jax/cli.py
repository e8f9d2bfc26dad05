"""Command line: `corona-jax SUBCOMMAND ...`. Each subcommand wraps one library call.

Errors of the user's making (CoronaError) print one line and exit with code 2.
"""

import argparse
import math
import os
import sys
import time

import numpy as np

from . import grids, interrupt
from .errors import ConfigError, CoronaError, install_hint
from .params import PRESETS, preset, validate_params


def _number(name, positive=False):
    """argparse type: a finite float (and > 0 if positive), with a message naming the option."""

    def parse(text):
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(x) or (positive and x <= 0):
            kind = "positive and finite" if positive else "finite"
            raise argparse.ArgumentTypeError(f"{name} must be {kind}, got {text}")
        return x

    return parse


def _params_from_args(args):
    p = preset(args.preset)
    changes = {}
    if args.alpha is not None:
        changes["alpha"] = args.alpha
    if args.Emax_GeV is not None:
        changes["log10_Emax_GeV"] = math.log10(args.Emax_GeV)
    if args.D0_cm2_s is not None:
        changes["log10_D0_cm2_s"] = math.log10(args.D0_cm2_s)
    if args.LCR_erg_s is not None:
        changes["log10_LCR_erg_s"] = math.log10(args.LCR_erg_s)
    return validate_params(p._replace(**changes))


def _add_model_options(parser):
    parser.add_argument("--preset", default="baseline", help=f"paper scenario: {', '.join(PRESETS)}")
    parser.add_argument("--alpha", type=_number("--alpha"), help="override the injection index")
    parser.add_argument("--Emax-GeV", dest="Emax_GeV", type=_number("--Emax-GeV", positive=True), help="override E_max [GeV]")
    parser.add_argument("--D0-cm2-s", dest="D0_cm2_s", type=_number("--D0-cm2-s", positive=True), help="override D0 [cm^2/s]")
    parser.add_argument("--LCR-erg-s", dest="LCR_erg_s", type=_number("--LCR-erg-s", positive=True),
                        help="CR luminosity [erg/s]; used with --normalisation luminosity")
    parser.add_argument("--resolution", default="default", help=f"grid: {', '.join(grids.RESOLUTIONS)}")
    parser.add_argument("--normalisation", default="data", choices=("data", "luminosity"),
                        help="'data': the paper's rule, the largest source power whose local proton "
                             "flux stays below every observed point (default); 'luminosity': use L_CR")
    parser.add_argument("--cr-data", default=None,
                        help="comma-separated CR data sets for --normalisation data "
                             "(default: AMS02,DAMPE,CREAM-III,KASCADE2011,KASCADE-Grande2013)")


def cmd_transport(args):
    from . import output, plots
    from .drivers import run_cosmic_rays
    from .model import build_model

    params = _params_from_args(args)
    res = grids.resolution(args.resolution)
    out = output.check_writable(args.out)
    if args.plot:
        output.check_plot_dir(args.plot)
    names, datasets = _cr_datasets(args)
    model = build_model(resolution=res)
    t0 = time.perf_counter()
    result = run_cosmic_rays(params, model, args.normalisation, datasets)
    print(f"transport solved ({len(result.E_GeV)} energies x {len(result.r_kpc)} cells x "
          f"{res.n_t} steps) in {time.perf_counter() - t0:.1f} s (including compilation)")
    _report_normalisation(result, names)
    print(f"wrote {output.write_cosmic_rays(out, result)}")
    if args.plot:
        results = {rf"$D_0$ = ${plots.sci(10 ** params.log10_D0_cm2_s)}$ cm$^2$ s$^{{-1}}$": result}
        for D0 in (1.2e29, 4.0e30):
            if not math.isclose(D0, 10**params.log10_D0_cm2_s, rel_tol=1e-6):
                other = params._replace(log10_D0_cm2_s=math.log10(D0))
                results[rf"$D_0$ = ${plots.sci(D0)}$ cm$^2$ s$^{{-1}}$"] = run_cosmic_rays(
                    other, model, args.normalisation, datasets)
        for path in plots.transport_figures(results, datasets, args.plot):
            print(f"wrote {path}")
    return 0


def _cr_datasets(args):
    from .observations import DEFAULT_CR_DATASETS, load_cosmic_ray_dataset

    names = DEFAULT_CR_DATASETS if args.cr_data is None else tuple(
        n.strip() for n in args.cr_data.split(",") if n.strip()
    )
    return names, [load_cosmic_ray_dataset(n) for n in names]


def _report_normalisation(result, names):
    norm = result.normalisation
    luminosity = (f"L_CR = {10 ** result.params.log10_LCR_erg_s:.3e} erg/s (total energy, rest mass included; "
                  f"kinetic {result.LCR_kinetic_erg_s:.3e} erg/s)")
    if norm is not None:
        energy = "T" if norm.binding_energy_kind == "kinetic" else "E"
        print(f"normalised to CR data ({', '.join(names)}): binding point {norm.binding_dataset} "
              f"at {energy} = {norm.binding_E_GeV:.4g} GeV; {luminosity}")
    else:
        print(f"normalised by {luminosity}")


def cmd_forward(args):
    from . import output, plots, sky
    from .drivers import run_forward, xi_report
    from .forward import NEUTRINO_FLAVOURS
    from .model import build_model
    from .observations import load_gamma_dataset, load_neutrino_dataset

    params = _params_from_args(args)
    res = grids.resolution(args.resolution)
    out = output.check_writable(args.out)
    if args.plot:
        output.check_plot_dir(args.plot)
    E_s = grids.secondary_energy_grid(res)
    if not E_s[0] <= args.map_E_GeV <= E_s[-1]:
        raise ConfigError(f"--map-E-GeV {args.map_E_GeV:g} lies outside the model's energies "
                          f"({E_s[0]:g}-{E_s[-1]:g} GeV)")
    names, datasets = _cr_datasets(args)
    gamma_data = load_gamma_dataset(args.gamma_data)
    neutrino_data = load_neutrino_dataset(args.neutrino_data)
    if args.healpix_nside is not None:
        sky.healpix_map([1.0, 1.0], [0.0, math.pi], args.healpix_nside)  # without healpy: fail before the run
    t0 = time.perf_counter()
    model = build_model(resolution=res)
    print(f"[1/3] model built ({len(model.milky_way.E_secondary_GeV)} gamma/nu energies, "
          f"{len(model.milky_way.psi_rad)} directions, "
          f"pp table, CMB and EBL absorption, cascade matrix) in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    result = run_forward(params, model, args.normalisation, datasets)
    cr = result.cosmic_rays
    print(f"[2/3] transport, Milky Way sky and other galaxies computed in {time.perf_counter() - t0:.1f} s "
          f"(including compilation)")
    _report_normalisation(cr, names)
    E = np.asarray(model.milky_way.E_secondary_GeV)
    mw, tot = result.milky_way, result.total
    print("      E^2 I [GeV cm^-2 s^-1 sr^-1]: MW sky mean | isotropic total (MW anticentre + galaxies)")
    for e in (1.0, 100.0, 1.0e5):
        k = grids.nearest_index(E, e)
        print(f"      E = {E[k]:8.3g} GeV: gamma {E[k] ** 2 * mw.sky_mean_gamma[k]:.3e} | {E[k] ** 2 * tot.gamma[k]:.3e}; "
              f"nu per flavour {E[k] ** 2 * mw.sky_mean_nu_all_flavour[k] / NEUTRINO_FLAVOURS:.3e} | "
              f"{E[k] ** 2 * tot.nu_all_flavour[k] / NEUTRINO_FLAVOURS:.3e}; dipole {mw.dipole_gamma[k]:.2f}")
    xi = xi_report(result)
    print(f"      paper's xi = j_MW / j_EG at {xi['xi_E_GeV']:.3g} GeV: {xi['xi_paper_formula']:.3g} by its formula "
          f"(alpha = {xi['xi_alpha']:.2f}), {xi['xi_full_model']:.3g} in the full model")
    maps = None
    if args.healpix_nside is not None:
        k = grids.nearest_index(E, args.map_E_GeV)
        psi = np.asarray(model.milky_way.psi_rad)
        maps = {"nside": args.healpix_nside, "E_GeV": float(E[k]),
                "gamma": sky.healpix_map(result.milky_way.gamma[:, k], psi, args.healpix_nside),
                "nu_per_flavour": sky.healpix_map(result.milky_way.nu_all_flavour[:, k] / NEUTRINO_FLAVOURS,
                                                  psi, args.healpix_nside)}
    print(f"[3/3] wrote {output.write_forward(out, result, maps, xi)}")
    if args.plot:
        air_showers = [d for d in datasets if d.species == "all-particle"]
        for path in plots.forward_figures(result, gamma_data, neutrino_data, args.plot, args.map_E_GeV, air_showers):
            print(f"wrote {path}")
    return 0


def cmd_paper(args):
    from .paper import run_paper

    t0 = time.perf_counter()
    report = run_paper(args.out, "coarse" if args.quick else args.resolution)
    for claim in report["claims"]:
        values = ", ".join(f"{k} = {v:.3g}" for k, v in claim.model.items())
        print(f"  {claim.key:22s} {claim.verdict:10s} {values}")
    print(f"wrote {len(report['files'])} files into {os.path.abspath(args.out)} in {time.perf_counter() - t0:.0f} s "
          f"(claims: claims.md, claims.json; figures: figures/)")
    return 0


def _inference(command, *names):
    """The modules `names` of corona_jax.inference; CoronaError naming the extra when it is missing."""
    import importlib

    try:
        return [importlib.import_module(f".inference.{n}", __package__) for n in names]
    except ImportError as exc:
        extra = "evidence" if command == "evidence" else "inference"
        raise CoronaError(f"{command} needs the {extra} extra: {install_hint(extra)} ({exc})") from None


def _write_csv(table, path):
    """A pandas table written atomically as CSV."""
    from . import output

    with output.atomic_write(path, ".csv.tmp") as tmp:
        table.to_csv(tmp)
    print(f"wrote {path}")


def _inference_modules():
    return _inference("fit and sample", "config", "fit", "model", "results", "sample")


def cmd_fit(args):
    config, fit, model, results, _ = _inference_modules()
    cfg = config.load_config(args.config)
    out = output_path(args.out)
    setup = model.build_setup(cfg)
    print(f"fitting {', '.join(cfg.priors)} ({cfg.resolution} resolution) from {cfg.starts} starts ...")
    t0 = time.perf_counter()
    result = fit.best_fit(setup)
    print(f"done in {time.perf_counter() - t0:.1f} s; best fit (-log L = {result.neg_log_density:.4f}):")
    for name in result.names:
        if name in result.at_edge:
            lo, hi = result.intervals[name]
            print(f"  {name:24s} = {result.best[name]: .5g} on the {result.at_edge[name]} prior edge: "
                  f"95 % one-sided interval [{lo:.4g}, {hi:.4g}]")
        else:
            print(f"  {name:24s} = {result.best[name]: .5g} +- {result.errors[name]:.3g} (Laplace)")
    print("derived quantities at the best fit:")
    for name, value in result.derived.items():
        print(f"  {name:32s} = {np.array2string(np.asarray(value), precision=4)}")
    from .inference import goodness

    print("goodness of fit at the best fit:")
    print("\n".join(goodness.report_lines(result.goodness, result.goodness_total)))
    for message in goodness.warnings_for(result.goodness):
        _warn(message)
    failed = sum(not r.converged for r in result.starts)
    if failed:
        _warn(f"{failed} of {len(result.starts)} starts stopped at the step limit ([fit] max_steps = "
              f"{cfg.max_steps}) without converging; raise max_steps")
    if result.profile and any(result.profile["at_edge"]):
        _warn(f"the profile in {cfg.profile} is cut by prior edges where marked above")
    print(f"wrote {results.write_fit(out, result, setup)}")
    return 0


def _distributed(args):
    """(process index, process count): from the options, else the CORONA_JAX_* environment, else one
    process; with more than one, jax.distributed joins them (under SLURM it finds them itself)."""
    env = os.environ
    address = args.coordinator or env.get("CORONA_JAX_COORDINATOR")
    count = args.num_processes or int(env.get("CORONA_JAX_NUM_PROCESSES", "0") or 0)
    index = args.process_id if args.process_id is not None else env.get("CORONA_JAX_PROCESS_ID")
    if not address and not count and index is None:
        if int(env.get("SLURM_NTASKS", "1")) > 1:
            import jax

            jax.distributed.initialize()
            return jax.process_index(), jax.process_count()
        return 0, 1
    if not (address and count and index is not None):
        raise ConfigError("several processes need all three of --coordinator HOST:PORT, --num-processes N and --process-id K")
    index = int(index)
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"--process-id must lie in [0, {count}), got {index}")
    import jax

    jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
    return jax.process_index(), jax.process_count()


def cmd_sweep(args):
    sweep, = _inference("sweep", "sweep")
    out = output_path(args.out)
    if args.merge:
        print(f"wrote {sweep.merge_parts(out)}")
        return 0
    if not args.config:
        raise ConfigError("sweep needs --config (or --merge to join the parts of a multi-process or job-array sweep)")
    part = sweep.job_slice(args.slice, args.slices, os.environ)
    if part:  # a slice runs alone: nothing may ask for jax.distributed
        options = {"--coordinator": args.coordinator, "--num-processes": args.num_processes, "--process-id": args.process_id}
        coordinated = [name for name, value in options.items() if value is not None]
        coordinated += [k for k in ("CORONA_JAX_COORDINATOR", "CORONA_JAX_NUM_PROCESSES", "CORONA_JAX_PROCESS_ID")
                        if os.environ.get(k)]
        if os.environ.get("SLURM_NTASKS", "1") != "1":
            coordinated.append(f"SLURM_NTASKS={os.environ['SLURM_NTASKS']}")
        if coordinated:
            given = "--slice/--slices" if args.slices else "a SLURM job array (SLURM_ARRAY_TASK_ID)"
            raise ConfigError(f"{given} and jax.distributed ({', '.join(coordinated)}) exclude each other: run "
                              "independent slices with one task each, or one distributed program (--slices 1)")
    cfg = sweep.load_sweep_config(args.config)
    if not part:
        index, count = _distributed(args)
        part = sweep.Part("process", index, count) if count > 1 else None
    plan = sweep.prepare(cfg)
    n_points, n_chunks = plan.plan.params.shape[0], len(plan.plan.chunks)
    mine = part.chunks(n_chunks) if part else None
    import jax

    print(f"sweep: {n_points} models ({cfg.design.kind} over {', '.join(cfg.design.names)}), "
          f"{plan.plan.n_solves} transport solves in {n_chunks} chunks of "
          f"{'x'.join(map(str, plan.plan.chunks[0].shape))} (solves x models), on {len(jax.local_devices())} "
          f"{jax.local_devices()[0].platform} device(s)"
          + (f"; {part}: {len(mine)} chunks" if part else ""))
    path = sweep.run_sweep(plan, out, progress=not args.no_progress, part=part)
    print(f"wrote {path}")
    if part:
        print(f"when every {part.kind} has finished, join the parts: corona-jax sweep --out {args.out} --merge")
    return 0


def cmd_calibrate(args):
    from . import output

    calibrate, sample = _inference("calibrate", "calibrate", "sample")
    cfg = calibrate.load_calibrate_config(args.config)
    out = output_path(args.out)
    table_path = output_path(os.path.splitext(out)[0] + "_summary.csv")
    if args.plot:
        output.check_plot_dir(args.plot)
    cores = len(os.sched_getaffinity(0))
    devices = sample.use_host_devices(max(cfg.run.chains, cores) if cfg.method == "nuts" else cores)
    cal = calibrate.prepare(cfg)
    import jax

    print(f"calibrate: {cfg.draws} simulations of {', '.join(cal.parameters)} ({cfg.method}, "
          f"{cfg.posterior_draws} posterior draws each, {cfg.run.resolution} resolution) on {devices} "
          f"{jax.local_devices()[0].platform} device(s)")
    t0 = time.perf_counter()
    calibrate.run_calibration(cal, out, progress=not args.no_progress)
    print(f"done in {time.perf_counter() - t0:.0f} s; wrote {out}")
    summary = calibrate.summarise(out)
    table = calibrate.summary_table(summary)
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    if summary.failed:
        _warn(f"{summary.failed} of {summary.done} simulations had no positive-definite Hessian at the "
              "posterior mode and have no ranks")
    if summary.unconverged:
        _warn(f"{summary.unconverged} of {summary.done} simulations had an L-BFGS minimisation stopped at "
              f"[calibrate] max_steps = {cfg.max_steps}")
    print(f"posterior-mode search: in {summary.starts_disagreed} of {summary.done} simulations some of the "
          f"{cfg.starts} starts ended at another optimum (more than 0.1 nat above the lowest, which is kept)")
    _write_csv(table, table_path)
    if args.plot:
        os.makedirs(args.plot, exist_ok=True)
        from .inference import plots

        print(f"wrote {plots.rank_histograms(summary, os.path.join(args.plot, 'sbc_ranks.png'))}")
    return 0


def cmd_evidence(args):
    evidence, model = _inference("evidence", "evidence", "model")
    configs = [evidence.load_evidence_config(path) for path in args.config]
    out = output_path(args.out)
    results = []
    for path, cfg in zip(args.config, configs):
        setup = model.build_setup(cfg.run)
        print(f"evidence of {path}: {len(model.free_parameter_names(setup))} free sites")
        t0 = time.perf_counter()
        result = evidence.corona_evidence(setup, cfg)
        if result.nested.max_samples_reached:
            _warn(f"{path}: stopped at [evidence] max_samples = {cfg.max_samples} before the remaining evidence was "
                  "negligible; nested sampling's ln Z is too low: raise max_samples")
        for line in result.findings:
            _warn(f"{path}: {line}")
        print(f"  reported: ln Z = {result.log_Z:.3f} +- {result.error:.3f} by {result.method} "
              f"({time.perf_counter() - t0:.0f} s)")
        results.append(result)
    table = evidence.evidence_table(args.config, results)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    _write_csv(table, out)
    return 0


def cmd_forecast(args):
    from . import output

    forecast, = _inference("forecast", "forecast")
    cfg = forecast.load_forecast_config(args.config)
    out = output_path(args.out)
    stem, extension = os.path.splitext(out)
    sensitivity_out = output_path(f"{stem}_sensitivity{extension or '.csv'}")
    if args.plot:
        output.check_plot_dir(args.plot)
    print(f"Fisher matrices and sensitivities at {', '.join(f'{k} = {v:g}' for k, v in cfg.fiducial.items())} ...")
    result = forecast.run_forecast(cfg)
    table = forecast.forecast_table(result)
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    _write_csv(table, out)
    sensitivity = forecast.sensitivity_table(result)
    print(sensitivity.T.to_string(float_format=lambda v: f"{v:.3g}"))
    _write_csv(sensitivity, sensitivity_out)
    if args.plot:
        os.makedirs(args.plot, exist_ok=True)
        from .inference import plots

        print(f"wrote {plots.forecast_plot(result, os.path.join(args.plot, 'forecast.png'))}")
    return 0


def systematic_sites():
    """The sites of inference.systematics.SYSTEMATICS (shown apart from the corner plot)."""
    from .inference.systematics import SYSTEMATICS

    return {site for group in SYSTEMATICS.values() for site in group}


def _warn(message):
    print(f"corona-jax: warning: {message}", file=sys.stderr)


def _sample(cfg, model, sample, checkpoint, no_progress):
    """(posterior, setup, seconds) of NUTS, continuing from the checkpoint of an interrupted run of the
    same configuration if there is one."""
    setup = model.build_setup(cfg)
    resume = os.path.exists(checkpoint)
    print(f"NUTS: {cfg.chains} chains x ({cfg.warmup} warm-up + {cfg.samples} samples), "
          f"{sample.chain_method(cfg.chains)}, {cfg.resolution} resolution, seed {cfg.seed}"
          + (f"; continuing the interrupted run in {checkpoint}" if resume else ""))
    t0 = time.perf_counter()
    posterior = sample.sample_posterior(setup, progress_bar=not no_progress, checkpoint=checkpoint, resume=resume)
    return posterior, setup, time.perf_counter() - t0


def cmd_sample(args):
    from . import output

    config, _, model, results, sample = _inference_modules()
    cfg = config.load_config(args.config)
    sample.use_host_devices(cfg.chains)
    out = output_path(args.out)
    table_path = output_path(os.path.splitext(out)[0] + "_summary.csv")
    limits_path = output_path(os.path.splitext(out)[0] + "_derived.csv")
    gof_path = output_path(os.path.splitext(out)[0] + "_goodness.csv")
    if args.plot:
        output.check_plot_dir(args.plot)
    if args.resume:
        _warn("--resume is no longer needed and will be removed: every long command continues an interrupted "
              "run when the same command is run again")
    with output.run_lock(out):  # one run at a time on this output and its checkpoint, until both are final
        posterior, setup, seconds = _sample(cfg, model, sample, out + ".checkpoint", args.no_progress)
        idata = sample.to_inference_data(posterior, setup)
        names = model.free_parameter_names(setup)
        table = results.summary_table(idata, names)
        print(table.to_string())
        n = cfg.chains * (cfg.warmup + cfg.samples)
        print(f"{seconds:.1f} s: {seconds / n * 1e3:.1f} ms per iteration, "
              f"{table['ess_bulk'].min() / seconds:.2f} effective samples per second (worst parameter)")
        for message in sample.convergence_warnings(table, posterior.diverging):
            _warn(message)
        from .inference import goodness

        checks, gof_warnings = goodness.posterior_checks(setup, idata, cfg.seed)
        print("goodness of fit: posterior-predictive p-values (ppp), PSIS-LOO and Pareto k per data set")
        print(checks.to_string(float_format=lambda v: f"{v:.4g}"))
        for message in gof_warnings:
            _warn(message)
        output.check_space(out, sum(group.nbytes for group in idata.values()) + 2**20)  # uncompressed: an upper bound
        with output.atomic_write(out, ".nc.tmp") as tmp:
            idata.to_netcdf(tmp)
        print(f"wrote {out}")
        _write_csv(table, table_path)
        limits = results.derived_limits(idata, results.share_notes(setup))
        print("derived quantities: median, 68 % interval and 95 % upper limit")
        print(limits.to_string(float_format=lambda v: f"{v:.4g}"))
        _write_csv(limits, limits_path)
        _write_csv(checks, gof_path)
        os.remove(out + ".checkpoint")
    if args.plot:
        os.makedirs(args.plot, exist_ok=True)
        from .inference import plots

        nuisances = [n for n in cfg.priors if n in systematic_sites()]
        shown = [n for n in cfg.priors if n not in nuisances]
        shares = [n for n in ("share_icecube_100TeV", "share_icecube_1PeV") if nuisances and n in idata.posterior]
        corner = plots.corner_plot(idata, shown + shares, os.path.join(args.plot, 'corner.png'), log10_names=shares)
        print(f"wrote {corner}")
        if nuisances:
            print(f"wrote {plots.marginals_plot(idata, nuisances, cfg.priors, os.path.join(args.plot, 'nuisances.png'))}")
        print(f"wrote {plots.predictive_plot(idata, setup, os.path.join(args.plot, 'posterior_predictive.png'), checks)}")
    return 0


def output_path(path):
    from . import output

    return output.check_writable(path)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    parser = _Parser(
        prog="corona-jax",
        description="Gamma rays and neutrinos from cosmic rays in galactic gas coronae "
                    "(Kalashev & Troitsky 2016), differentiable in JAX.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("paper", help="the paper end to end: its scenarios, Figs. 1-7 and its claims checked",
                       description="Run the paper's three scenarios (baseline, fast diffusion, hard), normalised "
                                   "by its rule; write their HDF5 files, Figs. 1-7 (PNG and PDF) and a table of "
                                   "the paper's quantitative claims beside the model's numbers (claims.md, "
                                   "claims.json) into DIR.")
    p.add_argument("--out", default="paper", metavar="DIR", help="output folder (default: ./paper)")
    p.add_argument("--quick", action="store_true", help="coarse grids (under 2 minutes on 2 CPU cores)")
    p.add_argument("--resolution", default="default", help=f"grid: {', '.join(grids.RESOLUTIONS)} (ignored with --quick)")
    p.set_defaults(func=cmd_paper)

    p = sub.add_parser("transport", help="cosmic-ray density in the Milky Way corona (Figs. 1-3)",
                       description="Solve Eq. (4)-(5) for the cosmic-ray density today and write "
                                   "/grids, /gas and /cr to an HDF5 file.")
    _add_model_options(p)
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--plot", metavar="DIR", help="write Figs. 1-3 and the local-flux plot as PNG into DIR")
    p.set_defaults(func=cmd_transport)

    from .observations import DEFAULT_GAMMA_DATASET, DEFAULT_NEUTRINO_DATASET, GAMMA_DATASETS, NEUTRINO_DATASETS

    p = sub.add_parser("forward", help="gamma rays and neutrinos from the Milky Way and all other coronae (Figs. 4-7)",
                       description="Cosmic-ray transport, pp emissivity, lines of sight from the Sun and the "
                                   "redshift integral over all galaxies with EBL/CMB absorption and cascades: "
                                   "writes /grids, /gas, /cr, /milky_way, /extragalactic and /total to an HDF5 file.")
    _add_model_options(p)
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--plot", metavar="DIR", help="write the spectra with data, the dipole and a sky map as PNG into DIR")
    p.add_argument("--gamma-data", default=DEFAULT_GAMMA_DATASET, help=f"gamma-ray data for the plot: {', '.join(GAMMA_DATASETS)}")
    p.add_argument("--neutrino-data", default=DEFAULT_NEUTRINO_DATASET,
                   help=f"neutrino data for the plot: {', '.join(NEUTRINO_DATASETS)}")
    p.add_argument("--map-E-GeV", dest="map_E_GeV", type=_number("--map-E-GeV", positive=True), default=10.0,
                   help="energy of the sky map [GeV] (default 10)")
    p.add_argument("--healpix-nside", type=int, default=None,
                   help="also store HEALPix maps (RING, Galactic) at --map-E-GeV in the file; needs healpy")
    p.set_defaults(func=cmd_forward)

    p = sub.add_parser("fit", help="best fit with optax L-BFGS from several starts, Laplace errors",
                       description="Maximise the posterior density of a TOML configuration; write the best fit, "
                                   "its Laplace covariance, every start and an optional profile to HDF5.")
    p.add_argument("--config", required=True, help="TOML run configuration (see configs/)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("sample", help="NUTS posterior (NumPyro), ArviZ netCDF and summary table",
                       description="Sample the posterior of a TOML configuration with NUTS; write ArviZ "
                                   "InferenceData (netCDF) and a summary table (CSV beside it).")
    p.add_argument("--config", required=True, help="TOML run configuration (see configs/)")
    p.add_argument("--out", required=True, help="output netCDF file (.nc)")
    p.add_argument("--plot", metavar="DIR", help="write the corner plot and the posterior-predictive bands into DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true", help="deprecated, not needed: the same command continues an "
                                                          "interrupted run from OUT.checkpoint")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("sweep", help="the model over a grid, random, Latin-hypercube or Sobol design, into HDF5",
                       description="Evaluate the model at every point of a design (TOML: [model], [data], "
                                   "[design], [sweep]) on every local device; write parameters, each data set's "
                                   "log-likelihood and predictions and the derived shares chunk by chunk. Run the "
                                   "same command again to resume an interrupted sweep.")
    p.add_argument("--config", help="TOML sweep configuration (see configs/sweep-quick.toml)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--merge", action="store_true",
                   help="join the part files of a multi-process sweep, or the slice files of a job array, into OUT")
    p.add_argument("--slice", type=int, metavar="K",
                   help="compute slice K (from 0) of --slices into OUT.slice-K-of-N.h5, with no coordinator; "
                        "by default a SLURM job array's task (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT) picks it")
    p.add_argument("--slices", type=int, metavar="N",
                   help="number of slices: contiguous runs of the sweep's chunks (--slices 1: the whole sweep, "
                        "whatever the job array)")
    p.add_argument("--coordinator", help="HOST:PORT of process 0 (jax.distributed); or CORONA_JAX_COORDINATOR")
    p.add_argument("--num-processes", type=int, help="number of processes; or CORONA_JAX_NUM_PROCESSES")
    p.add_argument("--process-id", type=int, help="this process's index; or CORONA_JAX_PROCESS_ID")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("calibrate", help="simulation-based calibration and coverage on mocks drawn from the priors",
                       description="Draw parameters from the priors of a TOML configuration with a [calibrate] "
                                   "section, mock its data with their errors, infer each mock (Laplace or NUTS) and "
                                   "write the ranks of the truths and the profile-likelihood statistics to HDF5, "
                                   "with the rank tests and coverage in a CSV beside it. Run the same command again "
                                   "to resume.")
    p.add_argument("--config", required=True, help="TOML calibrate configuration (see configs/calibrate-quick.toml)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--plot", metavar="DIR", help="write the rank histograms into DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("evidence", help="Bayesian evidence by nested sampling (jaxns), checked, and Bayes factors",
                       description="Compute ln Z of each TOML run configuration (optional [evidence] section) by "
                                   "nested sampling, check it with a multi-start mode search, Laplace and importance "
                                   "sampling, report the most reliable estimate, and the Bayes factor of each over "
                                   "the first; write a CSV.")
    p.add_argument("--config", required=True, action="append",
                   help="TOML run configuration; give it twice or more for Bayes factors against the first")
    p.add_argument("--out", required=True, help="output CSV file")
    p.set_defaults(func=cmd_evidence)

    p = sub.add_parser("forecast", help="Fisher forecasts and sensitivities of future experiments (IceCube-Gen2, "
                                        "LHAASO-, SWGO-like)",
                       description="Fisher matrices (exact autodiff Hessians) of today's data and of each "
                                   "[[forecast.experiment]] at the [forecast] fiducial: each parameter's forecast "
                                   "error; and each experiment's sensitivity to the corona over a profiled "
                                   "background with Asimov data: median discovery significance, the L_CR seen at 3 "
                                   "and 5 sigma, expected 95 %% CLs upper limits.")
    p.add_argument("--config", required=True, help="TOML forecast configuration (see configs/forecast.toml)")
    p.add_argument("--out", required=True, help="output CSV file of the Fisher errors; the sensitivities go to "
                                                "<out>_sensitivity.csv beside it")
    p.add_argument("--plot", metavar="DIR", help="write the forecast errors and sensitivities as a plot into DIR")
    p.set_defaults(func=cmd_forecast)

    from .gadf import add_export_parser

    add_export_parser(sub)
    return parser


def _version():
    from . import __version__

    return __version__


def _close_progress_bars():
    """Close the bars an interrupted run left open (numpyro closes its chains' bars only after the
    last step), so that their final redraw comes before the interrupt's line instead of burying it."""
    if "tqdm" in sys.modules:
        from tqdm import tqdm

        for bar in list(tqdm._instances):
            bar.close()


RESUMABLE = ("sample", "sweep", "calibrate")  # an interrupted run continues when the same command runs again


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with interrupt.handled():  # a kill cleans up as Ctrl-C does, and no Ctrl-C is lost
            return args.func(args)
    except CoronaError as exc:
        print(f"corona-jax: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        hint = "; run the same command again to continue" if args.command in RESUMABLE else ""
        print(f"corona-jax: interrupted; files already written are complete, nothing half-written is left{hint}",
              file=sys.stderr)
        return 130


def run():
    """The `corona-jax` command: main(), and after an interrupt an immediate exit. Computations that JAX
    dispatched asynchronously, or the thread that evidence's sampler was abandoned in, may still be
    running inside XLA; tearing the interpreter down around them crashes (SIGSEGV). Every file is
    complete and every lock released by then, so nothing is lost by leaving at once."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return code


if __name__ == "__main__":
    sys.exit(run())
