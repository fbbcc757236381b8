"""Every command the README and the docs/ pages show runs here at tiny scale, through the same entry point.

Each documented command is parsed into its entry point and overrides; placeholders (PATH, DIR, FILE, the real-run
paths of the Results section) are replaced by tiny artefacts made once per session, and only sizes shrink
(``TINY``: one epoch of two batches, few identities, a 12-identity copy of the course data). The command then
goes through the entry point's own ``main`` with the config Hydra composes from those overrides, or through a
subprocess where the CLI itself is the point (sweeps, argv rewriting, benchmarks, multi-process index builds:
Lightning's launcher, torchrun, and two "machines" on this one). A README command without a runner here fails
``test_every_readme_command_is_run_here``.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.config import compose_config
from tests.conftest import ATTRIBUTE_MAT, COURSE, ROOT, SAMPLES, made_once

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # the front page and every docs page
TRAIN_TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
              "data.num_workers=0"]
SYNTHETIC_TINY = ["data.source.num_train_ids=24", "data.source.num_test_ids=6"]
# covered elsewhere: the setup line is what .ci/run executes, and the test command is this suite itself
COVERED_ELSEWHERE = {
    'python3.11 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python -m src.train task=attributes '
    'trainer.max_epochs=5': "the setup half runs in .ci/run; the training half is the same command below",
    ".venv/bin/python -m pytest -q": "this suite",
    # their tiny scale is --small, which tests/bench/test_serving_benches.py runs and checks row by row
    "python bench/bench_description_search.py --ckpt CKPT": "tests/bench/test_serving_benches.py",
    "python bench/bench_serve_load.py --gallery 100000 --clients 1 4 16 --duration 60 --workers 2":
        "tests/bench/test_serving_benches.py",
    # the staged recipe's stages are src.train child processes: tests/test_recipe.py runs this command at tiny scale
    # (synthetic data), killed inside each stage and continued with ckpt_path=last
    "python -m src.train experiment=reid_best": "tests/test_recipe.py",
    "python -m src.train experiment=reid_best ckpt_path=last hydra.run.dir=outputs/reid_strong/runs/RUN":
        "tests/test_recipe.py",
}


# commands the README shows to document an error: the one-line message they must print (exit status 2)
EXPECTED_ERRORS = {
    "python -m src.index build ckpt_path=attributes.ckpt gallery=gal output=gal_index":
        r"error: .*attributes.*: holds an attributes checkpoint, a gallery index needs a re-ID checkpoint",
    "python -m src.index build ckpt_path=reid.ckpt gallery=gal output=gal_index index.kind=hnsw":
        r"error: .* is a flat index, asked for index.kind=hnsw; pass index.kind=flat to update it, reindex=true",
    'python -m src.search index=outputs/index/test-bec4ec1a query=syn/queries filter="colour=red"':
        r"error: unknown attribute 'colour' in the filter",
    "python -m src.serve index=outputs/index/test-bec4ec1a host=0.0.0.0":
        r"error: host=0.0.0.0 exposes the server beyond this machine; pass token=SECRET",
}


COMMAND = re.compile(r"([A-Z_]+=\S+\s+)*((\.venv/bin/)?python|torchrun)\b")  # env assignments may come first


def page_commands(page: Path) -> list[str]:
    """The python and torchrun commands of a markdown page's shell code blocks (``$ `` prompts of example outputs
    included; not http or json blocks), one per command with continuation lines joined and trailing comments dropped."""
    commands = []
    for language, block in re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(), re.S | re.M):
        if language not in ("", "bash"):
            continue
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip().removeprefix("$ ")
            if COMMAND.match(line):
                commands.append(" ".join(re.sub(r"\s+#.*$", "", line).split()))
    return commands


def readme_commands() -> list[str]:
    """The commands of README.md and every docs/*.md page, each once."""
    return list(dict.fromkeys(command for page in PAGES for command in page_commands(page)))


# ------------------------------------------------------------------------------------------------ tiny artefacts
def tiny_course(root: Path, identities: int = 12, gallery: int = 40, queries: int = 8) -> Path:
    """The first ``identities`` course identities (links to the real files), 40 test images, 8 queries that are
    byte-identical copies of test images (as in the course data)."""
    (root / "train").mkdir(parents=True)
    table = pd.read_csv(COURSE / "annotations_train.csv")
    keep = sorted(table["id"])[:identities]
    table[table["id"].isin(keep)].to_csv(root / "annotations_train.csv", index=False)
    for path in sorted((COURSE / "train").iterdir()):
        if int(path.name[:4]) in keep:
            (root / "train" / path.name).symlink_to(path)
    (root / "test").mkdir()
    (root / "queries").mkdir()
    tests = sorted((COURSE / "test").iterdir())[:gallery]
    for path in tests:
        (root / "test" / path.name).symlink_to(path)
    for number, path in enumerate(tests[:: gallery // queries][:queries]):
        shutil.copyfile(path, root / "queries" / f"{number:06d}.jpg")
    return root


def tiny_standard(root: Path) -> Path:
    """Market-1501-v15.09.15 layout with every identity of Lin et al.'s .mat (the reader checks that each has
    pictures) but few pictures: 2 per training identity on 2 cameras, 1 per test identity, 8 queries, a distractor
    (0000) and a junk (-1) picture; the pixels are the real sample crops."""
    from src.data.records import read_market_attribute_mat

    tables = read_market_attribute_mat(ATTRIBUTE_MAT)
    pixels = sorted(SAMPLES.iterdir())
    count = 0
    for folder, ids, per_id in (("bounding_box_train", tables["train"].index, 2),
                                ("bounding_box_test", tables["test"].index, 1),
                                ("query", tables["test"].index[:8], 1)):
        (root / folder).mkdir(parents=True)
        for pid in ids:
            for k in range(per_id):
                count += 1
                shutil.copyfile(pixels[count % len(pixels)], root / folder / f"{pid:04d}_c{k % 2 + 1}s1_{count:06d}_00.jpg")
    shutil.copyfile(pixels[0], root / "bounding_box_test" / "0000_c3s1_000001_00.jpg")
    shutil.copyfile(pixels[1], root / "bounding_box_test" / "-1_c3s1_000002_00.jpg")
    return root


class Artefacts:
    """Checkpoints, folders and an index made once per test run, by the same entry points, for the commands that
    need them; the test processes of the run share them (``made_once``)."""

    def __init__(self, root: Path, cache: Path):
        self.root, self.cache = root, cache
        self.course = self.once("course", tiny_course) if COURSE.is_dir() else None
        self.standard = self.once("standard", tiny_standard) if ATTRIBUTE_MAT.is_file() and SAMPLES.is_dir() else None
        self._synthetic: Path | None = None
        self._made: dict[str, Path] = {}

    def once(self, name: str, build) -> Path:
        return made_once(self.root, name, build)

    @property
    def synthetic(self) -> Path:
        """The tiny synthetic dataset's folder (generated on first use, as a training would)."""
        if self._synthetic is None:
            from hydra.utils import instantiate

            cfg = compose_config("train", ["task=attributes", *SYNTHETIC_TINY], self.root, self.cache)
            self._synthetic = Path(instantiate(cfg.data).source.root)
        return self._synthetic

    def train(self, name: str, overrides: list[str]) -> Path:
        if name not in self._made:
            def build(out: Path) -> Path:
                data = [] if "data=market_course" in overrides else SYNTHETIC_TINY
                run("train", [*overrides, *TRAIN_TINY, *data, "predict_test=false"], out, self.cache)
                return out / "checkpoints" / "last.ckpt"

            self._made[name] = self.once(f"run {name}", build)
        return self._made[name]

    @property
    def attributes_ckpt(self) -> Path:
        return self.train("attributes", ["task=attributes"])

    @property
    def attributes_ckpt_256(self) -> Path:
        return self.train("attributes_256", ["task=attributes", "data.height=256", "data.width=128"])

    @property
    def reid_ckpt(self) -> Path:
        return self.train("reid_strong", ["task=reid_strong"])

    @property
    def attribute_runs(self) -> Path:
        """A folder whose newest finished run is an attributes run (what ``task=reid`` takes stage 1 from)."""
        def build(folder: Path) -> Path:
            folder.mkdir()
            (folder / "tiny").symlink_to(self.attributes_ckpt.parents[1])
            return folder

        return self.once("attribute_runs", build)

    def course_ckpt(self, task: str) -> Path:
        """Trained on the tiny course copy: ``split=val`` evaluations need the checkpoint's own identity split."""
        stage1 = [f"model.stage1_ckpt={self.course_ckpt('attributes')}"] if task == "reid" else []
        return self.train(f"{task}_course", [f"task={task}", "data=market_course", f"data.root={self.course}", *stage1])

    @property
    def index_dir(self) -> Path:
        return self.index_like([])

    def index_like(self, settings: list[str]) -> Path:
        """The index of ``index_dir`` built by one process with these settings (threads, batch size): the float32
        sums of a network depend on them, so a multi-process build is compared with one made alike."""
        key = "index " + " ".join(sorted(settings))
        if key not in self._made:
            def build(out: Path) -> Path:
                run("index", ["action=build", f"ckpt_path={self.reid_ckpt}", f"gallery={self.synthetic / 'test'}",
                              f"output={out}", *settings], out.with_name(out.name + "_run"), self.cache)
                return out

            self._made[key] = self.once(key, build)
        return self._made[key]


# ------------------------------------------------------------------------------------------------ running
def run(entry: str, overrides: list[str], output_dir: Path, cache: Path):
    """``python -m src.<entry> OVERRIDES`` in-process: Hydra composes the config, the entry point's main runs it."""
    module = importlib.import_module(f"src.{entry}")
    cfg = compose_config(entry, overrides, output_dir, cache)
    return module.main(cfg)


def subprocess_run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def optional_groups(tokens: list[str]) -> list[str]:
    """``[output=FILE]`` and ``[filter="..."]``: the README's optional arguments are all exercised."""
    out = []
    for token in tokens:
        if token.startswith("[") and token[1:2].isalpha():
            token = token[1:]
        if token.endswith("]") and "[" not in token:
            token = token[:-1]
        out.append(token)
    return out


PLACEHOLDER_CKPT = re.compile(r"(PATH|REID\.ckpt|reid\.ckpt|attributes\.ckpt|outputs/\S+\.ckpt|/tmp/t2/\S+\.ckpt)$")


def substitute(tokens: list[str], art: Artefacts, out: Path) -> list[str]:
    task = next((t.split("=", 1)[1] for t in tokens if t.startswith("task=")), "attributes")
    course_data = any(t in ("data=market_course", "experiment=attributes_best", "experiment=seed_report") for t in tokens)
    result = []
    for token in tokens:
        key, _, value = token.partition("=")
        if key == "model.init_weights" and PLACEHOLDER_CKPT.search(value):  # a converged run of the same data
            value = art.course_ckpt(task) if course_data else art.reid_ckpt
        elif key in ("ckpt_path", "model.stage1_ckpt") and PLACEHOLDER_CKPT.search(value):
            big = "data.height=256" in tokens and key == "model.stage1_ckpt"
            if key == "model.stage1_ckpt":
                value = art.attributes_ckpt_256 if big else art.attributes_ckpt
            elif course_data:
                value = art.course_ckpt(task)
            elif "attributes.ckpt" in value or (task == "attributes" and "reid" not in value.lower()):
                value = art.attributes_ckpt
            else:
                value = art.reid_ckpt
        elif key == "ckpt_path" and value == "last":
            pass
        elif key == "data.root" and course_data:
            value = art.course
        elif key in ("gallery", "input", "data.root") and value in ("DIR", "DIR_OR_IMAGE", "gal", "syn/test"):
            value = art.synthetic / "test" if key != "data.root" else art.synthetic
        elif key in ("query", "queries"):
            value = art.synthetic / "queries"
        elif key == "images":  # src.compare A.jpg B.jpg: two gallery images
            value = "[" + ",".join(f"'{p}'" for p in sorted((art.synthetic / "test").iterdir())[:2]) + "]"
        elif key == "index" or (key == "output" and "action=info" in tokens):
            value = art.index_dir
        elif key == "output" and value in ("FILE", "FOLDER", "gal_index", "two"):
            value = out / "index"
        elif key == "output" and value.endswith(".onnx"):
            value = out / value
        elif key == "attributes.ensemble":  # members: attribute checkpoints of the same data
            member = art.course_ckpt("attributes") if course_data else art.attributes_ckpt
            value = re.sub(r"\b[A-Z]\.ckpt", str(member), value)
        elif key == "hydra.run.dir":
            continue
        elif key.startswith("ground_truth."):
            value = art.synthetic / ("queries_ground_truth.csv" if key.endswith("query") else "test_ground_truth.csv")
        elif key == "data.source.attribute_mat":
            value = ATTRIBUTE_MAT
        elif key == "data.root" and "data=market_standard" in tokens:
            value = art.standard
        result.append(f"{key}={value}" if _ else token)
    if course_data and not any(t.startswith("data.root=") for t in result):
        result.append(f"data.root={art.course}")
    if task == "reid" and not any(t.startswith("model.stage1_ckpt=") for t in result):
        result.append(f"model.stage1_runs={art.attribute_runs}")
    return result


def tiny_overrides(entry: str, tokens: list[str]) -> list[str]:
    if entry == "release":  # measured on the tiny synthetic data the substituted checkpoint was trained on
        overrides = ",".join(f"'{o}'" for o in [*SYNTHETIC_TINY, "data.num_workers=0"])
        return ["evaluate.data=synthetic", f"evaluate.overrides=[{overrides}]"]
    if entry != "train":  # search, index, serve and compare have no data group
        no_data = entry in ("search", "index", "serve", "compare") or any(t.startswith("data=market") for t in tokens)
        return [] if no_data else SYNTHETIC_TINY
    data = [] if any(t.startswith(("data=market", "experiment=")) for t in tokens) else SYNTHETIC_TINY
    if any(t.startswith("data.unlabelled=") for t in tokens):  # one clustering round, before the second epoch
        rounds = ["trainer.max_epochs=2", "callbacks.pseudo_labels.start_epoch=1", "callbacks.pseudo_labels.min_samples=2"]
        return [*rounds, *(t for t in TRAIN_TINY if not t.startswith("trainer.max_epochs")), *data]
    return [*TRAIN_TINY, *data]


@pytest.fixture(scope="module")
def artefacts(run_folder, cache_dir) -> Artefacts:
    return Artefacts(run_folder / "readme", cache_dir)


def test_commands_are_read_from_every_page():
    """README.md and each docs page that shows shell commands contribute theirs; a page's blocks of another language
    (the HTTP API's request and answer) are not commands."""
    pages = {page.name: page_commands(page) for page in PAGES}
    assert all(pages[name] for name in ("README.md", "getting_started.md", "training.md", "evaluation.md",
                                        "search_and_app.md", "released_weights.md")), pages
    assert not any(c.startswith(("GET", "POST", "{")) for commands in pages.values() for c in commands)


def test_every_readme_command_is_run_here():
    commands = readme_commands()
    assert len(commands) >= 25
    unknown = [c for c in commands if c not in COVERED_ELSEWHERE and runner_of(c) is None]
    assert not unknown, f"README commands without a tiny run in this file: {unknown}"


def runner_of(command: str):
    tokens = shlex.split(command)
    if is_distributed(tokens):
        return "distributed"
    if tokens[:2] == ["python", "-m"] and tokens[2].startswith("src."):
        return "module"
    if tokens[0] == "python" and tokens[1].startswith("bench/"):
        return "bench"
    return None


@pytest.mark.parametrize("command", [c for c in readme_commands() if c not in COVERED_ELSEWHERE])
def test_readme_command_runs_at_tiny_scale(command, artefacts, tmp_path, capsys):
    tokens = optional_groups(shlex.split(command))
    needs_course = any(t in ("data=market_course", "experiment=attributes_best", "experiment=seed_report") for t in tokens)
    if (needs_course and artefacts.course is None) or ("data=market_standard" in tokens and artefacts.standard is None):
        pytest.skip(f"real Market-1501 data not found at {COURSE}")
    if runner_of(command) == "bench":
        return run_bench(tokens, artefacts, tmp_path)
    if runner_of(command) == "distributed":
        return run_distributed(tokens, artefacts, tmp_path)
    entry = tokens[2].removeprefix("src.")
    arguments = tokens[3:]
    if entry == "serve" and command not in EXPECTED_ERRORS:
        return run_server(tokens, artefacts, tmp_path)
    if entry == "data.synthetic":
        result = subprocess_run(["-m", "src.data.synthetic", str(tmp_path / "synthetic"), "--num-train-ids", "12",
                                 "--num-test-ids", "4", "--seed", "0"], tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert len(list((tmp_path / "synthetic" / "train").iterdir())) > 12
        return
    module = importlib.import_module(f"src.{entry}")
    if hasattr(module, "hydra_argv"):  # the entry point's own argv rewriting (action words, filter quoting)
        arguments = module.hydra_argv(["python", *arguments])[1:]
    overrides = substitute(arguments, artefacts, tmp_path)
    if "output=gal_index" in arguments:  # the README's gal_index commands update the index its first command made
        shutil.copytree(artefacts.index_dir, tmp_path / "index")
    if "-m" in overrides:  # a sweep: Hydra's multirun needs the real CLI
        sweep = [o for o in overrides if o != "-m"]
        result = subprocess_run(["-m", f"src.{entry}", "-m", *sweep, *tiny_overrides(entry, sweep),
                                 f"hydra.sweep.dir={tmp_path / 'sweep'}", f"paths.cache_dir={artefacts.cache}"], ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        summaries = list((tmp_path / "sweep").glob("**/summary.csv"))
        assert len(summaries) == 1, summaries
        assert_summary_holds_the_sweep(pd.read_csv(summaries[0]), sweep)
        return
    if "ckpt_path=last" in overrides:  # resuming: an interrupted run in that folder first
        run(entry, [o for o in overrides if o != "ckpt_path=last"] + tiny_overrides(entry, overrides),
            tmp_path / "run", artefacts.cache)
        overrides = [*overrides, "trainer.max_epochs=2"]
    if "experiment=seed_report" in overrides:  # ResNet-34's ImageNet weights need the internet once
        try:
            run(entry, overrides + tiny_overrides(entry, overrides), tmp_path / "run", artefacts.cache)
        except SystemExit as stop:  # offline: the documented one-line error, not a traceback
            assert stop.code == 2
            error = capsys.readouterr().err.strip().splitlines()
            assert len(error) == 1 and "resnet34" in error[0] and "TORCH_HOME" in error[0], error
        return
    if entry == "train":  # the README's long runs (max_epochs 50 + a time budget) at the tiny scale's epochs
        overrides = [o for o in overrides if not (o.startswith("trainer.max_epochs=") and int(o.split("=")[1]) > 2)]
    extra = [o for o in tiny_overrides(entry, overrides) if o.split("=")[0] not in {x.split("=")[0] for x in overrides}]
    extra.append(f"paths.root_dir={tmp_path}")  # default output locations (outputs/index/...) inside the test's folder
    extra.append(f"paths.weights_dir={ROOT / 'weights'}")  # commands without ckpt_path use the shipped networks
    expected = EXPECTED_ERRORS.get(command)
    try:
        run(entry, overrides + extra, tmp_path / "run", artefacts.cache)
    except SystemExit as stop:
        error = capsys.readouterr().err
        assert expected and stop.code == 2 and re.search(expected, error), error
        return
    assert expected is None, f"expected the documented error {expected!r}"
    if " info " in command:  # describes an index: prints only
        assert "images" in capsys.readouterr().out
    elif entry == "compare":  # prints its answer only
        assert " vs " in capsys.readouterr().out
    else:
        assert [p for p in tmp_path.rglob("*") if p.is_file()], "the command wrote nothing"
    if entry == "predict" and "queries=" in command:  # the report's re-ID file, one line per query
        assert len(next(tmp_path.rglob("reid_test.txt")).read_text().splitlines()) == len(list((artefacts.synthetic / "queries").iterdir()))


def assert_summary_holds_the_sweep(summary: pd.DataFrame, sweep: list[str]) -> None:
    """One row per job of the sweep (every combination of the comma-separated values), each with its values and a
    finite score."""
    swept = {key: value.split(",") for key, _, value in (o.partition("=") for o in sweep)
             if "," in value and not value.startswith(("[", "'", '"'))}
    assert swept and len(summary) == int(np.prod([len(values) for values in swept.values()])), (swept, summary)

    def normal(value) -> str:
        text = str(value).strip().lower()
        try:
            return repr(float(text))
        except ValueError:
            return text

    for key, values in swept.items():
        assert sorted(map(normal, summary[key])) == sorted(map(normal, values)), (key, summary[key].tolist())
    scores = summary.select_dtypes("number").drop(columns=[k for k in swept if k in summary], errors="ignore")
    assert not scores.empty and np.isfinite(scores.to_numpy()).any(), summary


def run_bench(tokens: list[str], art: Artefacts, tmp_path: Path) -> None:
    """A benchmark on its ``--small`` data: the attribute-consensus one with the tiny synthetic checkpoints, the
    pseudo-label one with the README's k1 / eps grid, the run comparison on tiny strong-model runs."""
    if tokens[1] == "bench/compare_runs.py":
        argv, figure = [tokens[1]], tmp_path / "curves.png"
        for i, token in enumerate(tokens[2:], start=2):
            if tokens[i - 1] == "--run":
                token = f"{token.partition('=')[0]}={art.reid_ckpt.parents[1]}"
            argv.append(str(figure) if tokens[i - 1] == "--out" else token)
        result = subprocess_run(argv, ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
        assert len(rows) == 1 + tokens.count("--run") and figure.is_file(), result.stdout  # header + one row per run
        return
    if tokens[1] == "bench/bench_pseudo_labels.py":
        grid = [t for t in tokens[2:] if t != "--ckpt" and not t.endswith(".ckpt")]
        result = subprocess_run([tokens[1], "--small", *grid], ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "| val pair F % |" in result.stdout and "| 30 | 0.6 | " in result.stdout, result.stdout
        return
    argv = [tokens[1], "--small", "--threads", "1", "--ckpt", str(art.reid_ckpt), "--ensemble",
            f"{art.attributes_ckpt}@128x64"]
    if "--ensemble-only" in tokens:
        argv.append("--ensemble-only")
    result = subprocess_run(argv, ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "|" in result.stdout


def run_server(tokens: list[str], art: Artefacts, tmp_path: Path) -> None:
    """``python -m src.serve``: started as the README writes it, on 127.0.0.1 whatever ``host`` says (the test never
    opens this machine to others) and a free port; one worker (two are tested in tests/serving/); ``token=TOKEN``
    becomes a random token that requests must then carry. It must answer the page and a search, then stop."""
    import secrets

    import httpx

    from src.serving.launch import running_server

    token = secrets.token_urlsafe(18)
    values = {"index": art.index_dir, "host": "127.0.0.1", "workers": 1, "token": token}
    arguments = [f"{key}={values.get(key, value)}" for key, _, value in
                 (t.partition("=") for t in optional_groups(tokens[3:])) if key != "port"]
    headers = {"Authorization": f"Bearer {token}"} if any(a.startswith("token=") for a in arguments) else {}
    with running_server(arguments, tmp_path / "server.log", headers=headers) as (url, _):
        assert "static/app.js" in httpx.get(f"{url}/", headers=headers).text
        answer = httpx.get(f"{url}/api/search/description", params={"description": "gender=female"}, headers=headers)
        assert answer.status_code == 200 and answer.json()["matches"], answer.text
        if headers:
            assert httpx.get(f"{url}/api/info").status_code == 401


# ------------------------------------------------------------------------------------------------ multi-process
def split_environment(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    """``A=1 B=2 python ...`` -> ({A: 1, B: 2}, [python, ...])."""
    env = {}
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
        key, _, value = tokens.pop(0).partition("=")
        env[key] = value
    return env, tokens


def is_distributed(tokens: list[str]) -> bool:
    """torchrun, variables of a multi-machine launch, or several processes (``trainer.devices`` / ``num_nodes`` > 1)."""
    env, rest = split_environment(list(tokens))
    several = any(re.fullmatch(r"\[?trainer\.(devices|num_nodes)=([2-9]|\d\d+)\]?", t) for t in rest)
    return bool(rest) and (rest[0] == "torchrun" or bool(env) or several)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_distributed(tokens: list[str], art: Artefacts, tmp_path: Path) -> None:
    """A multi-process build as the README writes it, on this machine: every "machine" (``--nnodes`` /
    ``trainer.num_nodes``) is started here with its own node rank, HOST0 is 127.0.0.1; the index must equal the
    index one process makes of the same gallery with the same checkpoint, threads and batch size."""
    from src.retrieval.store import load_index

    environment, tokens = split_environment(list(tokens))
    port = str(free_port())
    local = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    environment = {k: local.get(k, v) for k, v in environment.items()}
    module_at = tokens.index("-m")
    command = [sys.executable]
    if tokens[0] == "torchrun":
        command += ["-m", "torch.distributed.run"]
        for option in tokens[1:module_at]:
            name = option.split("=")[0]
            command.append(f"{name}={local['MASTER_ADDR' if name == '--master_addr' else 'MASTER_PORT']}"
                           if name in ("--master_addr", "--master_port") else option)
    if tokens[module_at + 1] == "src.train":  # a DDP training: Lightning starts the second process itself
        overrides = substitute(optional_groups(tokens[module_at + 2:]), art, tmp_path)
        overrides = [o for o in overrides if not (o.startswith("trainer.max_epochs=") and int(o.split("=")[1]) > 2)]
        tiny = [o for o in tiny_overrides("train", overrides) if o.split("=")[0] not in {x.split("=")[0] for x in overrides}]
        result = subprocess_run(["-m", "src.train", *overrides, *tiny, f"hydra.run.dir={tmp_path / 'run'}",
                                 f"paths.cache_dir={art.cache}"], ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        history = pd.read_csv(tmp_path / "run" / "metrics.csv")
        assert history["val/mAP"].notna().any() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
        return
    module = importlib.import_module(tokens[module_at + 1])
    arguments = module.hydra_argv(["python", *optional_groups(tokens[module_at + 2:])])[1:]
    command += ["-m", tokens[module_at + 1], *substitute(arguments, art, tmp_path), "data.num_workers=0", "batch_size=8"]

    def number(prefixes: tuple[str, ...]) -> int:
        return max([int(a.split("=")[1]) for a in command if a.startswith(prefixes)] or [1])

    nodes = number(("--nnodes=", "trainer.num_nodes="))
    world = nodes * number(("--nproc_per_node=", "trainer.devices="))
    base = {k: v for k, v in os.environ.items()
            if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK", *local)}
    base.update(PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0")
    processes, logs = [], []
    for node in range(nodes):  # each "machine" of the README command, with its node rank
        argv = [f"--node_rank={node}" if a.startswith("--node_rank=") else a for a in command]
        env = {**base, **environment, **({"NODE_RANK": str(node)} if "NODE_RANK" in environment else {})}
        logs.append((tmp_path / f"node{node}.out", tmp_path / f"node{node}.err"))
        with open(logs[-1][0], "w") as out, open(logs[-1][1], "w") as err:
            processes.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err, text=True))
    deadline = time.monotonic() + 600
    try:  # until all are done, one fails (the others would wait for it) or time is up
        while any(p.poll() is None for p in processes) and all(p.poll() in (None, 0) for p in processes):
            assert time.monotonic() < deadline, "the processes did not finish in 10 minutes"
            time.sleep(1)
    finally:
        for p in processes:
            if p.poll() is None:
                p.terminate()  # torchrun passes it on to its workers
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    outputs = [(out.read_text(), err.read_text()) for out, err in logs]
    for node, (p, (_, err)) in enumerate(zip(processes, outputs)):
        assert p.returncode == 0, f"node {node}: {err[-3000:]}"
    settings = [a for a in command if a.startswith(("torch_threads=", "batch_size=", "data.num_workers="))]
    one, many = load_index(art.index_like(settings)), load_index(tmp_path / "index")
    assert f"{len(one)} images ({len(one)} embedded" in outputs[0][0] and f"{world} processes" in outputs[0][0], outputs[0]
    assert list(many.names) == list(one.names) and (many.ids == one.ids).all()
    assert float(abs(many.embeddings - one.embeddings).max()) <= 1e-5
