"""Regenerate the tables in data/tables: pp interactions (aafragpy), EBL optical depth
(ebltable) and the cascade matrices (corona_jax.cascade, from the EBL table; ~4 minutes on 2 cores).

    pip install 'corona-jax[tables]' && python data/make_tables.py [--only pp|ebl|cascade]

Deterministic: running it again reproduces the shipped file's arrays and attributes
exactly (tests/test_tables.py checks this when aafragpy is installed). The sha256 of each
table goes into SHA256SUMS beside it; the loaders refuse a table that does not match.
"""

import argparse
import os
import time

from corona_jax import table_generation as gen
from corona_jax import tables


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("pp", "ebl", "cascade"), help="regenerate one table only")
    parser.add_argument("--dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tables"),
                        help="output folder (default: data/tables beside this script)")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    jobs = {
        "pp": (tables.PP_TABLE_FILE, gen.generate_pp_tables, gen.write_pp_tables),
        "ebl": (tables.EBL_TABLE_FILE, gen.generate_ebl_table, gen.write_ebl_table),
        "cascade": (tables.CASCADE_TABLE_FILE, gen.generate_cascade_tables, gen.write_cascade_tables),
    }
    for name, (filename, generate, write) in jobs.items():
        if args.only not in (None, name):
            continue
        t0 = time.perf_counter()
        path = os.path.join(args.dir, filename)
        write(path, generate())
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
        print(f"recorded its checksum in {tables.write_checksums(args.dir, [filename])}")


if __name__ == "__main__":
    main()
