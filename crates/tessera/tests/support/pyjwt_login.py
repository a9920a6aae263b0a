"""Register, log in, and verify the access token with PyJWT through the server's JWKS.

Usage: pyjwt_login.py BASE_URL. Prints one JSON object: the verified header and claims,
and whether PyJWT refused a tampered copy. Exits non-zero on any failure.
"""
import json
import sys
import urllib.request

import jwt

base = sys.argv[1].rstrip("/")


def post(path, body):
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


post("/auth/register", {"username": "ada", "password": "correct horse battery"})
pair = post("/auth/login", {"username": "ada", "password": "correct horse battery"})
token = pair["access_token"]

client = jwt.PyJWKClient(base + "/.well-known/jwks.json")
signing_key = client.get_signing_key_from_jwt(token)
header = jwt.get_unverified_header(token)
claims = jwt.decode(
    token,
    signing_key.key,
    algorithms=[header["alg"]],
    audience=base,
    issuer=base,
    options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
)

head, payload, sig = token.split(".")
tampered_payload = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
try:
    jwt.decode(
        ".".join([head, tampered_payload, sig]),
        signing_key.key,
        algorithms=[header["alg"]],
        audience=base,
        issuer=base,
    )
    tampered_refused = False
except jwt.exceptions.InvalidTokenError:
    tampered_refused = True

print(json.dumps({"header": header, "claims": claims, "tampered_refused": tampered_refused,
                  "token_type": pair.get("token_type"), "expires_in": pair.get("expires_in")}))
