"""Pages: one Jinja2 environment (autoescaped), the response headers every console page carries."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from simpul.access.principal import Principal
from simpul.access.roles import Permission

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# No inline script or style, no framing, no referrer (a URL never holds patient data, but the
# console's own paths are nobody else's business), and no caching of pages that show patient data.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(value: float | None) -> str:
    if not value:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) + " UTC"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _pretty(text: str | None) -> str:
    """JSON indented for reading; anything else as it is."""
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                          trim_blocks=True, lstrip_blocks=True)
environment.filters.update(when=_when, age=_age, pretty=_pretty)


def page(request: Request, template: str, *, status: int = 200, who: Principal | None = None,
         **context: Any) -> HTMLResponse:
    nav = []
    if who is not None:
        for label, path, permission in (("Dashboard", "/console/", Permission.DASHBOARD_READ),
                                        ("Messages", "/console/messages", Permission.MESSAGES_READ),
                                        ("Dead letters", "/console/dead-letters", Permission.DEAD_LETTERS_READ),
                                        ("Channels", "/console/channels", Permission.CHANNELS_READ),
                                        ("Audit", "/console/audit", Permission.AUDIT_READ),
                                        ("Users and tokens", "/console/users", Permission.USERS_ADMIN)):
            if who.can(permission):
                nav.append((label, path))
    body = environment.get_template(template).render(
        who=who, nav=nav, csrf_token=who.csrf_token if who else context.pop("csrf_token", ""), **context)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
