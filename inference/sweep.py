"""`corona-jax sweep`: the model over a design of parameter points, chunk by chunk into HDF5.

A sweep configuration (TOML) has the [model] and [data] sections of a run configuration
(inference.config), a [design] (inference.designs) and an optional [sweep]:

[sweep]  chunk_points (most models per chunk, default 4096), solves_per_chunk (most transport
         solves per chunk; default 64 on a CPU, solved in folds of batch.CPU_FOLD, and on a
         GPU as many as a quarter of its memory holds, up to 4096)

Points that share D0 and the gas share one transport solve (corona_jax.batch). The plan
groups them, cuts each group into pieces of P points (P: the median group size, rounded up
to a power of 2) and packs S pieces into a chunk, so that a chunk is one call of
batch.evaluate_grouped, sharded over the local devices with jax.sharding. The file is laid out
in full when the sweep starts (every dataset allocated, NaN), so that a chunk only writes data
into it, never structure: a kill at any moment leaves a readable file. Each chunk's rows are
written and flushed before the chunk is marked done, so a killed sweep resumes (same command)
to a file equal to an uninterrupted run's. A sweep can also run in parts, each with a file
of its own (Part): the processes of one jax.distributed program take every n-th chunk, and
the slices of a job array each a contiguous run of the single run's chunks, with no
coordinator. `--merge` joins either kind into the file one run writes, bit for bit, once
their fingerprints (the configuration's sha256 and the plan's) agree.

Per point the file holds the parameters, each data set's log-likelihood (with its nuisance
parameters at their prior means) and predicted values, and the derived shares: the corona's
share of IceCube's per-flavour flux and of the Fermi-LAT IGRB in each band.
"""

import contextlib
import dataclasses
import glob
import hashlib
import os
import warnings
from typing import NamedTuple

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from corona_jax import batch, interrupt, observations, output
from corona_jax.errors import ConfigError, OutputError, ParameterError
from corona_jax.forward import NEUTRINO_FLAVOURS
from corona_jax.params import CoronaParams, PARAMETER_RANGES, validate_params

from .config import RunConfig, _check_keys, _number, _table, parse_model_and_data, read_text, read_toml
from .designs import Design, parse_design
from .model import Problem, build_setup, corona_params
from .terms import GammaBands, gamma_band_terms, loglog_interp, pytree_dataclass

SECTIONS = {"model", "data", "design", "sweep"}
NEUTRINO_SHARE_E_GeV = (1.0e5, 1.0e6)
PER_POINT_GROUPS = ("predicted/", "log_likelihood/", "derived/")  # one row per point, filled by chunks
CPU_SOLVES_PER_CHUNK = 64  # solved in folds of batch.CPU_FOLD; larger chunks, fewer flushes


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    run: RunConfig  # preset, resolution and data
    design: Design
    text: str  # the configuration as given (stored in the file; its hash guards resuming)
    chunk_points: int = 4096
    solves_per_chunk: int = 0  # 0: by platform

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def parse_sweep_config(text: str, source: str = "config") -> SweepConfig:
    raw = read_toml(text, source, SECTIONS)
    values = parse_model_and_data(raw, source)
    run = RunConfig(**values)
    for key, value in run.data.items():
        if key.endswith("_mode") and value in ("component", "power_law"):
            raise ConfigError(f"[data] {key} = {value!r} has free nuisance spectra, which a sweep cannot fix; "
                              "use 'bound' or 'measurement'")
    settings = _table(raw.get("sweep", {}), "[sweep]")
    _check_keys(settings, {"chunk_points", "solves_per_chunk"}, "sweep")
    extra = {k: _number(v, f"[sweep] {k}", integer=True, positive=True) for k, v in settings.items()}
    return SweepConfig(run, parse_design(raw.get("design"), source), text, **extra)


def load_sweep_config(path: str) -> SweepConfig:
    return parse_sweep_config(read_text(path), path)


def design_params(cfg: SweepConfig, base: CoronaParams) -> np.ndarray:
    """Every point's CoronaParams as rows (N, number of fields), each checked against its range."""
    points = cfg.design.points()
    rows = np.empty((len(points), len(CoronaParams._fields)))
    for i, x in enumerate(points):
        p = corona_params(base, dict(zip(cfg.design.names, x)))
        try:
            rows[i] = validate_params(p)
        except ParameterError as exc:
            raise ConfigError(f"design point {i}: {exc}") from None
    return rows


class Plan(NamedTuple):
    """Chunks of the sweep: point indices (S, P) per chunk and which of them are real (not padding)."""

    params: np.ndarray  # (N, number of CoronaParams fields)
    chunks: list  # of int arrays (S, P)
    valid: list  # of bool arrays (S, P)

    @property
    def n_solves(self) -> int:
        return sum(int(v.any(axis=1).sum()) for v in self.valid)

    @property
    def sha256(self) -> str:
        """Fingerprint of the points and their chunks, which depend on the devices and solves_per_chunk
        as well as on the configuration: parts of one sweep must share it."""
        h = hashlib.sha256(np.ascontiguousarray(self.params, np.float64).tobytes())
        for idx, ok in zip(self.chunks, self.valid):
            h.update(np.ascontiguousarray(idx, np.int64).tobytes() + np.ascontiguousarray(ok, np.uint8).tobytes())
        return h.hexdigest()


def plan_sweep(rows: np.ndarray, chunk_points: int, solves_per_chunk: int, n_devices: int = 1,
               transport_fields=batch.TRANSPORT_FIELDS) -> Plan:
    """Group the points by their transport solve (the columns of transport_fields, batch.transport_fields)
    and cut the groups into chunks (module docstring)."""
    columns = [CoronaParams._fields.index(f) for f in transport_fields]
    _, first, group = np.unique(rows[:, columns], axis=0, return_index=True, return_inverse=True)
    group = np.argsort(np.argsort(first))[group.ravel()]  # groups numbered by first appearance
    order = np.argsort(group, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(group[order])) + 1)
    sizes = np.array([m.size for m in members])
    P = int(min(chunk_points, 1 << int(np.ceil(np.log2(np.median(sizes))))))
    S = max(1, min(solves_per_chunk, chunk_points // P))
    if n_devices > 1:
        if S == 1 and P >= n_devices:
            P = -(-P // n_devices) * n_devices
        else:
            S = max(n_devices, S - S % n_devices)
    pieces = []
    for m in members:
        for start in range(0, m.size, P):
            piece = m[start:start + P]
            pieces.append((np.concatenate([piece, np.full(P - piece.size, piece[-1])]), np.arange(P) < piece.size))
    chunks, valid = [], []
    for start in range(0, len(pieces), S):
        part = pieces[start:start + S]
        part = part + [(part[-1][0], np.zeros(P, bool))] * (S - len(part))
        chunks.append(np.stack([p[0] for p in part]))
        valid.append(np.stack([p[1] for p in part]))
    return Plan(rows, chunks, valid)


@pytree_dataclass
class Shares:
    """What the derived shares are divided by: IceCube's per-flavour flux at NEUTRINO_SHARE_E_GeV
    (the segment holding each energy) and the Fermi-LAT IGRB bands (as a GammaBands term)."""

    nu_E_GeV: np.ndarray
    icecube_per_flavour: np.ndarray
    igrb: GammaBands
    band_E_lo_GeV: np.ndarray
    band_E_hi_GeV: np.ndarray

    @classmethod
    def build(cls, run: RunConfig):
        icecube = observations.load_neutrino_dataset()
        foreground = run.data["gamma_foreground"]
        foreground = foreground if foreground in observations.FOREGROUND_MODELS else "A"  # 'none', 'interpolated': A
        E = np.array(NEUTRINO_SHARE_E_GeV)
        bands = observations.load_gamma_bands(foreground)
        return cls(E, np.array([observations.segment_flux(icecube, e) for e in E]), gamma_band_terms(foreground, "bound", False, None)[0],
                   bands.E_lo_GeV, bands.E_hi_GeV)

    def __call__(self, pred, model):
        nu = (pred.milky_way.sky_mean_nu_all_flavour + pred.extragalactic.nu_all_flavour) / NEUTRINO_FLAVOURS
        return {"share_icecube_nu_per_flavour": loglog_interp(model.milky_way.E_secondary_GeV, nu, self.nu_E_GeV)
                / self.icecube_per_flavour,
                "share_igrb": self.igrb.predict(pred, model) / self.igrb.share_reference()}


def _fixed_nuisances(term):
    return {name: d.mean for name, d in term.nuisance_priors().items()}


@jax.jit
def record(solve_params: CoronaParams, point_params: CoronaParams, problem: Problem, shares: Shares):
    """What the file holds for each point of a chunk: name -> (S, P, ...)."""
    pred = batch.evaluate_grouped(solve_params, point_params, problem.model)

    def one(pred):
        out = {}
        for term in problem.terms:
            y = term.predict(pred, problem.model)
            out[f"predicted/{term.name}"] = y
            out[f"log_likelihood/{term.name}"] = term.log_likelihood(y, _fixed_nuisances(term))
        out.update({f"derived/{k}": v for k, v in shares(pred, problem.model).items()})
        return out

    return jax.vmap(jax.vmap(one))(pred)


def default_solves_per_chunk(model) -> int:
    """CPU_SOLVES_PER_CHUNK on a CPU; on an accelerator, as many as a quarter of its memory holds."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if not stats or "bytes_limit" not in stats:
        return CPU_SOLVES_PER_CHUNK
    n_r, n_E = model.transport.centres_kpc.size, model.transport.E_GeV.size
    n_s, n_p = model.milky_way.emission_gamma.shape[-2:]
    per_solve = 8 * (12 * n_r * n_E + 8 * n_s * n_p + 2 * n_p * n_r)
    return int(max(1, min(4096, 0.25 * stats["bytes_limit"] // per_solve)))


def _shard(plan_chunk_shape, n_devices):
    """PartitionSpecs of (solve params, point params) over the local devices' mesh axis 'points'."""
    S, P = plan_chunk_shape
    if n_devices == 1:
        return PartitionSpec(), PartitionSpec()
    if S % n_devices == 0:
        return PartitionSpec("points"), PartitionSpec("points")
    return PartitionSpec(), PartitionSpec(None, "points")


PART_FILES = {"process": "part", "slice": "slice"}  # kind of part -> infix of its file name
PART_ATTRS = ("process_index", "process_count", "slice_index", "slice_count", "array_task_min", "array_task_step")
SLURM_ARRAY = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT")


class Part(NamedTuple):
    """A share of a sweep's chunks, computed into a file of its own (OUT.part-K-of-N.h5 for a process,
    OUT.slice-K-of-N.h5 for a slice). Process K of N (jax.distributed) takes every N-th chunk from
    the K-th; slice K of N takes the K-th of N contiguous runs of chunks, so that its file holds
    whole chunks of the single run. array: (SLURM_ARRAY_TASK_MIN, _STEP) of the job array that
    set the slice, to name its task."""

    kind: str  # "process" or "slice"
    index: int
    count: int
    array: tuple = None

    def path(self, out: str) -> str:
        root, ext = os.path.splitext(out)
        return f"{root}.{PART_FILES[self.kind]}-{self.index}-of-{self.count}{ext or '.h5'}"

    def chunks(self, n_chunks: int) -> range:
        if self.kind == "process":
            return range(self.index, n_chunks, self.count)
        if self.count > n_chunks:
            raise ConfigError(f"{self.count} slices of a sweep of {n_chunks} chunks: a slice is at least one chunk "
                              f"of the single run, so at most {n_chunks} slices (or more chunks: a smaller "
                              "[sweep] chunk_points or solves_per_chunk)")
        return range(self.index * n_chunks // self.count, (self.index + 1) * n_chunks // self.count)

    def __str__(self):
        task = f" (job-array task {self.array[0] + self.index * self.array[1]})" if self.array else ""
        return f"{self.kind} {self.index} of {self.count}{task}"

    def attrs(self) -> dict:
        out = {f"{self.kind}_index": self.index, f"{self.kind}_count": self.count}
        if self.array:
            out.update(array_task_min=self.array[0], array_task_step=self.array[1])
        return out


def _integer_variable(environ, name, default=None) -> int:
    text = environ.get(name, default)
    if text is None:
        raise ConfigError(f"SLURM_ARRAY_TASK_ID is set but {name} is not; give the slice as --slice K --slices N")
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {text!r}") from None


def job_slice(index, count, environ) -> Part:
    """This run's slice: from --slice and --slices (index, count) where given, else from the SLURM job
    array's variables in environ; None for the whole sweep (no slicing, or a single slice)."""
    if index is not None or count is not None:
        if count is None:
            raise ConfigError("--slice K needs --slices N, the number of slices")
        if count < 1:
            raise ConfigError(f"--slices must be at least 1, got {count}")
        if index is None and count > 1:
            raise ConfigError(f"--slices {count} needs --slice K, this run's slice in [0, {count})")
        index = index or 0
        if not 0 <= index < count:
            raise ConfigError(f"--slice must lie in [0, {count}) for --slices {count}, got {index}")
        return Part("slice", index, count) if count > 1 else None
    if "SLURM_ARRAY_TASK_ID" not in environ:
        return None
    task, low, step, count = (_integer_variable(environ, n, "1" if n.endswith("STEP") else None) for n in SLURM_ARRAY)
    high = _integer_variable(environ, "SLURM_ARRAY_TASK_MAX", str(low + (count - 1) * step))
    if step < 1 or count < 1 or high != low + (count - 1) * step:
        raise ConfigError(f"the SLURM variables do not describe a job array A-B:S (SLURM_ARRAY_TASK_MIN={low}, "
                          f"_MAX={high}, _STEP={step}, _COUNT={count}); submit --array=A-B or A-B:S, or give "
                          "--slice K --slices N")
    index, offset = divmod(task - low, step)
    if offset or not 0 <= index < count:
        array = f"{low}-{high}" + (f":{step}" if step > 1 else "")
        raise ConfigError(f"SLURM_ARRAY_TASK_ID={task} is outside the job array {array} "
                          f"(SLURM_ARRAY_TASK_MIN={low}, _STEP={step}, _COUNT={count})")
    return Part("slice", index, count, (low, step)) if count > 1 else None


def _datasets(problem: Problem, shares: Shares):
    """name -> (shape per point, units, description) of everything recorded."""
    out = {}
    for t in problem.terms:
        n = np.asarray(t.E_GeV).size
        out[f"predicted/{t.name}"] = ((n,), t.value_units, f"the model at the data's points ({type(t).__name__})")
        out[f"log_likelihood/{t.name}"] = ((), "1", f"log-likelihood of {t.name} ({t.mode}), nuisances at their prior means")
    out["derived/share_icecube_nu_per_flavour"] = (
        (len(NEUTRINO_SHARE_E_GeV),), "1", "corona (Milky Way sky mean + other galaxies) / IceCube per-flavour flux")
    out["derived/share_igrb"] = ((np.asarray(shares.igrb.value).size,), "1",
                                 f"isotropic corona / Fermi-LAT IGRB ({shares.igrb.name}) per band; against the "
                                 "band's 95 % upper limit where the IGRB is below 2 sigma (attribute "
                                 "reference_is_upper_limit)")
    return out


def _create(f, cfg: SweepConfig, problem: Problem, shares: Shares, plan: Plan, part: Part = None):
    """Fill a new sweep file: every dataset allocated (NaN, so that later writes need no new space
    on the disk) and no chunk done."""
    N = plan.params.shape[0]
    f.attrs.update(config=cfg.text, config_sha256=cfg.sha256, plan_sha256=plan.sha256, design=cfg.design.kind,
                   n_points=N, n_chunks=len(plan.chunks), swept=",".join(cfg.design.names), preset=cfg.run.preset,
                   **{f"model_{k}": v for k, v in problem.model.config.describe().items()})
    if part:
        f.attrs.update(part.attrs())
    for i, name in enumerate(CoronaParams._fields):
        f.create_dataset(f"parameters/{name}", data=plan.params[:, i]).attrs["range"] = PARAMETER_RANGES[name]
    for t in problem.terms:
        f.create_dataset(f"data/{t.name}/E_GeV", data=np.asarray(t.E_GeV))
        f.create_dataset(f"data/{t.name}/value", data=np.asarray(t.value)).attrs["units"] = t.value_units
    for name, (shape, units, description) in _datasets(problem, shares).items():
        d = f.create_dataset(name, data=np.full((N, *shape), np.nan))  # allocated now: no layout changes later
        d.attrs.update(units=units, description=description)
    f["derived/share_icecube_nu_per_flavour"].attrs["E_GeV"] = shares.nu_E_GeV
    f["derived/share_igrb"].attrs.update(E_lo_GeV=shares.band_E_lo_GeV, E_hi_GeV=shares.band_E_hi_GeV,
                                         reference_is_upper_limit=np.asarray(shares.igrb.share_is_over_limit()))
    chunk_of = np.empty(N, dtype=np.int64)
    for c, (idx, ok) in enumerate(zip(plan.chunks, plan.valid)):
        chunk_of[idx[ok]] = c
    f.create_dataset("chunk_of_point", data=chunk_of)
    f.create_dataset("chunk_done", data=np.zeros(len(plan.chunks), dtype=np.uint8))


def _read_header(name, obj):
    dict(obj.attrs)


def open_for_resume(path, sha256: str, what: str = "sweep"):
    """The existing HDF5 file at path (open for writing), if it was made with the configuration
    of this sha256."""
    try:
        f = h5py.File(path, "r+")
    except OSError:
        raise OutputError(f"{path} exists but is not a readable {what} file; move it away or choose another --out") from None
    if f.attrs.get("config_sha256") != sha256:
        f.close()
        raise ConfigError(f"{path} was made with another configuration; choose another --out, or delete it to start again")
    try:  # every group's links and every object's header: a damaged file is found before any work
        f.visititems(_read_header)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        f.close()
        raise OutputError(f"{path} is damaged ({exc}); move it away, or delete it to start the {what} again") from None
    return f


class Sweep(NamedTuple):
    cfg: SweepConfig
    problem: Problem
    shares: Shares
    plan: Plan


def prepare(cfg: SweepConfig, n_devices: int = None) -> Sweep:
    """Model, terms, shares and the plan of a sweep (numpy work, once)."""
    setup = build_setup(cfg.run)
    n_devices = n_devices or len(jax.local_devices())
    solves = cfg.solves_per_chunk or default_solves_per_chunk(setup.model)
    plan = plan_sweep(design_params(cfg, setup.problem.base_params), cfg.chunk_points, solves, n_devices,
                      batch.transport_fields(setup.model.config))
    return Sweep(cfg, setup.problem, Shares.build(cfg.run), plan)


def part_path(out: str, index: int, count: int) -> str:
    """Deprecated since 0.2.2, removed in 0.3: Part("process", index, count).path(out)."""
    warnings.warn("sweep.part_path is deprecated: use sweep.Part('process', index, count).path(out)",
                  DeprecationWarning, stacklevel=2)
    return Part("process", index, count).path(out)


def run_sweep(sweep: Sweep, out: str, progress: bool = True, part: Part = None, process=None) -> str:
    """Evaluate every chunk of the sweep, or of one part of it, into out (or the part's file),
    resuming a file made with the same configuration and plan. process=(index, count): deprecated
    since 0.2.2, part=Part("process", index, count)."""
    if process is not None:
        warnings.warn("run_sweep(process=(index, count)) is deprecated: use part=sweep.Part('process', index, count)",
                      DeprecationWarning, stacklevel=2)
        part = Part("process", *process) if process[1] > 1 else None
    from tqdm.auto import tqdm

    plan = sweep.plan
    mine = part.chunks(len(plan.chunks)) if part else range(len(plan.chunks))
    path = output.check_writable(part.path(out) if part else out)
    with output.run_lock(path):  # one run at a time on this file
        if not os.path.exists(path):
            with output.new_hdf5(path) as f:
                _create(f, sweep.cfg, sweep.problem, sweep.shares, plan, part)
        devices = jax.local_devices()
        mesh = Mesh(np.array(devices), ("points",))
        solve_spec, point_spec = _shard(plan.chunks[0].shape, len(devices))
        with contextlib.closing(open_for_resume(path, sweep.cfg.sha256)) as f:
            if f.attrs.get("plan_sha256") != plan.sha256:
                raise ConfigError(f"{path} was planned in other chunks (by another number of devices, another "
                                  "default solves_per_chunk or an older corona_jax); resume it where it started, or set [sweep] "
                                  "solves_per_chunk and choose another --out")
            done = f["chunk_done"][()].astype(bool)
            todo = [c for c in mine if not done[c]]
            total = sum(int(plan.valid[c].sum()) for c in mine)
            bar = tqdm(total=total, initial=total - sum(int(plan.valid[c].sum()) for c in todo), unit="model",
                       unit_scale=True, disable=not progress, desc=os.path.basename(path))
            with bar:
                for c in todo:
                    interrupt.check()
                    idx, ok = plan.chunks[c], plan.valid[c]
                    point = CoronaParams(*np.moveaxis(plan.params[idx], -1, 0))
                    solve = CoronaParams(*np.moveaxis(plan.params[idx[:, 0]], -1, 0))
                    solve = jax.device_put(jax.tree.map(jnp.asarray, solve), NamedSharding(mesh, solve_spec))
                    point = jax.device_put(jax.tree.map(jnp.asarray, point), NamedSharding(mesh, point_spec))
                    values = record(solve, point, sweep.problem, sweep.shares)
                    rows = idx[ok]
                    order = np.argsort(rows)
                    for name, v in values.items():
                        f[name][rows[order]] = np.asarray(v)[ok][order]
                    f.flush()
                    f["chunk_done"][c] = 1  # only once the rows are on disk
                    f.flush()
                    bar.update(len(rows))
    return path


def _part_of(path, f) -> Part:
    """The Part that wrote the sweep file f (at path), from its attributes."""
    for kind in PART_FILES:
        if f"{kind}_count" in f.attrs and "plan_sha256" in f.attrs:
            array = None
            if "array_task_min" in f.attrs:
                array = (int(f.attrs["array_task_min"]), int(f.attrs["array_task_step"]))
            return Part(kind, int(f.attrs[f"{kind}_index"]), int(f.attrs[f"{kind}_count"]), array)
    raise ConfigError(f"{path} is not a part of a sweep made by this version; move it away")


def merge_parts(out: str) -> str:
    """Join the part files of a multi-process sweep, or the slice files of a job array, into out
    (atomically): the file one run writes. They must share one configuration and plan, and be complete."""
    root, ext = os.path.splitext(out)
    found = {kind: sorted(glob.glob(f"{glob.escape(root)}.{infix}-*-of-*{ext or '.h5'}"))
             for kind, infix in PART_FILES.items()}
    if not any(found.values()):
        raise ConfigError(f"no part files {Part('process', 'K', 'N').path(out)} or slice files "
                          f"{Part('slice', 'K', 'N').path(out)} to merge")
    if all(found.values()):
        raise ConfigError(f"both part files and slice files of {out} exist; move away those that are not of this sweep")
    paths = found["process"] or found["slice"]
    files = []
    try:
        for p in paths:
            try:
                files.append(h5py.File(p, "r"))
            except OSError:
                raise OutputError(f"cannot read {p}; run its part again") from None
        parts = [_part_of(p, f) for p, f in zip(paths, files)]
        kind, count = parts[0].kind, parts[0].count
        plural = "part files" if kind == "process" else "slice files"
        if {(q.kind, q.count) for q in parts} != {(kind, count)}:
            raise ConfigError(f"the {plural} of {out} come from sweeps cut into different numbers of parts "
                              f"({', '.join(map(str, sorted({q.count for q in parts})))}); move away the stale ones")
        for key, what in (("config_sha256", "configurations"),
                          ("plan_sha256", "plans of chunks (other devices or solves_per_chunk)")):
            values = [f.attrs[key] for f in files]
            if len(set(values)) > 1:
                other = next(i for i, v in enumerate(values) if v != values[0])
                raise ConfigError(f"the {plural} of {out} come from different {what}: {paths[0]} has {key} "
                                  f"{values[0][:12]}..., {paths[other]} has {values[other][:12]}...; run every part "
                                  "with one configuration, on the same kind of node, then merge")
        missing = sorted(set(range(count)) - {q.index for q in parts})
        if missing:
            absent = [parts[0]._replace(index=k) for k in missing]
            raise ConfigError(f"{out} cannot be merged yet: "
                              + "; ".join(f"{q} is missing (no {q.path(out)})" for q in absent)
                              + "; run " + ("it" if len(absent) == 1 else "them") + ", then merge again")
        done = np.stack([f["chunk_done"][()] for f in files]).astype(bool)
        n_chunks = done.shape[1]
        for q in parts:
            todo = [c for c in q.chunks(n_chunks) if not done[:, c].any()]
            if todo:
                raise ConfigError(f"{q} is not finished ({len(todo)} of its {len(q.chunks(n_chunks))} chunks to do in "
                                  f"{q.path(out)}); run it again, then merge")
        owner = done.argmax(axis=0)[files[0]["chunk_of_point"][()]]  # file holding each point's row
        with output.new_hdf5(out) as g:
            g.attrs.update({k: v for k, v in files[0].attrs.items() if k not in PART_ATTRS})

            def copy(name, obj):
                if isinstance(obj, h5py.Dataset):
                    data = obj[()]
                    if name.startswith(PER_POINT_GROUPS):
                        for k, f in enumerate(files):
                            data[owner == k] = f[name][()][owner == k]
                    elif name == "chunk_done":
                        data = np.ones_like(data)
                    g.create_dataset(name, data=data).attrs.update(dict(obj.attrs))

            files[0].visititems(copy)
    finally:
        for f in files:
            f.close()
    return out
