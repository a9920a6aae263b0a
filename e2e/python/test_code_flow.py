"""authlib through the authorization code flow with PKCE (S256), the hosted pages
driven in headless Chromium: the ID token validated by authlib (signature through the
JWKS, iss, aud, azp, nonce, at_hash), userinfo, introspection, refresh, consent
denied, single sign-on into a second client without the password, revocation, and
RP-initiated logout.

Skipped (pytest -rs prints why) while the server's authorization endpoint answers 501;
asked of the running server, so these run by themselves once the code flow is served.
The tests build on each other, in file order; `state` carries what one hands the next.
"""

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from authlib_app import WebApp
from conftest import ISSUER, METADATA_URL, SUITE

pytestmark = pytest.mark.usefixtures("code_flow")

SCOPE = "openid profile offline_access e2e:read"
USER = SUITE["user"]
WEB = SUITE["confidential"]
SPA = SUITE["public"]

state = {}


def app(client, method):
    return WebApp(
        client["client_id"],
        client_id=client["client_id"],
        client_secret=client.get("client_secret"),
        server_metadata_url=METADATA_URL,
        client_kwargs={
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": method,
        },
    )


def session(client, method):
    """A bare OAuth2Session of a client, for refresh, introspection and revocation."""
    return OAuth2Session(
        client["client_id"],
        client.get("client_secret"),
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
    )


@pytest.fixture(scope="module")
def web():
    return app(WEB, "client_secret_post")


@pytest.fixture(scope="module")
def spa():
    return app(SPA, "none")


def query(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def header(jwt):
    h = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))


def sign_in(the_app, client, browser, user, consent="Allow", **params):
    """What a web application does: authlib builds the authorization URL (PKCE, state,
    nonce), the browser goes through the provider's pages, authlib takes the callback."""
    url = the_app.authorize_redirect_url(client["redirect_uris"][0], **params)
    assert "code_challenge=" in url and "nonce=" in url, url
    callback, seen = browser.authorize(url, client["redirect_uris"][0], user=user, consent=consent)
    if "code" in query(callback):
        # RFC 9207: authlib does not check the iss response parameter; the app does.
        assert query(callback).get("iss") == ISSUER, callback
    return the_app.authorize_access_token(callback), seen


def test_sign_in_through_the_hosted_pages(web, browser):
    token, seen = sign_in(web, WEB, browser, USER)
    assert seen == ["login", "consent"]
    claims = token["userinfo"]  # the ID token's claims, validated by authlib
    assert header(token["id_token"])["alg"] == "RS256"
    assert claims["iss"] == ISSUER
    assert claims["sub"] == USER["id"]
    assert WEB["client_id"] in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    for c in ("auth_time", "at_hash", "sid", "nonce"):
        assert c in claims, c
    assert token["refresh_token"]
    assert set(token["scope"].split()) == set(SCOPE.split())
    state["web"] = token


def test_userinfo(web):
    token = state["web"]
    info = web.userinfo(token=token)
    assert info["sub"] == USER["id"]
    assert info["preferred_username"] == USER["username"]


def test_introspection(web):
    token = state["web"]
    s = session(WEB, "client_secret_basic")
    endpoint = web.load_server_metadata()["introspection_endpoint"]
    at = s.introspect_token(endpoint, token=token["access_token"]).json()
    assert at["active"] is True
    assert at["client_id"] == WEB["client_id"]
    assert at["sub"] == USER["id"]
    rt = s.introspect_token(endpoint, token=token["refresh_token"], token_type_hint="refresh_token").json()
    assert rt["active"] is True
    assert rt["client_id"] == WEB["client_id"]


def test_refresh(web):
    token = state["web"]
    s = session(WEB, "client_secret_post")
    fresh = s.refresh_token(web.load_server_metadata()["token_endpoint"], refresh_token=token["refresh_token"])
    assert fresh["access_token"] != token["access_token"]
    assert fresh["refresh_token"] != token["refresh_token"], "refresh tokens rotate"
    assert web.userinfo(token=fresh)["sub"] == USER["id"]
    state["web_fresh"] = fresh


def test_consent_denied(spa, browser):
    """prompt=consent shows the consent page even in a session; Deny comes back to
    the client as access_denied (RFC 6749 4.1.2.1), and no password is asked."""
    with pytest.raises(OAuthError) as e:
        sign_in(spa, SPA, browser, None, prompt="consent", consent="Deny")
    assert e.value.error == "access_denied"


def test_single_sign_on_into_a_second_client(spa, browser):
    token, seen = sign_in(spa, SPA, browser, None)
    assert "login" not in seen
    claims = token["userinfo"]
    assert claims["sub"] == USER["id"]
    assert claims["aud"] == SPA["client_id"] or SPA["client_id"] in claims["aud"]
    assert token["refresh_token"]
    state["spa"] = token


def test_revocation(web):
    fresh = state["web_fresh"]
    meta = web.load_server_metadata()
    s = session(WEB, "client_secret_basic")
    assert s.revoke_token(meta["revocation_endpoint"], token=fresh["access_token"]).status_code == 200
    assert s.introspect_token(meta["introspection_endpoint"], token=fresh["access_token"]).json() == {"active": False}
    with pytest.raises(Exception) as e:
        web.userinfo(token=fresh)
    assert getattr(e.value, "response", None) is not None and e.value.response.status_code == 401

    assert s.revoke_token(meta["revocation_endpoint"], token=fresh["refresh_token"], token_type_hint="refresh_token").status_code == 200
    with pytest.raises(OAuthError) as e:
        s.refresh_token(meta["token_endpoint"], refresh_token=fresh["refresh_token"])
    assert e.value.error == "invalid_grant"
    # The other client's grant is another grant.
    spa_token = state["spa"]
    assert s.introspect_token(meta["introspection_endpoint"], token=spa_token["refresh_token"]).json()["active"] is True


def test_rp_initiated_logout(spa, web, browser):
    spa_token = state["spa"]
    logout = spa.create_logout_url(
        post_logout_redirect_uri=SPA["post_logout_redirect_uri"],
        id_token_hint=spa_token["id_token"],
    )
    landed = browser.follow(logout["url"], SPA["post_logout_redirect_uri"])
    assert query(landed).get("state") == logout["state"]

    meta = spa.load_server_metadata()
    with pytest.raises(OAuthError) as e:
        session(SPA, "none").refresh_token(meta["token_endpoint"], refresh_token=spa_token["refresh_token"])
    assert e.value.error == "invalid_grant", "logout ends the refresh tokens of the session's grants"

    with pytest.raises(OAuthError) as e:
        sign_in(web, WEB, browser, None, prompt="none")
    assert e.value.error == "login_required"
    _, seen = sign_in(web, WEB, browser, USER)
    assert seen[0] == "login"
