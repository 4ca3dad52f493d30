"""`depth-prior weights fetch` against hostile servers on 127.0.0.1 (issue 13, item 4 and the fetch
repros of item 6): endless or trickling bodies, lying Content-Lengths, non-HTTP replies, redirects to
other schemes or in a loop, and Ctrl-C. Every case ends in one sentence, exit 2 (130 for Ctrl-C), and
leaves nothing in the cache."""
from __future__ import annotations

import http.server
import os
import signal
import socket
import threading
import time

import pytest
from helpers_errors import assert_one_sentence
from helpers_http import serving

from depth_prior_ros.cli import main as cli_main


class HostileHandler(http.server.BaseHTTPRequestHandler):
    """One behaviour per path."""

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        route = self.path.split("?")[0]
        if route == "/endless.pth":  # no Content-Length, never ends
            self._head(None)
            block = b"\0" * 65536
            try:
                while True:
                    self.wfile.write(block)
            except OSError:
                return
        elif route == "/trickle.pth":  # a byte every 0.5 s: never trips a 3 s per-read timeout
            self._head(1000)
            try:
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                return
        elif route == "/short.pth":  # promises 1000 bytes, sends 10 and closes
            self._head(1000)
            self.wfile.write(b"0123456789")
            self.close_connection = True
        elif route == "/badlength.pth":
            self.send_response(200)
            self.send_header("Content-Length", "abc")
            self.end_headers()
            self.wfile.write(b"data")
            self.close_connection = True
        elif route == "/huge.pth":  # announces more than the cap
            self._head(10 << 30)
        elif route == "/ftp.pth":
            self._redirect("ftp://127.0.0.1/x.pth")
        elif route == "/loop.pth":
            self._redirect("/loop.pth")
        elif route == "/ok.pth":
            self._head(5)
            self.wfile.write(b"hello")
        else:
            self.send_error(404)

    def _head(self, length):
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _redirect(self, where):
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def hostile():
    with serving(HostileHandler) as url:
        yield url


@pytest.fixture(scope="module")
def not_http():
    """A TCP server on 127.0.0.1 that answers every connection with bytes that are not HTTP."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\nthis is not http\r\n\r\n")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    server.close()


def _fetch(args, cache, capsys):
    code = cli_main(["weights", "fetch", *args, "--cache", str(cache), "--no-progress"])
    err = capsys.readouterr().err.strip()
    return code, err


def _nothing_left(cache):
    return not [p for p in cache.rglob("*") if p.is_file()]


@pytest.mark.parametrize("path, extra, expected", [
    ("endless.pth", ["--max-gb", "0.01"], "passed the size cap of 10.2 MiB"),
    ("trickle.pth", ["--timeout", "3", "--deadline", "2"], "did not finish within the 2 s deadline"),
    ("short.pth", [], "ended after 10 of the 1000 bytes"),
    ("badlength.pth", [], "Content-Length 'abc', which is not a byte count"),
    ("huge.pth", [], "more than the size cap of 8.00 GiB"),
    ("ftp.pth", [], "redirects to 'ftp://127.0.0.1/x.pth', which is not http(s)"),
    ("loop.pth", [], "HTTP 302: the server redirects in a loop"),
])
def test_hostile_server_is_one_sentence_and_leaves_nothing(hostile, tmp_path, capsys, path, extra, expected):
    cache = tmp_path / "cache"
    code, err = _fetch([f"{hostile}/{path}", *extra], cache, capsys)
    assert code == 2 and expected in err, err
    assert_one_sentence(err, ignore_paths=True)
    assert _nothing_left(cache)


def test_a_reply_that_is_not_http_is_one_sentence(not_http, tmp_path, capsys):
    code, err = _fetch([f"{not_http}/x.pth"], tmp_path / "cache", capsys)
    assert code == 2 and "did not answer with HTTP" in err
    assert_one_sentence(err, ignore_paths=True)
    assert _nothing_left(tmp_path / "cache")


@pytest.mark.parametrize("path", ["/%2e%2e", "/w%00.pth", "/", "/a%2fb"])
def test_a_url_that_names_no_plain_file_is_refused(hostile, tmp_path, capsys, path):
    code, err = _fetch([f"{hostile}{path}"], tmp_path / "cache", capsys)
    assert code == 2 and "is not a plain file name" in err
    assert_one_sentence(err, ignore_paths=True)
    assert not (tmp_path / "cache").exists() or _nothing_left(tmp_path / "cache")


def test_cache_and_timeouts_are_checked_before_any_download(hostile, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for cache, expected in ((a_file, "is a file"), (a_file / "sub", "which is a file"), ("/proc/cache", "/proc")):
        code, err = _fetch([f"{hostile}/ok.pth"], cache, capsys)
        assert code == 2 and expected in err
        assert_one_sentence(err, ignore_paths=True)
    for value in ("-1", "nan", "0", "inf"):
        code, err = _fetch([f"{hostile}/ok.pth", "--timeout", value], tmp_path / "cache", capsys)
        assert code == 2 and "argument --timeout" in err
        assert_one_sentence(err, ignore_paths=True)
    code, _ = _fetch([f"{hostile}/ok.pth"], tmp_path / "cache", capsys)  # the same server, good file: fine
    assert code == 0 and (tmp_path / "cache" / "urls" / "ok.pth").read_bytes() == b"hello"


def test_ctrl_c_during_a_download_removes_the_partial_file(hostile, tmp_path, capsys):
    cache = tmp_path / "cache"
    part = cache / "urls" / "trickle.pth.part"
    # The CLI runs in a fresh process with Python's own SIGINT handler. Earlier tests in this process may
    # have left another that raises nothing (rclpy installs one), which swallowed the Ctrl-C and hung the
    # full suite until its 300 s timeout, so the test puts Python's back and sends a real SIGINT, as Ctrl-C does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=lambda: (_wait_for(part), os.kill(os.getpid(), signal.SIGINT)), daemon=True).start()
        code, err = _fetch([f"{hostile}/trickle.pth"], cache, capsys)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130 and "interrupted" in err
    assert _nothing_left(cache)


def _wait_for(path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # a few bytes in
