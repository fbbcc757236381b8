"""The person-search app: a FastAPI application over one index folder (``src.serving.engine``) serving a plain
HTML/JS page (``static/``, no build step) and a JSON API documented at ``/docs`` (OpenAPI; Swagger UI from the
fastapi-offline package's files, so it loads with no internet).

Safe by default: ``src.serve`` binds 127.0.0.1 and refuses another address without a token; with a token every
request must carry it (``Authorization: Bearer TOKEN``, ``?token=TOKEN``, or the cookie the page sets when opened
with ``?token=``). Uploads are capped in bytes (checked on ``Content-Length`` before the body is read) and pixels;
a bad request gets a 4xx with a message naming the problem, never a stack trace. Gallery images are served by
index id only, and only as a regular file inside the gallery folder (symlinks resolved) whose SHA-256 is the one the
index recorded: a file swapped or linked elsewhere after indexing answers 404, with a warning in the server's log.
"""

import json
import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from src.data.attributes import HEADS
from src.errors import KnownError
from src.retrieval.filtering import readable_filter
from src.retrieval.free_text import describe_text
from src.serving.engine import Engine, Limits, Served, UploadError, check_upload, predicted

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "mpr_token"
CONFIG_ENV = "MPR_SERVE_CONFIG"  # JSON of create_app's arguments, for uvicorn --workers (each worker builds its app)
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small form fields beside the file
log = logging.getLogger(__name__)


class Match(BaseModel):
    rank: int
    id: int
    name: str
    distance: float | None = None  # image queries: the index metric's distance (smaller is closer)
    p_same: float | None = None  # image queries: calibrated P(same identity) of the plain distance (released networks)
    score: float | None = None  # description queries: product of the described probabilities (larger is better)
    camera: int | None
    attributes: dict[str, str]
    image: str


class SearchResponse(BaseModel):
    kind: str  # image | id | description
    query: dict
    filter: str | None
    rerank: bool
    gallery_size: int
    passing: int
    generation: str
    offset: int = 0  # the results before these (paging): the first match has rank offset + 1
    matches: list[Match]
    timing_ms: dict[str, float]


class Info(BaseModel):
    folder: str
    images: int
    kind: str
    metric: str
    height: int
    width: int
    generation: str
    searchable_by_image: bool
    attributes: dict[str, list[str]]
    labels: dict[str, dict]  # per attribute: its readable label, and per class its readable value and phrase
    limits: dict[str, int]


class CompareResponse(BaseModel):
    metric: str
    distance: float
    p_same: float | None  # null: the served network carries no calibration (a training checkpoint)
    same: bool | None  # the decision at the operating point: distance <= threshold
    far: float
    threshold: float | None


def _matches(served: Served, matches: list[tuple[int, float]], field: str, p_same: list[float] | None = None,
             offset: int = 0) -> list[Match]:
    index = served.index
    if not matches:
        return []
    rows = [r for r, _ in matches]
    table = index.records.iloc[rows]
    out = []
    for i, ((row, value), (_, record)) in enumerate(zip(matches, table.iterrows())):
        camera = record["camera"]
        out.append(Match(rank=offset + i + 1, id=int(index.ids[row]), name=str(record["name"]), **{field: value},
                         p_same=None if p_same is None else p_same[i],
                         camera=None if pd.isna(camera) else int(camera),
                         attributes={h.name: str(record[h.name]) for h in HEADS}, image=f"api/images/{int(index.ids[row])}"))
    return out


def _response(kind: str, result: dict, query: dict, filter, rerank: bool, started: float, field: str = "distance",
              offset: int = 0) -> SearchResponse:
    """The answer to a search of ``offset + top_k`` results: the ones after the first ``offset`` (paging)."""
    served = result["served"]
    timing = {k: round(1000 * v, 2) for k, v in result["timing"].items()}
    timing["total"] = round(1000 * (time.perf_counter() - started), 2)
    p_same = result.get("p_same")
    return SearchResponse(kind=kind, query=query, filter=filter or None, rerank=rerank, gallery_size=len(served.index),
                          passing=result["passing"], generation=served.generation, offset=offset,
                          matches=_matches(served, result["matches"][offset:], field, p_same and p_same[offset:], offset),
                          timing_ms=timing)


class HideToken(logging.Filter):
    """uvicorn's access log shows ``token=***`` for a request opened with ``?token=``, never the token."""

    QUERY = re.compile(r"((?:^|[?&])token=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def create_app(index: str | Path, token: str | None = None, limits: Limits | dict | None = None,
               reload_every: float = 1.0, allowed_hosts: list[str] | None = None, postprocess: dict | None = None
               ) -> FastAPI:
    """The app over the index folder ``index``; ``token``: required on every request when set; ``allowed_hosts``:
    the Host header names answered (others get a 400: a page whose DNS name was rebound to this address reads
    nothing), None for any; ``postprocess``: the re-ranking toggle's settings (conf/postprocess)."""
    limits = Limits(**limits) if isinstance(limits, dict) else limits or Limits()
    engine = Engine(index, limits, reload_every, postprocess)
    app = FastAPI(title="market-par-reid person search",
                  description="Search a gallery index by photo or by description (predicted attributes). "
                              "Gallery images are served by index id only.", version="1", docs_url=None, redoc_url=None)
    app.state.engine = engine
    access_log = logging.getLogger("uvicorn.access")
    if token is not None and not any(isinstance(f, HideToken) for f in access_log.filters):
        access_log.addFilter(HideToken())

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token is not None:
            given = (request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                     or request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or "")
            if not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "missing or wrong token: send Authorization: Bearer TOKEN "
                                               "(or open the page with ?token=TOKEN)"}, status_code=401)
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                return JSONResponse({"detail": "Content-Length required for uploads"}, status_code=411)
            if not length.isdigit():
                return JSONResponse({"detail": f"Content-Length {length!r} is not a number of bytes"}, status_code=400)
            files = 2 if request.url.path.endswith("/api/compare") else 1  # each file within the limit
            if int(length) > files * limits.max_upload_bytes + FORM_OVERHEAD:
                return JSONResponse({"detail": f"request of {length} bytes is over the upload limit of "
                                               f"{limits.max_upload_bytes} bytes per image"}, status_code=413)
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 (a bug must not show a stack trace to the client; it is logged here)
            log.exception("request %s %s failed", request.method, request.url.path)
            return JSONResponse({"detail": "internal error (logged by the server)"}, status_code=500)
        response.headers["X-Served-By"] = str(os.getpid())  # which worker answered (uvicorn --workers)
        if token is not None and request.query_params.get("token") == token and request.url.path == "/":
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(UploadError)
    async def bad_upload(request: Request, err: UploadError):
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.exception_handler(KnownError)
    async def known(request: Request, err: KnownError):
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.exception_handler(KeyError)
    async def missing(request: Request, err: KeyError):
        return JSONResponse({"detail": str(err.args[0]) if err.args else "not found"}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=422)

    TopK = Annotated[int, Query(ge=1, le=limits.max_top_k, description="results to return")]
    Offset = Annotated[int, Query(ge=0, le=limits.max_rank - 1, description="results to skip first (paging)")]
    Filter = Annotated[str | None, Query(max_length=500, description='predicted attributes, e.g. "upcolor=red,backpack=yes"')]

    def deepest(top_k: int, offset: int) -> int:
        """The results a page of ``top_k`` after ``offset`` needs ranked; paging stops at ``max_rank``."""
        if offset + top_k > limits.max_rank:
            raise KnownError(f"offset {offset} + top_k {top_k} is past rank {limits.max_rank}, the deepest this server "
                             "pages to (max_rank)")
        return offset + top_k

    async def upload(file: UploadFile) -> bytes:
        """The uploaded bytes, checked (size, header, pixels); an UploadError naming the file and what is wrong."""
        data = await file.read(limits.max_upload_bytes + 1)
        try:
            check_upload(data, limits)
        except UploadError as err:
            raise UploadError(err.status, f"{file.filename or 'the upload'}: {err}") from None
        return data

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    def docs():  # Swagger UI from the fastapi-offline package's files (Swagger UI 5), never from a CDN: it works offline
        return get_swagger_ui_html(openapi_url="openapi.json", title=f"{app.title} - API",
                                   swagger_js_url="static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="static/swagger/swagger-ui.css", swagger_favicon_url="static/favicon.svg")

    @app.get("/api/info", response_model=Info, summary="The served index: size, kind, input size, attribute values")
    def info() -> Info:
        served = engine.served
        index = served.index
        return Info(folder=str(index.folder.name), images=len(index), kind=index.kind, metric=index.metric,
                    height=index.height, width=index.width, generation=served.generation,
                    searchable_by_image=bool(index.checkpoint), attributes={h.name: list(h.classes) for h in HEADS},
                    labels={h.name: h.readable() for h in HEADS},
                    limits={"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                            "max_top_k": limits.max_top_k, "max_rank": limits.max_rank})

    @app.post("/api/search/image", response_model=SearchResponse, summary="Search by an uploaded photo",
              responses={400: {"description": "empty, truncated or undecodable image; bad filter"},
                         413: {"description": "upload over the byte or pixel limit"}, 415: {"description": "not an image"}})
    async def search_image(file: Annotated[UploadFile, File(description="the query photo")],
                           top_k: Annotated[int, Form(ge=1, le=limits.max_top_k)] = 20,
                           filter: Annotated[str | None, Form(max_length=500)] = None,
                           rerank: Annotated[bool, Form()] = False,
                           offset: Annotated[int, Form(ge=0, le=limits.max_rank - 1)] = 0) -> SearchResponse:
        started = time.perf_counter()
        data = await upload(file)
        result = await run_in_threadpool(engine.search_upload, data, deepest(top_k, offset), filter, rerank)
        return _response("image", result, result["query"], filter, rerank, started, offset=offset)

    @app.get("/api/search/id/{image_id}", response_model=SearchResponse, summary="Search from a gallery image (by id)")
    def search_id(image_id: int, top_k: TopK = 20, filter: Filter = None, rerank: bool = False, offset: Offset = 0
                  ) -> SearchResponse:
        started = time.perf_counter()
        served = engine.served
        row = engine.row_of_id(served, image_id)
        result = engine.search_row(row, deepest(top_k, offset), filter, rerank, served)
        return _response("id", result, {"id": image_id, "name": str(served.index.names[row])}, filter, rerank, started,
                         offset=offset)

    @app.get("/api/search/description", response_model=SearchResponse,
             summary="Search by description: rank the gallery by its predicted attribute probabilities")
    def search_description(description: Annotated[str | None, Query(min_length=1, max_length=500,
                                                                    description='e.g. "upcolor=red,backpack=yes"')] = None,
                           text: Annotated[str | None, Query(max_length=500, description='free text instead, e.g. '
                                                             '"woman, red top, backpack"')] = None,
                           top_k: TopK = 20, filter: Filter = None, offset: Offset = 0) -> SearchResponse:
        started = time.perf_counter()
        query = described(description, text)
        result = engine.search_description(query["description"], deepest(top_k, offset), filter)
        query.update(description=result["description"], readable=readable_filter(result["conditions"]))
        return _response("description", result, query, filter, False, started, "score", offset)

    @app.post("/api/attributes", summary="Predicted attributes of an uploaded photo",
              responses={400: {"description": "empty, truncated or undecodable image"},
                         413: {"description": "upload over the byte or pixel limit"}, 415: {"description": "not an image"}})
    async def attributes(file: Annotated[UploadFile, File(description="a photo of a person")]) -> dict:
        started = time.perf_counter()
        data = await upload(file)
        _, probabilities, _ = await run_in_threadpool(engine.embed, data)
        return {"attributes": predicted(probabilities), "timing_ms": {"total": round(1000 * (time.perf_counter() - started), 2)}}

    @app.post("/api/compare", response_model=CompareResponse,
              summary="Same person or not: two uploaded photos -> distance, calibrated P(same identity), decision",
              responses={400: {"description": "empty, truncated or undecodable image; no operating point at far"},
                         413: {"description": "upload over the byte or pixel limit"}, 415: {"description": "not an image"}})
    async def compare(first: Annotated[UploadFile, File(description="a photo of a person")],
                      second: Annotated[UploadFile, File(description="another photo")],
                      far: Annotated[float, Form(gt=0, lt=1, description="false accept rate of the decision")] = 0.01
                      ) -> CompareResponse:
        one, two = await upload(first), await upload(second)
        return CompareResponse(**await run_in_threadpool(engine.compare_uploads, one, two, far))

    @app.get("/api/images/{image_id}", summary="A gallery image by its index id (never by path)",
             responses={404: {"description": "no such id"}})
    def image(image_id: int):
        data, media_type = engine.image(image_id)
        return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return RedirectResponse("static/favicon.svg")

    app.mount("/static/swagger", StaticFiles(packages=[("fastapi_offline", "static")]), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts, www_redirect=False)
    return app


def described(description: str | None, text: str | None) -> dict:
    """The query of a description search: ``description`` as given, or parsed from free ``text`` with what was
    understood and the words that were not; a KnownError (400) when neither or both are given, or nothing was understood."""
    if (description is None) == (text is None):
        raise KnownError("pass description=attribute=value,... or text=free words (e.g. woman, red top, backpack), one of the two")
    if text is None:
        return {"description": description}
    parsed = describe_text(text)
    return {"description": parsed.description, "text": text, "understood": [{"words": w, "meaning": m} for w, m in parsed.understood],
            "unknown": parsed.unknown}


def app_from_environment() -> FastAPI:
    """The app as ``src.serve`` configured it (``MPR_SERVE_CONFIG``): the factory each uvicorn worker calls."""
    config = json.loads(os.environ[CONFIG_ENV])
    import torch

    torch.set_num_threads(int(config.pop("torch_threads", 1)))
    return create_app(**config)
