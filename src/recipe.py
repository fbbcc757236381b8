"""A recipe of training stages in one run folder (``python -m src.train experiment=reid_best``).

Each stage is one ``src.train`` child process in ``<run>/<stage>/`` (a process of its own, so that a stage can use
DDP: Lightning's launcher re-runs the child's command line). The command's own overrides reach every stage; a stage
adds its ``overrides``, and a stage after the first starts from the best checkpoint of the one before
(``model.init_weights``, read from that stage's ``metrics.json``, never typed). ``trainer.max_time`` is the whole
budget, split by the stages' ``budget`` fractions; what a stage leaves unused (it stopped at ``max_epochs`` or
early) passes to the next. A stage is finished when its ``metrics.json`` exists;
``ckpt_path=last`` skips finished stages and resumes the interrupted one from its ``checkpoints/last.ckpt``.
After the last stage its best checkpoint is released (``src.release``, measured from the released file on the
held-out identities) and the numbers are printed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError
from src.io.atomic import write_json

log = logging.getLogger(__name__)

# keys the recipe sets for each stage itself; the command's own values of them are the recipe's, not a stage's
CONTROLLED = ("recipe", "ckpt_path", "overwrite", "trainer.max_time", "hydra.run.dir", "model.init_weights")
SUMMARY = "recipe.json"


def parse_duration(value: str) -> int:
    """``DD:HH:MM:SS`` (Lightning's ``max_time`` string) -> seconds."""
    parts = str(value).split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"trainer.max_time={value!r}: a staged recipe splits a budget written DD:HH:MM:SS")
    days, hours, minutes, seconds = map(int, parts)
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_duration(seconds: int) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, mins = divmod(minutes, 60)
    days, hrs = divmod(hours, 24)
    return f"{days:02d}:{hrs:02d}:{mins:02d}:{secs:02d}"


def split_budget(max_time: str | None, fractions: list[float]) -> list[str | None]:
    """Each stage's ``trainer.max_time``: the budget split by the fractions (which must sum to at most 1)."""
    if any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ConfigError(f"recipe.stages budgets {fractions}: positive fractions of trainer.max_time summing to at most 1")
    if max_time is None:
        return [None] * len(fractions)
    total = parse_duration(max_time)
    parts = [max(1, round(total * f)) for f in fractions]
    if min(parts) < 60:
        raise ConfigError(f"trainer.max_time={max_time}: gives a stage {format_duration(min(parts))}; a stage needs at "
                          "least a minute")
    return [format_duration(p) for p in parts]


def choose_processes(setting: int | str, usable_cores: int, cuda: bool) -> tuple[int, str]:
    """``recipe.processes``: ``auto`` is 2 (DDP on the CPU) with 2 usable cores and no GPU, else 1. Returns the count
    and why."""
    if setting != "auto":
        if setting not in (1, 2):
            raise ConfigError(f"recipe.processes={setting!r}: auto, 1 or 2")
        return int(setting), f"recipe.processes={setting}"
    if cuda:
        return 1, "a GPU is available"
    if usable_cores >= 2:
        return 2, f"{usable_cores} usable cores: DDP on the CPU"
    return 1, "1 usable core"


def own_overrides(task_overrides: list[str]) -> list[str]:
    """The command's overrides that every stage gets: all but those the recipe sets per stage."""
    def key(override: str) -> str:
        return override.partition("=")[0].lstrip("+~")
    return [o for o in task_overrides if key(o) not in CONTROLLED and not key(o).startswith("recipe.")]


def quote(value: str) -> str:
    """A Hydra override value in single quotes (spaces, ``=`` and brackets kept)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def stage_state(folder: Path) -> str:
    """``done`` (its metrics.json exists), ``interrupted`` (a last.ckpt to resume) or ``new``."""
    if (folder / "metrics.json").is_file():
        return "done"
    if (folder / "checkpoints" / "last.ckpt").is_file():
        return "interrupted"
    return "new"


def minutes_used(folder: Path) -> float | None:
    """The training time a finished stage spent (its last ``time/train_min``, Lightning's Timer), None if unlogged."""
    import pandas as pd

    metrics = folder / "metrics.csv"
    if not metrics.is_file():
        return None
    column = pd.read_csv(metrics).get("time/train_min")
    return None if column is None or column.dropna().empty else float(column.max())


def with_carry(budget: str | None, unused_s: float) -> str | None:
    """A stage's budget plus what the stages before it left unused (they stopped at max_epochs or early)."""
    return None if budget is None else format_duration(parse_duration(budget) + max(0, int(unused_s)))


def best_checkpoint(folder: Path) -> str:
    metrics = folder / "metrics.json"
    best = json.loads(metrics.read_text()).get("best_checkpoint")
    if not best or not Path(best).is_file():
        raise ConfigError(f"{metrics}: names no best checkpoint that exists ({best}); the stage saved none")
    return best


def _die_with_parent() -> None:  # a killed recipe takes its stage with it (Linux)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_child(argv: list[str], what: str, run_dir: Path) -> None:
    log.info("%s: %s", what, " ".join(argv[1:]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the stage's lines reach the log in order
    code = subprocess.run(argv, env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None).returncode
    if code != 0:
        raise ConfigError(f"{run_dir}: {what} ended with exit status {code}; continue the recipe with ckpt_path=last "
                          f"hydra.run.dir={run_dir}")


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=7"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def run_recipe(cfg: DictConfig, task_overrides: list[str], run_dir: Path) -> dict:
    """Run the stages of ``cfg.recipe`` (see the module docstring); returns the summary written to ``recipe.json``."""
    import torch

    from src.runtime import usable_cores

    recipe = cfg.recipe
    stages = list(recipe.stages)
    if not stages:
        raise ConfigError("recipe.stages: no stage to run")
    budgets = split_budget(cfg.trainer.get("max_time"), [float(recipe.stages[s].budget) for s in stages])
    processes, why = choose_processes(recipe.processes, usable_cores(), torch.cuda.is_available())
    log.info("recipe of %d stage%s (%s) in %s; %d process%s per stage (%s)", len(stages), "s" * (len(stages) > 1),
             ", ".join(f"{s} {b or 'until max_epochs'}" for s, b in zip(stages, budgets)), run_dir, processes,
             "es" * (processes > 1), why)
    resume = cfg.get("ckpt_path")
    if resume not in (None, "last"):
        raise ConfigError(f"ckpt_path={resume}: a staged recipe resumes with ckpt_path=last (each stage from its own "
                          "last checkpoint)")
    started = [s for s in stages if (run_dir / s).exists() and stage_state(run_dir / s) != "new"]
    if started and resume is None:
        if not cfg.get("overwrite"):
            raise ConfigError(f"{run_dir}: already holds stage{'s' * (len(started) > 1)} {', '.join(started)}; continue "
                              "with ckpt_path=last, start over with overwrite=true, or choose another hydra.run.dir")
        for stage in stages:
            shutil.rmtree(run_dir / stage, ignore_errors=True)
        (run_dir / SUMMARY).unlink(missing_ok=True)

    common = own_overrides(task_overrides)
    per_process = list(recipe.two_processes if processes == 2 else recipe.one_process)
    command = [sys.executable, "-m", "src.train"]
    previous_best, unused_s, given = None, 0.0, []
    for stage, budget in zip(stages, budgets):
        folder = run_dir / stage
        state = stage_state(folder)
        budget = with_carry(budget, unused_s)
        given.append(budget)
        if state == "done":
            log.info("stage %s: finished earlier (%s), not run again", stage, folder / "metrics.json")
        else:
            argv = [*command, *recipe.stages[stage].overrides, *per_process,
                    *common, "recipe=null", f"hydra.run.dir={quote(folder)}", "predict_test=false"]
            if budget:
                argv.append(f"trainer.max_time={budget}")
            if previous_best:
                argv.append(f"model.init_weights={quote(previous_best)}")
            argv.append("ckpt_path=last" if state == "interrupted" else "overwrite=true")
            run_child(argv, f"stage {stage} ({'resumed' if state == 'interrupted' else 'started'})", run_dir)
        previous_best = best_checkpoint(folder)
        used = minutes_used(folder)
        if budget is not None and used is not None:
            unused_s = max(0.0, parse_duration(budget) - 60 * used)
        log.info("stage %s: best checkpoint %s%s", stage, previous_best,
                 f"; {used:.1f} min of its {budget} used, the rest passes on" if used is not None and budget else "")

    summary = {"stages": {s: {"budget": b, "minutes_used": minutes_used(run_dir / s),
                              "best_checkpoint": best_checkpoint(run_dir / s)} for s, b in zip(stages, given)},
               "processes": processes}
    release = recipe.get("release")
    if release and release.get("name"):
        summary["release"] = run_release(cfg, release, previous_best, task_overrides, run_dir)
    write_json(run_dir / SUMMARY, summary)
    return summary


def run_release(cfg: DictConfig, release: DictConfig, ckpt: str, task_overrides: list[str], run_dir: Path) -> dict:
    """Release the last stage's best checkpoint with ``src.release`` and print what was measured from the file."""
    weights_dir = Path(release.weights_dir)
    training_command = " ".join(["python -m src.train", *task_overrides])
    argv = [sys.executable, "-m", "src.release", f"ckpt_path={quote(ckpt)}", f"name={quote(release.name)}",
            f"dtype={release.dtype}", f"weights_dir={quote(weights_dir)}",
            f"training_command={quote(training_command)}",
            f"training_commit={quote(git_commit(Path(cfg.paths.root_dir)))}",
            f"hydra.run.dir={quote(run_dir / 'release')}", *release.overrides]
    run_child(argv, "release", run_dir)
    entry = json.loads((weights_dir / "manifest.json").read_text())["files"][release.name]
    val = entry["val"]
    numbers = {k: round(100 * v, 2) for k, v in val.items() if isinstance(v, float)}
    log.info("released %s (%.2f MB %s), measured from the file on %s val: %s", weights_dir / release.name,
             entry["bytes"] / 2**20, entry["dtype"], entry["evaluated_on"]["data"],
             ", ".join(f"{k} {v:.2f}" for k, v in numbers.items()))
    return {"file": str(weights_dir / release.name), "sha256": entry["sha256"], "val": val}


def is_recipe(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "recipe.stages"))


def task_overrides() -> list[str]:
    """The command line's overrides (Hydra's record of them); a recipe runs from the command line only."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise ConfigError("a staged recipe (recipe.stages) runs from the command line: python -m src.train "
                          "experiment=<recipe>")
    return list(HydraConfig.get().overrides.task)

