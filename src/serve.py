"""The person-search app: ``python -m src.serve index=FOLDER [port=8000] [workers=1] [host=127.0.0.1] [token=SECRET]``.

Serves a page (query by photo or drag-and-drop, attribute filters, browsing by description, click a result to
search from it, re-ranking toggle, per-query timing) and a JSON API documented at ``/docs`` over one index folder
(``python -m src.index build``). It binds 127.0.0.1; another address needs a token, which every request must then
carry: best from ``$MPR_SERVE_TOKEN`` or ``token_file=PATH`` (a ``token=`` on the command line is visible to other
users in ``ps``; it is taken out of the arguments before Hydra reads them, so no Hydra message echoes it).
``workers=N`` starts N uvicorn processes on the same folder; each picks up a new index generation when a build
commits one. The app is ``src.serving.app``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import warnings

from omegaconf import DictConfig, OmegaConf

from src.cli import command
from src.errors import ConfigError

LOOPBACK_NAMES = {"localhost"}
TOKEN_ENV = "MPR_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_config(cfg: DictConfig) -> dict:
    """create_app's arguments from the config; refuses a non-loopback address without a token."""
    from src.config import check_ranges

    check_ranges(cfg)  # port, workers, limits: one line naming the key, not a traceback deep in uvicorn
    token = cfg.get("token") or os.environ.get(TOKEN_ENV) or read_token_file(cfg.get("token_file"))
    if not is_loopback(str(cfg.host)) and not token:
        raise ConfigError(f"host={cfg.host} exposes the server beyond this machine; pass token=SECRET (or set "
                          "MPR_SERVE_TOKEN), which every request must then carry, or keep host=127.0.0.1")
    if token is not None and len(str(token)) < 16:
        raise ConfigError("token: use at least 16 characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe())')")
    from src.retrieval.store import load_index

    check_gallery_files(load_index(cfg.index))  # a missing or broken index is an error now, not in every worker
    return {"index": os.path.abspath(cfg.index), "token": None if token is None else str(token),
            "limits": {"max_upload_bytes": int(cfg.max_upload_bytes), "max_pixels": int(cfg.max_pixels),
                       "max_top_k": int(cfg.max_top_k), "max_rank": int(cfg.max_rank), "max_decodes": int(cfg.max_decodes)},
            "reload_every": float(cfg.reload_every), "torch_threads": int(cfg.torch_threads),
            "allowed_hosts": allowed_hosts(cfg), "postprocess": postprocess_settings(cfg)}


def postprocess_settings(cfg: DictConfig) -> dict | None:
    """conf/postprocess as composed for the app's re-ranking toggle (None: the file's defaults)."""
    return OmegaConf.to_container(cfg.postprocess) if cfg.get("postprocess") is not None else None


def allowed_hosts(cfg: DictConfig) -> list[str]:
    """The Host header names the app answers (``allowed_hosts``, else the bound address's own names: a page of another
    site whose DNS name is rebound to this address sends its own name and is refused); ``0.0.0.0``/``::`` answer
    any name, as a token is required there."""
    if cfg.get("allowed_hosts"):
        return [str(name) for name in cfg.allowed_hosts]
    host = str(cfg.host)
    if host in ("0.0.0.0", "::"):
        return ["*"]
    names = {f"[{host}]" if ":" in host else host}
    return sorted(names | {"localhost", "127.0.0.1", "[::1]"} if is_loopback(host) else names)


def read_token_file(path) -> str | None:
    if path is None:
        return None
    try:
        token = open(path).read().strip()  # noqa: SIM115 (read at once)
    except OSError as err:
        raise ConfigError(f"token_file={path}: {err.strerror} (a file holding the token on its first line)") from None
    if not token:
        raise ConfigError(f"token_file={path}: empty (a file holding the token on its first line)")
    return token


def token_out_of_argv(argv: list[str]) -> list[str]:
    """The arguments without ``token=SECRET``, which goes into this process's ``$MPR_SERVE_TOKEN`` instead: Hydra
    echoes its overrides ("Error executing job with overrides: [...]"). Says once that ``ps`` shows it anyway."""
    kept = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "token" and value:
            os.environ[TOKEN_ENV] = value.strip("'\"")
            print(f"warning: token= on the command line is visible to other users of this machine (ps); set "
                  f"${TOKEN_ENV} or pass token_file=PATH instead", file=sys.stderr)
            continue
        kept.append(arg)
    return kept


def check_gallery_files(index) -> None:
    """Gallery images moved or deleted since indexing: one warning at start, also when none is left (the searches
    rank the stored embeddings, so they still work; the pictures of the missing images answer 404)."""
    from src.retrieval.store import MissingGalleryFilesWarning

    missing = index.missing_files()
    if missing:
        gone = (f"none of its {len(index)} gallery images is in {index.gallery} any more" if len(missing) == len(index)
                else f"{len(missing)} of its {len(index)} gallery images are not in {index.gallery}")
        warnings.warn(f"{index.folder}: {gone} (moved or deleted since indexing?), e.g. {missing[:3]}; searches still "
                      "rank them from the stored embeddings, their pictures answer 404. Index the folder where they "
                      f"are now: {index.reindex_command()}", MissingGalleryFilesWarning, stacklevel=2)


@command("serve", argv=token_out_of_argv)
def main(cfg: DictConfig) -> None:
    config = app_config(cfg)  # checked before the app's libraries (torch, faiss, fastapi) load
    import uvicorn

    from src.serving.app import CONFIG_ENV

    os.environ[CONFIG_ENV] = json.dumps(config)
    host = f"[{cfg.host}]" if ":" in str(cfg.host) else cfg.host
    print(f"serving {cfg.index} on http://{host}:{cfg.port}/ (API: /docs), {cfg.workers} worker(s)", flush=True)
    uvicorn.run("src.serving.app:app_from_environment", factory=True, host=str(cfg.host), port=int(cfg.port),
                workers=int(cfg.workers), log_level=str(cfg.log_level),
                timeout_worker_healthcheck=int(cfg.worker_healthcheck_timeout))


if __name__ == "__main__":
    main()
