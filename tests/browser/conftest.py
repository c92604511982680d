"""The browser tests' server: `sansetu serve` on a free loopback port over the hand-made published
workspace, and Debian's Chromium (skipped when it is not installed)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender import store
from recommender.settings import load_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(name="server")
def server_fixture(published_workspace: Path) -> Iterator[tuple[str, str]]:
    """`sansetu serve` on a free loopback port; yields (base URL, analyst token)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    settings = load_settings(workspace=published_workspace)
    engine = store.make_engine(f"sqlite:///{(published_workspace / 'service.db').resolve()}")
    token = store.create_token(engine, "分析员小王", "analyst")
    port = _free_port()
    env = {**os.environ, "SANSETU_WORKSPACE": str(settings.workspace)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "recommender.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"sansetu serve exited: {out}") from None
            time.sleep(0.2)
    try:
        yield base, token
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(name="chromium")
def chromium_fixture() -> tuple[str, list[str]]:
    """(the executable, its arguments) for ``playwright.chromium.launch``."""
    return CHROMIUM, CHROMIUM_ARGS
