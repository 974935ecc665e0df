"""The console's pages, signing in and out.

Each page is rendered on the server (layout, navigation, labelled forms, the session's CSRF token) and
filled by its JavaScript module from the same REST API and event stream any client uses: the page needs
no API of its own, and what it shows is what the API answers."""

from __future__ import annotations

import re
from typing import Annotated, Any, cast
from urllib.parse import urlsplit

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body
from litestar.response import Redirect

from ..http.auth import (
    SECURE_SESSION_COOKIE,
    SESSION_COOKIE,
    SESSION_SCOPE_KEY,
    SESSIONS_SCOPE_KEY,
    SIGN_IN_PATH,
    SIGN_OUT_PATH,
    Session,
    Sessions,
)
from ..http.fields import ASSET_ID_PATTERN, ID_PATTERN
from ..state import state_of
from .site import Console

HOME = "/console/"
_SAFE_NEXT = re.compile(r"^/console(/[^\\\s]*)?(\?[^\s]*)?$")
_ID = re.compile(ID_PATTERN)
_ASSET_ID = re.compile(ASSET_ID_PATTERN)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path on this site, never another origin (an open
    redirect would lend the console's name to any link)."""
    if not target or target.startswith("//") or not _SAFE_NEXT.match(target):
        return HOME
    return target


def _console(request: Request) -> Console:
    return state_of(request.app).get(Console)


def _html(console: Console, template: str, status: int = 200, **context: Any) -> Response[str]:
    return Response(
        console.render(template, **context),
        status_code=status,
        media_type="text/html",
        headers=console.headers,
    )


def _page(request: Request, template: str, page: str, title: str, **context: Any) -> Response[str]:
    console = _console(request)
    session = cast("Session | None", request.scope.get(SESSION_SCOPE_KEY))
    return _html(
        console,
        template,
        page=page,
        title=title,
        csrf=session.csrf if session else "",
        auth_on=bool(console.settings.tokens),
        **context,
    )


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect(HOME, status_code=303)


@get(HOME, include_in_schema=False)
async def dashboard(request: Request) -> Response[str]:
    return _page(request, "dashboard.html.j2", "dashboard", "Dashboard")


@get("/console/jobs", include_in_schema=False)
async def jobs_page(request: Request) -> Response[str]:
    return _page(request, "jobs.html.j2", "jobs", "Jobs")


@get("/console/jobs/new", include_in_schema=False)
async def new_job_page(request: Request) -> Response[str]:
    return _page(request, "new_job.html.j2", "jobs", "New job", module="new-job")


@get("/console/jobs/{job_id:str}", include_in_schema=False)
async def job_page(request: Request, job_id: str) -> Response[str]:
    if len(job_id) > 64 or not _ID.match(job_id):
        raise NotFoundException(f"no job {job_id!r}")
    return _page(request, "job.html.j2", "jobs", f"Job {job_id}", job_id=job_id, module="job")


@get("/console/upload", include_in_schema=False)
async def upload_page(request: Request) -> Response[str]:
    settings = _console(request).settings
    return _page(
        request,
        "upload.html.j2",
        "upload",
        "Upload",
        bucket=settings.s3.bucket_in,
        max_bytes=settings.upload_max_bytes,
    )


@get("/console/assets", include_in_schema=False)
async def assets_page(request: Request) -> Response[str]:
    return _page(request, "assets.html.j2", "assets", "Assets")


@get("/console/assets/{asset_id:str}", include_in_schema=False)
async def asset_page(request: Request, asset_id: str) -> Response[str]:
    if not _ASSET_ID.match(asset_id):
        raise NotFoundException(f"no asset {asset_id!r}")
    return _page(request, "asset.html.j2", "assets", "Asset", asset_id=asset_id, module="asset")


# Pages over the APIs of other features: section -> (title, the API it manages)
_ADMIN_PAGES = {
    "templates": ("Templates", "/api/templates"),
    "rules": ("Rules", "/api/rules"),
    "webhooks": ("Webhooks", "/api/webhooks"),
    "dead-letters": ("Dead letters", "/api/dead-letters"),
}


@get("/console/{section:str}", include_in_schema=False)
async def admin_page(request: Request, section: str) -> Response[str]:
    if section not in _ADMIN_PAGES:
        raise NotFoundException(f"no console page {section!r}")
    title, api = _ADMIN_PAGES[section]
    return _page(request, "admin.html.j2", section, title, api=api, section=section, module="admin")


# --- signing in and out -------------------------------------------------------------------------
def _sessions(request: Request) -> Sessions | None:
    """None when API_TOKENS is empty: authentication is off, and so are sessions."""
    return cast("Sessions | None", request.scope.get(SESSIONS_SCOPE_KEY))


def _secure(request: Request) -> bool:
    public = _console(request).settings.public_url
    return request.url.scheme == "https" or bool(public and public.startswith("https://"))


def _same_origin(request: Request) -> bool:
    """A form posted from another site (login CSRF: signing a victim in as someone else) names its own
    origin; browsers send Origin on every cross-site POST."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


@get(SIGN_IN_PATH, include_in_schema=False)
async def sign_in_page(request: Request) -> Response[str]:
    target = safe_next(request.query_params.get("next"))
    expired = request.query_params.get("expired") == "1"
    return _sign_in_form(request, target, None, 200, expired=expired)


def _sign_in_form(
    request: Request, target: str, error: str | None, status: int, expired: bool = False
) -> Response[str]:
    return _html(
        _console(request),
        "sign_in.html.j2",
        status,
        page="sign-in",
        title="Sign in",
        csrf="",
        auth_on=_sessions(request) is not None,
        next=target,
        error=error,
        expired=expired,
    )


@post(SIGN_IN_PATH, include_in_schema=False, status_code=303)
async def sign_in(
    request: Request,
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    target = safe_next(data.get("next"))
    sessions = _sessions(request)
    if sessions is None:
        return Redirect(target, status_code=303)
    if not _same_origin(request):
        return _sign_in_form(request, target, "This form was sent from another site: sign in here.", 403)
    token = data.get("token", "")
    if not token.strip():
        return _sign_in_form(request, target, "Enter an API token.", 400)
    value = sessions.sign_in(token)
    if value is None:
        return _sign_in_form(request, target, "This token is not accepted by this API.", 401)
    secure = _secure(request)
    cookie = Cookie(
        key=SECURE_SESSION_COOKIE if secure else SESSION_COOKIE,
        value=value,
        max_age=int(sessions.ttl),
        path="/",
        httponly=True,
        secure=secure,
        samesite="strict",
    )
    return Redirect(target, status_code=303, cookies=[cookie], headers={"Cache-Control": "no-store"})


@post(SIGN_OUT_PATH, include_in_schema=False, status_code=303)
async def sign_out() -> Redirect:
    """Forgets the cookie in this browser (sessions are stateless: a copy of the cookie stays valid until
    it expires, or until API_SESSION_SECRET or the token it was signed in with changes)."""
    gone = [
        Cookie(key=name, value="", max_age=0, path="/", httponly=True, secure=name.startswith("__Host-"))
        for name in (SESSION_COOKIE, SECURE_SESSION_COOKIE)
    ]
    return Redirect(SIGN_IN_PATH, status_code=303, cookies=gone)


ROUTES = [
    root,
    dashboard,
    jobs_page,
    new_job_page,
    job_page,
    upload_page,
    assets_page,
    asset_page,
    admin_page,
    sign_in_page,
    sign_in,
    sign_out,
]
