"""authlib against a running tessera: server metadata, the client_credentials grant,
introspection and revocation. Served on main today."""

import base64
import json
import time

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from conftest import ISSUER, SUITE


def claims_of(jwt):
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def machine(method="client_secret_basic", secret=None):
    c = SUITE["machine"]
    return OAuth2Session(
        c["client_id"],
        secret or c["client_secret"],
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        scope="e2e:read",
    )


def test_server_metadata_rfc8414(metadata):
    """authlib's RFC 8414 model validates the document at both addresses."""
    AuthorizationServerMetadata(metadata).validate()
    other = requests.get(f"{ISSUER}/.well-known/oauth-authorization-server", timeout=10).json()
    assert other == metadata
    assert metadata["issuer"] == ISSUER
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "e2e:read" in metadata["scopes_supported"]


def test_openid_provider_metadata(metadata):
    """authlib's OpenID Connect Discovery model, every check (RS256 is among the ID
    token algorithms, as OpenID Connect Discovery 1.0 section 3 requires)."""
    OpenIDProviderMetadata(metadata).validate()
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials(metadata, method):
    client = machine(method)
    token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == "e2e:read"
    assert token["expires_in"] > 0
    assert token["expires_at"] > time.time()
    assert "refresh_token" not in token
    claims = claims_of(token["access_token"])
    assert claims["sub"] == claims["client_id"] == SUITE["machine"]["client_id"]
    assert claims["iss"] == ISSUER


def test_client_credentials_wrong_secret(metadata):
    client = machine(secret=SUITE["machine"]["client_secret"] + "x")
    with pytest.raises(OAuthError) as e:
        client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert e.value.error == "invalid_client"


def test_client_credentials_unregistered_scope(metadata):
    client = machine()
    with pytest.raises(OAuthError) as e:
        client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials", scope="e2e:write")
    assert e.value.error == "invalid_scope"


def test_introspection_then_revocation(metadata):
    client = machine()
    at = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")["access_token"]

    r = client.introspect_token(metadata["introspection_endpoint"], token=at)
    assert r.status_code == 200
    live = r.json()
    assert live["active"] is True
    assert live["client_id"] == live["sub"] == SUITE["machine"]["client_id"]
    assert live["scope"] == "e2e:read"
    assert live["iss"] == ISSUER

    r = client.revoke_token(metadata["revocation_endpoint"], token=at, token_type_hint="access_token")
    assert r.status_code == 200

    r = client.introspect_token(metadata["introspection_endpoint"], token=at)
    assert r.json() == {"active": False}


def test_revocation_of_unknown_token_is_no_error(metadata):
    r = machine("client_secret_post").revoke_token(metadata["revocation_endpoint"], token="no-such-token")
    assert r.status_code == 200


def test_introspection_needs_client_authentication(metadata):
    r = requests.post(metadata["introspection_endpoint"], data={"token": "x"}, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    # A public client identifies itself but does not authenticate: no introspection.
    public = OAuth2Session(SUITE["public"]["client_id"], token_endpoint_auth_method="none")
    r = public.introspect_token(metadata["introspection_endpoint"], token="x")
    assert r.status_code == 401
