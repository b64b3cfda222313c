"""The query browser in a real browser: JupyterLab on loopback, notebook 06 at smoke.yaml, headless Chromium.

Why: widget bugs (a blank dropdown, a message only in the log console, a stale widget after Run
All) are invisible to tests that set widget values in Python. This test drives the page as a
person does: Run All, type a query and press Enter, pick a caption, look.

Chromium is the system's (Debian: ``apt-get install -y chromium``) or Playwright's own build;
``make test`` provisions one (``.ci/ensure_chromium.sh``). Without Chromium the test FAILS
saying how to install it. Every wait is bounded; the server listens on 127.0.0.1 only, with a
random token, and is stopped at the end. Run it alone with ``make test-browser``.

The test writes only to its temporary folder; ``make browser-screenshot`` (part of ``make
reproduce`` and ``make bench``) sets ``VRLIB_BROWSER_SCREENSHOT`` to keep the screenshot that
documents the browser, ``reports/query_browser/real_browser.png``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_ENV = "VRLIB_BROWSER_SCREENSHOT"  # where to keep the screenshot (default: tmp only)
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
INSTALL = (
    "run `make test` (it installs one where it can), `sudo apt-get install -y chromium` "
    "(Debian/Ubuntu) or `python -m playwright install chromium`, or set VRLIB_CHROMIUM=/path"
)
SERVER_START_S = 90
RUN_ALL_S = 600  # the notebook loads the expert and extracts the smoke split's features
QUERY_S = 120


def chromium_path() -> str | None:
    """The system Chromium; None where Playwright's own build is installed (Playwright then
    launches it); else a failure that says how to get one (never a silent skip)."""
    path = (
        os.environ.get("VRLIB_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if path and Path(path).exists():
        return path
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        if Path(pw.chromium.executable_path).exists():
            return None
    pytest.fail(f"Chromium not found for the real-browser test of the query browser: {INSTALL}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_notebook(folder: Path) -> Path:
    """Notebook 06 with smoke.yaml injected as its parameters (papermill, not executed)."""
    import papermill

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "06_query_browser.ipynb"
    params = {
        "params_path": str(ROOT / "parameters" / "query_browser" / "smoke.yaml"),
        "out_dir": str(folder / "out"),
    }
    papermill.execute_notebook(
        ROOT / "notebooks" / target.name, target, parameters=params, prepare_only=True
    )
    return target


def settings_dir(folder: Path) -> Path:
    """JupyterLab user settings for the test: no "official Jupyter news?" toast over the widget."""
    root = folder / ".settings"
    news = root / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    return root


def start_lab(folder: Path, port: int, token: str, log) -> subprocess.Popen:
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
        "JUPYTER_CONFIG_DIR": str(folder / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"),
    }  # fmt: skip
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--LabApp.user_settings_dir={settings_dir(folder)}", f"--ServerApp.root_dir={folder}", "--ServerApp.port_retries=0",
        "--ServerApp.terminals_enabled=False", f"--LabApp.workspaces_dir={folder / '.workspaces'}",
        "--allow-root",  # CI containers run as root; the server still listens on loopback only
    ]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            pytest.fail(
                f"JupyterLab exited with status {proc.returncode} before answering:\n{tail}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"JupyterLab did not answer {url} within {SERVER_START_S} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.mark.slow
def test_query_browser_in_jupyterlab_in_headless_chromium(smoke_expert, tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the real-browser test needs the playwright package: pip install -e '.[dev]'")
    executable = chromium_path()
    notebook = prepare_notebook(tmp_path / "lab")
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "jupyterlab.log", "wb") as log:
        proc = start_lab(notebook.parent, port, token, log)
        try:
            wait_for_server(f"{base}/api/status?token={token}", proc, tmp_path / "jupyterlab.log")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=executable, args=CHROMIUM_ARGS, headless=True
                )
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1100})
                    page.set_default_timeout(QUERY_S * 1000)
                    try:
                        shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "browser.png")
                        drive(page, f"{base}/lab/tree/{notebook.name}?token={token}", shot)
                    except Exception:
                        page.screenshot(path=str(tmp_path / "failure.png"))  # what the page showed
                        raise
                finally:
                    browser.close()
        finally:
            stop(proc)


def drive(page, url: str, screenshot: Path) -> None:
    """Run All, check the fresh widget, type a query + Enter, pick a caption, take a screenshot."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url, timeout=SERVER_START_S * 1000)
    page.locator(".jp-Notebook").wait_for(timeout=SERVER_START_S * 1000)
    # Run All is greyed out until the kernel is up: wait for "Idle" in the status bar first.
    page.locator(".jp-StatusBar-Item", has_text="Idle").first.wait_for(
        timeout=SERVER_START_S * 1000
    )
    started = page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for _ in range(3):  # a click that lands while the menu is still being set up is retried
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            started.first.wait_for(state="attached", timeout=30_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    else:
        pytest.fail("Run > Run All Cells did not start the notebook in 3 tries")
    query = page.get_by_placeholder("a red circle moves to the left")
    # JupyterLab renders cells out of view lazily: wait until the widget exists, then scroll to it.
    query.wait_for(state="attached", timeout=RUN_ALL_S * 1000)
    query.scroll_into_view_if_needed()
    query.wait_for(state="visible", timeout=QUERY_S * 1000)
    status = page.locator(".widget-html", has_text="Type a query and press Enter")
    assert status.count() >= 1, "the fresh widget should show the hint, not the examples' state"
    results = page.locator(".widget-vbox .widget-hbox .widget-image")
    assert results.count() == 0, "no result strips before a query"

    query.click()
    query.fill("a red circle moves to the left")
    query.press("Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('.widget-vbox .widget-hbox .widget-image').length >= 3",
        timeout=QUERY_S * 1000,
    )
    assert results.count() >= 3

    page.locator(".widget-select select").first.select_option(index=0)
    rank = page.locator(".widget-html", has_text="ground-truth video at rank")
    rank.first.wait_for(timeout=QUERY_S * 1000)
    assert "ground-truth video at rank" in rank.first.inner_text()

    # ▶ play on the second result: the GIF opens between it and the next row, at its own size
    # (2 x strip_size = 192 px at smoke.yaml), not stretched to the output's width below all rows.
    rows = page.locator(".vrlib-result")
    rows.nth(1).get_by_role("button", name="▶ play").click()
    player = page.locator(".vrlib-player .widget-image")
    player.wait_for(state="visible", timeout=QUERY_S * 1000)
    box, played, after = (
        player.bounding_box(),
        rows.nth(1).bounding_box(),
        rows.nth(2).bounding_box(),
    )
    assert abs(box["width"] - 192) <= 2 and abs(box["height"] - 192) <= 2, box
    assert (
        played["y"] + played["height"] <= box["y"] + 1
        and box["y"] + box["height"] <= after["y"] + 1
    )
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    query.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot), full_page=False)
    assert screenshot.stat().st_size > 10_000
