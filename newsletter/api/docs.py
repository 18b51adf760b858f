"""The API's documentation page, ``GET /docs``: Swagger UI served from this server.

The Swagger UI files come from the ``fastapi-offline`` package (no CDN: the page works on a
network without Internet access); the page reads ``/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)
ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


def assets_dir() -> Path:
    """Where the installed ``fastapi_offline`` package keeps Swagger UI."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


@router.get("/docs")
def docs() -> HTMLResponse:
    """Swagger UI for ``/openapi.json`` (authorize with an API key to try the routes)."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="newsletter API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
    )


@router.get("/docs/assets/{name}")
def asset(name: str) -> FileResponse:
    """One of the Swagger UI files (only those three names are served)."""
    if name not in ASSETS:
        raise HTTPException(404, f"no documentation asset {name!r}")
    return FileResponse(assets_dir() / name, media_type=ASSETS[name])
