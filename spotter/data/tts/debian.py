"""The version of an installed Debian package, for corpus manifests of engines that print none."""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["package_version"]


def package_version(package: str) -> str | None:
    """``package``'s installed version (``dpkg-query``), or None where there is no dpkg or no such package."""
    if shutil.which("dpkg-query") is None:
        return None
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None
