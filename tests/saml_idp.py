"""A real SAML 2.0 identity provider on loopback for the SSO tests: pysaml2's IdP (``saml2.server``).

pysaml2 is the SAML library behind SATOSA and many university and government IdPs; here it runs
as a small WSGI app in a thread of the test process (like the moto server), started once per test
session. It behaves like a hosted IdP (Microsoft Entra ID's claim names, a login page, the
HTTP-POST binding back to the portal):

* ``GET /metadata``: its (unsigned) metadata (entity id, SSO endpoint, signing certificate),
  which the portal reads through ``PORTAL_SSO_<ID>_IDP_METADATA_URL``;
* ``GET /sso/redirect?SAMLRequest=..&RelayState=..``: an SP-initiated AuthnRequest
  (HTTP-Redirect binding) - answered with a login form;
* ``POST /sso/login``: the login form (any password); answers with the auto-posting form of a
  signed ``<Response>`` for the requesting SP's assertion consumer service.

Service providers are registered by their metadata (:meth:`SamlIdentityProvider.register_sp`),
exactly as an administrator uploads the portal's metadata to a real IdP. The assertion carries
``subject-id`` (the username), e-mail address, name and the person's groups under Entra ID's
``.../claims/groups``. :attr:`SamlIdentityProvider.mode` makes the next responses misbehave the way
the tests need: ``expired`` (NotOnOrAfter half an hour ago), ``other_audience`` (issued for another
registered SP), ``wrong_signature`` (signed with a key that is not in the metadata).
"""

from __future__ import annotations

import html
import shutil
import tempfile
import textwrap
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

UID = "urn:oasis:names:tc:SAML:attribute:subject-id"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
GIVEN_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
SURNAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
#: Another service provider known to the IdP, for the "assertion for another audience" case.
OTHER_SP = "https://wiki.example.test/saml/metadata"
MODES = ("", "expired", "other_audience", "wrong_signature")


def _key_and_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A throwaway RSA key and self-signed certificate as PEM files."""
    from .conftest import self_signed_certificate

    key, cert = self_signed_certificate(f"{name}.example.test")
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    key_file.write_text(_pem("RSA PRIVATE KEY", key), encoding="ascii")
    cert_file.write_text(_pem("CERTIFICATE", cert), encoding="ascii")
    return key_file, cert_file


def _pem(label: str, body: str) -> str:
    return f"-----BEGIN {label}-----\n{textwrap.fill(body, 64)}\n-----END {label}-----\n"


def _other_sp_metadata(acs: str) -> str:
    return textwrap.dedent(
        f"""\
        <md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{OTHER_SP}">
          <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"
              WantAssertionsSigned="true">
            <md:AssertionConsumerService Binding="{BINDING_HTTP_POST}" Location="{acs}" index="0"/>
          </md:SPSSODescriptor>
        </md:EntityDescriptor>"""
    )


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class SamlIdentityProvider:
    """pysaml2's IdP served on ``127.0.0.1:<free port>`` from a daemon thread.

    ``start()`` / ``stop()``; ``base_url`` and ``metadata_url``; ``set_users(users)`` with
    ``{"username": {"email": ..., "name": ..., "groups": [...]}}`` (a missing ``groups`` key
    sends no groups attribute); ``register_sp(metadata_xml)``; ``mode`` (see the module doc).
    """

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._httpd: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[str, Server] = {}
        self._sp_metadata: list[str] = []
        self._pending: dict[str, dict[str, str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.mode = ""
        self.base_url = ""

    @property
    def entity_id(self) -> str:
        return self.metadata_url

    @property
    def metadata_url(self) -> str:
        return self.base_url + "/metadata"

    def start(self) -> None:
        xmlsec = shutil.which("xmlsec1")
        if not xmlsec:
            raise RuntimeError("xmlsec1 is missing: apt-get install xmlsec1 (make system-deps)")
        self._tmp = tempfile.TemporaryDirectory(prefix="portal-saml-idp-")
        tmp = Path(self._tmp.name)
        self._httpd = make_server(
            "127.0.0.1", 0, self._app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.base_url = f"http://127.0.0.1:{self._httpd.server_port}"
        key, cert = _key_and_certificate(tmp, "idp")
        rogue_key, rogue_cert = _key_and_certificate(tmp, "rogue")
        lifetimes = {"": 5, "expired": -30, "other_audience": 5, "wrong_signature": 5}
        for mode in MODES:
            signing = (rogue_key, rogue_cert) if mode == "wrong_signature" else (key, cert)
            self._servers[mode] = Server(config=self._config(xmlsec, *signing, lifetimes[mode]))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _config(self, xmlsec: str, key: Path, cert: Path, minutes: int) -> IdPConfig:
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "xmlsec_binary": xmlsec,
                "key_file": str(key),
                "cert_file": str(cert),
                "service": {
                    "idp": {
                        "name": "Loopback test IdP",
                        "endpoints": {
                            "single_sign_on_service": [
                                (self.base_url + "/sso/redirect", BINDING_HTTP_REDIRECT)
                            ]
                        },
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                        "sign_response": True,
                        "sign_assertion": True,
                        "want_authn_requests_signed": False,
                        "policy": {"default": {"lifetime": {"minutes": minutes}}},
                    }
                },
                "metadata": {"inline": list(self._sp_metadata)},
            }
        )
        return config

    def register_sp(self, metadata_xml: str) -> None:
        """Trust a service provider, given its SAML metadata (the portal's metadata page)."""
        self._sp_metadata.append(metadata_xml)
        for server in self._servers.values():
            server.metadata.load("inline", metadata_xml)

    def register_other_sp(self, acs: str) -> None:
        """Trust :data:`OTHER_SP`, whose assertion consumer service is ``acs``."""
        self.register_sp(_other_sp_metadata(acs))

    def set_users(self, users: Mapping[str, Mapping[str, Any]]) -> None:
        self.users = {name: dict(attrs) for name, attrs in users.items()}

    def metadata(self) -> str:
        xml = create_metadata_string(None, config=self._servers[""].config)
        return xml.decode() if isinstance(xml, bytes) else str(xml)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SamlIdentityProvider:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the WSGI app ----------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
        try:
            if path == "/metadata" and method == "GET":
                return self._reply(
                    start_response, "200 OK", self.metadata(), "application/samlmetadata+xml"
                )
            if path == "/sso/redirect" and method == "GET":
                return self._reply(start_response, "200 OK", self._login_page(query))
            if path == "/sso/login" and method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                form = dict(urllib.parse.parse_qsl(environ["wsgi.input"].read(length).decode()))
                return self._reply(start_response, "200 OK", self._respond(form))
        except Exception as exc:  # a bad request from the SP: say so, like an IdP's error page
            return self._reply(
                start_response, "400 Bad Request", f"IdP error: {type(exc).__name__}: {exc}"
            )
        return self._reply(start_response, "404 Not Found", "not found")

    @staticmethod
    def _reply(
        start_response: Callable[..., Any], status: str, body: str, kind: str = "text/html"
    ) -> Iterator[bytes]:
        data = body.encode()
        start_response(
            status, [("Content-Type", f"{kind}; charset=utf-8"), ("Content-Length", str(len(data)))]
        )
        return iter([data])

    def _login_page(self, query: Mapping[str, str]) -> str:
        request = self._servers[""].parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
        key = request.message.id
        self._pending[key] = {
            "id": request.message.id,
            "sp": request.message.issuer.text,
            "acs": request.message.assertion_consumer_service_url,
            "relay_state": query.get("RelayState", ""),
        }
        return (
            "<!doctype html><title>Sign in - Loopback test IdP</title>"
            '<form method="post" action="/sso/login">'
            f'<input type="hidden" name="key" value="{html.escape(key)}">'
            '<label>Username <input name="username" id="username"></label>'
            '<label>Password <input name="password" id="password" type="password"></label>'
            '<button type="submit" id="sign-in">Sign in</button></form>'
        )

    def _respond(self, form: Mapping[str, str]) -> str:
        pending = self._pending.pop(form["key"])
        username = form["username"]
        person = self.users.get(username, {"email": f"{username}@example.test"})
        identity: dict[str, list[str]] = {UID: [username], EMAIL: [str(person.get("email", ""))]}
        given, _, family = str(person.get("name", "")).partition(" ")
        if given:
            identity[GIVEN_NAME], identity[SURNAME] = [given], [family]
        if "groups" in person:
            groups = person["groups"]
            identity[GROUPS] = list(groups) if isinstance(groups, list | tuple) else [groups]
        mode = self.mode
        server = self._servers[mode]
        audience = OTHER_SP if mode == "other_audience" else pending["sp"]
        response = server.create_authn_response(
            identity,
            in_response_to=pending["id"],
            destination=pending["acs"],
            sp_entity_id=audience,
            userid=username,
            name_id=None,
            authn={
                "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            },
            sign_response=True,
            sign_assertion=True,
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
        )
        http_args = server.apply_binding(
            BINDING_HTTP_POST, str(response), pending["acs"], pending["relay_state"], response=True
        )
        return str(http_args["data"])  # an HTML page whose script posts the form to the SP
