"""Errors of the user's input (data, checkpoint, config, argument) and how entry points report them.

A known error prints one line, ``error: <file or key>: <what is wrong> (<what to do>)``, and exits with status 2;
``HYDRA_FULL_ERROR=1`` shows the traceback instead. Any other exception keeps its traceback: it is a bug.
Our own warnings (skipped images, a checkpoint run at another size, ...) print the same way, as one line
``warning: <what> (<what to do>)``, without Python's source path and source line; library warnings keep Python's format.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import warnings
from pathlib import Path
from typing import NoReturn

_PACKAGE = Path(__file__).resolve().parent


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


def one_line_errors(main):
    """Wrap an entry point's task function (below ``@hydra.main``) so known errors end it in one line."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        from src.runtime import quiet_library_noise  # runtime imports this module

        quiet_library_noise()
        format_before = warnings.formatwarning
        warnings.formatwarning = one_line_warning
        try:
            return main(*args, **kwargs)
        except Exception as err:
            drop_unused_run_folder()
            known = known_cause(err)
            if known is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(str(known))
        finally:
            warnings.formatwarning = format_before

    return wrapper


# OS errors of the place a path points to: the user's to fix (known_cause). ENOENT stays a traceback: our readers name
# missing inputs themselves.
_LOCATION_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOSPC,
                    errno.EDQUOT, errno.ENAMETOOLONG}


def fail(message: str) -> NoReturn:
    """End the command as a known error does: one line ``error: <message>`` on stderr, status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def drop_unused_run_folder() -> None:
    """After a failure: the run folder Hydra made for this command goes if nothing but its start was written there
    (``src/run_folder.py: remove_if_unused``); multirun folders and ``hydra.run.dir=.`` are left alone."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.RUN:
        from src.run_folder import remove_if_unused

        remove_if_unused(Path(hydra_cfg.runtime.output_dir), hydra_cfg.job.name)


def check_overrides(argv: list[str]) -> None:
    """Before Hydra reads the command line: a ``key=value`` its override grammar cannot parse (an unquoted path
    with spaces, parentheses or brackets) ends in one line and status 2, saying how to quote it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in argv[1:]:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as err:
            key, _, value = arg.partition("=")
            reason = str(err).strip().splitlines()[0]
            fail(f"{arg}: Hydra cannot parse this value ({reason}); quote it: {key}='{value}' "
                 f"(with the shell's quotes around it: \"{key}='{value}'\")")


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """``warnings.formatwarning`` for entry points: ``warning: <message>`` for warnings of this package (raised here or
    of a category defined here), Python's format for the others. Only the text changes: filters, ``-W`` options and
    pytest's recording of warnings work as before."""
    if is_ours(category, filename):
        return f"warning: {message}\n"
    return warnings._formatwarning_orig(message, category, filename, lineno, line)  # Python's own format


def is_ours(category: type[Warning], filename: str) -> bool:
    if category.__module__ == "src" or category.__module__.startswith("src."):
        return True
    try:
        return Path(filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


# gloo's words when a peer process of a DDP run is gone (killed, crashed): "Read error [127.0.0.1]:3784: Connection
# reset by peer", "Connection closed by peer [127.0.0.1]:3784", ...
_PEER_LOST = re.compile(r"gloo/transport/.*?\] (?:Read error |Write error )?(?:Connection closed by peer )?"
                        r"(\[[^\]]*\]:\d+):? ?(Connection reset by peer|Broken pipe|Connection closed by peer|[^.]*)")


def _rank() -> str:
    distributed = sys.modules.get("torch.distributed")  # loaded by the run that failed; never imported here
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        return str(distributed.get_rank())
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "?"))


def known_cause(err: BaseException | None) -> KnownError | None:
    """The KnownError behind ``err``, also when a library wrapped it (Hydra's instantiate wraps what a constructor
    raises in an InstantiationException); an OS error about a path the user chose (a read-only or full disk, no
    permission, a file where a folder is expected) becomes one: ``<path>: <what the OS said> (<what to do>)``."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KnownError):
            return err
        if isinstance(err, OSError) and err.errno in _LOCATION_ERRNOS and err.filename:
            return KnownError(f"{err.filename}: {err.strerror} (choose a location this user can write to, or fix "
                              "its permissions; a folder is expected where the path names one)")
        lost = _PEER_LOST.search(str(err)) if isinstance(err, RuntimeError) else None
        if lost:
            return KnownError(f"DDP: process rank {_rank()} lost another process of this run ({lost.group(1)}: "
                              f"{lost.group(2)}): it was killed or crashed, its own output says why; resume the whole "
                              "run with the same command and ckpt_path=last")
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
