"""A loopback HTTP server for the download tests: 127.0.0.1 only, an ephemeral port, quiet."""
from __future__ import annotations

import contextlib
import http.server
import threading


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that hangs up early (as a size cap or a deadline makes it) is no error of the server's to
    print: it would land in the stderr the tests read."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@contextlib.contextmanager
def serving(handler):
    """Serve ``handler`` on 127.0.0.1; yields the base URL."""
    httpd = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
