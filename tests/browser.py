"""Open a local HTML page in real headless Chromium and report what a person would see.

Chromium is driven over its DevTools protocol (``--remote-debugging-port`` on 127.0.0.1) with
aiohttp's websocket client (already installed: mlflow depends on it), so the checks run inside
the browser: images decoded (``naturalWidth``), audio sources decodable (``readyState`` /
``duration``), console errors and failed loads collected, and a full-page screenshot taken.
Debian's ``chromium`` is used; ``scripts/ensure_chromium.sh`` installs it when missing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import ROOT

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENSURE = ROOT / "scripts" / "ensure_chromium.sh"

# Runs in the page after `load`: waits (bounded) for every <audio> to load its metadata.
PAGE_CHECK = """
(async () => {
  const audios = [...document.querySelectorAll('audio')];
  for (const a of audios) { if (a.readyState === 0) { a.preload = 'metadata'; a.load(); } }
  const t0 = Date.now();
  while (audios.some(a => a.readyState === 0 && !a.error) && Date.now() - t0 < 15000) {
    await new Promise(r => setTimeout(r, 100));
  }
  return JSON.stringify({
    title: document.title,
    images: [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
                                           width: i.naturalWidth})),
    audio: [...document.querySelectorAll('audio')].map(a => ({
      src: a.currentSrc || (a.querySelector('source') || {}).src || a.src,
      readyState: a.readyState, duration: a.duration,
      error: a.error ? a.error.code + ' ' + (a.error.message || '') : null})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    scripts: [...document.scripts].map(s => s.src).filter(Boolean),
    height: document.documentElement.scrollHeight,
  });
})()
"""


class BrowserMissing(RuntimeError):
    """No Chromium on this machine and it could not be installed."""


@dataclass
class PageReport:
    title: str
    images: list[dict]
    audio: list[dict]
    links: list[str]
    scripts: list[str]
    console_errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def find_chromium(install: bool = True) -> str:
    """Path of a Chromium binary; runs scripts/ensure_chromium.sh once when none is found."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    if install and ENSURE.is_file():
        res = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, timeout=900)
        if res.returncode == 0:
            return find_chromium(install=False)
        raise BrowserMissing(f"{ENSURE} failed: {res.stderr.strip()[-500:]}")
    raise BrowserMissing("chromium not found; run scripts/ensure_chromium.sh (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Cdp:
    """Minimal DevTools client: numbered commands, events collected as they arrive."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    async def call(self, method: str, **params):
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send_str(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive(timeout=60)).data)
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, name: str) -> bool:
        return any(e["method"] == name for e in self.events)


def _console_errors(events: list[dict]) -> list[str]:
    errors = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif e["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            errors.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
        elif e["method"] == "Network.loadingFailed" and not p.get("canceled"):
            errors.append(f"load failed: {p.get('errorText')}")
    return errors


async def _drive(port: int, url: str, screenshot: Path | None, width: int) -> PageReport:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 30
        while True:  # the DevTools endpoint appears a moment after launch
            try:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = await r.json(content_type=None)
                page = next(t for t in targets if t.get("type") == "page")
                break
            except (aiohttp.ClientError, StopIteration, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = _Cdp(ws)
            for domain in ("Page", "Runtime", "Log", "Network"):
                await cdp.call(f"{domain}.enable")
            await cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=900,
                           deviceScaleFactor=1, mobile=False)
            await cdp.call("Page.navigate", url=url)
            deadline = time.monotonic() + 60
            while not cdp.wait_event("Page.loadEventFired"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url}: no load event within 60 s")
                await cdp.call("Runtime.evaluate", expression="1")  # pumps events
                await asyncio.sleep(0.1)
            res = await cdp.call("Runtime.evaluate", expression=PAGE_CHECK, awaitPromise=True,
                                 returnByValue=True)
            if "exceptionDetails" in res:
                raise RuntimeError(f"page check failed: {res['exceptionDetails']}")
            data = json.loads(res["result"]["value"])
            shot = None
            if screenshot is not None:
                img = await cdp.call("Page.captureScreenshot", format="png",
                                     captureBeyondViewport=True)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(img["data"]))
                shot = screenshot
            await cdp.call("Runtime.evaluate", expression="1")  # collect late events
            return PageReport(title=data["title"], images=data["images"], audio=data["audio"],
                              links=data["links"], scripts=data["scripts"],
                              console_errors=_console_errors(cdp.events), screenshot=shot)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the browser's process group, then SIGKILL it: helpers can outlive the browser."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)


def inspect_page(html: Path, screenshot: Path | None = None, width: int = 1280) -> PageReport:
    """Load `html` (file://) in a fresh headless Chromium profile and return what it found."""
    binary = find_chromium()
    port = _free_port()
    # Chromium's helper processes can outlive the browser for a moment and still write to the
    # profile: the whole process group is stopped, and a straggler's file never fails a test.
    with tempfile.TemporaryDirectory(prefix="audiorecon-chromium-",
                                     ignore_cleanup_errors=True) as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
               f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
               "--no-first-run", "--no-default-browser-check", "--mute-audio",
               "--disable-background-networking", "--disable-dev-shm-usage", "about:blank"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, "HOME": profile}, start_new_session=True)
        try:
            return asyncio.run(_drive(port, Path(html).resolve().as_uri(), screenshot, width))
        finally:
            _stop_group(proc)


def check_page(html: Path, screenshot: Path) -> PageReport:
    """Open `html` and assert what a reader needs: every image decoded, every audio playable,
    no console error, no script; the screenshot also goes to $AUDIORECON_SCREENSHOT if set.

    Skips when no Chromium can be had, except in CI (CI set), where that is a failure.
    """
    import pytest

    try:
        page = inspect_page(html, screenshot=screenshot)
    except BrowserMissing as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
    assert page.images and [i["src"] for i in page.images if not i["width"]] == []
    unplayable = [a for a in page.audio if not (a["readyState"] > 0 or (a["duration"] or 0) > 0)]
    assert page.audio and unplayable == []
    assert page.console_errors == []
    assert page.scripts == []
    assert screenshot.stat().st_size > 10_000
    target = os.environ.get("AUDIORECON_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, target)
    return page
