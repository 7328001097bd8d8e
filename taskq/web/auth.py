"""Who may use the dashboard: a bearer token (or the session cookie a browser gets by opening
`/?token=T` once), and a CSRF token that every state change posts back."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

SESSION, CSRF = "taskq_session", "taskq_csrf"


class Guard:
    """The token check (None: no token, loopback only) and the CSRF token of this server."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        #: what the session cookie holds once a browser has shown the token (not the token itself)
        self.session = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)

    def bearer(self, request: Request) -> bool:
        """Whether the request carries the token in its Authorization header: a browser never
        adds that by itself, so such a request needs no CSRF token."""
        given = request.headers.get("authorization", "")
        return self.token is not None and given.startswith("Bearer ") and hmac.compare_digest(given[7:], self.token)

    def allowed(self, request: Request) -> bool:
        if self.token is None or self.bearer(request):
            return True
        return hmac.compare_digest(request.cookies.get(SESSION, ""), self.session)

    def csrf_ok(self, form_value: str | None) -> bool:
        return form_value is not None and hmac.compare_digest(form_value, self.csrf)

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/static/"):
            return await call_next(request)
        shown = request.query_params.get("token")
        if self.token is not None and shown is not None and hmac.compare_digest(shown, self.token):
            response: Response = RedirectResponse(request.url.path, status_code=303)  # the token leaves the URL
            response.set_cookie(SESSION, self.session, httponly=True, samesite="strict")
            return response
        if not self.allowed(request):
            return PlainTextResponse("401: open /?token=<token> once, or send Authorization: Bearer <token>",
                                     status_code=401)
        return await call_next(request)
