"""Rendering survivor pages: Jinja2 templates, translated texts, static files with SRI hashes."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from feedback.i18n import LANGUAGE_NAMES, Catalogues

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
RECEIPT_SLOT = "RECEIPT-SLOT-7f3a9c"


@dataclass(frozen=True, slots=True)
class Asset:
    url: str
    integrity: str


def static_assets(directory: Path = STATIC) -> dict[str, Asset]:
    """Each static file's URL (with a content hash, so it can be cached for good) and its
    Subresource Integrity value."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            data = path.read_bytes()
            digest = base64.b64encode(hashlib.sha384(data).digest()).decode()
            version = hashlib.sha256(data).hexdigest()[:12]
            found[path.name] = Asset(f"/static/{path.name}?v={version}", f"sha384-{digest}")
    return found


class CachedStatic(StaticFiles):
    """Static files are named by content hash in every page, so browsers may keep them."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


class Pages:
    def __init__(self, catalogues: Catalogues, *, exit_url: str) -> None:
        self.catalogues = catalogues
        self.exit_url = exit_url
        self.assets = static_assets()
        self._thanks: dict[tuple[str, tuple[str, ...]], str] = {}
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,  # templates ship with the code; no stat() per render
        )

    def render_thanks(self, *, language: str, notes: list[str], receipt: str) -> HTMLResponse:
        """The thanks page: rendered once per language and notes, then only the receipt code
        (which needs no escaping: base32 and dashes) changes. It is on the ingest hot path."""
        key = (language, tuple(notes))
        page = self._thanks.get(key)
        if page is None:
            if len(self._thanks) > 256:
                self._thanks.clear()
            html = self.render("thanks.html", language=language, notes=notes, receipt=RECEIPT_SLOT)
            page = self._thanks[key] = bytes(html.body).decode()
        return HTMLResponse(page.replace(RECEIPT_SLOT, receipt))

    def render(
        self,
        template: str,
        *,
        language: str,
        status: int = 200,
        path: str = "",
        languages: tuple[str, ...] = (),
        **context: Any,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(
            _=self.catalogues.gettext(language),
            lang=language,
            assets=self.assets,
            exit_url=self.exit_url,
            switch_to=[
                (code, LANGUAGE_NAMES.get(code, code)) for code in languages if code != language
            ],
            path=path,
            **context,
        )
        return HTMLResponse(html, status_code=status)
