"""Fixtures of the authlib suite: the run's context (written by e2e/run), whether the
code flow is served, and a headless Chromium for the hosted pages."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

# The issuer is http:// on loopback; authlib refuses http unless told (as
# openid-client needs allowInsecureRequests).
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

E2E = Path(__file__).resolve().parent.parent

if not os.environ.get("E2E_CONTEXT"):
    raise pytest.UsageError("E2E_CONTEXT is not set: run the suites through e2e/run")
CONTEXT = json.loads(Path(os.environ["E2E_CONTEXT"]).read_text())
SUITE = CONTEXT["suites"]["python"]
ISSUER = CONTEXT["issuer"]
METADATA_URL = f"{ISSUER}/.well-known/openid-configuration"


@pytest.fixture(scope="session")
def metadata():
    r = requests.get(METADATA_URL, timeout=10)
    r.raise_for_status()
    return r.json()


def _code_flow_skip_reason():
    """Asked of the running server, not assumed: the authorization endpoint answers
    501 `not_implemented` until the code flow is served."""
    meta = requests.get(METADATA_URL, timeout=10).json()
    client = SUITE["public"]
    r = requests.get(
        meta["authorization_endpoint"],
        params={
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": client["redirect_uris"][0],
            "scope": "openid",
            "state": "probe",
            "nonce": "probe",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
        allow_redirects=False,
        timeout=10,
    )
    if r.status_code == 501:
        return "/oauth/authorize answers 501 not_implemented (the code flow is not served yet)"
    return None


# Asked once, at collection; pytest -rs prints the reason of every skipped test.
_SKIP = _code_flow_skip_reason()


@pytest.fixture(scope="session")
def code_flow():
    if _SKIP:
        pytest.skip(_SKIP)


class Browser:
    """Headless Chromium through e2e/lib/browser-driver.mjs (the same page-driving code
    as the node suite): one browser for the module, so that the provider's single
    sign-on cookie lives on between authorizations."""

    def __init__(self):
        self.proc = subprocess.Popen(
            ["node", str(E2E / "lib" / "browser-driver.mjs"), CONTEXT["chromium"]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        ready = self._read()
        assert ready.get("ready"), ready

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the browser driver exited ({self.proc.wait()})")
        return json.loads(line)

    def _call(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if not answer.get("ok"):
            raise RuntimeError(f"browser: {answer.get('error')}")
        return answer

    def authorize(self, url, redirect_uri, user=None, consent="Allow", screenshots=None):
        """Goes through the hosted pages to the redirect URI; returns (callback URL,
        pages seen). A login page when no user is given is an error."""
        a = self._call(
            op="authorize",
            url=url,
            redirect_uri=redirect_uri,
            user=user,
            consent=consent,
            screenshots=screenshots or {},
        )
        return a["callback_url"], a["seen"]

    def follow(self, url, until):
        return self._call(op="follow", url=url, until=until)["url"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def browser(code_flow):
    b = Browser()
    yield b
    b.close()
