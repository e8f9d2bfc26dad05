"""corona-jax sweep: designs, the plan's shared solves, records equal to the single-point model,
sharding over 4 host devices, resuming after SIGINT and SIGKILL, two jax.distributed processes."""

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
