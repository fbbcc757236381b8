"""The help of a command, read from its primary config ``conf/<command>.yaml`` (``--help``, src/cli.py) and the required
groups and keys there (``???``: ``task``, ``ckpt_path``, ``index``).

``python -m src.<command> --help``: what the command does, its usage, the config groups with their options (the
required ``task`` among them) and its main keys with their defaults and comments. Answered before Hydra starts, so a
required group or key that is not given yet does not stop the help; no library loads (``--help`` answers at once).
``--hydra-help`` still shows Hydra's own options, and ``--cfg job`` the composed config."""

from __future__ import annotations

import ast
import re
from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"
SKIPPED_GROUPS = ("paths", "hydra", "debug", "experiment")  # plumbing, or listed with their use in the docs


def help_text(command: str) -> str:
    source = Path(__file__).with_name(f"{command}.py")
    summary = (ast.get_docstring(ast.parse(source.read_text())) or "").split("\n\n")[0]
    config = (CONF / f"{command}.yaml").read_text()
    usage = [line.removeprefix("#").strip() for line in config.splitlines() if line.startswith("# python")]
    lines = [f"src.{command}: {' '.join(summary.split())}", "", "usage:"]
    lines += [f"  {u}" for u in usage or [f"python -m src.{command} key=value ..."]]
    groups = default_groups(config)
    if groups:
        lines += ["", "config groups (group=option; the default in brackets):"]
        for group, default in groups:
            options = sorted(p.stem for p in (CONF / group).glob("*.yaml")) if (CONF / group).is_dir() else []
            options = [o for o in options if o != "default" or default == "default"]  # data/default.yaml: a base
            shown = [f"[{o}]" if o == default else o for o in options]
            if default == "???":
                lines.append(f"  {group} (required): {' | '.join(shown)}")
                lines += [f"      {o}: {first_comment(CONF / group / f'{o}.yaml')}" for o in options]
            else:
                lines.append(f"  {group}: {' | '.join(shown) if shown else default}")
    keys = main_keys(config)
    if keys:
        lines += ["", "main keys (key=value; nested keys with dots, e.g. data.root=DIR):"]
        width = max(len(k) for k, _, _ in keys)
        for key, value, comment in keys:
            note = " (required)" if value == "???" else ""
            lines.append(f"  {key.ljust(width)}  {value}{note}{'  # ' + comment if comment else ''}".rstrip())
    lines += ["", "--cfg job prints the composed config (with the required keys given); --hydra-help shows Hydra's",
              "options; -m key=a,b runs a sweep. Documentation: README.md and docs/."]
    return "\n".join(lines)


def default_groups(config: str) -> list[tuple[str, str]]:
    """The ``group: option`` entries of the primary config's defaults list (``???`` for a required group)."""
    block = re.search(r"^defaults:\n((?:[ \t]+.*\n?|#.*\n?)*)", config, re.M)
    groups = []
    for line in (block.group(1) if block else "").splitlines():
        match = re.match(r"\s*-\s*([\w/]+):\s*([^\s#]+)", line)
        if match and not match.group(1).startswith(SKIPPED_GROUPS) and "@" not in match.group(1):
            groups.append((match.group(1), match.group(2)))
    return groups


def main_keys(config: str) -> list[tuple[str, str, str]]:
    """(key, default, comment) of the primary config's top-level keys, and one level of the keys nested under a
    top-level block (``attributes.flip_test``); the defaults list and the hydra block are left out."""
    keys, parent = [], None
    for line in config.splitlines():
        match = re.match(r"^( {0,2})([A-Za-z_]\w*):\s*([^#]*?)\s*(?:#\s*(.*))?$", line)
        if not match:
            continue
        indent, key, value, comment = match.groups()
        if not indent:
            parent = None if value else key
            if key not in ("defaults", "hydra", "task_name") and value:
                keys.append((key, value, comment or ""))
        elif parent not in (None, "defaults", "hydra") and value:
            keys.append((f"{parent}.{key}", value, comment or ""))
    return keys


def first_comment(path: Path) -> str:
    """The first comment line of a config file that is not a Hydra directive (what the option is)."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("# ").strip()
    return ""
