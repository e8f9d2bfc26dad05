"""The `corona-jax` command's entry point, outside the corona_jax package: importing the package
loads JAX, which takes seconds, and a Ctrl-C in those seconds is one line here too (not a traceback
from inside an import)."""

import sys


def main():
    try:
        from corona_jax.cli import run

        return run()
    except KeyboardInterrupt:  # before the command's own handling began (corona_jax.interrupt)
        print("corona-jax: interrupted while starting; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
