"""Schemathesis hooks for .ci/schemathesis: real credentials for the protected routes.

A static bearer token dies as soon as the run reaches /auth/logout or /auth/logout-all
(that is their job), and every later request to a protected route would then test
nothing but the 401. Instead, a dynamic provider logs in (bearer token, and a stateful
session cookie with its CSRF token) and logs in again whenever an answer is 401.

Needs TESSERA_URL (the live server) and TESSERA_USER / TESSERA_PASSWORD (an existing
user); standard library only, besides schemathesis itself.
"""

import http.cookies
import json
import os
import urllib.request

import schemathesis

URL = os.environ["TESSERA_URL"]
CREDENTIALS = json.dumps(
    {"username": os.environ["TESSERA_USER"], "password": os.environ["TESSERA_PASSWORD"]}
).encode()


def _post_login(path):
    request = urllib.request.Request(
        URL + path,
        data=CREDENTIALS,
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response), response.headers.get_all("set-cookie") or []


@schemathesis.auth(refresh_interval=120)
class TesseraCredentials:
    """A bearer token for /auth/*, a session cookie and CSRF token for /session/*."""

    def get(self, case, context):
        tokens, _ = _post_login("/auth/login")
        session, set_cookies = _post_login("/session/login")
        cookies = {}
        for header in set_cookies:
            jar = http.cookies.SimpleCookie()
            jar.load(header)
            cookies.update({name: morsel.value for name, morsel in jar.items()})
        return {
            "bearer": tokens["access_token"],
            "cookies": cookies,
            "csrf": session["csrf_token"],
        }

    def set(self, case, data, context):
        case.headers = dict(case.headers or {})
        if case.operation.path.startswith("/session/"):
            case.cookies = {**(case.cookies or {}), **data["cookies"]}
            case.headers["X-CSRF-Token"] = data["csrf"]
        else:
            case.headers["Authorization"] = f"Bearer {data['bearer']}"
