"""The command harness: one decorator, ``@command("<name>")``, for what every entry point does around its work.

Before Hydra reads the command line: ``--help`` (src/cli_help.py), the command's own argument sugar (``src.index
build``, ``src.search filter=a=b``, ``src.compare A B``, ``src.serve token=``), the required keys, and each
``key=value`` checked against Hydra's grammar. Around the task: the settings' ranges and ``torch_threads`` checked
(src/config.py) before any library loads, library noise hidden and our warnings as one line (src/runtime.py), a known
error (src/errors.py) as one line ``error: <file or key>: <what is wrong> (<what to do>)`` and status 2
(``HYDRA_FULL_ERROR=1`` shows the traceback; anything else is a bug and keeps it), and the run folder Hydra made for a
failed command removed when nothing but its start was written there (src/run_folder.py).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from src.errors import KnownError

_PACKAGE = Path(__file__).resolve().parent


def command(config_name: str, argv: Callable[[list[str]], list[str]] | None = None):
    """Above an entry point's ``main(cfg)``: ``main()`` runs the command from ``sys.argv`` (``argv`` rewrites its
    sugar first), ``main(cfg)`` runs the task on a composed config (tests, notebooks); both under :func:`one_line_errors`."""
    import hydra

    def decorate(task):
        hydra_main = hydra.main(version_base="1.3", config_path="../conf", config_name=config_name)(one_line_errors(task))

        @functools.wraps(task)
        def main(cfg=None):
            if cfg is None:
                answer_help(sys.argv)
                sys.argv = argv(sys.argv) if argv else sys.argv
                check_required(sys.argv)
                check_overrides(sys.argv)
            return hydra_main(cfg)

        return main

    return decorate


def answer_help(argv: list[str]) -> None:
    """Print the help of the command whose file is ``argv[0]`` (``src/train.py`` -> ``train``) and exit 0 when
    ``--help`` or ``-h`` is among the arguments; otherwise return."""
    if any(arg in ("--help", "-h") for arg in argv[1:]):
        from src.cli_help import help_text

        print(help_text(Path(argv[0]).stem))
        sys.exit(0)


def check_required(argv: list[str]) -> None:
    """One line and status 2 when a group or key that the command's primary config marks ``???`` is not given
    (``key=``, ``+key=``, ``++key=``; an ``experiment=`` sets ``task``), instead of Hydra's composition error."""
    from src.cli_help import CONF, default_groups, main_keys

    if any(arg.startswith("--") for arg in argv[1:]):  # --cfg, --info, --hydra-help, ...: Hydra's own answers
        return
    name = Path(argv[0]).stem
    config = (CONF / f"{name}.yaml").read_text()
    given = {arg.lstrip("+").partition("=")[0] for arg in argv[1:] if "=" in arg}
    for group, default in default_groups(config):
        if default == "???" and group not in given and not (group == "task" and "experiment" in given):
            options = " | ".join(sorted(p.stem for p in (CONF / group).glob("*.yaml")))
            fail(f"{group}: required, one of {options} (e.g. python -m src.{name} {group}=...; "
                 f"python -m src.{name} --help lists them)")
    missing = [key for key, value, _ in main_keys(config) if value == "???" and key not in given]
    if missing:
        fail(f"{', '.join(missing)}: required (e.g. {' '.join(f'{k}=...' for k in missing)}; "
             f"python -m src.{name} --help lists the keys)")


def one_line_errors(main):
    """Wrap an entry point's task function (below ``@hydra.main``) so known errors end it in one line."""

    @functools.wraps(main)
    def wrapper(cfg=None, *args, **kwargs):
        from src.config import check_ranges
        from src.runtime import quiet_library_noise

        quiet_library_noise()
        format_before = warnings.formatwarning
        warnings.formatwarning = one_line_warning
        try:
            if cfg is not None:
                check_ranges(cfg)  # before the libraries load: a config error answers at once
            return main(*(() if cfg is None else (cfg,)), *args, **kwargs)
        except Exception as err:
            drop_unused_run_folder()
            known = known_cause(err)
            if known is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(str(known))
        finally:
            warnings.formatwarning = format_before

    return wrapper


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


# keys of earlier versions -> their names now
RENAMED_KEYS = {"height": "data.height", "width": "data.width", "data.num_instances": "data.sampler.num_instances",
                "data.progressive": "callbacks.progressive_resizing.steps"}


def check_overrides(argv: list[str]) -> None:
    """Before Hydra reads the command line: a key of an earlier version (``RENAMED_KEYS``) or a ``key=value`` its
    override grammar cannot parse (an unquoted path with spaces, parentheses or brackets) ends in one line and
    status 2, saying what to write instead."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in argv[1:]:
        if arg.startswith("-") or "=" not in arg:
            continue
        old, _, value = arg.lstrip("+").partition("=")
        if old in RENAMED_KEYS:
            fail(f"{old}: this key is now {RENAMED_KEYS[old]} (write {RENAMED_KEYS[old]}={value})")
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


# OS errors of the place a path points to: the user's to fix (known_cause). ENOENT stays a traceback: our readers name
# missing inputs themselves.
_LOCATION_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOSPC,
                    errno.EDQUOT, errno.ENAMETOOLONG}
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
