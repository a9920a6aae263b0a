"""authlib's own client application, without a web framework.

authlib's Flask, Django and Starlette clients are the same three mixins over
`OAuth2Session`: `OAuth2Mixin` (server metadata from discovery, the authorization URL
with PKCE and a nonce, the code exchange), `OpenIDMixin` (the ID token validated
against the JWKS: signature, iss, aud, azp, nonce, at_hash, exp; userinfo; the
end-session URL) and `BaseApp`. Here they sit on a dict in place of the framework's
session, and `authorize_access_token` does what each framework's does with the
callback's query string.
"""

from urllib.parse import parse_qs, urlsplit

from authlib.integrations.base_client import (
    BaseApp,
    FrameworkIntegration,
    OAuth2Mixin,
    OAuthError,
    OpenIDMixin,
)
from authlib.integrations.requests_client import OAuth2Session


class _Integration(FrameworkIntegration):
    def update_token(self, token, refresh_token=None, access_token=None):
        pass


class WebApp(OAuth2Mixin, OpenIDMixin, BaseApp):
    client_cls = OAuth2Session

    def __init__(self, name, **kwargs):
        super().__init__(_Integration(name), name=name, **kwargs)
        self.session = {}  # the browser session of the relying party

    def authorize_redirect_url(self, redirect_uri, **kwargs):
        """The URL that the app redirects the browser to (state, nonce and the PKCE
        verifier kept in the session, as authorize_redirect does)."""
        rv = self.create_authorization_url(redirect_uri, **kwargs)
        self.framework.set_state_data(
            self.session, rv["state"], {"redirect_uri": redirect_uri, **rv}
        )
        return rv["url"]

    def authorize_access_token(self, callback_url, **kwargs):
        """The callback: an error raises OAuthError; otherwise the code is exchanged
        (with the session's verifier) and the ID token validated (with its nonce)."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query).items()}
        if params.get("error"):
            raise OAuthError(error=params["error"], description=params.get("error_description"))
        state_data = self.framework.get_state_data(self.session, params.get("state"))
        self.framework.clear_state_data(self.session, params.get("state"))
        args = self._format_state_params(state_data, {"code": params.get("code"), "state": params.get("state")})
        token = self.fetch_access_token(**args, **kwargs)
        if "id_token" in token and "nonce" in state_data:
            token["userinfo"] = self.parse_id_token(token, nonce=state_data["nonce"])
        return token
