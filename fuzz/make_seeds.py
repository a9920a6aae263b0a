#!/usr/bin/env python3
"""Writes starting inputs for the fuzz targets into fuzz/corpus/<target>/.

The corpus is not committed (fuzz/.gitignore): run this once before `cargo fuzz run`.
Each seed starts with the target's mode byte (see the comment atop each target).
Needs the `cryptography` package for the JWE and key seeds; without it only the
JSON seeds are written.
"""

import base64
import hashlib
import hmac
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"fuzzing-secret-of-thirty-two-by!"  # fuzz_targets/jwt.rs SECRET
NOW = 1_700_000_000  # fuzz_targets/jwt.rs NOW


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def j(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def write(target: str, name: str, data: bytes) -> None:
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def hs256(header: bytes, payload: bytes) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    mac = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def jwt_seeds() -> None:
    good = {"iss": "iss", "aud": "aud", "sub": "ada", "exp": NOW + 100, "iat": NOW - 5}
    headers = [
        {"alg": "HS256"},
        {"alg": "HS256", "kid": "hs", "typ": "JWT"},
        {"alg": "HS256", "typ": "at+jwt", "cty": "JWT"},
        {"alg": "HS256", "crit": ["exp"], "exp": 1},
        {"alg": "HS256", "b64": False},
        {"alg": "none"},
        {"alg": "ES256", "kid": "es"},
        {"alg": "RS256", "jwk": {"kty": "oct", "k": "AA"}},
    ]
    payloads = [
        good,
        dict(good, aud=["x", "aud"]),
        dict(good, nbf=NOW + 10),
        dict(good, exp="1700000100"),
        dict(good, exp=NOW - 100),
        dict(good, iss="other"),
        dict(good, extra={"a": [1, 2.5, -3e2, True, None, "\u00e9\\\"x"]}),
        {"iss": "iss", "aud": "aud"},
    ]
    n = 0
    for h in headers:
        for p in payloads:
            write("jwt", f"token-{n}", b"\x00" + hs256(j(h), j(p)).encode())
            write("jwt", f"parts-{n}", b"\x01" + j(h) + b"\x00" + j(p))
            n += 1
    write("jwt", "dup", b"\x01" + b'{"alg":"HS256","\\u0061lg":"HS256"}\x00' + j(good))
    write("jwt", "deep", b"\x01" + j({"alg": "HS256"}) + b"\x00" + b'{"a":' * 40 + b"1" + b"}" * 40)
    write("jwt", "five-parts", b"\x00" + b"eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..AAAA.AAAA.AAAA")
    for k in range(4):
        write("jwt", f"sign-{k}", bytes([2, k]) + j(good))


def jwk_seeds() -> None:
    keys = [
        {"kty": "oct", "k": b64(bytes(range(32))), "kid": "o", "alg": "HS256", "use": "sig"},
        {"kty": "oct", "k": b64(bytes(range(16))), "key_ops": ["encrypt", "decrypt"]},
        {"kty": "OKP", "crv": "Ed25519", "x": b64(bytes(32))},
        {"kty": "OKP", "crv": "X25519", "x": b64(bytes(32))},
        {"kty": "EC", "crv": "P-256", "x": b64(bytes(32)), "y": b64(bytes(32))},
        {"kty": "RSA", "n": b64(b"\xff" * 256), "e": "AQAB"},
    ]
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

        privs = [
            rsa.generate_private_key(65537, 2048),
            ec.generate_private_key(ec.SECP256R1()),
            ec.generate_private_key(ec.SECP384R1()),
            ec.generate_private_key(ec.SECP521R1()),
            ed25519.Ed25519PrivateKey.generate(),
            x25519.X25519PrivateKey.generate(),
        ]
        for i, k in enumerate(privs):
            der = k.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            pem = k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            spki = k.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            write("jwk", f"pem-{i}", b"\x02" + pem)
            write("jwk", f"pkcs8-{i}", b"\x03" + der)
            write("jwk", f"spki-{i}", b"\x04" + spki)
    except ImportError:
        print("cryptography is not installed: JSON seeds only", file=sys.stderr)
    for i, k in enumerate(keys):
        write("jwk", f"jwk-{i}", b"\x00" + j(k))
    write("jwk", "set", b"\x01" + j({"keys": keys}))
    write("jwk", "set-bad", b"\x01" + j({"keys": [{"kty": "nope"}, keys[0]]}))


def jwe_seeds() -> None:
    # Mode 1: alg index, enc index (high bit: zip), plaintext.
    for a in range(10):
        for e in range(6):
            write("jwe", f"rt-{a}-{e}", bytes([1, a, e | (0x80 if a == e else 0)]) + b"hello")
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap
    except ImportError:
        return
    # Mode 0: real tokens under the target's deterministic oct keys (bytes 0..n).
    for name, kek_len, alg in [("dir", 16, "dir"), ("kw", 16, "A128KW")]:
        header = {"alg": alg, "enc": "A128GCM", "kid": f"o{kek_len}"}
        for zip_ in (False, True):
            if zip_:
                header = dict(header, zip="DEF")
            protected = b64(j(header))
            cek = bytes(range(16)) if alg == "dir" else os.urandom(16)
            ek = b"" if alg == "dir" else aes_key_wrap(bytes(range(kek_len)), cek)
            iv = os.urandom(12)
            pt = b"hello"
            if zip_:
                import zlib

                c = zlib.compressobj(wbits=-15)
                pt = c.compress(pt) + c.flush()
            ct = AESGCM(cek).encrypt(iv, pt, protected.encode())
            token = ".".join([protected, b64(ek), b64(iv), b64(ct[:-16]), b64(ct[-16:])])
            write("jwe", f"token-{name}-{int(zip_)}", b"\x00" + token.encode())


if __name__ == "__main__":
    jwt_seeds()
    jwk_seeds()
    jwe_seeds()
    print("seeds written under", os.path.join(HERE, "corpus"))
