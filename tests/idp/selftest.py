"""Self-test of the loopback IdP and tests/idp_harness.py, without the Django app.

Run:  python tests/idp/selftest.py      (exit 0 = all checks passed)

Not collected by pytest (the name matches neither ``test_*.py`` nor ``*_test.py``).

A tiny relying party built on ``http.server`` runs on another loopback port and performs the
authorization-code flow with PKCE (S256), ``state`` and ``nonce``; it exchanges the code at the
token endpoint (client_secret_basic, or client_secret_post with ``?auth=post``), verifies the
RS256 ID-token signature against the IdP's JWKS (pure-Python RSA), checks iss/aud/exp/nonce and
fetches userinfo.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from idp_harness import (
    OidcLoginError,
    OidcProvider,
    StdlibSession,
    oidc_login,
)

CLIENT_ID = "portal"
CLIENT_SECRET = "portal-secret"


# ------------------------------------------------------------------------------------------
# Minimal OIDC relying party
# ------------------------------------------------------------------------------------------


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rs256_verify(jwk: Mapping[str, str], signing_input: bytes, signature: bytes) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 8.2.2), stdlib only."""
    n = int.from_bytes(b64url_decode(jwk["n"]), "big")
    e = int.from_bytes(b64url_decode(jwk["e"]), "big")
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    t = _SHA256_DIGEST_INFO + hashlib.sha256(signing_input).digest()
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(em, expected)


def http_json(
    method: str,
    url: str,
    *,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    body = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        with err:
            raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw.decode(errors="replace")


@dataclass
class RelyingParty:
    issuer: str
    discovery: dict[str, Any] = field(default_factory=dict)
    jwks: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, dict[str, str]] = field(default_factory=dict)  # rp_sid -> flow state
    last_code: str | None = None
    last_verifier: str | None = None
    events: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def redirect_uri(self) -> str:
        return self.base + "/callback"

    def load_metadata(self) -> None:
        status, self.discovery = http_json("GET", self.issuer + "/.well-known/openid-configuration")
        assert status == 200, self.discovery
        assert self.discovery["issuer"] == self.issuer
        assert "S256" in self.discovery["code_challenge_methods_supported"]
        status, self.jwks = http_json("GET", self.discovery["jwks_uri"])
        assert status == 200 and self.jwks["keys"], self.jwks

    # --- request handling (called from the handler thread) ---------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(handler.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        cookies = dict(
            c.strip().split("=", 1)
            for c in (handler.headers.get("Cookie") or "").split(";")
            if "=" in c
        )
        if parts.path == "/login":
            return self.start_login(query)
        if parts.path == "/callback":
            return self.callback(query, cookies.get("rp_sid", ""))
        return 404, {}, b"not found"

    def start_login(self, query: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        sid = secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(48)
        flow = {
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
            "verifier": verifier,
            "auth": query.get("auth", "basic"),
            "bad_verifier": query.get("bad_verifier", ""),
        }
        self.pending[sid] = flow
        params = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": self.redirect_uri,
            "scope": query.get("scope", "openid email profile groups"),
            "state": flow["state"],
            "nonce": flow["nonce"],
        }
        if query.get("pkce", "1") == "1":
            params["code_challenge"] = b64url_encode(hashlib.sha256(verifier.encode()).digest())
            params["code_challenge_method"] = "S256"
        location = self.discovery["authorization_endpoint"] + "?" + urllib.parse.urlencode(params)
        return 302, {"Location": location, "Set-Cookie": f"rp_sid={sid}; Path=/; HttpOnly"}, b""

    def callback(self, query: Mapping[str, str], sid: str) -> tuple[int, dict[str, str], bytes]:
        flow = self.pending.pop(sid, None)
        if flow is None:
            return self.fail(400, "no login in progress for this browser session")
        if "error" in query:
            return self.fail(400, f"idp error: {query['error']}")
        if not hmac.compare_digest(query.get("state", ""), flow["state"]):
            return self.fail(400, "state mismatch")
        if query.get("iss") != self.issuer:  # RFC 9207 (IdP advertises iss in responses)
            return self.fail(400, "iss mismatch")
        code = query["code"]
        verifier = "x" * 43 if flow["bad_verifier"] else flow["verifier"]
        self.last_code, self.last_verifier = code, verifier
        status, token = self.exchange(code, verifier, flow["auth"])
        if status != 200:
            return self.fail(400, f"token endpoint {status}: {token}")
        claims = self.verify_id_token(token["id_token"], flow["nonce"])
        status, userinfo = http_json(
            "GET",
            self.discovery["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        if status != 200:
            return self.fail(400, f"userinfo {status}: {userinfo}")
        assert userinfo["sub"] == claims["sub"]
        self.events.append("ok")
        body = json.dumps({"id_token": claims, "userinfo": userinfo}).encode()
        return 200, {"Content-Type": "application/json"}, body

    def exchange(self, code: str, verifier: str, auth: str) -> tuple[int, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        headers: dict[str, str] = {}
        if auth == "post":
            form |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        else:
            basic = base64.b64encode(
                f"{urllib.parse.quote(CLIENT_ID)}:{urllib.parse.quote(CLIENT_SECRET)}".encode()
            ).decode()
            headers["Authorization"] = f"Basic {basic}"
        return http_json("POST", self.discovery["token_endpoint"], form=form, headers=headers)

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        header_b64, payload_b64, sig_b64 = id_token.split(".")
        header = json.loads(b64url_decode(header_b64))
        assert header["alg"] == "RS256", header
        key = next(k for k in self.jwks["keys"] if k.get("kid") == header.get("kid"))
        signing_input = f"{header_b64}.{payload_b64}".encode()
        assert rs256_verify(key, signing_input, b64url_decode(sig_b64)), "bad ID token signature"
        assert not rs256_verify(key, signing_input + b"x", b64url_decode(sig_b64))
        claims: dict[str, Any] = json.loads(b64url_decode(payload_b64))
        assert claims["iss"] == self.issuer, claims
        aud = claims["aud"]
        assert aud == CLIENT_ID or (isinstance(aud, list) and CLIENT_ID in aud), claims
        assert claims["exp"] > time.time() - 5, claims
        assert claims["nonce"] == nonce, claims
        return claims

    def fail(self, status: int, message: str) -> tuple[int, dict[str, str], bytes]:
        self.events.append(message)
        return status, {"Content-Type": "text/plain"}, message.encode()

    # --- server lifecycle -------------------------------------------------------------------

    def bind(self) -> None:
        rp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    status, headers, body = rp.handle(self)
                except Exception as exc:
                    status, headers, body = 500, {}, f"RP crashed: {exc!r}".encode()
                    rp.events.append(f"crash: {exc!r}")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def serve(self) -> None:
        assert self.server is not None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# ------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------


def check(name: str, fn: Callable[[], None]) -> None:
    fn()
    print(f"ok   {name}")


def main() -> int:
    rp = RelyingParty(issuer="")
    rp.bind()
    idp = OidcProvider(startup_timeout=60)
    users: dict[str, dict[str, Any]] = {
        "alice": {
            "email": "alice@example.test",
            "name": "Alice Admin",
            "groups": ["secrets-admin"],
        },
        "bob": {"email": "bob@example.test", "name": "Bob", "groups": "not-a-list"},
        "carol": {"email": "carol@example.test", "name": "Carol"},  # no groups claim at all
    }
    try:
        idp.start(users, [rp.redirect_uri])
        rp.issuer = idp.issuer
        rp.load_metadata()
        rp.serve()
        print(f"IdP {idp.issuer}  RP {rp.base}")

        def login(session: Any, user: str, query: str = "", **kw: Any) -> Any:
            return oidc_login(session, f"{rp.base}/login{query}", user, **kw)

        session = StdlibSession()

        def groups_in_both() -> None:
            trace: list[dict[str, Any]] = []
            resp = login(session, "alice", trace=trace)
            assert resp.status_code == 200, (resp.status_code, resp.text, trace)
            data = resp.json()
            assert data["id_token"]["groups"] == ["secrets-admin"], data
            assert data["userinfo"]["groups"] == ["secrets-admin"], data
            assert data["id_token"]["sub"] == "alice"
            assert data["id_token"]["email"] == "alice@example.test"
            assert data["id_token"]["email_verified"] is True
            assert data["userinfo"]["name"] == "Alice Admin"
            callback = next(h["url"] for h in trace if "/callback?" in h["url"])
            cb = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)
            assert set(cb) >= {"code", "state", "iss"}, cb
            hop_paths = [urllib.parse.urlsplit(h["url"]).path for h in trace]
            assert any(p.startswith("/interaction/") for p in hop_paths), hop_paths

        check(
            "code flow + PKCE S256 + state + nonce; groups in ID token and userinfo", groups_in_both
        )

        def reused_code_rejected() -> None:
            assert rp.last_code and rp.last_verifier
            status, body = rp.exchange(rp.last_code, rp.last_verifier, "basic")
            assert status == 400 and body["error"] == "invalid_grant", (status, body)

        check("re-used authorization code -> invalid_grant", reused_code_rejected)

        def groups_change_between_logins() -> None:
            idp.set_users(
                {**users, "alice": {**users["alice"], "groups": ["auditor", "secrets-approver"]}}
            )
            data = login(session, "alice").json()  # same browser session: login form again
            assert data["id_token"]["groups"] == ["auditor", "secrets-approver"], data
            assert data["userinfo"]["groups"] == ["auditor", "secrets-approver"], data

        check("set_users() changes groups on the next login", groups_change_between_logins)

        def other_users_same_session() -> None:
            bob = login(session, "bob").json()
            assert bob["id_token"]["sub"] == "bob"
            assert bob["id_token"]["groups"] == "not-a-list", bob
            assert bob["userinfo"]["groups"] == "not-a-list", bob
            carol = login(session, "carol").json()
            assert "groups" not in carol["id_token"] and "groups" not in carol["userinfo"], carol
            dave = login(session, "dave").json()  # not in the users file
            assert dave["id_token"]["groups"] == [] and dave["userinfo"]["groups"] == [], dave
            assert dave["userinfo"]["email"] == "dave@example.test", dave

        check(
            "special users: groups 'not-a-list', missing groups, unknown user -> []",
            other_users_same_session,
        )

        def wrong_state_detected() -> None:
            def tamper(method: str, url: str, data: Mapping[str, str] | None) -> Any:
                parts = urllib.parse.urlsplit(url)
                if parts.path == "/callback":
                    q = urllib.parse.parse_qs(parts.query)
                    q["state"] = ["forged-state"]
                    url = parts._replace(query=urllib.parse.urlencode(q, doseq=True)).geturl()
                return session.request(method, url, data=data, allow_redirects=False)

            resp = login(tamper, "alice")
            assert resp.status_code == 400 and resp.text == "state mismatch", resp.text
            # the untampered code was never redeemed: the RP refused before the token call
            assert rp.events[-1] == "state mismatch"

        check("wrong state at the callback is detected by the RP", wrong_state_detected)

        def client_secret_post() -> None:
            data = login(session, "alice", "?auth=post").json()
            assert data["userinfo"]["sub"] == "alice"

        check("client_secret_post accepted as well as client_secret_basic", client_secret_post)

        def wrong_verifier() -> None:
            resp = login(session, "alice", "?bad_verifier=1")
            assert resp.status_code == 400 and "invalid_grant" in resp.text, resp.text

        check("wrong PKCE code_verifier -> invalid_grant", wrong_verifier)

        def pkce_required() -> None:
            trace: list[dict[str, Any]] = []
            resp = login(session, "alice", "?pkce=0", trace=trace)
            assert resp.status_code == 400 and "idp error: invalid_request" in resp.text, (
                resp.text,
                trace,
            )

        check("authorization request without PKCE is refused", pkce_required)

        def abort_login() -> None:
            resp = login(session, "alice", abort=True)
            assert resp.status_code == 400 and resp.text == "idp error: access_denied", resp.text

        check("abort at the IdP -> error=access_denied at the RP", abort_login)

        def stop_at_callback() -> None:
            trace: list[dict[str, Any]] = []
            resp = login(session, "alice", follow_rp_redirects=False, trace=trace)
            assert "/callback?" in trace[-1]["url"] and resp.status_code == 200

        check("follow_rp_redirects=False returns the callback response", stop_at_callback)

        def with_requests() -> None:
            try:
                import requests
            except ImportError:
                print("     (requests not installed; skipped)")
                return
            with requests.Session() as s:
                s.trust_env = False  # ignore *_PROXY for loopback
                data = login(s, "alice").json()
                assert data["id_token"]["groups"] == ["auditor", "secrets-approver"], data

        check("works with a requests.Session", with_requests)

        def bad_redirect_uri() -> None:
            s = StdlibSession()
            params = {
                "response_type": "code",
                "client_id": CLIENT_ID,
                "scope": "openid",
                "redirect_uri": rp.base + "/elsewhere",
                "state": "s",
                "code_challenge": b64url_encode(hashlib.sha256(b"v" * 43).digest()),
                "code_challenge_method": "S256",
            }
            url = rp.discovery["authorization_endpoint"] + "?" + urllib.parse.urlencode(params)
            resp = s.get(url)
            assert resp.status_code == 400 and "redirect_uri" in resp.text, resp.text[:300]

        check("unregistered redirect_uri refused by the IdP", bad_redirect_uri)

        def final_answer_returned() -> None:
            resp = oidc_login(StdlibSession(), rp.base + "/nowhere", "x", max_hops=1)
            assert resp.status_code == 404, resp.status_code
            try:
                oidc_login(StdlibSession(), rp.base + "/login", "alice", max_hops=2)
            except OidcLoginError as err:
                assert len(err.trace) == 2, err.trace
            else:
                raise AssertionError("max_hops not enforced")

        check(
            "non-redirect answers are returned; max_hops raises OidcLoginError",
            final_answer_returned,
        )
    except Exception:
        print("IdP log:\n" + idp.log(), file=sys.stderr)
        raise
    finally:
        idp.stop()
        rp.close()
    print("selftest: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
