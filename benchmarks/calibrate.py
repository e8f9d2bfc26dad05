"""Wall time of `corona-jax calibrate` on configs/calibrate-quick.toml (target: under 3 minutes on
2 CPU cores), with the machine; run from the repository root: python benchmarks/calibrate.py"""

import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    config = os.path.join(ROOT, "configs", "calibrate-quick.toml")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "corona_jax.cli", "calibrate", "--no-progress", "--config", config,
                               "--out", os.path.join(tmp, "sbc.h5")], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if done.returncode:
        sys.exit(done.stderr)
    print(done.stdout)
    print(f"calibrate-quick: {seconds:.0f} s wall (target < 180 s) on {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cores")


if __name__ == "__main__":
    main()
