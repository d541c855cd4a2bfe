"""requirements.lock against pyproject.toml (Makefile install, docs/DECISIONS.md O5).

``make install`` installs the lock with ``--no-deps``, so a dependency added to pyproject.toml
but not to the lock would be missing until ``pip check`` fails at install time; these tests say
so earlier and name the package. They also check that the running environment is the lock's.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for n, line in enumerate((ROOT / "requirements.lock").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"requirements.lock line {n} is not NAME==VERSION: {line!r}"
        pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("dev", "cluster"):  # the extras make installs
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def test_every_declared_dependency_is_pinned_in_the_lock_at_a_version_it_allows():
    pins = _lock()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock: make lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside pyproject's {req}: make lock")


def test_the_lock_leaves_out_triton_and_pip_and_pins_the_guide_versions():
    pins = _lock()
    assert "triton" not in pins and "pip" not in pins
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["dagster"] == "1.13.27" and pins["dagster-webserver"] == "1.13.27"
    assert pins["mlflow"].startswith("3.17.")
    assert int(pins["pandas"].split(".")[0]) < 3


def test_the_running_environment_has_the_locked_versions():
    mismatched = []
    for name, version in _lock().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            mismatched.append(f"{name}: not installed (lock {version})")
            continue
        if installed != version:
            mismatched.append(f"{name}: {installed} installed, lock {version}")
    assert not mismatched, "the venv differs from requirements.lock (re-run make install):\n" + \
        "\n".join(mismatched)
