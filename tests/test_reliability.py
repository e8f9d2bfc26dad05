"""Never lose a result, never return a wrong number silently: atomic files, refused targets,
checked parameters, interrupts as one line."""

import os
import signal
import stat
import subprocess
import sys
import textwrap

import h5py
import jax
import numpy as np
import pytest

from corona_jax import OutputError, ParameterError, cli, forward, output, params

BASELINE = params.preset("baseline")


@pytest.mark.parametrize("field, value", [("log10_D0_cm2_s", float("nan")), ("alpha", float("nan")),
                                          ("log10_Emax_GeV", float("nan")), ("log10_LCR_erg_s", float("nan")),
                                          ("n0_outer_cm3", float("nan")), ("alpha", 50.0),
                                          ("log10_D0_cm2_s", 50.0), ("n0_inner_cm3", -1.0), ("Rmax_kpc", 1.0)])
def test_checked_forward_refuses_nan_and_out_of_range(coarse_forward_model, field, value):
    with pytest.raises(ParameterError, match=f"parameter {field} = "):
        forward.checked_forward(BASELINE._replace(**{field: value}), coarse_forward_model)


def test_a_nan_never_becomes_a_finite_number(coarse_forward_model):
    """D0 = NaN once gave total fluxes of ~1e-153 (NaN floored by the safe logarithm)."""
    pred = jax.jit(forward.forward)(BASELINE._replace(log10_D0_cm2_s=float("nan")), coarse_forward_model)
    for leaf in jax.tree_util.tree_leaves(pred):
        assert not np.any(np.isfinite(np.asarray(leaf)) & (np.asarray(leaf) != 0)), "a NaN input gave finite output"
    good = forward.checked_forward(BASELINE, coarse_forward_model)
    np.testing.assert_allclose(good.total.gamma, jax.jit(forward.forward)(BASELINE, coarse_forward_model).total.gamma,
                               rtol=1e-12)


def test_write_protected_and_unwritable_targets_are_refused_before_the_work(tmp_path, capsys):
    protected = tmp_path / "keep.h5"
    protected.write_bytes(b"precious")
    protected.chmod(0o444)
    with pytest.raises(OutputError, match="write-protected"):
        output.check_writable(str(protected))
    assert cli.main(["forward", "--resolution", "coarse", "--out", str(protected)]) == 2
    assert "write-protected" in capsys.readouterr().err
    assert protected.read_bytes() == b"precious"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    assert cli.main(["transport", "--resolution", "coarse", "--out", str(locked / "x.h5")]) == 2
    assert "not writable" in capsys.readouterr().err
    existing_file = tmp_path / "figs"
    existing_file.write_text("not a folder")
    assert cli.main(["forward", "--resolution", "coarse", "--out", str(tmp_path / "r.h5"),
                     "--plot", str(existing_file)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r.h5").exists()  # refused before any work was written
    assert cli.main(["forward", "--resolution", "coarse", "--out", str(tmp_path / "r.h5"),
                     "--map-E-GeV", "1e30"]) == 2
    assert "outside the model's energies" in capsys.readouterr().err


def test_outputs_have_the_umask_mode_and_leave_no_temporary_file(tmp_path):
    old = os.umask(0o022)
    try:
        assert cli.main(["transport", "--resolution", "coarse", "--out", str(tmp_path / "t.h5")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "t.h5").st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["t.h5"]


def test_an_error_inside_the_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "r.h5"
    target.write_bytes(b"old result")
    with pytest.raises(RuntimeError):
        with output.atomic_write(str(target), ".h5.tmp") as tmp:
            with h5py.File(tmp, "w") as f:
                f["x"] = np.arange(3)
            raise RuntimeError("the run fails half-way through writing")
    assert target.read_bytes() == b"old result"
    assert os.listdir(tmp_path) == ["r.h5"]


def test_a_kill_during_the_write_keeps_the_old_file_and_the_next_write_cleans_up(tmp_path):
    """SIGKILL in the middle of writing: the old file is intact; the orphaned temporary file
    of the dead process is removed by the next write to the same target."""
    target = tmp_path / "r.h5"
    target.write_bytes(b"old result")
    code = textwrap.dedent(f"""
        import time
        from corona_jax import output
        with output.atomic_write({str(target)!r}, ".h5.tmp") as tmp:
            open(tmp, "wb").write(b"half")
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"old result"
    assert len(os.listdir(tmp_path)) == 2  # the orphan
    with output.atomic_write(str(target)) as tmp:
        open(tmp, "wb").write(b"new result")
    assert target.read_bytes() == b"new result"
    assert os.listdir(tmp_path) == ["r.h5"]


def test_ctrl_c_is_one_line_and_leaves_nothing_behind(tmp_path):
    """SIGINT (Ctrl-C) and SIGTERM during a run: one line on stderr, exit code 130."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / f"r{int(sig)}.h5"
        proc = subprocess.Popen([sys.executable, "-m", "corona_jax.cli", "forward", "--resolution", "default",
                                 "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)
        assert proc.stdout.readline().startswith("[1/3]")  # the model is built: the run is under way
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert err.strip().splitlines() == [err.strip()] and "interrupted" in err
    assert os.listdir(tmp_path) == []


def test_ctrl_c_while_the_command_loads_jax_is_one_line(tmp_path):
    """The installed `corona-jax` command, interrupted in its first second (Python is still importing
    JAX, before any of the command's code runs): one line and exit 130, not a traceback."""
    import pathlib
    import time

    command = pathlib.Path(sys.executable).parent / "corona-jax"
    proc = subprocess.Popen([str(command), "forward", "--out", "r.h5"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["corona-jax: interrupted while starting; nothing was written"], err
    assert os.listdir(tmp_path) == []


def test_version(tmp_path):
    from corona_jax import __version__

    out = subprocess.run([sys.executable, "-m", "corona_jax.cli", "--version"], capture_output=True, text=True,
                         cwd=tmp_path)  # outside the repository: the installed package, not the source folder
    assert out.returncode == 0 and __version__ in out.stdout


LOST_INTERRUPT = """
import gc, signal, sys, time
from corona_jax import cli

def callback(phase, info):  # stands in for JAX's _xla_gc_callback: Python code run from C
    if phase == "start" and not getattr(callback, "fired", False):
        callback.fired = True
        signal.raise_signal(signal.SIGINT)
        sum(range(100))  # the pending Ctrl-C is handled here, inside the callback

def long_command(args):
    gc.callbacks.append(callback)
    gc.collect()
    t0 = time.time()
    while time.time() - t0 < 20:
        sum(range(100))
    print("ran to the end")
    return 0

cli.cmd_forward = long_command
sys.exit(cli.main(["forward", "--out", "never.h5"]))
"""


def test_ctrl_c_inside_a_garbage_collection_callback_is_not_lost(tmp_path):
    """A Ctrl-C that lands in a callback run from C (where Python only prints 'Exception ignored')
    still stops the command at once, with the usual one line."""
    proc = subprocess.run([sys.executable, "-c", LOST_INTERRUPT], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert "ran to the end" not in proc.stdout
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "interrupted" in proc.stderr


def _forward(out, cwd):
    return subprocess.run([sys.executable, "-m", "corona_jax.cli", "forward", "--resolution", "coarse", "--out",
                           str(out)], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_a_full_disk_is_one_line_and_keeps_the_old_file(small_disk, tmp_path):
    """Rewriting a result on a disk without room for the new copy: one error line, exit 2, the
    old file as it was, no temporary file (HDF5 itself crashed the interpreter here, exit 139)."""
    target = small_disk / "r.h5"
    assert _forward(target, tmp_path).returncode == 0
    old = target.read_bytes()
    assert len(old) > 128 * 1024  # the new copy cannot fit beside it
    proc = _forward(target, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [f"corona-jax: error: cannot write {target}: No space left on device"]
    assert target.read_bytes() == old
    assert os.listdir(small_disk) == ["r.h5"]


def test_a_write_error_at_the_flush_to_disk_keeps_the_old_file(tmp_path, monkeypatch, capsys):
    """ENOSPC reported only when the temporary file is flushed to the disk (as on network file
    systems): one line, exit 2, the old file kept, the temporary file removed."""
    import errno

    target = tmp_path / "t.h5"
    target.write_bytes(b"old result")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert cli.main(["transport", "--resolution", "coarse", "--out", str(target)]) == 2
    assert capsys.readouterr().err.strip() == f"corona-jax: error: cannot write {target}: No space left on device"
    assert target.read_bytes() == b"old result"
    assert os.listdir(tmp_path) == ["t.h5"]


OPEN_BAR = """
import sys
from tqdm.auto import tqdm
from corona_jax import cli

def long_command(args):
    bar = tqdm(total=100, file=sys.stderr, mininterval=0)  # left open, as numpyro leaves its chains' bars
    bar.update(10)
    raise KeyboardInterrupt

cli.cmd_forward = long_command
sys.exit(cli.main(["forward", "--out", "never.h5"]))
"""


def test_the_interrupt_line_comes_after_the_last_progress_bar(tmp_path):
    """Progress bars still open when Ctrl-C lands are closed before the one line is printed, so
    that no redrawn bar buries it."""
    proc = subprocess.run([sys.executable, "-c", OPEN_BAR], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 130
    last = proc.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("corona-jax: interrupted"), proc.stderr


def test_a_disk_without_room_for_the_posterior_is_refused_before_writing(tmp_path, monkeypatch):
    import shutil

    from corona_jax.errors import OutputError

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 10**5, 10**5))
    with pytest.raises(OutputError, match=r"No space left on device \(1.1 MB needed, 0.1 MB free\)"):
        output.check_space(str(tmp_path / "posterior.nc"), 1_100_000)
    assert output.check_space(str(tmp_path / "small.nc"), 50_000).endswith("small.nc")
