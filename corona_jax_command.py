"""The `corona-jax` command's entry point, outside the corona_jax package: importing the package
loads JAX, which takes a second or two. A Ctrl-C in that time is only noted, and the command
stops with one line once the import is done: an exception raised inside the import could land in
the initialisation of JAX's C extension (an ImportError, or a crash) or be swallowed by its
garbage-collection callback."""

import signal
import sys

STARTING = "corona-jax: interrupted while starting; nothing was written"


def main():
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        from corona_jax.cli import run
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        print(STARTING, file=sys.stderr)
        return 130
    try:
        return run()
    except KeyboardInterrupt:  # before the command's own handling began (corona_jax.interrupt)
        print(STARTING, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
