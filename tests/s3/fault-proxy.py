#!/usr/bin/env python3
"""A fault-adding proxy in front of the real S3 server (tests/e2e/t48-s3.sh).

usage: fault-proxy.py UPSTREAM_PORT LOG [--fail503 N] [--fail-parts N] [--drop N]
                     [--cut-answer METHOD:TEXT:N] [--lose METHOD:TEXT:N]
                     [--forget N]

Listens on a free 127.0.0.1 port (printed on the first line of stdout) and
forwards every request to 127.0.0.1:UPSTREAM_PORT unchanged (Host header
included, so SigV4 signatures stay valid). Faults, counted over the
proxy's life: the first N requests answer 503 SlowDown with Retry-After: 1
(--fail503; --fail-parts: the first N uploads of a part); the first N PUTs with a body over 1 MiB have half their body
read, then the connection is reset (--drop); the Nth request whose method
is METHOD and whose path (with its query) holds TEXT is forwarded and
answered by the server, then the connection is reset before a byte of
that answer is sent (--cut-answer: a lost answer); --lose resets it
before forwarding (a lost request); after either, the next N requests
that match are answered 404 NoSuchUpload by the proxy (--forget: what S3
and MinIO answer a retried CompleteMultipartUpload once it completed;
versitygw, tests/s3/server.sh, answers it 200 again). LOG gets one line per request:
"METHOD PATH STATUS" (STATUS "dropped" for a reset, "cut STATUS" for an
answer the server gave and the client never saw).
"""
import http.client
import http.server
import socket
import struct
import sys
import threading

upstream = int(sys.argv[1])
log_path = sys.argv[2]
args = sys.argv[3:]
faults = {"fail503": 0, "fail-parts": 0, "drop": 0, "forget": 0}
cut = None  # [method, text, the matching requests left before the cut]
for i in range(0, len(args), 2):
    if args[i] in ("--cut-answer", "--lose"):
        m, text, n = args[i + 1].split(":", 2)
        cut = [m, text, int(n), args[i] == "--lose", False]
    else:
        faults[args[i].lstrip("-")] = int(args[i + 1])
lock = threading.Lock()
SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown'
            b'</Code><Message>Please reduce your request rate.</Message>'
            b'</Error>')


def log(line):
    with lock, open(log_path, "a") as f:
        f.write(line + "\n")


def cut_this(method, path, lose):
    with lock:
        if (cut and cut[3] == lose and cut[2] > 0 and method == cut[0] and
                cut[1] in path):
            cut[2] -= 1
            cut[4] = cut[2] == 0
            return cut[4]
    return False


def forget_this(method, path):
    with lock:
        if (cut and cut[4] and faults["forget"] > 0 and method == cut[0] and
                cut[1] in path):
            faults["forget"] -= 1
            return True
    return False


NO_SUCH_UPLOAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
                  b'NoSuchUpload</Code><Message>The specified upload does '
                  b'not exist.</Message></Error>')


def reset(handler):
    # RST, not FIN: the client sees the connection cut
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
    handler.close_connection = True


def take(kind):
    with lock:
        if faults[kind] > 0:
            faults[kind] -= 1
            return True
    return False


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        if self.command == "PUT" and n > (1 << 20) and take("drop"):
            self.rfile.read(n // 2)
            reset(self)
            log("%s %s dropped" % (self.command, self.path))
            return
        body = self.rfile.read(n) if n else b""
        if cut_this(self.command, self.path, True):
            reset(self)
            log("%s %s lost" % (self.command, self.path))
            return
        if forget_this(self.command, self.path):
            self.send_response_only(404, "Not Found")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(NO_SUCH_UPLOAD)))
            self.end_headers()
            self.wfile.write(NO_SUCH_UPLOAD)
            log("%s %s 404" % (self.command, self.path))
            return
        if take("fail503") or ("partNumber=" in self.path and
                                take("fail-parts")):
            self.send_response_only(503, "Slow Down")
            self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOWDOWN)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(SLOWDOWN)
            log("%s %s 503" % (self.command, self.path))
            return
        conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=120)
        conn.putrequest(self.command, self.path, skip_host=True,
                        skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() != "connection":
                conn.putheader(k, v)
        conn.endheaders(body if n else None)
        resp = conn.getresponse()
        data = resp.read()
        if cut_this(self.command, self.path, False):
            conn.close()
            reset(self)
            log("%s %s cut %d" % (self.command, self.path, resp.status))
            return
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in ("transfer-encoding", "connection",
                             "content-length"):
                continue
            self.send_header(k, v)
        length = resp.getheader("Content-Length") \
            if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()
        log("%s %s %d" % (self.command, self.path, resp.status))

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
