"""Staff pages: Jinja2 templates (autoescaped) and the staff stylesheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
    auto_reload=False,
)


def page(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A staff page; every page gets ``url`` (the staff app's URL for a route name) and the
    session, if any, for the header and the CSRF token of its forms."""
    html = _env.get_template(template).render(
        url=lambda name, **params: str(request.url_for(name, **params)),
        session=getattr(request.state, "session", None),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"cache-control": "no-store"})


def markup(html: str) -> Markup:
    """Trusted markup to place in a page as it is (server-rendered SVG charts)."""
    return Markup(html)  # noqa: S704 - SVG rendered by vl-convert from our own specs


def standalone(template: str, **context: Any) -> str:
    """A document that stands alone (a publication's summary): no request, no session."""
    return _env.get_template(template).render(**context)
