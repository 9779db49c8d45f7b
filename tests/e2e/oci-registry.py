#!/usr/bin/env python3
"""Fixtures for t42-registry.sh around a real registry (distribution):

  oci-registry.py port                        a free 127.0.0.1 TCP port
  oci-registry.py bcrypt PASSWORD             an htpasswd bcrypt hash (libcrypt)
  oci-registry.py tls DIR IP                  DIR/ca.crt, server.crt, server.key
                                              (for 127.0.0.1 and IP)
  oci-registry.py keygen DIR                  DIR/key.pem and DIR/jwks.json
  oci-registry.py token-server PORT DIR USER PASS ISSUER SERVICE
                                              a Docker token server whose JWTs
                                              the registry trusts (jwks)
  oci-registry.py proxy PORT UPSTREAM MODE   a fault in front of a registry:
                                              MODE strip (no Docker-Content-
                                              Digest), bad (not a digest), lie
                                              (none on HEAD, another sha256 on
                                              GET), busy (429)
  oci-registry.py push BASE REPO TAG SEED [oci|docker|index] [USER PASS]
                                              PUT a config, a layer and a
                                              manifest (no Docker); prints the
                                              manifest's sha256 digest
"""
import base64
import ctypes
import hashlib
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bcrypt(password):
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt.restype = ctypes.c_char_p
    salt = lib.crypt_gensalt(b"$2b$", 5, None, 0)
    return lib.crypt(password.encode(), salt).decode()


def keygen(d):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(d, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    nums = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "kid": "pipe-test", "use": "sig",
           "alg": "ES256", "x": b64url(nums.x.to_bytes(32, "big")),
           "y": b64url(nums.y.to_bytes(32, "big"))}
    with open(os.path.join(d, "jwks.json"), "w") as f:
        json.dump({"keys": [jwk]}, f)


def tls(d, ip):
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def cert(subject, key, issuer, ikey, ca, sans=None):
        b = (x509.CertificateBuilder().subject_name(subject)
             .issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - day).not_valid_after(now + day)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                            critical=True))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans),
                                critical=False)
        return b.sign(ikey, hashes.SHA256())

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    cakey = ec.generate_private_key(ec.SECP256R1())
    ca = cert(name("pipe test CA"), cakey, name("pipe test CA"), cakey, True)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.IPAddress(ipaddress.ip_address(a))
            for a in {"127.0.0.1", ip}]
    srv = cert(name(ip), key, ca.subject, cakey, False, sans)
    pem = serialization.Encoding.PEM
    for f, data in (("ca.crt", ca.public_bytes(pem)),
                    ("server.crt", srv.public_bytes(pem)),
                    ("server.key", key.private_bytes(
                        pem, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()))):
        with open(os.path.join(d, f), "wb") as fp:
            fp.write(data)


def jwt(d, claims):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import \
        decode_dss_signature

    with open(os.path.join(d, "key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    head = {"typ": "JWT", "alg": "ES256", "kid": "pipe-test"}
    signing = (b64url(json.dumps(head).encode()) + "." +
               b64url(json.dumps(claims).encode()))
    r, s = decode_dss_signature(key.sign(signing.encode(),
                                         ec.ECDSA(hashes.SHA256())))
    return signing + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def token_server(port, d, user, password, issuer, service):
    want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def grant(self, q, key):
            access = []
            for scope in q.get("scope", []):
                m = re.fullmatch(r"repository:([^:]+):(.+)", scope)
                if m:
                    access.append({"type": "repository", "name": m.group(1),
                                   "actions": m.group(2).split(",")})
            now = int(time.time())
            tok = jwt(d, {"iss": issuer, "sub": user,
                          "aud": q.get("service", [service])[0],
                          "exp": now + 300, "nbf": now - 10, "iat": now,
                          "jti": str(now), "access": access})
            self.answer(200, {key: tok, "expires_in": 300})

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            if u.path != "/token":
                self.send_error(404)
            elif self.headers.get("Authorization") != want:
                self.answer(401, {"details": "incorrect username or password"})
            else:
                self.grant(urllib.parse.parse_qs(u.query), "token")

        # OAuth2: an identity token (the password here) as refresh token
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            q = urllib.parse.parse_qs(self.rfile.read(n).decode())
            if (q.get("grant_type") != ["refresh_token"] or
                    q.get("refresh_token") != [password]):
                self.answer(401, {"error": "invalid_grant"})
            else:
                self.grant(q, "access_token")

    HTTPServer(("127.0.0.1", port), H).serve_forever()


def proxy(port, upstream, mode):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def forward(self):
            if mode == "busy":
                body = (b'{"errors":[{"code":"TOOMANYREQUESTS",'
                        b'"message":"slow down"}]}')
                self.send_response(429)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return
            req = urllib.request.Request(upstream + self.path,
                                         method=self.command)
            for k in ("Accept", "Authorization"):
                if self.headers.get(k):
                    req.add_header(k, self.headers[k])
            try:
                r = urllib.request.urlopen(req)
                status, headers, body = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                status, headers, body = e.code, e.headers, e.read()
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() in ("content-length", "connection", "date",
                                 "transfer-encoding", "server"):
                    continue
                if k.lower() == "docker-content-digest":
                    if mode == "strip" or (mode == "lie" and
                                           self.command == "HEAD"):
                        continue
                    v = ("sha256:zz" if mode == "bad" else
                         "sha256:" + hashlib.sha256(b"lie").hexdigest())
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = forward

    HTTPServer(("127.0.0.1", port), H).serve_forever()


class Client:
    """Just enough of a registry client to push: Basic or Bearer on 401."""

    def __init__(self, base, user=None, password=None):
        self.base, self.user, self.password = base, user, password
        self.auth = None

    def basic(self):
        if self.user is None:
            return None
        raw = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def authorize(self, challenge):
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            self.auth = self.basic()
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        q = {k: params[k] for k in ("service", "scope") if k in params}
        req = urllib.request.Request(params["realm"] + "?" +
                                     urllib.parse.urlencode(q))
        if self.basic():
            req.add_header("Authorization", self.basic())
        with urllib.request.urlopen(req) as r:
            self.auth = "Bearer " + json.load(r)["token"]

    def call(self, method, path, data=None, ctype=None):
        url = path if path.startswith("http") else self.base + path
        for attempt in (0, 1):
            req = urllib.request.Request(url, data=data, method=method)
            if ctype:
                req.add_header("Content-Type", ctype)
            if self.auth:
                req.add_header("Authorization", self.auth)
            try:
                with urllib.request.urlopen(req) as r:
                    return r.headers, r.read()
            except urllib.error.HTTPError as e:
                if e.code != 401 or attempt:
                    raise
                self.authorize(e.headers["WWW-Authenticate"])

    def blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        h, _ = self.call("POST", f"/v2/{repo}/blobs/uploads/")
        loc = h["Location"]
        if not loc.startswith("http"):
            loc = self.base + loc
        sep = "&" if "?" in loc else "?"
        self.call("PUT", f"{loc}{sep}digest={digest}", data,
                  "application/octet-stream")
        return {"digest": digest, "size": len(data)}


OCI = "application/vnd.oci.image.manifest.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def push(base, repo, tag, seed, kind="oci", user=None, password=None):
    c = Client(base, user, password)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []},
                         "config": {"Labels": {"seed": seed}}}).encode()
    layer = f"pipe test layer {seed}\n".encode()
    cfg = c.blob(repo, config)
    lay = c.blob(repo, layer)
    mt = DOCKER if kind == "docker" else OCI
    cfg["mediaType"] = ("application/vnd.docker.container.image.v1+json"
                        if kind == "docker" else
                        "application/vnd.oci.image.config.v1+json")
    lay["mediaType"] = ("application/vnd.docker.image.rootfs.diff.tar.gzip"
                        if kind == "docker" else
                        "application/vnd.oci.image.layer.v1.tar")
    man = json.dumps({"schemaVersion": 2, "mediaType": mt, "config": cfg,
                      "layers": [lay]}, indent=2).encode()
    digest = "sha256:" + hashlib.sha256(man).hexdigest()
    if kind == "index":
        c.call("PUT", f"/v2/{repo}/manifests/{digest}", man, mt)
        man = json.dumps({"schemaVersion": 2, "mediaType": INDEX,
                          "manifests": [{"mediaType": mt, "digest": digest,
                                         "size": len(man), "platform": {
                                             "architecture": "amd64",
                                             "os": "linux"}}]}).encode()
        mt = INDEX
        digest = "sha256:" + hashlib.sha256(man).hexdigest()
    c.call("PUT", f"/v2/{repo}/manifests/{tag}", man, mt)
    print(digest)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "port":
        print(free_port())
    elif cmd == "bcrypt":
        print(bcrypt(args[0]))
    elif cmd == "tls":
        tls(args[0], args[1])
    elif cmd == "keygen":
        keygen(args[0])
    elif cmd == "token-server":
        token_server(int(args[0]), *args[1:])
    elif cmd == "proxy":
        proxy(int(args[0]), args[1], args[2])
    elif cmd == "push":
        push(*args)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
