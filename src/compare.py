"""Same person or not: ``python -m src.compare A.jpg B.jpg [far=0.01] [ckpt_path=PATH]``."""

from __future__ import annotations

from omegaconf import DictConfig

from src.cli import command
from src.errors import ConfigError
from src.models.shipped import checkpoint_or_shipped
from src.runtime import apply_threads


def hydra_argv(argv: list[str]) -> list[str]:
    """The two image paths given bare become ``images=[A,B]`` (quoted for Hydra's grammar)."""
    bare = [a for a in argv[1:] if "=" not in a and not a.startswith("-")]
    if not bare:
        return argv
    quoted = ",".join("'" + a.replace("\\", "\\\\").replace("'", "\\'") + "'" for a in bare)
    return [argv[0], f"images=[{quoted}]", *(a for a in argv[1:] if a not in bare)]


@command("compare", argv=hydra_argv)
def main(cfg: DictConfig) -> None:
    images = list(cfg.images or [])
    if len(images) != 2:
        raise ConfigError(f"images: give two images to compare (got {len(images)}): python -m src.compare A.jpg B.jpg")
    apply_threads(cfg.get("torch_threads"))
    from src.retrieval.verify import compare_images, describe

    ckpt_path = checkpoint_or_shipped(cfg.ckpt_path, cfg.paths, "reid", "src.compare")
    print(describe(compare_images(ckpt_path, images[0], images[1], float(cfg.far))))


if __name__ == "__main__":
    main()
