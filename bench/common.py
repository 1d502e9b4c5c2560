"""What ``bench/run.py`` and ``bench/load.py`` share: the fake AWS, portal instances under
gunicorn in production mode, a signed-in HTTP client, seeding, and the save adapter.

Everything listens on 127.0.0.1 only. Nothing here is imported by the portal or its tests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import unescape
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import requests

#: This harness's checkout (bench/ lives here).
HARNESS = Path(__file__).resolve().parent.parent
#: The checkout whose portal is measured: this one, or ``BENCH_APP_ROOT`` (e.g. a worktree of an
#: older commit, to measure it in the same harness).
ROOT = Path(os.environ.get("BENCH_APP_ROOT") or HARNESS).resolve()
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent
REGION = "us-east-1"
SUFFIX = "-secrets"


#: The first of the loopback ports the bench prefers (``BENCH_PORT_BASE``, default 8040): fake AWS
#: and portals at fixed offsets from it, so two checkouts can run side by side.
PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "8040"))


def bench_port(offset: int) -> int:
    """A free loopback port, preferably ``PORT_BASE + offset``."""
    return free_port(PORT_BASE + offset)


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else any free loopback port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def start_server(
    args: list[str], port: int, *, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process in its own process group (so it can be stopped with its
    children) and wait until it listens on ``port``."""
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=log.open("ab") if log else None,
        stderr=subprocess.STDOUT if log else None,
        start_new_session=True,
    )
    wait_for_port(port, proc=proc)
    return proc


def stop_process(proc: subprocess.Popen[Any] | None) -> None:
    """SIGTERM a process we started (and its process group), then wait."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------------------------------------
# Fake AWS: moto in its own process, counting calls by X-Amz-Target (bench/fakeaws.py)


class FakeAws:
    """``bench/fakeaws.py`` on a loopback port: moto, plus call counts read over HTTP."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FakeAws:
        self.proc = start_server(
            [PYTHON, str(HARNESS / "bench" / "fakeaws.py"), str(self.port)], self.port, log=self.log
        )
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def reset_calls(self) -> None:
        requests.post(f"{self.endpoint}/_bench/calls/reset", timeout=10)

    def set_latency(self, ms: int) -> None:
        """Delay every AWS call by ``ms`` milliseconds from now on (0: none)."""
        requests.post(f"{self.endpoint}/_bench/latency/{ms}", timeout=10)

    def calls(self) -> dict[str, int]:
        return dict(requests.get(f"{self.endpoint}/_bench/calls", timeout=10).json())

    def client(self) -> Any:
        """A plain boto3 Secrets Manager client on the fake AWS (the bench's, not the portal's)."""
        return boto3.session.Session().client(
            "secretsmanager",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto accepts any credentials
            config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 4}),
        )


# ---------------------------------------------------------------------------------------------
# The portal, production mode, under gunicorn


@dataclass
class Services:
    """Where the portal's database and shared cache live (PostgreSQL and Redis on loopback)."""

    database_url: str
    cache_url: str

    @classmethod
    def for_bench(cls, database: str, redis_db: int) -> Services:
        """A fresh PostgreSQL database ``database`` (dropped and created) and Redis db
        ``redis_db`` (flushed). Both servers must run on 127.0.0.1 (the machine starts them).
        ``BENCH_DB_SUFFIX`` (appended to the database name) and ``BENCH_REDIS_DB`` (replaces
        the Redis db) keep two checkouts' runs apart on one machine."""
        import psycopg
        import redis

        database += os.environ.get("BENCH_DB_SUFFIX", "")
        redis_db = int(os.environ.get("BENCH_REDIS_DB", redis_db))

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{database}"')
        redis.Redis(host="127.0.0.1", port=6379, db=redis_db).flushdb()
        return cls(
            database_url=f"postgres://postgres@127.0.0.1:5432/{database}",
            cache_url=f"redis://127.0.0.1:6379/{redis_db}",
        )

    def wait_unlocked(self, what: str, timeout: float = 120.0) -> None:
        """Wait until no portal instance holds a ``what`` lock in the shared cache (e.g. the
        listing's background refresh and the indexing that follows it)."""
        import redis

        r = redis.Redis.from_url(self.cache_url)
        deadline = time.monotonic() + timeout
        while any(r.scan_iter(match=f"*portal:{what}:*:lock")) and time.monotonic() < deadline:
            time.sleep(0.2)

    def drop_cache(self, what: str) -> None:
        """Forget the portal's cached ``listing`` or ``grid`` entries (sessions, also in Redis,
        stay): the next list or grid is cold."""
        import redis

        r = redis.Redis.from_url(self.cache_url)
        keys = list(r.scan_iter(match=f"*portal:{what}:*"))
        if keys:
            r.delete(*keys)


def portal_env(fake: FakeAws, services: Services, **extra: str) -> dict[str, str]:
    """Production settings (no PORTAL_DEMO, no DEBUG) for a portal on the fake AWS."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PORTAL_", "AWS_", "DJANGO_")) and k not in ("DEBUG", "SECRET_KEY")
    }
    env.update(
        {
            "SECRET_KEY": "bench-" + secrets.token_urlsafe(40),
            "PORTAL_FINGERPRINT_KEY": "bench-" + secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": services.database_url,
            "CACHE_URL": services.cache_url,
            "AWS_ENDPOINT_URL": fake.endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "LOG_LEVEL": "WARNING",
            "PYTHONDONTWRITEBYTECODE": "1",
            # A few bench users save far more than a person would; their budget is not measured.
            "PORTAL_WRITE_RATE": "100000/m",
            # Reviews of typed values count against the reveal budget; the load test's few
            # users review and reveal far more often than a person would.
            "PORTAL_REVEAL_RATE": "100000/m",
            # Production requires an anchor key and named audit devices; the bench measures the
            # portal without shipping to devices (bench/audit_ship_bench.py measures that).
            "PORTAL_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "PORTAL_AUDIT_DEVICES": "none",
        }
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """``python manage.py ARGS`` with ``env``; returns stdout, raises on failure."""
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def prepare_database(env: dict[str, str]) -> None:
    """Migrate the database and collect static files (the production storage needs the
    manifest), as a release step would."""
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")


def mint_sessions(env: dict[str, str], usernames: Sequence[str], role: str) -> list[str]:
    """Create (or update) each user with ``role`` and return a signed-in session id for each.

    Production mode has no password login (SSO only), so the bench makes the sessions the way
    Django's own test client does (``Client.force_login``), in a ``manage.py shell`` of the same
    settings: no code in the portal mints sessions.
    """
    code = (
        "from django.contrib.auth import get_user_model; from django.test import Client; "
        "from django.conf import settings; "
        "from secrets_admin.permissions import Role, set_role\n"
        f"for name in {list(usernames)!r}:\n"
        "    u, _ = get_user_model().objects.get_or_create(username=name)\n"
        f"    set_role(u, [Role.{role.upper()}]); c = Client(); c.force_login(u)\n"
        "    print('SESSION=' + c.cookies[settings.SESSION_COOKIE_NAME].value)\n"
    )
    sessions = re.findall(r"SESSION=(\S+)", manage(env, "shell", "-c", code))
    if len(sessions) != len(usernames):
        raise RuntimeError(f"{len(sessions)} sessions for {len(usernames)} users")
    return sessions


def mint_session(env: dict[str, str], username: str, role: str) -> str:
    """One signed-in session id (see :func:`mint_sessions`)."""
    return mint_sessions(env, [username], role)[0]


ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(D)s %({x-request-id}o)s"


class Portal:
    """One portal instance: gunicorn (sync workers) on a loopback port, production settings.

    The access log records each response's server time in microseconds (``%(D)s``) and its
    ``X-Request-ID``, so a client can look up how long the server took for its request.
    """

    def __init__(self, port: int, env: dict[str, str], workdir: Path, *, workers: int = 2) -> None:
        self.port = port
        self.env = env
        self.workers = workers
        self.base = f"http://127.0.0.1:{port}"
        self.access_log = workdir / f"access-{port}.log"
        self.error_log = workdir / f"gunicorn-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._times: dict[str, float] = {}

    def start(self) -> Portal:
        args = [str(VENV_BIN / "gunicorn"), "portal.wsgi:application"]
        args += [
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--timeout",
            "120",
        ]
        args += ["--access-logfile", str(self.access_log), "--access-logformat", ACCESS_LOG_FORMAT]
        args += ["--error-logfile", str(self.error_log)]
        self.proc = start_server(args, self.port, env=self.env)
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (children of the master we started)."""
        assert self.proc is not None
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def worker_cpu_seconds(self) -> float:
        """CPU time (user + system, seconds) the workers have used so far, from
        ``/proc/PID/stat``: the workers' own accounting, which other processes on a shared
        machine disturb far less than they disturb wall-clock latency."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / tick

    def worker_memory(self) -> list[tuple[int, int, int]]:
        """(pid, peak RSS KiB, current RSS KiB) of each worker, from /proc/PID/status."""
        out = []
        for pid in self.worker_pids():
            status = Path(f"/proc/{pid}/status").read_text()
            hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            out.append((pid, hwm, rss))
        return out

    def server_seconds(self, request_id: str, *, timeout: float = 5.0) -> float:
        """How long the server took for the response with ``X-Request-ID: request_id``."""
        deadline = time.monotonic() + timeout
        while request_id not in self._times:
            with self.access_log.open() as f:
                f.seek(self._log_offset)
                for line in f:
                    parts = line.split()
                    if len(parts) >= 5:
                        self._times[parts[4]] = int(parts[3]) / 1e6
                self._log_offset = f.tell()
            if request_id in self._times:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"request {request_id} not in {self.access_log}")
            time.sleep(0.02)
        return self._times.pop(request_id)


def browser_headers(origin: str, cookies: dict[str, str], method: str) -> dict[str, str]:
    """What a browser behind a TLS-terminating load balancer sends: the cookies, its origin,
    ``X-Forwarded-Proto: https`` (which the balancer adds) and, on a POST, the CSRF token."""
    headers = {
        "X-Forwarded-Proto": "https",
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        "Origin": origin,
        "Referer": origin + "/",
    }
    if method == "POST" and "csrftoken" in cookies:
        headers["X-CSRFToken"] = cookies["csrftoken"]
    return headers


def keep_cookies(cookies: dict[str, str], response: Any) -> None:
    """Store a response's ``Set-Cookie`` values in ``cookies`` (``Secure`` ones too, which an
    http client would otherwise drop on loopback)."""
    raw = getattr(response, "raw", None)
    for header in raw.headers.getlist("Set-Cookie") if raw is not None else []:
        for name, morsel in SimpleCookie(header).items():
            cookies[name] = morsel.value


class PortalClient:
    """A signed-in browser, as far as the server can tell: session and CSRF cookies, and the
    ``X-Forwarded-Proto: https`` a TLS-terminating load balancer adds (the portal's cookies are
    ``Secure`` and it redirects plain http; ``SECURE_PROXY_SSL_HEADER`` trusts that header).
    Cookies are kept here because an http client would not send ``Secure`` cookies back."""

    def __init__(self, portal: Portal | str, session_id: str) -> None:
        """``portal``: an instance, or the base URL of one (``http://127.0.0.1:PORT``)."""
        self.base = portal if isinstance(portal, str) else portal.base
        self.http = requests.Session()
        self.cookies: dict[str, str] = {"sessionid": session_id}
        host = self.base.removeprefix("http://")
        self.origin = f"https://{host}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        htmx: bool = False,
    ) -> requests.Response:
        headers = browser_headers(self.origin, self.cookies, method)
        if htmx:
            headers["HX-Request"] = "true"
        response = self.http.request(
            method,
            self.base + path,
            params=params,
            data=data,
            headers=headers,
            allow_redirects=False,
            timeout=300,
        )
        keep_cookies(self.cookies, response)
        return response

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)


#: The list searches of the load test and its CPU probe.
SEARCHES = ["app001", "app0123", "team", "bench 7", "app00999", "nothing-matches-this"]
#: A grid Reveal button's cell: JSON ``[environment, service, key]``, HTML-escaped in the
#: ``value`` attribute (``templates/secrets_admin/secret_detail.html``).
_CELL = re.compile(r'name="cell" value="([^"]*)"')
_VERSION = re.compile(r'name="version_id" value="([^"]+)"')


def grid_cells(html: str) -> tuple[str, list[dict[str, str]]]:
    """The version on a grid page and the reveal form fields of each cell it shows
    (``[]`` when the page shows no Reveal buttons)."""
    version = _VERSION.search(html)
    if version is None:
        return "", []
    return unescape(version.group(1)), [{"cell": unescape(c)} for c in _CELL.findall(html)]


def grid_cell(html: str) -> tuple[str, dict[str, str]]:
    """The version on a grid page and its first cell's reveal fields; raises when there is none."""
    version, cells = grid_cells(html)
    if not cells:
        raise RuntimeError("no Reveal button on the grid page (is the user an engineer?)")
    return version, cells[0]


# ---------------------------------------------------------------------------------------------
# Seeding (CreateSecret only: the CAS write path must never meet a plain PutSecretValue)


def small_document(i: int) -> str:
    return json.dumps(
        {
            "sandbox": {"stripe": {"secret_key": f"sk_test_sand_{i}"}},
            "dev": {
                "stripe": {"secret_key": f"sk_test_dev_{i}"},
                "db": {"url": f"postgres://dev-{i}"},
            },
            "main": {"stripe": {"secret_key": f"sk_live_{i}"}},
        }
    )


def editing_document(keys: int = 20) -> dict[str, Any]:
    """A document for the edit races: ``dev.app.key_NN`` for NN < ``keys``, plus other envs."""
    return {
        "sandbox": {"app": {f"key_{n:02d}": f"sandbox-{n}" for n in range(keys)}},
        "dev": {"app": {f"key_{n:02d}": f"dev-original-{n}" for n in range(keys)}},
        "main": {"app": {f"key_{n:02d}": f"main-{n}" for n in range(keys)}},
    }


def large_document(
    environments: int = 10, services: int = 40, keys: int = 8, limit: int = 65_536
) -> str:
    """A conforming document of environments x services x keys string cells, its values padded
    so the serialised text lands just under ``limit`` bytes (the AWS maximum)."""
    envs = ["sandbox", "dev", "main", "uat", "qa", "staging", "perf", "demo", "preview", "hotfix"]
    envs += [f"env{n}" for n in range(len(envs), environments)]

    def build(width: int) -> str:
        doc = {
            env: {
                f"svc{s:02d}": {
                    f"k{k}": (f"{e}{s}{k}" + "x" * width)[: max(width, 1)] for k in range(keys)
                }
                for s in range(services)
            }
            for e, env in enumerate(envs[:environments])
        }
        return json.dumps(doc, separators=(",", ":"))

    width = 1
    while len(build(width + 1).encode()) <= limit - 512:
        width += 1
    return build(width)


def seed(
    client_factory: Any, names: Iterable[str], *, text_for: Any = small_document, threads: int = 8
) -> int:
    """CreateSecret for each name (in parallel); returns how many were created."""
    local: dict[int, Any] = {}

    def create(item: tuple[int, str]) -> None:
        me = threading.get_ident()
        if me not in local:
            local[me] = client_factory()
        i, name = item
        try:
            local[me].create_secret(Name=name, SecretString=text_for(i), Description=f"bench {i}")
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise

    items = list(enumerate(names))
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, items))
    return len(items)


# ---------------------------------------------------------------------------------------------
# Saving one key: THE SAVE ADAPTER


@dataclass
class Editor:
    """One person editing: the signed-in portal client (``portal``) saves through the editor's
    HTTP protocol; ``aws`` is kept for callers that arrange or check with plain boto3."""

    aws: Any
    portal: PortalClient | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"attempts": 0, "conflicts": 0})


@dataclass(frozen=True)
class SaveOutcome:
    landed: bool
    attempts: int
    version_id: str = ""
    #: Where the save step redirected (the secret's page; a change request's page when the
    #: cell is in a protected environment and the save became a proposal).
    location: str = ""
    #: The ``X-Request-ID`` of the landed save step (its server time is in the access log).
    request_id: str = ""


class SaveRefused(RuntimeError):
    """The portal answered a save step with something other than success or a conflict."""


_BASE_VERSION = re.compile(r'name="base_version_id" value="([^"]*)"')
_CHANGE_ID = re.compile(r'name="change_id" value="([^"]+)"')


def _form_value(pattern: re.Pattern[str], html: str, what: str) -> str:
    match = pattern.search(html)
    if not match:
        raise SaveRefused(f"no {what} in the editor's page")
    return unescape(match.group(1))


def save_one_key(
    editor: Editor,
    *,
    name: str,
    environment: str,
    service: str,
    key: str,
    value: str,
    max_attempts: int = 25,
) -> SaveOutcome:
    """Change one cell through the portal's editor, as a browser does. **The save adapter of
    the benchmarks** (``bench/run.py`` and ``bench/locustfile.py`` call only this).

    Per attempt, three requests through ``editor.portal`` (``views/editor.py``: one URL per step):

    1. GET ``/secrets/<name>/edit/``: the version on screen (``base_version_id``; the CSRF
       cookie comes with the page);
    2. POST ``/secrets/<name>/edit/review/`` with ``base_version_id`` and ``set:["env","service","key"]``
       (``forms.field_name``; a key not in the grid is added the same way): the review page,
       carrying a fresh ``change_id``;
    3. POST ``/secrets/<name>/edit/save/`` with the same fields and the ``change_id``: a 302 is a landed save (or,
       for a protected environment, a change request opened: see ``SaveOutcome.location``).

    The portal rebases onto others' saves itself; a 409 (a real conflict on this cell, or
    ``SaveContended`` after too many rebases) makes the adapter re-read and retry, counted in
    ``editor.stats["conflicts"]``, up to ``max_attempts`` times. Anything else raises
    :class:`SaveRefused`. ``version_id`` stays empty: the new version is only in the flash
    message, which needs another request to read.
    """
    client = editor.portal
    if client is None:
        raise SaveRefused("the save adapter needs a signed-in portal client (Editor.portal)")
    path = f"/secrets/{name}/edit/"
    cell = "set:" + json.dumps([environment, service, key], ensure_ascii=False)
    for attempt in range(1, max_attempts + 1):
        editor.stats["attempts"] += 1
        page = client.get(path)
        if page.status_code != 200:
            raise SaveRefused(f"GET {path}: HTTP {page.status_code}")
        form = {cell: value, "base_version_id": _form_value(_BASE_VERSION, page.text, "version")}
        review = client.post(path + "review/", data=form)
        if review.status_code != 200:
            raise SaveRefused(f"review of {name}: HTTP {review.status_code}")
        change_id = _form_value(_CHANGE_ID, review.text, "change id")
        saved = client.post(path + "save/", data={**form, "change_id": change_id})
        if saved.status_code == 302:
            return SaveOutcome(
                True,
                attempt,
                location=saved.headers.get("Location", ""),
                request_id=saved.headers.get("X-Request-ID", ""),
            )
        if saved.status_code != 409:
            raise SaveRefused(f"save of {name}: HTTP {saved.status_code}")
        editor.stats["conflicts"] += 1
        time.sleep(0.005 * attempt)
    return SaveOutcome(False, max_attempts)


# ---------------------------------------------------------------------------------------------
# The AWS CLI, the way the standard's users change a key today


class AwsCli:
    """``aws secretsmanager ...`` (awscli from PyPI) against the fake AWS, with a private empty
    config so nothing from the machine's ~/.aws leaks in."""

    def __init__(self, fake: FakeAws, workdir: Path) -> None:
        exe = shutil.which("aws", path=str(VENV_BIN))
        if exe is None:
            raise RuntimeError("the AWS CLI is missing: pip install -e '.[bench]'")
        self.exe = exe
        home = workdir / "cli-home"
        home.mkdir(exist_ok=True)
        self.workdir = workdir
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": fake.endpoint,
            "AWS_PAGER": "",
        }

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [self.exe, "secretsmanager", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"aws secretsmanager {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def change_one_key(
        self, *, name: str, environment: str, service: str, key: str, value: str
    ) -> None:
        """get-secret-value, edit the JSON, put-secret-value (a plain put: AWSCURRENT moves)."""
        text = self.run(
            "get-secret-value", "--secret-id", name, "--query", "SecretString", "--output", "text"
        )
        doc = json.loads(text)
        doc.setdefault(environment, {}).setdefault(service, {})[key] = value
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.workdir, delete=False) as f:
            json.dump(doc, f)
        try:
            self.run("put-secret-value", "--secret-id", name, "--secret-string", f"file://{f.name}")
        finally:
            os.unlink(f.name)


def machine_description() -> dict[str, str]:
    """Cores, memory, CPU model, OS, Python and the commit, for BENCHMARKS.md."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    with contextlib.suppress(OSError, AttributeError):
        meminfo = Path("/proc/meminfo").read_text()
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        if git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md"):
            commit += " (with uncommitted changes)"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import platform

    import django
    import moto

    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": f"Django {django.get_version()}, boto3 {boto3.__version__}, moto {moto.__version__}",
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": "{:.1f}, {:.1f}, {:.1f}".format(*os.getloadavg()),
    }


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
