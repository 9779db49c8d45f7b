#!/usr/bin/env python3
"""faultproxy.py: an HTTPS reverse proxy in front of the test cluster's
apiserver that injects the faults a Kubernetes client must survive
(tests/k8s/t40-faults.sh). Python 3, stdlib only.

Every request is forwarded with the client's headers (its Authorization:
a bearer token passes through; --upstream-cert/--upstream-key add a client
certificate upstream) and every answer is streamed back chunk by chunk, so
that watch and log streams stay live. HTTP/1.1 only (ALPN says so).

Faults:
  --gone-once          the first watch request of Jobs gets a 200 whose body
                       is one ERROR event (410 Expired, "too old resource
                       version"), then the stream ends
  --drop-after S       every watch stream is cut (the connection closed
                       mid-chunk, no last chunk) S seconds after it started
  --fail-first N CODE  the first N POSTs of Jobs get CODE with a Status body
                       (not forwarded)
Each request is logged to --log as one line, "METHOD PATH STATUS", the
injected ones with a fourth word: GONE, DROPPED (when the cut happens),
INJECTED. The port listened on (--port 0: any free one) is written to
--port-file once it accepts connections. --exit-with PID: the proxy exits
when PID is gone (a test killed by SIGKILL leaves no proxy behind).
"""

import argparse
import http.client
import http.server
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse

HOP = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding",
    "te", "trailer", "upgrade", "host", "content-length", "expect",
}


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.gone_left = 1 if args.gone_once else 0
        self.fail_left = args.fail_first[0] if args.fail_first else 0
        self.fail_code = args.fail_first[1] if args.fail_first else 0
        self.log = open(args.log, "a", buffering=1) if args.log else None

    def note(self, line):
        if self.log:
            with self.lock:
                self.log.write(line + "\n")
                self.log.flush()

    def take(self, what):
        """One of the remaining 'gone' or 'fail' faults, or None."""
        with self.lock:
            if what == "gone" and self.gone_left > 0:
                self.gone_left -= 1
                return True
            if what == "fail" and self.fail_left > 0:
                self.fail_left -= 1
                return True
        return False


def is_watch(query):
    q = urllib.parse.parse_qs(query)
    return q.get("watch", [""])[0] in ("1", "true")


def is_jobs(path):
    parts = path.strip("/").split("/")
    # /apis/batch/v1/jobs, /apis/batch/v1/namespaces/NS/jobs
    return parts[:3] == ["apis", "batch", "v1"] and parts[-1] == "jobs"


def status_body(code, message, reason):
    return json.dumps({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "code": code,
    }).encode() + b"\n"


REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden",
    404: "NotFound", 409: "AlreadyExists", 410: "Expired",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
    504: "Timeout",
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultproxy"

    def log_message(self, fmt, *args):  # no chatter on stderr
        pass

    def setup(self):
        super().setup()
        # the TLS handshake in this thread, not the accepting one
        self.connection.settimeout(10)
        self.connection.do_handshake()
        self.connection.settimeout(None)

    def do_GET(self):
        self.forward()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -- answers made here ------------------------------------------------

    def send_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def answer(self, code, body, extra=None):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.server.state.note("%s %s %d %s" % (self.command, self.path, code,
                                                extra or "INJECTED"))

    def gone(self):
        event = json.dumps({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "too old resource version",
            "reason": "Expired", "code": 410}}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.send_chunk(event)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True
        self.server.state.note("%s %s 200 GONE" % (self.command, self.path))

    # -- forwarding -------------------------------------------------------

    def forward(self):
        st = self.server.state
        a = st.args
        url = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        watch = is_watch(url.query)

        if self.command == "POST" and is_jobs(url.path) and st.take("fail"):
            code = st.fail_code
            self.answer(code, status_body(
                code, "faultproxy: injected %d on the create of a Job" % code,
                REASONS.get(code, "InternalError")))
            return
        if (self.command == "GET" and watch and is_jobs(url.path)
                and st.take("gone")):
            self.gone()
            return

        up = http.client.HTTPSConnection(a.upstream_host, a.upstream_port,
                                         context=self.server.up_ctx,
                                         timeout=None)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP}
        try:
            up.request(self.command, self.path, body=body, headers=headers)
            resp = up.getresponse()
        except OSError as e:
            up.close()
            self.answer(502, status_body(502, "faultproxy: upstream: %s" % e,
                                         "InternalError"), "UPSTREAM-ERROR")
            return
        st.note("%s %s %d" % (self.command, self.path, resp.status))

        timer = None
        if watch and a.drop_after is not None:
            def cut():
                st.note("%s %s %d DROPPED" % (self.command, self.path,
                                              resp.status))
                for s in (self.connection, up.sock):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except (OSError, AttributeError):
                        pass
            timer = threading.Timer(a.drop_after, cut)
            timer.daemon = True
            timer.start()
        try:
            self.relay(resp)
        except (OSError, ValueError, http.client.HTTPException):
            self.close_connection = True
        finally:
            if timer:
                timer.cancel()
            up.close()

    def relay(self, resp):
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        nobody = self.command == "HEAD" or resp.status in (204, 304) \
            or 100 <= resp.status < 200
        if not nobody:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if nobody:
            return
        while True:
            data = resp.read1(65536)
            if not data:
                break
            self.send_chunk(data)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--cert", required=True, help="serving certificate")
    p.add_argument("--key", required=True, help="its key")
    p.add_argument("--upstream", default="https://127.0.0.1:6443")
    p.add_argument("--upstream-ca", required=True)
    p.add_argument("--upstream-cert")
    p.add_argument("--upstream-key")
    p.add_argument("--log")
    p.add_argument("--exit-with", type=int, metavar="PID",
                   help="exit when process PID is gone (the test)")
    p.add_argument("--gone-once", action="store_true")
    p.add_argument("--drop-after", type=float)
    p.add_argument("--fail-first", nargs=2, type=int, metavar=("N", "CODE"))
    a = p.parse_args()
    u = urllib.parse.urlsplit(a.upstream)
    a.upstream_host, a.upstream_port = u.hostname, u.port or 443

    up_ctx = ssl.create_default_context(cafile=a.upstream_ca)
    up_ctx.set_alpn_protocols(["http/1.1"])
    if a.upstream_cert:
        up_ctx.load_cert_chain(a.upstream_cert, a.upstream_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["http/1.1"])

    srv = Server(("127.0.0.1", a.port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                 do_handshake_on_connect=False)
    srv.state = State(a)
    srv.up_ctx = up_ctx
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(a.port_file + ".tmp", a.port_file)
    if a.exit_with:
        def watch_parent():
            while True:
                try:
                    os.kill(a.exit_with, 0)
                except ProcessLookupError:
                    os._exit(0)
                except PermissionError:
                    pass
                time.sleep(1)
        threading.Thread(target=watch_parent, daemon=True).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
