"""Profile one portal page with pyinstrument, in production settings, against the fake AWS.

``python bench/profile_page.py [grid|list|search|status|reveal|save] [--secrets N]`` starts the
counting moto server, seeds the large secret (and N small ones for the list), renders the page a
few times in this process through Django's test client (signed in as an engineer), and prints
pyinstrument's call tree of the last render. ``save`` profiles the save step alone (the POST
that saves one key, after its editor page and review), ``reveal`` one reveal. Use it when ``make bench`` shows a ratio above its target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    FakeAws,
    Services,
    editing_document,
    free_port,
    large_document,
    portal_env,
    prepare_database,
    seed,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "page",
        choices=["grid", "grid-small", "list", "search", "status", "reveal", "save"],
        default="grid",
        nargs="?",
    )
    parser.add_argument("--secrets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="show library frames too")
    parser.add_argument("--latency", type=int, default=0, help="ms added to every AWS call")
    parser.add_argument(
        "--cprofile", type=int, default=0, help="instead: cProfile N renders, top functions"
    )
    parser.add_argument("--sort", default="cumulative", help="pstats order for --cprofile")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="portal-profile-"))
    fake = FakeAws(free_port(8048), workdir / "fakeaws.log").start()
    try:
        services = Services.for_bench("portal_profile", 6)
        env = portal_env(fake, services, PORTAL_LIST_CACHE_SECONDS="3600")
        prepare_database(env)
        os.environ.clear()
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.test import Client
        from pyinstrument import Profiler

        from secrets_admin.permissions import Role, set_role

        fake.client().create_secret(Name="big-secrets", SecretString=large_document())
        fake.client().create_secret(
            Name="small-secrets", SecretString=json.dumps(editing_document(10))
        )
        if args.page not in ("grid", "reveal", "save"):
            seed(fake.client, [f"app{i:05d}-secrets" for i in range(args.secrets)])
        user, _ = get_user_model().objects.get_or_create(username="profile-engineer")
        set_role(user, [Role.ENGINEER])
        client = Client(HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
        client.force_login(user)
        if args.page in ("reveal", "save"):
            _profile_step(args, client)
            return
        path, params, headers = {
            "grid": ("/secrets/big-secrets/", {}, {}),
            "grid-small": ("/secrets/small-secrets/", {}, {}),
            "list": ("/", {}, {}),
            "search": ("/", {"q": "app0123"}, {"HX-Request": "true"}),
            "status": ("/status/", {}, {"HX-Request": "true"}),
        }[args.page]
        for _ in range(args.runs):
            client.get(path, params, headers=headers)
        fake.set_latency(args.latency)

        for _ in range(3):
            t = time.perf_counter()
            client.get(path, params, headers=headers)
            print(f"{args.page}: {1000 * (time.perf_counter() - t):.1f} ms")
        if args.cprofile:
            import cProfile
            import pstats

            with cProfile.Profile(time.process_time) as prof:  # CPU time, not waits
                for _ in range(args.cprofile):
                    client.get(path, params, headers=headers)
            pstats.Stats(prof).sort_stats(args.sort).print_stats(45)
            return
        profiler = Profiler(interval=0.0005)
        with profiler:
            response = client.get(path, params, headers=headers)
        assert response.status_code == 200, (response.status_code, response.get("Location"))
        print(f"{args.page}: {len(response.content):,} bytes")
        print(profiler.output_text(unicode=True, color=False, show_all=args.all))
    finally:
        fake.stop()


def _profile_step(args: argparse.Namespace, client: Any) -> None:
    """Profile one POST that has its own preparation: a reveal, or the save step of one key."""
    from pyinstrument import Profiler

    from bench.common import _BASE_VERSION, _CHANGE_ID, _form_value

    cell = json.dumps(["dev", "app", "key_00"])
    path = "/secrets/small-secrets/edit/"
    round_no = [0]

    def prepared() -> tuple[str, dict[str, str]]:
        if args.page == "reveal":
            grid = client.get("/secrets/small-secrets/").content.decode()
            version = re.search(r'name="version_id" value="([^"]+)"', grid)
            assert version is not None, "the grid shows no version to reveal from"
            return "/secrets/small-secrets/reveal/", {"cell": cell, "version_id": version[1]}
        round_no[0] += 1
        page = client.get(path).content.decode()
        form = {
            "set:" + cell: f"profiled-{round_no[0]}",
            "base_version_id": _form_value(_BASE_VERSION, page, "version"),
        }
        review = client.post(path + "review/", data=form).content.decode()
        return path + "save/", {**form, "change_id": _form_value(_CHANGE_ID, review, "change id")}

    def step() -> float:
        url, data = prepared()
        t = time.perf_counter()
        response = client.post(url, data=data, headers={"HX-Request": "true"})
        elapsed = time.perf_counter() - t
        assert response.status_code in (200, 302), (response.status_code, url)
        return elapsed

    for _ in range(args.runs):
        step()
    for _ in range(3):
        print(f"{args.page}: {1000 * step():.1f} ms")
    if args.cprofile:
        import cProfile
        import pstats

        prof = cProfile.Profile(time.process_time)
        for _ in range(args.cprofile):
            url, data = prepared()
            prof.enable()
            client.post(url, data=data, headers={"HX-Request": "true"})
            prof.disable()
        pstats.Stats(prof).sort_stats(args.sort).print_stats(45)
        return
    url, data = prepared()
    profiler = Profiler(interval=0.0005)
    with profiler:
        client.post(url, data=data, headers={"HX-Request": "true"})
    print(profiler.output_text(unicode=True, color=False, show_all=args.all))


if __name__ == "__main__":
    main()
