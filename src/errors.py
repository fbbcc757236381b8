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
        except KnownError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
