"""Who may use the web console, with a real aiohttp client against the real server: requests from this
machine's network address (not loopback) need a login, POSTs a CSRF token; wrong passwords are rate
limited; the session cookie's flags; `piposer web passwd`; TLS with a given certificate."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp
import pytest

from conftest import ROOT
from piposer import commands
from piposer.sinks.web_settings import WebSettings
from piposer.sinks.websocket import WebSlice, WebSocketSink
from piposer.web.auth import hash_password, verify_password
from test_websocket import free_port, own_address

PASSWORD = "correct horse battery"


@pytest.fixture
def server(tmp_path):
    """The web server on every interface with a password file; yields (sink, received commands, address)."""
    address = own_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    (tmp_path / "web-password").write_text(hash_password(PASSWORD) + "\n")
    received: list = []
    settings = WebSettings(enabled=True, bind="0.0.0.0", port=free_port(), password_file=str(tmp_path / "web-password"))
    sink = WebSocketSink(WebSlice(settings), on_request=received.append, log=lambda line: None)
    try:
        yield sink, received, f"http://{address}:{settings.port}"
    finally:
        sink.close()


def client() -> aiohttp.ClientSession:
    """A client that keeps cookies from IP-address hosts, as a browser does."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def run(coroutine):
    return asyncio.run(coroutine)


async def login(session: aiohttp.ClientSession, base: str, password: str) -> aiohttp.ClientResponse:
    async with session.post(f"{base}/login", data={"password": password}, allow_redirects=False) as response:
        await response.read()
        return response


def test_other_machines_need_a_login(server):
    sink, received, base = server

    async def visit():
        async with client() as s:
            async with s.get(f"{base}/", allow_redirects=False) as page:
                assert (page.status, page.headers["Location"]) == (303, "/login")
            async with s.get(f"{base}/api/state") as state:
                assert state.status == 401 and (await state.json())["error"] == "log in first (POST /login)"
            async with s.get(f"{base}/live.mjpg") as live:
                assert live.status == 401
            async with s.post(f"{base}/api/command", json={"command": "pause"}) as cmd:
                assert cmd.status == 401
            async with s.get(f"{base}/login") as form:
                text = await form.text()
                assert form.status == 200 and 'name="password"' in text and "scrypt" not in text
            wrong = await login(s, base, "guess")
            assert wrong.status == 401 and not s.cookie_jar.filter_cookies(base)
            right = await login(s, base, PASSWORD)
            assert (right.status, right.headers["Location"]) == (303, "/")
            cookie = right.cookies["piposer_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
            assert not cookie["secure"]  # plain http here; see the TLS test
            async with s.get(f"{base}/api/state") as state:
                body = await state.json()
            assert state.status == 200 and len(body["csrf"]) >= 30
            assert PASSWORD not in str(body) and "scrypt" not in str(body)
            return body["csrf"]

    csrf = run(visit())
    assert received == []  # nothing got through before the login
    assert csrf


def test_state_changing_requests_need_the_csrf_token(server):
    sink, received, base = server

    async def visit():
        async with client() as s:
            await login(s, base, PASSWORD)
            async with s.get(f"{base}/api/state") as state:
                csrf = (await state.json())["csrf"]
            wrong = csrf[:-1] + ("y" if csrf.endswith("x") else "x")  # one character off (not "x" for "x")
            async with s.post(f"{base}/api/command", json={"command": "pause"}) as missing:
                assert missing.status == 403
                assert (await missing.json())["error"] == "missing or wrong CSRF token (X-CSRF-Token header)"
            async with s.post(f"{base}/api/command", json={"command": "pause"}, headers={"X-CSRF-Token": wrong}) as bad:
                assert bad.status == 403
            async with s.post(f"{base}/api/zones", json={"zones": []}) as zones:
                assert zones.status == 403
            assert received == []
            async with s.post(f"{base}/api/command", json={"command": "thresholds", "keypoint_threshold": 0.45, "id": 7},
                              headers={"X-CSRF-Token": csrf}) as ok:
                assert ok.status == 202 and await ok.json() == {"queued": "thresholds", "id": 7}
            async with s.post(f"{base}/api/command", json={"command": "thresholds", "keypoint_threshold": 2},
                              headers={"X-CSRF-Token": csrf}) as invalid:  # the MQTT `set` validation, word for word
                assert invalid.status == 400
                with pytest.raises(commands.CommandError) as expected:
                    commands.parse_command('{"command": "thresholds", "keypoint_threshold": 2}')
                assert (await invalid.json())["error"] == str(expected.value) == "keypoint_threshold must be within 0..1, not 2"

    run(visit())
    assert received == [commands.SetThresholds(keypoint_threshold=0.45, request_id=7)]


def test_wrong_passwords_are_rate_limited(server):
    sink, received, base = server

    async def visit():
        async with client() as s:
            statuses = [(await login(s, base, f"guess{i}")).status for i in range(5)]
            limited = await login(s, base, PASSWORD)  # even the right password waits now
            return statuses, limited

    statuses, limited = run(visit())
    assert statuses == [401] * 5
    assert limited.status == 429 and 50 <= int(limited.headers["Retry-After"]) <= 60
    assert not limited.cookies


def test_this_machine_needs_no_password_but_still_a_csrf_token(server):
    sink, received, _ = server
    base = f"http://127.0.0.1:{sink.settings.port}"

    async def visit():
        async with client() as s:
            async with s.get(f"{base}/api/state") as state:
                csrf = (await state.json())["csrf"]
                assert state.status == 200 and state.cookies["piposer_session"]["httponly"]
            async with s.post(f"{base}/api/command", json={"command": "pause"}) as missing:
                assert missing.status == 403
            async with s.post(f"{base}/api/command", json={"command": "pause"}, headers={"X-CSRF-Token": csrf}) as ok:
                assert ok.status == 202

    run(visit())
    assert received == [commands.Pause()]


def test_web_passwd_sets_the_password_a_running_server_checks(server, tmp_path):
    sink, received, base = server
    file = sink.settings.password_file
    done = subprocess.run([sys.executable, "-m", "piposer", "web", "passwd", "--file", file],
                          input="a new password\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "a new password" not in done.stdout + done.stderr
    assert verify_password("a new password", open(file).read()) and not verify_password(PASSWORD, open(file).read())

    async def visit():
        async with client() as s:
            return (await login(s, base, PASSWORD)).status, (await login(s, base, "a new password")).status

    assert run(visit()) == (401, 303)
    short = subprocess.run([sys.executable, "-m", "piposer", "web", "passwd", "--file", file], input="short\n",
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert short.returncode == 2
    assert short.stderr == "piposer: error: web passwd: the password must have at least 8 characters; nothing changed\n"
    random = subprocess.run([sys.executable, "-m", "piposer", "web", "passwd", "--random", "--file", str(tmp_path / "new")],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    printed = random.stdout.splitlines()[0].removeprefix("web console password (shown only now): ")
    assert len(printed) >= 16 and verify_password(printed, (tmp_path / "new").read_text())
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o640


def test_tls_with_a_given_certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    port = free_port()
    sink = WebSocketSink(WebSlice(WebSettings(enabled=True, port=port, tls_cert=str(cert), tls_key=str(key))),
                         log=lambda line: None)

    async def visit():
        async with client() as s:
            async with s.get(f"https://127.0.0.1:{port}/api/state", ssl=False) as state:
                return state.status, state.cookies["piposer_session"]

    try:
        status, cookie = run(visit())
    finally:
        sink.close()
    assert status == 200 and cookie["secure"] and cookie["httponly"]
