"""Profile one portal page with pyinstrument, in production settings, against the fake AWS.

``python bench/profile_page.py [grid|list|search] [--secrets N]`` starts the counting moto
server, seeds the large secret (and N small ones for the list), renders the page a few times in
this process through Django's test client (signed in as an engineer), and prints pyinstrument's
call tree of the last render. Use it when ``make bench`` shows a ratio above its target.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

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
        choices=["grid", "grid-small", "list", "search", "status"],
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
        if args.page != "grid":
            seed(fake.client, [f"app{i:05d}-secrets" for i in range(args.secrets)])
        user, _ = get_user_model().objects.get_or_create(username="profile-engineer")
        set_role(user, [Role.ENGINEER])
        client = Client(HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
        client.force_login(user)
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


if __name__ == "__main__":
    main()
