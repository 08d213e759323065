"""A real MJPEG-over-HTTP stream on loopback (what IP cameras serve), which tests can freeze and kill."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time

import cv2
import numpy as np


class MjpegServer:
    """Serves numbered gray frames (frame n has every pixel = n % 256) as multipart/x-mixed-replace.

    `frozen` set: connections stay open but nothing more is sent (a stalled camera). `stop()` closes the
    listening socket and every connection (a camera that went away); `start()` serves again on the same port.
    """

    def __init__(self, fps: float = 30.0):
        self.interval = 1.0 / fps
        self.frozen = threading.Event()
        self.sent = 0
        self.port = 0
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while owner._server is server:
                        if owner.frozen.is_set():
                            time.sleep(0.02)
                            continue
                        jpeg = cv2.imencode(".jpg", np.full((96, 128, 3), owner.sent % 256, np.uint8))[1].tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                         % (len(jpeg), jpeg))
                        owner.sent += 1
                        time.sleep(owner.interval)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server, self.port = server, server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
