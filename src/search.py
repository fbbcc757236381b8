"""Search a gallery index: ``python -m src.search index=FOLDER query=IMG_OR_DIR top_k=20 [filter="upcolor=red,backpack=yes"]
[postprocess.rerank.enabled=true] [postprocess.query_expansion.enabled=true]``; without ``query``, ``filter`` (or free
words: ``text="woman, red top"``) is a description that ranks the whole gallery by its predicted attribute
probabilities (``src/retrieval/describe.py``).

Prints the ranked matches with their distances, and writes into the run folder ``search_results.csv`` (query, rank,
gallery image, distance, the gallery image's predicted attributes), ``search.html`` (a self-contained report) and
``grids/<query>.png`` (query + top-k). ``filter`` keeps only gallery images whose *predicted* attributes match, inside
the faiss search; a gallery file byte-identical to the query is never reported; re-ranking and query expansion work
on the returned candidates. The work is done in ``src.retrieval`` (``search``, ``outputs``).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.cli import command
from src.errors import ConfigError
from src.io.atomic import check_writable, write_csv
from src.runtime import apply_threads


def hydra_argv(argv: list[str]) -> list[str]:
    """Quote an unquoted ``filter=a=b,c=d`` or ``text=woman, red top`` for Hydra (whose grammar reads ``=`` and ``,`` as
    syntax)."""
    out = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("filter", "text") and value and value[0] not in "'\"{[" and ("=" in value or "," in value):
            value = value.replace("\\", "\\\\").replace("'", "\\'")
            arg = f"{key}='{value}'"
        out.append(arg)
    return out


@command("search", argv=hydra_argv)
def main(cfg: DictConfig) -> None:
    # Everything that can be checked from the config and the index (manifest and records: no torch, no faiss) is
    # checked before a network loads or an image is decoded; the libraries load after that.
    from src.retrieval.checks import check_search
    from src.retrieval.store import load_index

    index = load_index(cfg.index)
    postprocess = OmegaConf.to_container(cfg.postprocess)
    check_search(index, filter=cfg.get("filter"), postprocess=postprocess, kind=cfg.get("kind"),
                 height=cfg.data.height, width=cfg.data.width)
    check_writable(Path(cfg.paths.output_dir))
    from src.retrieval.kinds import use_threads

    use_threads(apply_threads(cfg.get("torch_threads")))
    if cfg.get("text") and cfg.get("query") is not None:
        raise ConfigError("text= is a description in words, for a search without query=; with a photo use filter=")
    if cfg.get("query") is None:  # search by description: rank the gallery by its predicted attributes
        return describe_main(cfg, index)
    from src.retrieval.outputs import format_results, result_identities, write_search_outputs
    from src.retrieval.search import search

    result = search(
        index, cfg.query, top_k=cfg.top_k, filter=cfg.get("filter"), postprocess=postprocess, metric=cfg.get("metric"),
        ckpt_path=cfg.get("ckpt_path"), batch_size=cfg.batch_size, num_workers=cfg.num_workers, kind=cfg.get("kind"),
        height=cfg.data.height, width=cfg.data.width, subfolders=cfg.subfolders, **OmegaConf.to_container(cfg.faiss),
    )
    truth = cfg.get("ground_truth") or {}
    query_pids, gallery_pids = result_identities(result, truth.get("query"), truth.get("gallery"))
    print(format_results(result, cfg.print_queries, query_pids, gallery_pids))
    written = write_search_outputs(result, cfg.paths.output_dir, grids=cfg.visual.grids, html=cfg.visual.html,
                                   max_visual_queries=cfg.visual.max_queries, query_pids=query_pids, gallery_pids=gallery_pids)
    grids = sum(k.startswith("grid:") for k in written)
    print(f"\nwrote {written['csv']}" + (f", {written['html']}" if "html" in written else "")
          + (f" and {grids} grid{'s' if grids != 1 else ''} in {Path(cfg.paths.output_dir) / 'grids'}" if grids else ""))


def describe_main(cfg: DictConfig, index) -> None:
    from src.retrieval.describe import describe_index, description_frame, format_description
    from src.retrieval.free_text import describe_text, said_back
    from src.retrieval.outputs import write_description_outputs

    description, filter = cfg.get("filter"), None
    if cfg.get("text"):  # free words (src/retrieval/free_text.py); a filter then keeps only the images matching it
        parsed = describe_text(cfg.text)
        print(said_back(parsed))
        description, filter = parsed.description, description
    if not description:
        raise ConfigError("pass query=IMG_OR_DIR to search by image, or a description filter=\"upcolor=red,gender=female\" "
                          "or text=\"woman, red top\" (no query) to rank the gallery by its predicted attributes")
    result = describe_index(index, description, cfg.top_k, filter)
    print(format_description(result, index))
    path = write_csv(Path(cfg.paths.output_dir) / "search_results.csv", description_frame(result, index))
    written = write_description_outputs(result, index, cfg.paths.output_dir, grids=cfg.visual.grids, html=cfg.visual.html)
    print(f"\nwrote {', '.join(map(str, [path, *written.values()]))}")


if __name__ == "__main__":
    main()
