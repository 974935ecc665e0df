"""What every console page shares: the Jinja2 environment, its navigation, and the headers a page is
served with (a Content-Security-Policy that lets scripts, styles and connections come from the API's
own origin only, plus the S3 endpoint that presigned media and upload URLs name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .contract import console_contract
from .settings import ConsoleSettings

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_PATH = "/console/static"

# (path, label, the page's name): the main navigation, in this order
NAV: tuple[tuple[str, str, str], ...] = (
    ("/console/", "Dashboard", "dashboard"),
    ("/console/jobs", "Jobs", "jobs"),
    ("/console/upload", "Upload", "upload"),
    ("/console/assets", "Assets", "assets"),
    ("/console/templates", "Templates", "templates"),
    ("/console/rules", "Rules", "rules"),
    ("/console/webhooks", "Webhooks", "webhooks"),
    ("/console/dead-letters", "Dead letters", "dead-letters"),
)

# Presigned URLs on AWS name the bucket's own host (virtual-hosted style) when no endpoint is set.
AWS_S3_ORIGINS = "https://*.amazonaws.com"


def s3_origins(settings: ConsoleSettings) -> str:
    """The origin(s) presigned URLs handed to the browser point at."""
    endpoint = settings.s3.public_endpoint_url or settings.s3.endpoint_url
    if not endpoint:
        return AWS_S3_ORIGINS
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: ConsoleSettings) -> str:
    s3 = s3_origins(settings)
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob: {s3}",
            f"media-src 'self' blob: {s3}",
            f"connect-src 'self' {s3}",
            "worker-src 'self' blob:",  # hls.js runs its demuxer in a worker made from a blob
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def page_headers(settings: ConsoleSettings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        # presigned and signed media URLs are credentials: never sent to another origin as a Referer
        # ("no-referrer" would also make the browser send "Origin: null" on the page's own form posts)
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html", "j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(nav=NAV, static=STATIC_PATH, contract=console_contract())
    return env


@dataclass
class Console:
    """The console's site, made once per app (the feature's lifespan puts it in the app's state)."""

    settings: ConsoleSettings
    env: Environment = field(default_factory=make_environment)

    def __post_init__(self) -> None:
        self.headers = page_headers(self.settings)

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)
