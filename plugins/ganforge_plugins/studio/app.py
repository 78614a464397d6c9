"""The studio's web app: a small Starlette (ASGI) app over :class:`~.engine.Studio`, serving one page
of plain HTML and JavaScript from this package (no CDN: it works offline).

Every endpoint takes JSON and answers JSON, an image or a file to download. Bad input is answered
with ``{"error": "..."}`` naming the field and the value (HTTP 400, 413 for an upload that is too
large, 404 for an unknown job or file); a failure of ours with a 500 and a sentence, its traceback
going to the server's log, never to the page.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ganforge import GanforgeError, png_bytes
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ganforge_plugins.studio.engine import (
    MAX_INVERT_STEPS,
    MAX_UPLOAD_BYTES,
    GridRequest,
    InterpolationRequest,
    State,
    StripRequest,
    Studio,
    parse,
)

STATIC = Path(__file__).with_name("static")
MAX_JSON_BYTES = 1024 * 1024
INTERPOLATION_FORMATS = ("json", "png", "gif")


class TooLarge(Exception):
    pass


DRAIN_BYTES = 256 * 1024 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes. What is over is read and dropped (up to
    ``DRAIN_BYTES``), not kept: a client still sending when the answer comes would see a broken
    connection instead of the message."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_BYTES:
            break
    if size > limit:
        declared = request.headers.get("content-length", "")
        what = f"{int(declared):,} bytes" if declared.isdigit() else "more bytes"
        raise TooLarge(f"{what}, more than the {limit:,} bytes the studio takes")
    return b"".join(chunks)


async def read_json(request: Request) -> Any:
    body = await read_body(request, MAX_JSON_BYTES)
    try:
        return json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GanforgeError(f"request: the body is not JSON ({exc})") from None


def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except TooLarge as exc:
            return JSONResponse({"error": f"upload: {exc}"}, status_code=413)
        except GanforgeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc} (details in the server's "
                                          "log)"}, status_code=500)

    return endpoint


def download(data: bytes, media_type: str, filename: str, headers: dict[str, str] | None = None) -> Response:
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})})


def class_of(request: Request) -> int | None:
    value = request.query_params.get("class_index", "")
    if value in ("", "null"):
        return None
    if not re.fullmatch(r"-?[0-9]{1,9}", value):
        raise GanforgeError(f"class_index: expected a class index, got {value!r}")
    return int(value)


def create_app(studio: Studio) -> Starlette:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(studio.info))

    async def grid(request: Request) -> Response:
        req = parse(GridRequest, await read_json(request), "grid request")
        return JSONResponse({"images": await run_in_threadpool(studio.grid, req)})

    async def render(request: Request) -> Response:
        raw = await read_json(request)
        req = parse(State, raw.get("state", {}) if isinstance(raw, dict) else raw, "state")
        out = await run_in_threadpool(studio.render_state, req)
        return JSONResponse({**out, "request": raw.get("request") if isinstance(raw, dict) else None})

    async def directions(request: Request) -> Response:
        class_index = class_of(request)
        return JSONResponse({"directions": [studio.direction_view(d, class_index)
                                            for d in studio.directions.values()]})

    async def fit(request: Request) -> Response:
        raw = await read_json(request)
        if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
            raise GanforgeError("fit: expected {\"key\": DIRECTION, \"class_index\": K or null}")
        class_index = raw.get("class_index")
        if class_index is not None and (not isinstance(class_index, int) or isinstance(class_index, bool)):
            raise GanforgeError(f"fit.class_index: expected a class index or null, got {class_index!r}")
        job, joined = await run_in_threadpool(studio.fit, raw["key"], class_index)
        return JSONResponse({"job": job, "joined": joined})

    async def job(request: Request) -> Response:
        view = studio.jobs.get(request.path_params["job_id"])
        if view is None:
            return JSONResponse({"error": f"no job {request.path_params['job_id']!r} on this server"}, status_code=404)
        return JSONResponse(view)

    async def invert(request: Request) -> Response:
        name = request.query_params.get("name") or "upload"
        method = request.query_params.get("method") or "hybrid"
        steps_text = request.query_params.get("steps", "")
        if steps_text and not (re.fullmatch(r"[0-9]{1,9}", steps_text) and 1 <= int(steps_text) <= MAX_INVERT_STEPS):
            raise GanforgeError(f"steps: expected a whole number of steps in [1, {MAX_INVERT_STEPS}], "
                                f"got {steps_text[:40]!r}")
        data = await read_body(request, MAX_UPLOAD_BYTES)
        job = await run_in_threadpool(studio.invert, data, name, method=method,
                                      steps=int(steps_text) if steps_text else None, class_index=class_of(request))
        return JSONResponse({"job": job})

    async def export_image(request: Request) -> Response:
        req = parse(State, await read_json(request), "state")
        image, _, _ = await run_in_threadpool(studio.image, req)
        return download(png_bytes(image, nrow=1), "image/png", f"seed-{req.seed}.png")

    async def export_strip(request: Request) -> Response:
        req = parse(StripRequest, await read_json(request), "strip request")
        return download(await run_in_threadpool(studio.strip, req), "image/png", "edit-strip.png")

    async def interpolation(request: Request) -> Response:
        # Checked before rendering: an unknown format was silently answered as JSON, after the work.
        fmt = request.query_params.get("format", "json")
        if fmt not in INTERPOLATION_FORMATS:
            raise GanforgeError(f"format: expected one of {', '.join(INTERPOLATION_FORMATS)}, got {fmt[:40]!r}")
        req = parse(InterpolationRequest, await read_json(request), "interpolation request")
        png, gif, notes = await run_in_threadpool(studio.interpolation, req)
        if fmt == "png":
            return download(png, "image/png", "interpolation.png")
        if fmt == "gif":
            return download(gif, "image/gif", "interpolation.gif")
        return JSONResponse({"strip": "data:image/png;base64," + base64.b64encode(png).decode(),
                             "gif": "data:image/gif;base64," + base64.b64encode(gif).decode(), "notes": notes})

    async def export_latent(request: Request) -> Response:
        req = parse(State, await read_json(request), "state")
        data, _, path = await run_in_threadpool(studio.export_latent, req)
        return download(data, "application/octet-stream", path.name, {"X-Ganforge-Saved": str(path)})

    async def exported(request: Request) -> Response:
        name = request.path_params["name"]
        folder = (studio.out / "exports").resolve()
        path = (folder / name).resolve()
        if path.parent != folder or not path.is_file():
            return JSONResponse({"error": f"no exported file {name!r}"}, status_code=404)
        return FileResponse(path, filename=name)

    routes = [
        Route("/", index),
        Route("/api/info", guarded(info)),
        Route("/api/grid", guarded(grid), methods=["POST"]),
        Route("/api/render", guarded(render), methods=["POST"]),
        Route("/api/directions", guarded(directions)),
        Route("/api/fit", guarded(fit), methods=["POST"]),
        Route("/api/jobs/{job_id}", guarded(job)),
        Route("/api/invert", guarded(invert), methods=["POST"]),
        Route("/api/export/image", guarded(export_image), methods=["POST"]),
        Route("/api/export/strip", guarded(export_strip), methods=["POST"]),
        Route("/api/interpolation", guarded(interpolation), methods=["POST"]),
        Route("/api/export/latent", guarded(export_latent), methods=["POST"]),
        Route("/api/exports/{name}", guarded(exported)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
