"""Loopback OpenID Connect provider and a headless browser-like login helper for SSO tests.

The provider is panva ``oidc-provider`` (Node), started from ``tests/idp/server.mjs``. It is a real,
standards-conforming OP (discovery, JWKS, authorization code + PKCE S256, token, userinfo,
RP-initiated logout) with one static confidential client:

* ``client_id`` ``portal`` / ``client_secret`` ``portal-secret``
* ``token_endpoint_auth_method`` ``client_secret_basic`` (``client_secret_post`` is accepted too)
* scopes -> claims: ``openid`` (sub), ``email`` (email, email_verified), ``profile`` (name),
  ``groups`` (groups). The RP must *request* the ``groups`` scope to get ``groups``.
* ``conformIdTokenClaims: false``: the claims are in the ID token *and* in userinfo.
* PKCE is required by default (``require_pkce=False`` to relax), and every authorization request
  shows the login form (``force_login=False`` for normal SSO-session reuse).
* The dev login form accepts any username (it becomes ``sub``) and any password.

Usage as a session-scoped pytest fixture (e.g. in ``tests/conftest.py``)::

    import pytest
    import requests
    from idp_harness import OidcProvider, django_client_transport, oidc_login

    CALLBACK = "/accounts/oidc/corp/login/callback/"   # allauth: /accounts/oidc/<provider_id>/...

    @pytest.fixture(scope="session")
    def idp(live_server):           # pytest-django's live_server is session-scoped too
        provider = OidcProvider()   # raises IdpUnavailableError if node/npm are missing
        provider.start(
            users={"alice": {"email": "alice@example.test", "name": "Alice",
                             "groups": ["secrets-admin"]}},
            redirect_uris=[live_server.url + CALLBACK,        # real HTTP (requests.Session)
                           "http://testserver" + CALLBACK],   # Django test Client
        )
        yield provider              # provider.issuer == "http://127.0.0.1:<port>"
        provider.stop()

    # settings: SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"][0]["settings"]["server_url"]
    # must be idp.issuer (e.g. via settings fixture / override_settings), client_id "portal",
    # secret "portal-secret", and the SCOPE must include "groups".

    def test_sso_live(idp, live_server):
        idp.set_users({"alice": {"email": "alice@example.test", "groups": ["auditor"]}})
        with requests.Session() as s:
            s.trust_env = False                     # never send loopback through *_PROXY
            resp = oidc_login(s, live_server.url + "/accounts/oidc/corp/login/", "alice")
        assert resp.status_code == 200              # final page after LOGIN_REDIRECT_URL

    def test_sso_in_process(idp, client):           # no live server needed
        resp = oidc_login(django_client_transport(client),
                          "http://testserver/accounts/oidc/corp/login/", "alice")
        assert client.get("/").wsgi_request.user.is_authenticated

A test that does not need live HTTP can make the fixture depend on nothing and register only
``http://testserver`` + callback. ``OidcProvider`` is also a context manager.

Redirect URIs must match exactly (scheme, host, port, path, trailing slash), so register every
base URL the RP is reached under. ``127.0.0.1`` and ``localhost`` are different hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any, Protocol

__all__ = [
    "IDP_DIR",
    "HtmlForm",
    "IdpUnavailableError",
    "OidcLoginError",
    "OidcProvider",
    "StdlibResponse",
    "StdlibSession",
    "Transport",
    "django_client_transport",
    "ensure_node_modules",
    "iter_trace",
    "oidc_login",
    "parse_html",
]

IDP_DIR = Path(__file__).resolve().parent / "idp"
MIN_NODE_MAJOR = 20

UsersMapping = Mapping[str, Mapping[str, Any]]


class IdpUnavailableError(RuntimeError):
    """Node, npm or the ``oidc-provider`` package are missing, or the provider did not start."""


class OidcLoginError(RuntimeError):
    """:func:`oidc_login` could not complete; ``trace`` lists the HTTP hops made so far."""

    def __init__(self, message: str, trace: Sequence[Mapping[str, Any]]) -> None:
        hops = "\n".join(
            f"  {t['method']} {t['url']} -> {t['status']} {t.get('location') or ''}" for t in trace
        )
        super().__init__(f"{message}\nHTTP hops:\n{hops}" if hops else message)
        self.trace = list(trace)


# --------------------------------------------------------------------------------------------
# Provider process
# --------------------------------------------------------------------------------------------


def _node_major(node: str) -> int:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise IdpUnavailableError(f"`{node} --version` failed: {exc}") from exc
    match = re.match(r"v(\d+)\.", out)
    if not match:
        raise IdpUnavailableError(f"cannot parse `{node} --version` output {out!r}")
    return int(match.group(1))


def ensure_node_modules(idp_dir: Path = IDP_DIR, *, npm: str | None = None) -> None:
    """Run ``npm ci`` in ``idp_dir`` unless ``node_modules/oidc-provider`` is already there.

    Serialised with a lock file in the temp dir so parallel test workers do not race.
    """
    marker = idp_dir / "node_modules" / "oidc-provider" / "package.json"
    if marker.is_file():
        return
    npm = npm or shutil.which("npm")
    if not npm:
        raise IdpUnavailableError(
            f"{marker} is missing and `npm` is not on PATH; run `npm ci` in {idp_dir}"
        )
    lock_path = Path(tempfile.gettempdir()) / "secrets-portal-idp-npm-ci.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=idp_dir,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0 or not marker.is_file():
            raise IdpUnavailableError(
                f"`npm ci` in {idp_dir} failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )


class OidcProvider:
    """A loopback ``oidc-provider`` process. Not thread-safe; one instance per test session.

    ``start(users, redirect_uris)`` -> ``issuer`` is ``http://127.0.0.1:<port>`` (the port is
    chosen by the OS: the node process listens on port 0 and reports the real one, so there is
    no pick-then-bind race). ``set_users(users)`` takes effect on the next claims lookup, i.e.
    the next token/userinfo request. ``stop()`` terminates the process.
    """

    client_id = "portal"
    client_secret = "portal-secret"

    def __init__(
        self,
        *,
        idp_dir: Path = IDP_DIR,
        startup_timeout: float = 30.0,
        require_pkce: bool = True,
        force_login: bool = True,
        node: str | None = None,
        npm: str | None = None,
    ) -> None:
        self.idp_dir = Path(idp_dir)
        self.startup_timeout = startup_timeout
        self.require_pkce = require_pkce
        self.force_login = force_login
        self._node = node
        self._npm = npm
        self._proc: subprocess.Popen[str] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._users_file: Path | None = None
        self._stderr: IO[str] | None = None
        self._stdout_lines: list[str] = []
        self._issuer: str | None = None
        self.redirect_uris: list[str] = []

    # -- public API -------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash); raises if not started."""
        if self._issuer is None:
            raise RuntimeError("OidcProvider is not started")
        return self._issuer

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def users_file(self) -> Path:
        if self._users_file is None:
            raise RuntimeError("OidcProvider is not started")
        return self._users_file

    def start(self, users: UsersMapping, redirect_uris: list[str]) -> None:
        """Start the provider and block until it prints ``READY <issuer>``.

        ``users``: ``{"alice": {"email": ..., "name": ..., "groups": [...]}, ...}``. Entries are
        passed through verbatim (``"groups": "not-a-list"`` or a missing ``groups`` key reach the
        RP like that); a username absent from the mapping gets ``groups: []``,
        ``email: <name>@example.test``. ``redirect_uris``: exact callback URLs of the ``portal``
        client.
        """
        if self._proc is not None:
            raise RuntimeError("OidcProvider already started")
        if not redirect_uris:
            raise ValueError("redirect_uris must not be empty")
        for uri in redirect_uris:
            if "," in uri:
                raise ValueError(f"redirect URI must not contain a comma: {uri!r}")
        node = self._node or shutil.which("node")
        if not node:
            raise IdpUnavailableError("`node` is not on PATH; Node.js >= 20 is needed for the IdP")
        major = _node_major(node)
        if major < MIN_NODE_MAJOR:
            raise IdpUnavailableError(f"Node.js >= {MIN_NODE_MAJOR} needed, found v{major}")
        ensure_node_modules(self.idp_dir, npm=self._npm)

        self._tmpdir = tempfile.TemporaryDirectory(prefix="portal-idp-")
        tmp = Path(self._tmpdir.name)
        self._users_file = tmp / "users.json"
        self.set_users(users)
        self._stderr = open(tmp / "idp.stderr.log", "w+", encoding="utf-8")  # noqa: SIM115
        self.redirect_uris = list(redirect_uris)
        env = {
            **os.environ,
            "IDP_PORT": "0",
            "IDP_REDIRECT_URIS": ",".join(redirect_uris),
            "IDP_USERS_FILE": str(self._users_file),
            "IDP_CLIENT_ID": self.client_id,
            "IDP_CLIENT_SECRET": self.client_secret,
            "IDP_REQUIRE_PKCE": "1" if self.require_pkce else "0",
            "IDP_FORCE_LOGIN": "1" if self.force_login else "0",
            "IDP_WATCH_STDIN": "1",  # the node process exits when this Python process dies
            "NO_COLOR": "1",
        }
        env.pop("IDP_ISSUER", None)
        self._proc = subprocess.Popen(
            [node, str(self.idp_dir / "server.mjs")],
            cwd=self.idp_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        ready = threading.Event()
        issuer_box: list[str] = []

        def pump(stream: IO[str]) -> None:
            with contextlib.suppress(OSError, ValueError):  # stream closed by stop()
                for raw in stream:
                    line = raw.rstrip("\n")
                    self._stdout_lines.append(line)
                    if not ready.is_set() and line.startswith("READY "):
                        issuer_box.append(line.split(" ", 1)[1].strip())
                        ready.set()

        assert self._proc.stdout is not None
        threading.Thread(target=pump, args=(self._proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                reason = (
                    f"exited with code {self._proc.returncode}"
                    if self._proc.returncode is not None
                    else f"did not print READY within {self.startup_timeout}s"
                )
                log = self.log()
                self.stop()
                raise IdpUnavailableError(f"oidc-provider {reason}; its output:\n{log}")
        self._issuer = issuer_box[0]

    def set_users(self, users: UsersMapping) -> None:
        """Atomically rewrite the users file; the next claims lookup sees the new data."""
        path = self.users_file
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(users, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def log(self) -> str:
        """stdout + stderr of the node process so far (warnings, `idp: <event>: <error>` lines)."""
        err = ""
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.flush()
            self._stderr.seek(0)
            err = self._stderr.read()
            self._stderr.seek(0, os.SEEK_END)
        return "\n".join(self._stdout_lines) + ("\n" if self._stdout_lines else "") + err

    def stop(self) -> None:
        """Terminate the node process and remove the temp dir. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            if proc.stdout is not None:
                with contextlib.suppress(OSError):
                    proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        self._users_file = None
        self._issuer = None

    def __enter__(self) -> OidcProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# HTTP plumbing: a "transport" is callable(method, url, data) -> response without redirects
# --------------------------------------------------------------------------------------------


class Transport(Protocol):
    """Perform one HTTP request *without* following redirects.

    ``data`` is a form dict (sent urlencoded) or ``None``. The response needs ``status_code``,
    ``headers`` (with a case-insensitive ``get``) and ``text`` or ``content``.
    """

    def __call__(self, method: str, url: str, data: Mapping[str, str] | None) -> Any: ...


@dataclass
class StdlibResponse:
    status_code: int
    headers: Message
    content: bytes
    url: str

    @property
    def text(self) -> str:
        charset = self.headers.get_content_charset() or "utf-8"
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class StdlibSession:
    """Minimal ``requests.Session`` stand-in (cookies, no proxies, no redirect following)."""

    cookies: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)
    timeout: float = 30.0

    def request(
        self,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        allow_redirects: bool = False,
        timeout: float | None = None,
    ) -> StdlibResponse:
        if allow_redirects:
            raise NotImplementedError("StdlibSession never follows redirects")
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(self.cookies),
            _NoRedirect(),
        )
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, method=method.upper())
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with opener.open(req, timeout=timeout or self.timeout) as resp:
                return StdlibResponse(resp.status, resp.headers, resp.read(), url)
        except urllib.error.HTTPError as err:  # 3xx (not followed), 4xx, 5xx
            with err:
                return StdlibResponse(err.code, err.headers, err.read(), url)

    def get(self, url: str, **kwargs: Any) -> StdlibResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> StdlibResponse:
        return self.request("POST", url, **kwargs)


def _session_transport(session: Any) -> Transport:
    def transport(method: str, url: str, data: Mapping[str, str] | None) -> Any:
        return session.request(method, url, data=data, allow_redirects=False)

    return transport


def django_client_transport(
    client: Any,
    *,
    rp_origins: Sequence[str] = ("http://testserver",),
    other: Any = None,
) -> Transport:
    """Route requests for ``rp_origins`` to a Django test ``Client``, everything else over HTTP.

    Lets :func:`oidc_login` drive the portal in-process (no ``live_server``) while talking to
    the real IdP. ``other`` is a ``requests.Session``-like object (default: a new
    :class:`StdlibSession`). Register ``http://testserver<callback path>`` as redirect URI.
    """
    fallback = _session_transport(other if other is not None else StdlibSession())
    origins = {o.rstrip("/") for o in rp_origins}

    def transport(method: str, url: str, data: Mapping[str, str] | None) -> Any:
        parts = urllib.parse.urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" not in origins:
            return fallback(method, url, data)
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        extra: dict[str, Any] = {"secure": parts.scheme == "https", "HTTP_HOST": parts.netloc}
        if method.upper() == "GET":
            return client.get(path, **extra)
        if method.upper() == "POST":
            return client.post(
                path,
                data=urllib.parse.urlencode(data or {}),
                content_type="application/x-www-form-urlencoded",
                **extra,
            )
        return client.generic(method.upper(), path, **extra)

    return transport


def _as_transport(http: Any) -> Transport:
    if hasattr(http, "force_login") and hasattr(http, "handler"):
        raise TypeError("pass a Django test Client through django_client_transport(client)")
    if callable(http) and not hasattr(http, "request"):
        return http  # type: ignore[no-any-return]
    if hasattr(http, "request"):
        return _session_transport(http)
    raise TypeError(f"expected a requests.Session-like object or a transport, got {http!r}")


def _header(resp: Any, name: str) -> str | None:
    headers = getattr(resp, "headers", None)
    if headers is None:
        return None
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return None if value is None else str(value)


def _text(resp: Any) -> str:
    text = getattr(resp, "text", None)
    if isinstance(text, str):
        return text
    content = getattr(resp, "content", b"")
    return content.decode("utf-8", errors="replace") if isinstance(content, bytes) else str(content)


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


# --------------------------------------------------------------------------------------------
# HTML form parsing
# --------------------------------------------------------------------------------------------


@dataclass
class HtmlForm:
    action: str
    method: str
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (name, value, type)

    def values(self) -> dict[str, str]:
        """Successful controls: inputs/textarea/select, minus submit buttons."""
        out: dict[str, str] = {}
        for name, value, kind in self.fields:
            if kind in {"submit", "button", "image", "reset"}:
                continue
            out.setdefault(name, value)
        return out

    def field_names(self) -> set[str]:
        return {name for name, _, _ in self.fields}


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []
        self.links: list[str] = []
        self._form: HtmlForm | None = None
        self._textarea: str | None = None
        self._textarea_buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._form = HtmlForm(a.get("action", ""), (a.get("method") or "get").upper())
            self.forms.append(self._form)
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif self._form is None or not a.get("name"):
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in {"checkbox", "radio"} and "checked" not in a:
                return
            default = "on" if kind in {"checkbox", "radio"} else ""
            self._form.fields.append((a["name"], a.get("value", default), kind))
        elif tag == "button":
            self._form.fields.append((a["name"], a.get("value", ""), (a.get("type") or "submit")))
        elif tag == "textarea":
            self._textarea, self._textarea_buf = a["name"], []

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea_buf.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            self._form.fields.append((self._textarea, "".join(self._textarea_buf), "textarea"))
            self._textarea = None


def parse_html(html: str) -> tuple[list[HtmlForm], list[str]]:
    """Return the ``<form>``s and ``<a href>`` targets of an HTML page."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms, parser.links


# --------------------------------------------------------------------------------------------
# The login driver
# --------------------------------------------------------------------------------------------

_REDIRECTS = {301, 302, 303, 307, 308}


def oidc_login(
    http: Any,
    start_url: str,
    username: str,
    *,
    post_data: Mapping[str, str] | None = None,
    password: str = "x",  # noqa: S107 - the dev login form accepts any password
    consent: bool = True,
    abort: bool = False,
    confirm_rp_form: bool = True,
    follow_rp_redirects: bool = True,
    issuer: str | None = None,
    max_hops: int = 40,
    trace: list[dict[str, Any]] | None = None,
) -> Any:
    """Log ``username`` in at a relying party through the IdP, the way a browser would.

    ``http`` is a ``requests.Session`` (or anything with ``.request(method, url, data=...,
    allow_redirects=False)``, e.g. :class:`StdlibSession`) or a :class:`Transport` callable such
    as :func:`django_client_transport`. Cookies live in that object, so the RP's session cookie
    ends up there and later requests with it are logged in.

    Steps (every hop is recorded in ``trace`` when a list is passed in):

    1. ``GET start_url`` (the RP's login URL), or ``POST start_url`` with ``post_data`` if given.
       If that first answer is a 200 page with a POST form targeting the same URL (allauth's
       "Continue" page when ``SOCIALACCOUNT_LOGIN_ON_GET`` is False), the form is submitted with
       its hidden fields (CSRF token included), unless ``confirm_rp_form=False``.
    2. Redirects (301/302/303 -> GET; 307/308 keep method and body) are followed by hand across
       hosts; ``Location`` is resolved against the current URL. The first redirect carrying
       ``client_id`` and ``response_type`` marks the IdP origin (or pass ``issuer``).
    3. On the IdP's dev login page (a form with hidden ``prompt=login``) the form is POSTed to its
       ``action`` (``/interaction/<uid>/login``) with ``login=<username>``, ``password=<password>``.
       On the consent page (hidden ``prompt=consent``) the form is POSTed as is. With
       ``abort=True`` (or ``consent=False`` on the consent page) the ``.../abort`` link is
       followed instead, so the RP receives ``error=access_denied``.
       Script-submitted forms are POSTed as a browser would: ``response_mode=form_post``
       callbacks, and the IdP's "log the previous user out" form, shown when another user logs
       in over an existing IdP session (``/session/end/confirm``, fields ``xsrf``, ``logout``).
    4. The IdP redirects to ``/auth/<uid>`` and then to the RP's ``redirect_uri?code=..&state=..
       &iss=..``. With ``follow_rp_redirects=False`` the response of that callback request is
       returned; otherwise redirects are followed until a non-redirect response, which is returned.

    Raises :class:`OidcLoginError` on a redirect loop (``max_hops``), on a missing ``Location``
    header, or if the login form comes back after a login was submitted.
    """
    transport = _as_transport(http)
    hops: list[dict[str, Any]] = trace if trace is not None else []
    idp_origin = _origin(issuer) if issuer else None
    method, url = ("POST", start_url) if post_data is not None else ("GET", start_url)
    data: Mapping[str, str] | None = dict(post_data) if post_data is not None else None
    logins_submitted = 0
    at_callback = False
    first = True

    for _ in range(max_hops):
        resp = transport(method, url, data)
        status = int(resp.status_code)
        location = _header(resp, "Location")
        hops.append({"method": method, "url": url, "status": status, "location": location})
        if at_callback and not follow_rp_redirects:
            return resp
        was_first, first = first, False

        if status in _REDIRECTS:
            if not location:
                raise OidcLoginError(f"{status} without Location header", hops)
            next_url = urllib.parse.urljoin(url, location)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(next_url).query)
            if idp_origin is None and "client_id" in query and "response_type" in query:
                idp_origin = _origin(next_url)
            if idp_origin and _origin(url) == idp_origin and _origin(next_url) != idp_origin:
                at_callback = True
            if status in {307, 308}:
                url = next_url
            else:
                method, url, data = "GET", next_url, None
            continue

        if status != 200:
            return resp
        content_type = _header(resp, "Content-Type") or ""
        if "html" not in content_type.lower():
            return resp
        forms, links = parse_html(_text(resp))

        interaction = next(
            (
                f
                for f in forms
                if ("prompt", "login", "hidden") in f.fields
                or ("prompt", "consent", "hidden") in f.fields
            ),
            None,
        )
        if interaction is not None:
            idp_origin = idp_origin or _origin(url)
            prompt = interaction.values()["prompt"]
            if abort or (prompt == "consent" and not consent):
                abort_link = next((h for h in links if h.rstrip("/").endswith("/abort")), None)
                if abort_link is None:
                    raise OidcLoginError("no abort link on the IdP interaction page", hops)
                method, url, data = "GET", urllib.parse.urljoin(url, abort_link), None
                continue
            values = interaction.values()
            if prompt == "login":
                if logins_submitted:
                    raise OidcLoginError("the IdP showed the login form again", hops)
                logins_submitted += 1
                user_field = (
                    "login"
                    if "login" in interaction.field_names()
                    else next(
                        (n for n, _, k in interaction.fields if k in {"text", "email"}), "login"
                    )
                )
                values[user_field] = username
                values["password"] = password
            method = interaction.method
            url = urllib.parse.urljoin(url, interaction.action or url)
            data = values if method == "POST" else None
            if method == "GET":
                url = _with_query(url, values)
            continue

        # Pages a browser would submit by script: response_mode=form_post callbacks and
        # oidc-provider's "end the previous user's session" step when another user logs in
        # over an existing IdP session (POST /session/end/confirm with xsrf + logout=yes).
        auto = _auto_submit_form(forms, _text(resp))
        if auto is not None and (
            (idp_origin and _origin(url) == idp_origin)
            or {"code", "state"} <= auto.field_names()
            or {"error", "state"} <= auto.field_names()
        ):
            next_url = urllib.parse.urljoin(url, auto.action or url)
            if idp_origin and _origin(url) == idp_origin and _origin(next_url) != idp_origin:
                at_callback = True
            method, url, data = "POST", next_url, auto.values()
            continue

        if was_first and confirm_rp_form and post_data is None:
            target = _strip_fragment(url)
            confirm = next(
                (
                    f
                    for f in forms
                    if f.method == "POST"
                    and _strip_fragment(urllib.parse.urljoin(url, f.action or url)) == target
                ),
                None,
            )
            if confirm is not None:
                method, url, data = "POST", target, confirm.values()
                continue
        return resp

    raise OidcLoginError(f"more than {max_hops} HTTP hops", hops)


_AUTO_SUBMIT = re.compile(r"forms\[0\]\.submit\(\)|\.submit\(\)\s*[;}]")


def _auto_submit_form(forms: Sequence[HtmlForm], html: str) -> HtmlForm | None:
    """The form a page submits on load by script (``document.forms[0].submit()``), if any."""
    if forms and forms[0].method == "POST" and _AUTO_SUBMIT.search(html):
        return forms[0]
    return None


def _strip_fragment(url: str) -> str:
    return urllib.parse.urldefrag(url)[0]


def _with_query(url: str, values: Mapping[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(values)))


def iter_trace(trace: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """Human-readable lines for a ``trace`` list filled by :func:`oidc_login`."""
    for hop in trace:
        yield f"{hop['method']} {hop['url']} -> {hop['status']} {hop.get('location') or ''}"
