"""Schemathesis hooks for .ci/schemathesis: real credentials for the protected routes.

A static bearer token dies as soon as the run reaches /auth/logout or /auth/logout-all
(that is their job), and every later request to a protected route would then test
nothing but the 401. Instead, a dynamic provider logs in (bearer token, and a stateful
session cookie with its CSRF token) and logs in again whenever an answer is 401.

The OAuth endpoints (/oauth/*) authenticate clients, not users: there the provider
sends a registered client's id and secret with HTTP Basic, and leaves out the body's
client_id and client_secret (two authentication methods at once would be refused, by
design, whatever else the case holds).

Needs TESSERA_URL (the live server), TESSERA_USER / TESSERA_PASSWORD (an existing
user) and TESSERA_CLIENT_ID / TESSERA_CLIENT_SECRET (an existing confidential client);
standard library only, besides schemathesis itself.
"""

import base64
import http.cookies
import json
import os
import urllib.parse
import urllib.request

import schemathesis

URL = os.environ["TESSERA_URL"]
# RFC 6749 section 2.3.1: the id and the secret are form-urlencoded, then joined.
CLIENT_BASIC = "Basic " + base64.b64encode(
    (
        urllib.parse.quote_plus(os.environ["TESSERA_CLIENT_ID"])
        + ":"
        + urllib.parse.quote_plus(os.environ["TESSERA_CLIENT_SECRET"])
    ).encode()
).decode()
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
        # Userinfo is the one /oauth/* route a user's bearer token reaches (a grant's
        # token; an /auth session's is refused there with its documented 401).
        if case.operation.path.startswith("/oauth/") and case.operation.path != "/oauth/userinfo":
            case.headers["Authorization"] = CLIENT_BASIC
            if isinstance(case.body, dict):
                case.body = {
                    k: v
                    for k, v in case.body.items()
                    if k not in ("client_id", "client_secret")
                }
        elif case.operation.path.startswith("/session/"):
            case.cookies = {**(case.cookies or {}), **data["cookies"]}
            case.headers["X-CSRF-Token"] = data["csrf"]
        else:
            case.headers["Authorization"] = f"Bearer {data['bearer']}"
