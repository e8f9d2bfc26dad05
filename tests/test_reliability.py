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


def test_version(tmp_path):
    from corona_jax import __version__

    out = subprocess.run([sys.executable, "-m", "corona_jax.cli", "--version"], capture_output=True, text=True,
                         cwd=tmp_path)  # outside the repository: the installed package, not the source folder
    assert out.returncode == 0 and __version__ in out.stdout
