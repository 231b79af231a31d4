"""shard_server.py: an HTTP server on loopback that serves files with
single-range requests (RFC 9110 section 14: `Range: bytes=a-b`, 206 with
Content-Range, 416 for an unsatisfiable range, HEAD), counts the body bytes
it sends, and can misbehave once on purpose: flip one byte of the response
that covers a given file offset, or close the connection after sending the
bytes before a given offset. Used by tests/test_shards.py and
bench/bench_shards.py (stdlib only).

    srv = ShardServer({"/m.gguf": path, "/manifest.json": path2})
    srv.url("/m.gguf"); srv.bytes_sent; srv.ranges; srv.corrupt_at = off; srv.cut_at = off
    srv.stall_at = off; srv.stall_s = seconds   (pause before that byte, once)
    srv.close()
"""
import http.server
import os
import re
import socket
import threading
import time

RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class ShardServer:
    def __init__(self, files, rate_bps=0):
        self.files = dict(files)     # URL path -> file path
        self.lock = threading.Lock()
        self.bytes_sent = 0          # body bytes written to sockets
        self.ranges = []             # (path, first, last) of each 206 response, inclusive
        self.corrupt_at = None       # file offset whose byte is flipped once (then None)
        self.cut_at = None           # file offset before which a response is cut once (then None)
        self.stall_at = None         # file offset before which a response pauses stall_s once (then None)
        self.stall_s = 0.0
        self.ignore_range = False    # answer every request with 200 and the whole file (a server without ranges)
        self.corrupted = 0           # responses corrupted
        self.cuts = 0                # responses cut
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                # headers and body go out in separate writes: without this,
                # Nagle and the client's delayed ACK add 40 ms per response
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_HEAD(self):
                self.serve(head=True)

            def do_GET(self):
                self.serve(head=False)

            def serve(self, head):
                path = owner.files.get(self.path)
                if path is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = os.path.getsize(path)
                rng = None if owner.ignore_range else self.headers.get("Range")
                first, last, status = 0, size - 1, 200
                if rng is not None:
                    m = RANGE.match(rng.strip())
                    first = int(m.group(1)) if m else size
                    last = min(int(m.group(2)), size - 1) if m and m.group(2) else size - 1
                    if not m or first >= size or last < first:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                n = last - first + 1
                self.send_response(status)
                self.send_header("Content-Length", str(n))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
                self.end_headers()
                if head:
                    return
                with open(path, "rb") as f:
                    f.seek(first)
                    data = bytearray(f.read(n))
                cut = stall = None
                with owner.lock:
                    if owner.stall_at is not None and first < owner.stall_at <= last:
                        stall = owner.stall_at - first
                        owner.stall_at = None
                    if status == 206:
                        owner.ranges.append((self.path, first, last))
                    if owner.corrupt_at is not None and first <= owner.corrupt_at <= last:
                        data[owner.corrupt_at - first] ^= 0x5A
                        owner.corrupt_at = None
                        owner.corrupted += 1
                    if owner.cut_at is not None and first < owner.cut_at <= last:
                        cut = owner.cut_at - first
                        owner.cut_at = None
                        owner.cuts += 1
                if cut is not None:
                    data = data[:cut]
                step = 1 << 16
                bounds = list(range(0, len(data), step))
                if stall is not None:
                    bounds = sorted(set(bounds + [stall]))
                for k, i in enumerate(bounds):
                    if i == stall:
                        self.wfile.flush()
                        time.sleep(owner.stall_s)
                    chunk = data[i:bounds[k + 1] if k + 1 < len(bounds) else len(data)]
                    try:
                        self.wfile.write(chunk)
                    except OSError:
                        return
                    with owner.lock:
                        owner.bytes_sent += len(chunk)
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client killed mid-request (the tests do that on purpose)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self):
        with self.lock:
            self.bytes_sent = 0
            self.ranges = []

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
