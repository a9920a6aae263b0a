#!/usr/bin/env python3
"""Python peer for the tessera interop test (crates/tessera/tests/interop.rs).

Reads one JSON request on stdin and writes one JSON answer on stdout:

    request: {"lib": "pyjwt" | "jwcrypto", "cases": [CASE, ...]}
    answer:  {"lib": ..., "version": ..., "results": [RESULT, ...]}

Every CASE has an "id" and an "op":

    sign     alg, jwk (private JWK), claims, pem (bool)       -> token [, private_pem, public_pem]
    verify   alg, jwk (public JWK) or public_pem, token, aud, iss -> claims
    encrypt  alg, enc, jwk (public or oct JWK), plaintext_b64 -> token
    decrypt  alg, enc, jwk (private or oct JWK), token        -> plaintext_b64, header
    sign_encrypt    sig_alg, sig_jwk (private), claims, alg, enc, jwk (public) -> token
                    (a nested JWT: the signed JWT, encrypted with cty "JWT")
    decrypt_verify  alg, enc, jwk (private), sig_alg, sig_jwk (public), token, aud, iss
                    -> claims, header (of the JWE)

Each RESULT is {"id", "ok": true, ...outputs} or {"id", "ok": false, "error": TEXT}.
A failure of one case never stops the others. PyJWT has no JWE: its encrypt and
decrypt cases answer ok=false with an error saying so.

With `pem: true` on a sign case the private JWK is converted to PEM (PKCS#8) and
the library signs with the PEM; the PKCS#8 and SPKI PEMs are returned so that
tessera can be handed the same key as PEM.
"""

import base64
import json
import sys
import traceback


def b64d(text):
    return base64.b64decode(text)


def b64e(data):
    return base64.b64encode(data).decode("ascii")


def pems_of(jwk_dict):
    """PKCS#8 private and SPKI public PEM of a private JWK (through jwcrypto)."""
    from jwcrypto import jwk as jwcrypto_jwk

    key = jwcrypto_jwk.JWK(**jwk_dict)
    private_pem = key.export_to_pem(private_key=True, password=None).decode("ascii")
    public_pem = key.export_to_pem(private_key=False).decode("ascii")
    return private_pem, public_pem


def header_of(jwk_dict, alg, enc=None):
    header = {"alg": alg}
    if enc is not None:
        header["enc"] = enc
    if "kid" in jwk_dict:
        header["kid"] = jwk_dict["kid"]
    return header


# ---------------------------------------------------------------- PyJWT


class PyJwtPeer:
    name = "pyjwt"

    def __init__(self):
        import jwt

        self.jwt = jwt
        self.version = "PyJWT " + jwt.__version__

    def sign(self, case):
        jwt = self.jwt
        alg = case["alg"]
        out = {}
        if case.get("pem"):
            private_pem, public_pem = pems_of(case["jwk"])
            key = private_pem
            out["private_pem"] = private_pem
            out["public_pem"] = public_pem
            headers = None
        else:
            key = jwt.PyJWK(case["jwk"], algorithm=alg).key
            headers = {"kid": case["jwk"]["kid"]} if "kid" in case["jwk"] else None
        out["token"] = jwt.encode(case["claims"], key, algorithm=alg, headers=headers)
        return out

    def verify(self, case):
        jwt = self.jwt
        alg = case["alg"]
        if "public_pem" in case:
            key = case["public_pem"]
        else:
            key = jwt.PyJWK(case["jwk"], algorithm=alg).key
        claims = jwt.decode(
            case["token"],
            key,
            algorithms=[alg],
            audience=case["aud"],
            issuer=case["iss"],
            options={"require": ["exp"]},
        )
        return {"claims": claims}

    def encrypt(self, case):
        raise NotImplementedError("PyJWT has no JWE")

    decrypt = sign_encrypt = decrypt_verify = encrypt


# ---------------------------------------------------------------- jwcrypto


class JwcryptoPeer:
    name = "jwcrypto"

    def __init__(self):
        import importlib.metadata

        from jwcrypto import jwe, jwk, jwt

        self.jwe, self.jwk, self.jwt = jwe, jwk, jwt
        self.version = "jwcrypto " + importlib.metadata.version("jwcrypto")

    def key(self, case):
        if "public_pem" in case:
            return self.jwk.JWK.from_pem(case["public_pem"].encode("ascii"))
        return self.jwk.JWK(**case["jwk"])

    def sign(self, case):
        alg = case["alg"]
        out = {}
        if case.get("pem"):
            private_pem, public_pem = pems_of(case["jwk"])
            key = self.jwk.JWK.from_pem(private_pem.encode("ascii"))
            out["private_pem"] = private_pem
            out["public_pem"] = public_pem
            header = {"alg": alg}
        else:
            key = self.key(case)
            header = header_of(case["jwk"], alg)
        token = self.jwt.JWT(header=header, claims=case["claims"])
        token.make_signed_token(key)
        out["token"] = token.serialize()
        return out

    def verify(self, case):
        token = self.jwt.JWT(
            jwt=case["token"],
            key=self.key(case),
            algs=[case["alg"]],
            check_claims={"exp": None, "aud": case["aud"], "iss": case["iss"]},
        )
        return {"claims": json.loads(token.claims)}

    def encrypt(self, case):
        header = header_of(case["jwk"], case["alg"], case["enc"])
        token = self.jwe.JWE(
            b64d(case["plaintext_b64"]),
            protected=json.dumps(header),
            algs=[case["alg"], case["enc"]],
        )
        token.add_recipient(self.key(case))
        return {"token": token.serialize(compact=True)}

    def decrypt(self, case):
        token = self.jwe.JWE(algs=[case["alg"], case["enc"]])
        token.deserialize(case["token"], key=self.key(case))
        return {"plaintext_b64": b64e(token.payload), "header": token.jose_header}

    def sign_encrypt(self, case):
        sig_key = self.jwk.JWK(**case["sig_jwk"])
        inner = self.jwt.JWT(header=header_of(case["sig_jwk"], case["sig_alg"]),
                             claims=case["claims"])
        inner.make_signed_token(sig_key)
        header = header_of(case["jwk"], case["alg"], case["enc"])
        header["cty"] = "JWT"
        outer = self.jwe.JWE(inner.serialize().encode("ascii"), protected=json.dumps(header),
                             algs=[case["alg"], case["enc"]])
        outer.add_recipient(self.key(case))
        return {"token": outer.serialize(compact=True)}

    def decrypt_verify(self, case):
        outer = self.jwe.JWE(algs=[case["alg"], case["enc"]])
        outer.deserialize(case["token"], key=self.key(case))
        inner = self.jwt.JWT(
            jwt=outer.payload.decode("ascii"),
            key=self.jwk.JWK(**case["sig_jwk"]),
            algs=[case["sig_alg"]],
            check_claims={"exp": None, "aud": case["aud"], "iss": case["iss"]},
        )
        return {"claims": json.loads(inner.claims), "header": outer.jose_header}


# ---------------------------------------------------------------- main

PEERS = {"pyjwt": PyJwtPeer, "jwcrypto": JwcryptoPeer}


def run_case(peer, case):
    op = case.get("op")
    handler = {"sign": peer.sign, "verify": peer.verify,
               "encrypt": peer.encrypt, "decrypt": peer.decrypt,
               "sign_encrypt": peer.sign_encrypt,
               "decrypt_verify": peer.decrypt_verify}.get(op)
    if handler is None:
        return {"id": case.get("id"), "ok": False, "error": f"unknown op {op!r}"}
    try:
        result = handler(case)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, per case
        detail = f"{type(exc).__name__}: {exc}"
        if exc.__cause__ is not None:
            detail += f" (caused by {type(exc.__cause__).__name__}: {exc.__cause__})"
        return {"id": case["id"], "ok": False, "error": detail}
    result["id"] = case["id"]
    result["ok"] = True
    return result


def main():
    request = json.load(sys.stdin)
    try:
        peer = PEERS[request["lib"]]()
    except Exception:  # noqa: BLE001
        sys.stderr.write(traceback.format_exc())
        return 3
    results = [run_case(peer, case) for case in request["cases"]]
    json.dump({"lib": peer.name, "version": peer.version, "results": results}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
