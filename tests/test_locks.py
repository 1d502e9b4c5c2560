"""The lock files (requirements/, made by ``make upgrade-deps``) still answer ``pyproject.toml``:
every dependency of each install path is pinned there, with hashes, at a version the project
accepts - so a dependency added without refreshing the locks fails here, not in a deploy."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
#: Lock file -> the extras it installs on top of the project's own dependencies.
LOCKS = {
    "requirements/runtime.txt": ("saml", "sentry"),
    "requirements/dev.txt": ("saml", "sentry", "dev", "demo"),
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)", re.M)


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    found = {canonicalize_name(name): version for name, version in PIN.findall(text)}
    # --generate-hashes: every pinned line is followed by its hashes.
    assert text.count("==") == len(found) and text.count("--hash=sha256:") >= len(found)
    return found


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_pins_every_dependency_at_an_accepted_version(lock: str) -> None:
    pinned = pins(lock)
    for requirement in requirements(LOCKS[lock]):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{lock} lacks {name}: run make upgrade-deps"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {name}=={pinned[name]}, pyproject.toml wants {requirement.specifier}"
        )


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    runtime, dev = pins("requirements/runtime.txt"), pins("requirements/dev.txt")
    assert {name: dev.get(name) for name in runtime} == runtime
    assert runtime["django"].startswith("5.2.")
