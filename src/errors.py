"""The errors of the user's input (data, checkpoint, config, argument): a KnownError's message names the file or key,
what is wrong and what to do. How a command reports them (one line, status 2) is the harness's, src/cli.py; the
data and checkpoint errors are DataError (src/data/records.py) and CheckpointError (src/models/loading.py).
"""

from __future__ import annotations

import re


class KnownError(Exception):
    """A problem with what the user gave; the message names the file or key and what to do.

    Raised in a DataLoader worker, torch re-raises it in the main process as ``type(err)(text)`` with the worker's
    whole traceback as the text ("Caught DataError in DataLoader worker process 0. Original Traceback ..."): the
    message is then the original one line again (its last line, without the class name)."""

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str) and args[0].startswith("Caught ") and "\nOriginal Traceback" in args[0]:
            last = args[0].rstrip().splitlines()[-1]
            args = (re.sub(r"^[\w.]+: ", "", last, count=1),)
        super().__init__(*args)


class ConfigError(KnownError, ValueError):
    """A config value or command-line argument out of range or in conflict with another."""
