"""Ctrl-C at seeded moments in every long command: exit 130 with one line, soon after the signal,
and nothing half-written (slow: each command compiles its model first). The moments start at
0.5 s, while the command is still loading JAX."""

import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"
COMMAND = str(pathlib.Path(sys.executable).parent / "corona-jax")  # the installed command, as a user runs it
COMMANDS = {
    "sample": ["sample", "--config", str(CONFIGS / "sample-quick.toml"), "--out", "out.nc", "--no-progress"],
    "sweep": ["sweep", "--config", str(CONFIGS / "sweep-quick.toml"), "--out", "out.h5", "--no-progress"],
    "calibrate": ["calibrate", "--config", str(CONFIGS / "calibrate-quick.toml"), "--out", "out.h5", "--no-progress"],
    "evidence": ["evidence", "--config", str(CONFIGS / "evidence-no-burst.toml"), "--out", "out.csv"],
    "fit": ["fit", "--config", str(CONFIGS / "fit-features.toml"), "--out", "out.h5"],
    "forecast": ["forecast", "--config", str(CONFIGS / "forecast.toml"), "--out", "out.csv"],
    "paper": ["paper", "--out", "paper"],
}
# The longest single compiled call of these runs (a coarse model's first compilation, or a
# batch of L-BFGS fits in calibrate) takes well under a minute on 2 CPU cores.
LATEST_EXIT_S = 90


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("seed", [0, 1])
def test_ctrl_c_at_a_seeded_moment_stops_every_long_command(tmp_path, command, seed):
    delay_s = random.Random(f"{command}-{seed}").uniform(0.5, 40.0)
    proc = subprocess.Popen([COMMAND, *COMMANDS[command]], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay_s)
    if proc.poll() is not None:
        pytest.skip(f"{command} ended before {delay_s:.1f} s")
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=LATEST_EXIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{command} still ran {LATEST_EXIT_S} s after Ctrl-C at {delay_s:.1f} s")
    print(f"{command}: Ctrl-C at {delay_s:.1f} s, exit {proc.returncode} after {time.monotonic() - sent:.1f} s")
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("corona-jax: interrupted"), err
    assert "Exception ignored" not in err and "Traceback" not in err
    leftovers = [p.name for p in tmp_path.rglob(".*") if ".tmp" in p.name or p.suffix in (".h5", ".nc", ".csv")]
    assert leftovers == [], leftovers  # no temporary file
    assert list(tmp_path.rglob("*.lock")) == []  # the lock is released
