"""Errors of the user's input (data, checkpoint, config, argument) and how entry points report them.

A known error prints one line, ``error: <file or key>: <what is wrong> (<what to do>)``, and exits with status 2;
``HYDRA_FULL_ERROR=1`` shows the traceback instead. Any other exception keeps its traceback: it is a bug.
"""

from __future__ import annotations

import functools
import os
import sys


class KnownError(Exception):
    """A problem with what the user gave; the message names the file or key and what to do."""


class ConfigError(KnownError, ValueError):
    """A config value or command-line argument out of range or in conflict with another."""


def one_line_errors(main):
    """Wrap an entry point's task function (below ``@hydra.main``) so known errors end it in one line."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as err:
            known = known_cause(err)
            if known is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {known}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def known_cause(err: BaseException | None) -> KnownError | None:
    """The KnownError behind ``err``, also when a library wrapped it (Hydra's instantiate wraps what a constructor
    raises in an InstantiationException)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KnownError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
