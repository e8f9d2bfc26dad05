"""corona-jax sweep: designs, the plan's shared solves, records equal to the single-point model,
sharding over 4 host devices, resuming after SIGINT and SIGKILL, two jax.distributed processes,
job-array slices (SLURM's numbering) merged into the single run's file, and their bad input."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import h5py
import jax
import numpy as np
import pytest

from corona_jax import forward
from corona_jax.errors import ConfigError
from corona_jax.inference import designs, sweep
from corona_jax.inference.config import read_toml
from corona_jax.params import CoronaParams
from h5files import assert_same_h5

HEAD = """
[model]
preset = "baseline"
resolution = "coarse"

[data]
cosmic_rays = ["AMS02", "KASCADE2011"]
cosmic_ray_mode = "measurement"
neutrinos = "IceCube-HESE-7.5yr"
gamma_foreground = "A"
"""
GRID = HEAD + """
[design]
kind = "grid"

[design.parameters]
log10_D0_cm2_s = [28.5, 30.0, 3]
alpha = [2.0, 2.8, 5]
log10_LCR_erg_s = [40.0, 41.0, 2]

[sweep]
chunk_points = 8
solves_per_chunk = 1
"""
# every point its own solve and its own chunk: long enough to be interrupted
MANY = HEAD + """
[design]
kind = "random"
n = 2048
seed = 3

[design.parameters]
log10_D0_cm2_s = [28.5, 30.0]
alpha = [2.0, 2.8]

[sweep]
chunk_points = 1
"""


def _write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _cli(tmp_path, *args, env=None, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "corona_jax.cli", "sweep", "--no-progress", *args], cwd=tmp_path,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def _run(tmp_path, *args, env=None):
    p = _cli(tmp_path, *args, env=env)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return out


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted single-process sweeps of GRID and MANY, and their configuration files."""
    folder = tmp_path_factory.mktemp("references")
    grid, many = _write(folder, GRID, "grid.toml"), _write(folder, MANY, "many.toml")
    _run(folder, "--config", grid, "--out", "grid.h5")
    _run(folder, "--config", many, "--out", "many.h5")
    return {"grid": (grid, folder / "grid.h5"), "many": (many, folder / "many.h5")}


@pytest.mark.parametrize("text, message", [
    (HEAD, "needs a \\[design\\] section"),
    (HEAD + '[design]\nkind = "spiral"\n[design.parameters]\nalpha = [2.0, 2.5]\n', "unknown design 'spiral'"),
    (HEAD + '[design]\nkind = "lhs"\nn = 8\n[design.parameters]\nbeta = [2.0, 2.5]\n', "unknown parameter 'beta'"),
    (HEAD + '[design]\nkind = "grid"\n[design.parameters]\nalpha = [2.0, 2.5]\n', "must be \\[low, high, points\\]"),
    (HEAD + '[design]\nkind = "sobol"\nn = 100\n[design.parameters]\nalpha = [2.0, 2.5]\n', "power of 2"),
    (HEAD + '[design]\nkind = "random"\n[design.parameters]\nalpha = [2.0, 2.5]\n', "needs \\[design\\] n"),
    (HEAD + '[design]\nkind = "random"\nn = 4\n[design.parameters]\nalpha = [2.5, 2.0]\n', "low < high"),
    (HEAD.replace('gamma_foreground = "A"', 'gamma_foreground = "A"\ngamma_mode = "component"')
     + '[design]\nkind = "random"\nn = 4\n[design.parameters]\nalpha = [2.0, 2.5]\n', "component"),
    (GRID + "threads = 4\n", "unknown key 'threads' in \\[sweep\\]"),
    (HEAD + '[design]\nkind = "grid"\n[design.parameters]\nalpha = [2.0, 2.5, 1]\n', "one point for a range"),
    (HEAD + '[design]\nkind = "grid"\n[design.parameters]\nalpha = [2.3, 2.3, 4]\n', "repeats 2.3 4 times"),
])
def test_bad_sweep_configuration_is_one_clear_error(text, message):
    with pytest.raises(ConfigError, match=message):
        sweep.parse_sweep_config(text)


def test_designs_fill_their_ranges():
    raw = read_toml(GRID, "t", sweep.SECTIONS)
    grid = designs.parse_design(raw["design"]).points()
    assert grid.shape == (30, 3) and len(np.unique(grid[:, 1])) == 5
    for kind in ("random", "lhs", "sobol"):
        d = designs.parse_design({"kind": kind, "n": 64, "seed": 1, "parameters": {"alpha": [2.0, 2.8], "log10_D0_cm2_s": [28.0, 31.0]}})
        x = d.points()
        assert x.shape == (64, 2) and x[:, 0].min() >= 2.0 and x[:, 0].max() <= 2.8 and x[:, 1].min() >= 28.0
    # a Latin hypercube puts one point in each of the n strata of every parameter
    lhs = designs.parse_design({"kind": "lhs", "n": 64, "parameters": {"alpha": [2.0, 2.8]}}).points()[:, 0]
    assert sorted(np.floor((lhs - 2.0) / 0.8 * 64).astype(int)) == list(range(64))


def test_plan_shares_one_solve_per_transport_setting():
    cfg = sweep.parse_sweep_config(GRID)
    rows = sweep.design_params(cfg, CoronaParams(2.4, 8.0, 29.0, 40.5))
    plan = sweep.plan_sweep(rows, 8, 1)
    assert plan.n_solves == 3 * 2  # 3 values of D0, each group of 10 points cut into pieces of 8
    covered = np.concatenate([c[v] for c, v in zip(plan.chunks, plan.valid)])
    assert sorted(covered) == list(range(30))
    for c, v in zip(plan.chunks, plan.valid):
        assert np.all(rows[c][..., 2] == rows[c[:, :1]][..., 2])  # one D0 per solve
    assert sweep.plan_sweep(rows, 64, 4).n_solves == 3
    rand = sweep.design_params(sweep.parse_sweep_config(MANY), CoronaParams(2.4, 8.0, 29.0, 40.5))
    assert sweep.plan_sweep(rand, 64, 4).n_solves == 2048


def test_records_equal_the_single_point_model(tmp_path):
    cfg = sweep.parse_sweep_config(GRID)
    sw = sweep.prepare(cfg)
    path = sweep.run_sweep(sw, str(tmp_path / "grid.h5"), progress=False)
    single = jax.jit(forward.forward)
    with h5py.File(path, "r") as f:
        assert f["chunk_done"][()].all()
        for i in (0, 13, 29):
            p = CoronaParams(*(float(f[f"parameters/{k}"][i]) for k in CoronaParams._fields))
            pred = single(p, sw.problem.model)
            for t in sw.problem.terms:
                y = t.predict(pred, sw.problem.model)
                np.testing.assert_allclose(f[f"predicted/{t.name}"][i], y, rtol=1e-12, atol=1e-300)
                expected = float(t.log_likelihood(y, {k: d.mean for k, d in t.nuisance_priors().items()}))
                assert f[f"log_likelihood/{t.name}"][i] == pytest.approx(expected, rel=1e-10, abs=1e-10)
            E = np.asarray(sw.problem.model.milky_way.E_secondary_GeV)
            nu = np.asarray(pred.milky_way.sky_mean_nu_all_flavour + pred.extragalactic.nu_all_flavour) / 3
            share = np.exp(np.interp(np.log(1e5), np.log(E), np.log(np.maximum(nu, 1e-300)))) / sw.shares.icecube_per_flavour[0]
            assert f["derived/share_icecube_nu_per_flavour"][i, 0] == pytest.approx(share, rel=1e-10)
            igrb = sw.shares.igrb
            limit = np.asarray(igrb.value) < 2 * np.asarray(igrb.err_lo)  # the two highest bands: below 2 sigma
            reference = np.where(limit, np.asarray(igrb.value) + 1.645 * np.asarray(igrb.err_hi), np.asarray(igrb.value))
            np.testing.assert_allclose(f["derived/share_igrb"][i], np.asarray(igrb.predict(pred, sw.problem.model))
                                       / reference, rtol=1e-10)
        assert f["derived/share_igrb"].attrs["reference_is_upper_limit"].tolist() == limit.tolist()
        assert limit.sum() == 2


def test_sharded_over_four_devices_equals_one_device(tmp_path, references):
    config, one = references["grid"]
    out = _run(tmp_path, "--config", config, "--out", "four.h5",
               env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert "on 4 cpu device(s)" in out
    assert_same_h5(one, tmp_path / "four.h5", rtol=1e-12, complete=True)


def _done(path):
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["chunk_done"][()].sum())
    except (OSError, KeyError):
        return 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_sweep_resumes_to_the_uninterrupted_file(tmp_path, sig, references):
    config, whole = references["many"]
    p = _cli(tmp_path, "--config", config, "--out", "cut.h5")
    deadline = time.time() + 300
    while _done(tmp_path / "cut.h5") < 5 and p.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    done = _done(tmp_path / "cut.h5")
    print(f"interrupted after {done} of 2048 chunks")
    assert 0 < done < 2048, "the sweep was not interrupted half way"
    assert p.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    if sig == signal.SIGINT:
        assert "run the same command again" in err
    _run(tmp_path, "--config", config, "--out", "cut.h5")
    assert_same_h5(whole, tmp_path / "cut.h5", complete=True)


def test_two_distributed_processes_equal_one(tmp_path, references):
    config, one = references["grid"]
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [_cli(tmp_path, "--config", config, "--out", "two.h5", "--coordinator", f"localhost:{port}",
                  "--num-processes", "2", "--process-id", str(k)) for k in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    assert (tmp_path / "two.part-0-of-2.h5").exists() and (tmp_path / "two.part-1-of-2.h5").exists()
    _run(tmp_path, "--out", "two.h5", "--merge")
    assert_same_h5(one, tmp_path / "two.h5", complete=True)


def test_existing_output_of_another_configuration_is_refused(tmp_path, references):
    config, done = references["grid"]
    shutil.copy(done, tmp_path / "grid.h5")
    other = _write(tmp_path, GRID.replace("alpha = [2.0, 2.8, 5]", "alpha = [2.0, 2.7, 5]"), "other.toml")
    p = _cli(tmp_path, "--config", other, "--out", "grid.h5")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 2 and "made with another configuration" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "junk.h5").write_text("not hdf5")
    p = _cli(tmp_path, "--config", config, "--out", "junk.h5")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 2 and "not a readable sweep file" in err
    p = _cli(tmp_path, "--out", "nothing.h5", "--merge")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 2 and "no part files" in err


def test_a_sweep_on_a_full_disk_is_one_line_and_leaves_nothing(small_disk, references):
    config, _ = references["many"]
    p = _cli(small_disk, "--config", config, "--out", "many.h5")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 2, err
    assert err.strip().splitlines()[-1] == f"corona-jax: error: cannot write {small_disk / 'many.h5'}: No space left on device"
    assert os.listdir(small_disk) == []


def test_a_sweep_file_with_garbage_in_the_middle_is_one_line(tmp_path, references):
    """A damaged sweep file (its header intact, a local heap in the middle overwritten) is
    refused with one line naming it, never a traceback, and left as it was."""
    config, whole = references["grid"]
    data = bytearray(whole.read_bytes())
    heaps = [i for i in range(len(data)) if data[i:i + 4] == b"HEAP"]
    middle = heaps[len(heaps) // 2]
    assert 4096 < middle < len(data) - 4096
    data[middle:middle + 64] = os.urandom(64)
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(bytes(data))
    p = _cli(tmp_path, "--config", config, "--out", "damaged.h5")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()] and "damaged.h5" in err and "damaged" in err.split(":", 2)[2]
    assert damaged.read_bytes() == bytes(data)


def test_a_second_sweep_on_the_same_output_is_refused_while_the_first_runs(tmp_path, references):
    """Two runs on one output: the second gets one line naming the first's process and host; after
    the first is killed outright its stale lock is taken over and the sweep resumes to the end.
    The first is paused (SIGSTOP) once it has written a chunk, so that it cannot finish, and
    release its lock, while the second starts."""
    config, whole = references["many"]
    first = _cli(tmp_path, "--config", config, "--out", "cut.h5")
    deadline = time.time() + 300
    while _done(tmp_path / "cut.h5") < 1 and first.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGSTOP)
    assert first.poll() is None and _done(tmp_path / "cut.h5") < 2048, "the first sweep finished before it was paused"
    second = _cli(tmp_path, "--config", config, "--out", "cut.h5")
    _, err = second.communicate(timeout=600)
    assert second.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()]
    assert f"another run (process {first.pid} on {socket.gethostname()}" in err and "cut.h5.lock" in err
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert (tmp_path / "cut.h5.lock").exists()
    _run(tmp_path, "--config", config, "--out", "cut.h5")
    assert not (tmp_path / "cut.h5.lock").exists()
    assert_same_h5(whole, tmp_path / "cut.h5", complete=True)


def _array_env(task, first, count, step=1):
    """The variables SLURM sets in task `task` of `--array=first-last:step`."""
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(first), "SLURM_ARRAY_TASK_STEP": str(step),
            "SLURM_ARRAY_TASK_COUNT": str(count), "SLURM_ARRAY_TASK_MAX": str(first + (count - 1) * step)}


def _assert_bitwise(a_path, b_path):
    """Every dataset and attribute of the two files equal bit for bit, with the same dtypes and shapes."""
    def same(x, y, name):
        x, y = np.asarray(x), np.asarray(y)
        assert (x.dtype, x.shape) == (y.dtype, y.shape), name
        assert x.tobytes() == y.tobytes(), name

    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        names_a, names_b = [], []
        a.visit(names_a.append)
        b.visit(names_b.append)
        assert sorted(names_a) == sorted(names_b)
        for name in ["/", *names_a]:
            assert sorted(a[name].attrs) == sorted(b[name].attrs), name
            for k in a[name].attrs:
                same(a[name].attrs[k], b[name].attrs[k], f"{name} {k}")
            if isinstance(a[name], h5py.Dataset):
                same(a[name][()], b[name][()], name)


@pytest.fixture(scope="module")
def grid_single(tmp_path_factory):
    """GRID prepared in this process (6 chunks of one solve each) and its single run."""
    sw = sweep.prepare(sweep.parse_sweep_config(GRID))
    path = sweep.run_sweep(sw, str(tmp_path_factory.mktemp("single") / "grid.h5"), progress=False)
    return sw, path


def _run_slices(sw, out, tasks, first, step=1):
    """The job array's tasks, each as SLURM would start it; the slices' chunk ranges."""
    ranges = []
    for task in tasks:
        part = sweep.job_slice(None, None, _array_env(task, first, len(tasks), step))
        ranges.append(list(part.chunks(len(sw.plan.chunks))))
        assert sweep.run_sweep(sw, out, progress=False, part=part) == part.path(out)
    return ranges


@pytest.mark.parametrize("tasks, first, step", [((1, 2, 3), 1, 1), ((0, 1, 2), 0, 1), ((4, 7, 10), 4, 3)],
                         ids=["array=1-3", "array=0-2", "array=4-10:3"])
def test_job_array_slices_merge_to_the_single_run(tmp_path, grid_single, tasks, first, step):
    """Three slices of the single run's chunks, numbered as the job array numbers its tasks, merge
    into the single run's file, bit for bit."""
    sw, single = grid_single
    out = str(tmp_path / "grid.h5")
    ranges = _run_slices(sw, out, tasks, first, step)
    assert ranges == [[0, 1], [2, 3], [4, 5]]
    for k, chunks in enumerate(ranges):
        with h5py.File(tmp_path / f"grid.slice-{k}-of-3.h5", "r") as f:
            assert np.flatnonzero(f["chunk_done"][()]).tolist() == chunks
            written = ~np.isnan(f["log_likelihood/AMS02"][()])
            assert written.tolist() == np.isin(f["chunk_of_point"][()], chunks).tolist()  # whole chunks, nothing else
            assert f.attrs["array_task_min"] == first and f.attrs["array_task_step"] == step
    assert sweep.merge_parts(out) == out
    _assert_bitwise(single, out)


def test_an_interrupted_slice_resumes_to_the_uninterrupted_slice(tmp_path, grid_single, monkeypatch):
    sw, _ = grid_single
    part = sweep.Part("slice", 0, 2)
    whole = sweep.run_sweep(sw, str(tmp_path / "whole.h5"), progress=False, part=part)
    calls = []

    def interrupt_at_the_second_chunk():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep.interrupt, "check", interrupt_at_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(sw, str(tmp_path / "cut.h5"), progress=False, part=part)
    cut = part.path(str(tmp_path / "cut.h5"))
    with h5py.File(cut, "r") as f:
        assert f["chunk_done"][()].tolist() == [1, 0, 0, 0, 0, 0]
    monkeypatch.undo()
    sweep.run_sweep(sw, str(tmp_path / "cut.h5"), progress=False, part=part)
    _assert_bitwise(whole, cut)


@pytest.mark.parametrize("env, args, message", [
    (_array_env(4, 1, 3), (), "SLURM_ARRAY_TASK_ID=4 is outside the job array 1-3 "),
    (_array_env(0, 1, 3), (), "SLURM_ARRAY_TASK_ID=0 is outside the job array 1-3 "),
    (_array_env(5, 4, 3, 3), (), "SLURM_ARRAY_TASK_ID=5 is outside the job array 4-10:3 "),
    ({**_array_env(1, 1, 3), "SLURM_ARRAY_TASK_MAX": "5"}, (), "do not describe a job array"),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0"}, (), "SLURM_ARRAY_TASK_COUNT is not"),
    ({}, ("--slice", "3", "--slices", "3"), "--slice must lie in [0, 3)"),
    ({}, ("--slice", "1"), "--slice K needs --slices N"),
    ({}, ("--slice", "0", "--slices", "2", "--coordinator", "localhost:1234"), "exclude each other"),
    (_array_env(0, 0, 4), ("--process-id", "0"), "a SLURM job array (SLURM_ARRAY_TASK_ID) and jax.distributed"),
    ({**_array_env(0, 0, 4), "SLURM_NTASKS": "2"}, (), "SLURM_NTASKS=2"),
])
def test_bad_slice_is_one_line_before_any_work(tmp_path, env, args, message):
    config = _write(tmp_path, GRID)
    p = _cli(tmp_path, "--config", config, "--out", "grid.h5", *args, env=env)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()] and message in err
    assert sorted(os.listdir(tmp_path)) == ["sweep.toml"] and out == ""


def test_more_slices_than_chunks_is_one_line(tmp_path):
    config = _write(tmp_path, GRID)
    p = _cli(tmp_path, "--config", config, "--out", "grid.h5", env=_array_env(6, 0, 7))
    _, err = p.communicate(timeout=600)
    assert p.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()] and "7 slices of a sweep of 6 chunks" in err and "at most 6" in err
    assert sorted(os.listdir(tmp_path)) == ["sweep.toml"]


def test_a_merge_of_mismatched_or_missing_slices_is_one_line_and_loses_nothing(tmp_path, grid_single):
    sw, _ = grid_single
    out = str(tmp_path / "grid.h5")
    _run_slices(sw, out, (1, 2, 3), 1)
    (tmp_path / "grid.h5").write_bytes(b"an earlier result")

    def merge(message):
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        p = _cli(tmp_path, "--out", "grid.h5", "--merge")
        _, err = p.communicate(timeout=600)
        assert p.returncode == 2, err
        assert err.strip().splitlines() == [err.strip()] and message in err, err
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    middle = tmp_path / "grid.slice-1-of-3.h5"
    middle.rename(tmp_path / "aside.h5")
    merge(f"slice 1 of 3 (job-array task 2) is missing (no {middle})")
    other = sweep.prepare(sweep.parse_sweep_config(GRID.replace("alpha = [2.0, 2.8, 5]", "alpha = [2.0, 2.7, 5]")))
    sweep.run_sweep(other, out, progress=False, part=sweep.Part("slice", 1, 3, (1, 1)))
    merge(f"the slice files of {out} come from different configurations")
    (tmp_path / "aside.h5").rename(middle)
    with h5py.File(middle, "r+") as f:
        f["chunk_done"][3] = 0
    merge("slice 1 of 3 (job-array task 2) is not finished (1 of its 2 chunks to do")
    sweep.run_sweep(sw, out, progress=False, part=sweep.Part("slice", 3, 4))
    merge("cut into different numbers of parts (3, 4)")


@pytest.mark.slow
def test_job_array_through_the_command_equals_one_run(tmp_path, references):
    """The three tasks of `--array=1-3` through the command, side by side, and `--merge`: the single run's file."""
    config, one = references["grid"]
    procs = [_cli(tmp_path, "--config", config, "--out", "grid.h5", env=_array_env(task, 1, 3)) for task in (1, 2, 3)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert "join the parts: corona-jax sweep --out grid.h5 --merge" in out
    _run(tmp_path, "--out", "grid.h5", "--merge")
    _assert_bitwise(one, tmp_path / "grid.h5")


def test_part_path_is_a_deprecated_alias_of_part_path_method():
    with pytest.warns(DeprecationWarning, match="Part\\('process', index, count\\).path"):
        assert sweep.part_path("out.h5", 1, 3) == sweep.Part("process", 1, 3).path("out.h5") == "out.part-1-of-3.h5"
