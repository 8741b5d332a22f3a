"""Fixtures of the browser suite: a Kassa server (the built binary, `serve --demo`, a fresh
SQLite file, a free port), a tiny merchant site that Kassa's hosted pages return to, and
Chromium driven by Playwright (Debian's Chromium; Playwright's own download is never used).

Environment:
  KASSA_BIN        the kassa binary (default: target/debug/kassa in the repository)
  CHROMIUM         the Chromium executable (default: /usr/bin/chromium)
  KASSA_BROWSER_HEADED=1   show the browser (needs a display)
"""

import html
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Everything the suite writes (database, server log, screenshots) goes here, never into the
# repository. Kept when a test fails so the evidence can be read.
ARTIFACTS = Path(tempfile.mkdtemp(prefix="kassa-browser-"))
# The shop's name on the hosted pages (`[checkout] merchant_name`).
MERCHANT_NAME = "Ada's Tea & Mugs"


class Kassa:
    """A running `kassa serve --demo` and thin clients of its store and admin APIs."""

    def __init__(self, proc, url, secret_key, publishable_key, log_path, dashboard=None):
        self.proc = proc
        # (url, email, password) of the demo owner `serve --demo` printed.
        self.dashboard = dashboard
        self.url = url
        self.secret_key = secret_key
        self.publishable_key = publishable_key
        self.log_path = log_path
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: no proxy from the environment

    def _request(self, method, path, body, headers):
        try:
            r = self.http.request(method, self.url + path, json=body, headers=headers, timeout=30)
        except requests.ConnectionError as e:
            if self.proc.poll() is None:
                raise
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
            raise AssertionError(
                f"kassa is gone (exit status {self.proc.returncode}; a signal from outside the suite?). "
                f"{method} {path}: {e}\nlast lines of {self.log_path}:\n{tail}"
            ) from None
        return self._check(r)

    def _check(self, r):
        if r.status_code >= 400:
            raise AssertionError(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}")
        return r.json()

    def store(self, method, path, body=None, secret=None):
        """A store API call; `secret` is the client secret of the guest's cart or session."""
        headers = {"Kassa-Publishable-Key": self.publishable_key}
        if secret is not None:
            headers["Kassa-Client-Secret"] = secret
        return self._request(method, path, body, headers)

    def admin(self, method, path, body=None):
        return self._request(method, path, body, {"Authorization": f"Bearer {self.secret_key}"})

    def orders_of_cart(self, cart_id):
        orders = self.admin("GET", "/admin/orders?limit=100")["data"]
        return [o for o in orders if o["cart"] == cart_id]


def _kassa_bin():
    configured = os.environ.get("KASSA_BIN")
    path = Path(configured) if configured else REPO / "target" / "debug" / "kassa"
    if not path.is_absolute():
        path = REPO / path
    if not path.is_file():
        pytest.exit(f"kassa binary not found at {path}: run `cargo build -p kassa` first (or set KASSA_BIN)", 2)
    return path


@pytest.fixture(scope="session")
def kassa():
    workdir = ARTIFACTS / "kassa"
    workdir.mkdir()
    log_path = workdir / "kassa.log"
    env = dict(os.environ)
    for k in list(env):
        # A developer's own configuration must not leak in (PORT would win over the port below).
        if k.startswith("KASSA_") or k in ("PORT", "DATABASE_URL"):
            del env[k]
    env.update(
        DATABASE_URL=f"sqlite://{workdir / 'kassa.db'}",
        KASSA_SERVER__HOST="127.0.0.1",
        KASSA_SERVER__PORT="0",
        KASSA_CHECKOUT__MERCHANT_NAME=MERCHANT_NAME,
        NO_COLOR="1",
    )
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(_kassa_bin()), "serve", "--demo"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    keys = url = None
    deadline = time.monotonic() + 60
    while url is None:
        text = log_path.read_text(errors="replace")
        m = re.search(r"export KASSA_SECRET_KEY=(sk_\S+) KASSA_PUBLISHABLE_KEY=(pk_\S+)", text)
        if m:
            keys = m.groups()
        m = re.search(r"Kassa listening on (http://\S+)", text)
        if m and keys:
            url = m.group(1).rstrip("/")
            break
        if m or proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.exit(f"kassa did not start with fresh keys (exit {proc.poll()}); its output:\n{text}", 2)
        time.sleep(0.05)
    try:
        m = re.search(r"dashboard: (\S+) user (\S+) password (\S+)", log_path.read_text(errors="replace"))
        yield Kassa(proc, url, keys[0], keys[1], log_path, m.groups() if m else None)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _page(title, body):
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


def _merchant_handler(kassa):
    """The merchant's site. Like a merchant backend it trusts nothing in the URL: it asks Kassa
    about the session its link names, with the client secret the link carries (Kassa appends
    both to the success URL), and renders what Kassa says."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path == "/cancel":
                return self._send(200, _page("Checkout canceled", "<p>Your checkout was canceled.</p>"))
            if url.path != "/success":
                return self._send(404, _page("Not found", ""))
            session_id = (query.get("session_id") or [""])[0]
            client_secret = (query.get("client_secret") or [""])[0]
            try:
                session = kassa.store(
                    "GET", f"/store/checkout-sessions/{urllib.parse.quote(session_id)}", secret=client_secret
                )
                if session["purpose"] == "credits":
                    if session["payment_status"] != "paid":
                        text = f"Payment {session['payment_status']}"
                    else:
                        credits = kassa.admin("GET", f"/admin/customers/{session['customer']}/credits")
                        text = f"Balance: {credits['balance']} credits"
                    return self._send(200, _page("Thank you", f"<p id=result>{html.escape(text)}</p>"))
                if session.get("order"):
                    text = f"Order {session['order']} confirmed"
                else:
                    text = f"Payment {session['payment_status']}, session {session['status']}"
                return self._send(200, _page("Thank you", f"<p id=result>{html.escape(text)}</p>"))
            except Exception as e:  # shown on the page: the test's assertion says what went wrong
                return self._send(502, _page("Error", f"<pre id=result>{html.escape(str(e))}</pre>"))

    return Handler


@pytest.fixture(scope="session")
def merchant(kassa):
    """The merchant's site: `/success?session_id=…` and `/cancel`. Returns its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _merchant_handler(kassa))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).is_file():
        pytest.exit(f"Chromium not found at {executable} (apt-get install -y chromium, or set CHROMIUM)", 2)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=executable,
            args=CHROMIUM_ARGS,
            headless=os.environ.get("KASSA_BROWSER_HEADED") != "1",
        )
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


_failed_any = False


@pytest.fixture
def page(browser, request):
    """A fresh browser context and page; a screenshot (and the page's HTML) on failure."""
    global _failed_any
    context = browser.new_context()
    context.set_default_timeout(15_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            _failed_any = True
            shots = ARTIFACTS / "screenshots"
            shots.mkdir(exist_ok=True)
            base = shots / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            try:
                pg.screenshot(path=f"{base}.png", full_page=True)
                Path(f"{base}.html").write_text(pg.content())
                print(f"\nfailure screenshot: {base}.png (at {pg.url})")
            except Exception as e:  # the page may be gone; the test's own error matters more
                print(f"\nno screenshot: {e}")
        context.close()


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and not _failed_any:
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
    else:
        print(f"\nkassa-browser artifacts (server log, screenshots) kept in {ARTIFACTS}")

