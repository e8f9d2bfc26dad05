"""Regenerate the pp-interaction table data/tables/pp_secondaries.h5 from aafragpy.

    pip install 'corona-jax[tables]' && python data/make_tables.py [--out PATH]

Deterministic: running it again reproduces the shipped file's arrays and attributes
exactly (tests/test_tables.py checks this when aafragpy is installed).
"""

import argparse
import os
import time

from corona_jax import tables


def main():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tables", tables.PP_TABLE_FILE)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=default, help=f"output HDF5 file (default {default})")
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = tables.generate_pp_tables()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tables.write_pp_tables(args.out, result)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s "
          f"(aafragpy {result.attrs['aafragpy_version']})")


if __name__ == "__main__":
    main()
