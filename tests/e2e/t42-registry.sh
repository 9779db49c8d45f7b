#!/usr/bin/env bash
# Image tags resolved to digests (executors/oci.c) against real registries
# (distribution v3.1.2, started here on free 127.0.0.1 ports): an open one,
# one with htpasswd Basic auth, one with token auth (a small token server,
# tests/e2e/oci-registry.py, whose JWTs the registry trusts). Content is
# pushed over the API without Docker; re-tagging changes the digest. The
# driver is `test_oci resolve IMAGE...` (tests/unit/test_oci.c).
# Env: PIPE_K8S_CACHE (the registry binary's cache, shared with
# tests/k8s/registry.sh; default ~/.cache/pipe-k8s), PIPE_TEST_REGISTRY_BIN.
cache=${PIPE_K8S_CACHE:-${HOME:-/nonexistent}/.cache/pipe-k8s}
go_home=${HOME:-}
. "$(dirname "$0")/lib.sh"
plan 37
fx=$root/tests/e2e/oci-registry.py
REGISTRY_VERSION=v3.1.2

# The registry binary: the cache's, else built there (go install).
registry_bin() {
	local bin=${PIPE_TEST_REGISTRY_BIN:-$cache/bin/registry} go
	if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$REGISTRY_VERSION"; then
		echo "$bin"
		return 0
	fi
	go=$(command -v go || echo /usr/local/go/bin/go)
	[ -x "$go" ] || return 1
	mkdir -p "$cache/bin" || return 1
	echo "# building registry $REGISTRY_VERSION into $cache/bin" >&2
	HOME=$go_home GOBIN=$cache/bin nice -n 10 "$go" install \
		"github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" >&2 || return 1
	echo "$cache/bin/registry"
}

driver=${UNIT_DIR:-$root/build/tests}/test_oci
if [ ! -x "$driver" ]; then
	make -s -C "$root" build/tests/test_oci >&2 && driver=$root/build/tests/test_oci
fi
[ -x "$driver" ] || skip_all oci "cannot build build/tests/test_oci"
# the token server signs with it: installed when missing (pip, then apt)
python3 -c 'import cryptography' 2>/dev/null ||
	python3 -m pip install -q cryptography >/dev/null 2>&1 ||
	{ [ "$(id -u)" = 0 ] && apt-get install -y -qq python3-cryptography >/dev/null 2>&1; }
python3 -c 'import cryptography' 2>/dev/null ||
	skip_all oci "python3 without the cryptography module (pip install cryptography, or Debian: python3-cryptography)"
REG=$(registry_bin) || skip_all oci "no registry binary and no Go to build it"

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$_tmp"
}
trap cleanup EXIT

# wait_up URL: until something answers there (10 s at most).
wait_up() {
	local _
	for _ in $(seq 100); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.1
	done
	return 1
}

# start_registry NAME PORT [AUTH-YAML]: a registry on 127.0.0.1:PORT with
# its storage under $_tmp/NAME; waits until /v2/ answers.
start_registry() {
	local d=$_tmp/$1
	mkdir -p "$d/data"
	cat > "$d/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $d/data
http:
  addr: ${BIND:-127.0.0.1}:$2
${3:-}
YML
	"$REG" serve "$d/config.yml" >"$d/log" 2>&1 &
	pids+=($!)
	wait_up "http://127.0.0.1:$2/v2/" && return 0
	echo "registry $1 did not start:"; cat "$d/log"
	return 1
}

# under make valgrind, the driver runs under memcheck too (an error or a
# leak: exit 99)
vg=()
[ "${VALGRIND:-0}" = 1 ] && vg=(valgrind -q --error-exitcode=99 --leak-check=full
	--suppressions="$root/tests/valgrind.supp")
resolve() {
	run "${vg[@]}" "$driver" resolve "$@"
	# what memcheck found fails the check that follows, whatever it is
	if [ "${#vg[@]}" -gt 0 ] && [ "$rc" = 99 ]; then
		out="memcheck: $err" err="memcheck: $err" rc=99
	fi
}

# ---------------------------------------------------------------- open
P1=$(python3 "$fx" port)
BIND=0.0.0.0 start_registry open "$P1" || skip_all oci "the registry does not start"
R1=127.0.0.1:$P1
dA=$(python3 "$fx" push "http://$R1" pipe-test/busybox 1 A oci)
dB=$(python3 "$fx" push "http://$R1" pipe-test/other 1 B oci)
resolve "$R1/pipe-test/busybox:1"
expect_rc "open: resolves" 0
expect_eq "open: HOST/REPO@digest of the pushed manifest" "$out" "$R1/pipe-test/busybox@$dA"

dA2=$(python3 "$fx" push "http://$R1" pipe-test/busybox 1 A2 oci)
resolve "$R1/pipe-test/busybox:1"
expect_eq "re-tagged: the new digest" "$out" "$R1/pipe-test/busybox@$dA2"
if [ "$dA" != "$dA2" ]; then ok "re-tagged: the digest changed"; else
	not_ok "re-tagged: the digest changed" "$dA"
fi

dD=$(python3 "$fx" push "http://$R1" pipe-test/busybox docker D docker)
dI=$(python3 "$fx" push "http://$R1" pipe-test/busybox index I index)
resolve "$R1/pipe-test/busybox:docker" "$R1/pipe-test/busybox:index"
expect_eq "docker v2 manifest and OCI index" "$out" \
	"$R1/pipe-test/busybox@$dD"$'\n'"$R1/pipe-test/busybox@$dI"

resolve "localhost:$P1/pipe-test/other" "localhost:$P1/pipe-test/other:latest"
expect_rc "localhost: no tag is latest (plain http)" 2
expect_in "localhost: a missing tag is not found" "$err" \
	"image 'localhost:$P1/pipe-test/other' not found at localhost:$P1"
resolve "localhost:$P1/pipe-test/other:1" "localhost:$P1/pipe-test/other:1"
expect_eq "the second resolve of an image: the same" "$out" \
	"localhost:$P1/pipe-test/other@$dB"$'\n'"localhost:$P1/pipe-test/other@$dB"

resolve "$R1/pipe-test/nothing:1"
expect_rc "unknown repository: exit 2" 2
expect_in "unknown repository: says so" "$err" "image '$R1/pipe-test/nothing:1' not found at $R1"

# faults in front of the real registry: no digest header (a GET and its
# sha256), a bad one, a wrong one; a rate limit
for mode in strip bad lie busy; do
	PX=$(python3 "$fx" port)
	python3 "$fx" proxy "$PX" "http://$R1" "$mode" >/dev/null 2>&1 &
	pids+=($!)
	wait_up "http://127.0.0.1:$PX/v2/"
	resolve "127.0.0.1:$PX/pipe-test/busybox:1"
	case $mode in
	strip) expect_eq "no Docker-Content-Digest: sha256 of the GET's body" "$out" \
		"127.0.0.1:$PX/pipe-test/busybox@$dA2" ;;
	bad) expect_in "a bad Docker-Content-Digest: an error" "$err" \
		"registry 127.0.0.1:$PX sent a bad Docker-Content-Digest 'sha256:zz'" ;;
	lie) expect_in "a GET whose body is not its digest: an error" "$err" \
		"image '127.0.0.1:$PX/pipe-test/busybox:1': the manifest from 127.0.0.1:$PX has digest $dA2, not the sha256:" ;;
	busy) expect_in "429: the rate limit's hint" "$err" \
		"registry 127.0.0.1:$PX answered 429"$'\n'"hint: a pull rate limit" ;;
	esac
done

# another name for this host (not loopback): https unless listed insecure
ip=$(hostname -I 2>/dev/null | awk '{print $1}')
if [ -n "$ip" ] && [[ $ip != 127.* ]]; then
	resolve "$ip:$P1/pipe-test/busybox:1"
	expect_rc "a LAN registry: https by default (fails on plain http)" 3
	expect_in "  with the hint" "$err" "PIPE_INSECURE_REGISTRIES"
	PIPE_INSECURE_REGISTRIES="other:1,$ip:$P1" resolve "$ip:$P1/pipe-test/busybox:1"
	expect_eq "listed in PIPE_INSECURE_REGISTRIES: plain http" "$out" "$ip:$P1/pipe-test/busybox@$dA2"
else
	skip 3 oci "no non-loopback address here (hostname -I)"
fi

# ---------------------------------------------------------------- basic
P2=$(python3 "$fx" port)
mkdir -p "$_tmp/basic"
echo "ann:$(python3 "$fx" bcrypt 'ann-Pa55word')" > "$_tmp/basic/htpasswd"
start_registry basic "$P2" "auth:
  htpasswd:
    realm: pipe-test
    path: $_tmp/basic/htpasswd" || skip_all oci "the htpasswd registry does not start"
R2=127.0.0.1:$P2
d2=$(python3 "$fx" push "http://$R2" team/app v1 C oci ann 'ann-Pa55word')
export DOCKER_CONFIG=$_tmp/dockercfg
mkdir -p "$DOCKER_CONFIG"
resolve "$R2/team/app:v1"
expect_rc "basic, no credentials: exit 3" 3
expect_in "  unauthorized, log in" "$err" "image '$R2/team/app:v1': unauthorized at $R2: no credentials"
auth=$(printf 'ann:ann-Pa55word' | base64)
echo "{\"auths\":{\"$R2\":{\"auth\":\"$auth\"}}}" > "$DOCKER_CONFIG/config.json"
resolve "$R2/team/app:v1"
expect_eq "basic: auths.{host}.auth" "$out" "$R2/team/app@$d2"
wrong=$(printf 'ann:Wr0ng-Secret' | base64)
echo "{\"auths\":{\"http://$R2\":{\"auth\":\"$wrong\"}}}" > "$DOCKER_CONFIG/config.json"
resolve "$R2/team/app:v1"
expect_rc "basic, wrong password: exit 3" 3
expect_in "  unauthorized" "$err" "image '$R2/team/app:v1': unauthorized at $R2 (HTTP 401)"
secrets_seen=$err

mkdir -p "$_tmp/bin"
cat > "$_tmp/bin/docker-credential-pipetest" <<SH
#!/bin/sh
read -r server
[ "\$1" = get ] && [ "\$server" = "$R2" ] || { echo "credentials not found in native keychain"; exit 1; }
echo '{"ServerURL":"$R2","Username":"ann","Secret":"ann-Pa55word"}'
SH
chmod +x "$_tmp/bin/docker-credential-pipetest"
echo '{"auths":{},"credsStore":"pipetest"}' > "$DOCKER_CONFIG/config.json"
PATH=$_tmp/bin:$PATH resolve "$R2/team/app:v1"
expect_eq "basic: credsStore helper" "$out" "$R2/team/app@$d2"

# ---------------------------------------------------------------- tls
# https with a private CA (Docker's certs.d/HOST:PORT/ca.crt) and Basic
# auth, as htpasswd is meant to be used; needs a non-loopback address
if [ -n "$ip" ] && [[ $ip != 127.* ]]; then
	P4=$(python3 "$fx" port)
	mkdir -p "$_tmp/tls"
	python3 "$fx" tls "$_tmp/tls" "$ip"
	BIND=0.0.0.0 start_registry tls "$P4" "  tls:
    certificate: $_tmp/tls/server.crt
    key: $_tmp/tls/server.key
auth:
  htpasswd:
    realm: pipe-test
    path: $_tmp/basic/htpasswd" || true
	d4=$(SSL_CERT_FILE=$_tmp/tls/ca.crt python3 "$fx" push "https://127.0.0.1:$P4" secure/app v1 T oci ann 'ann-Pa55word')
	echo "{\"auths\":{\"$ip:$P4\":{\"auth\":\"$auth\"}}}" > "$DOCKER_CONFIG/config.json"
	resolve "$ip:$P4/secure/app:v1"
	expect_in "https, an unknown CA: refused" "$err" "cannot reach the registry at https://$ip:$P4"
	expect_in "  where its CA goes" "$err" "hint: a private CA's certificate goes in /etc/docker/certs.d/$ip:$P4/ca.crt"
	mkdir -p "$_tmp/certs.d/$ip:$P4"
	cp "$_tmp/tls/ca.crt" "$_tmp/certs.d/$ip:$P4/ca.crt"
	PIPE_REGISTRY_CERTS_D=$_tmp/certs.d resolve "$ip:$P4/secure/app:v1"
	expect_eq "https: certs.d/HOST:PORT/ca.crt, Basic auth" "$out" "$ip:$P4/secure/app@$d4"
else
	skip 3 oci "no non-loopback address here (hostname -I)"
fi

# ---------------------------------------------------------------- token
P3=$(python3 "$fx" port)
PT=$(python3 "$fx" port)
mkdir -p "$_tmp/token"
python3 "$fx" keygen "$_tmp/token"
python3 "$fx" token-server "$PT" "$_tmp/token" bob 'bob-T0ken-Pass' pipe-issuer pipe-registry \
	>"$_tmp/token/log" 2>&1 &
pids+=($!)
wait_up "http://127.0.0.1:$PT/"
start_registry token "$P3" "auth:
  token:
    realm: http://127.0.0.1:$PT/token
    service: pipe-registry
    issuer: pipe-issuer
    jwks: $_tmp/token/jwks.json" || skip_all oci "the token registry does not start"
R3=127.0.0.1:$P3
d3=$(python3 "$fx" push "http://$R3" lab/model 2024 E oci bob 'bob-T0ken-Pass')
rm -f "$DOCKER_CONFIG/config.json"
resolve "$R3/lab/model:2024"
expect_rc "token, no credentials: exit 3" 3
expect_in "  the token server refused" "$err" "unauthorized: the token server http://127.0.0.1:$PT/token answered 401 (incorrect username or password)"
echo "{\"credHelpers\":{\"$R3\":\"pipetest3\"}}" > "$DOCKER_CONFIG/config.json"
cat > "$_tmp/bin/docker-credential-pipetest3" <<SH
#!/bin/sh
echo '{"Username":"bob","Secret":"bob-T0ken-Pass"}'
SH
chmod +x "$_tmp/bin/docker-credential-pipetest3"
PATH=$_tmp/bin:$PATH resolve "$R3/lab/model:2024" "$R3/lab/model:2024"
expect_eq "token: Bearer through the realm, credHelpers" "$out" \
	"$R3/lab/model@$d3"$'\n'"$R3/lab/model@$d3"
d3b=$(python3 "$fx" push "http://$R3" lab/model 2024 F oci bob 'bob-T0ken-Pass')
PATH=$_tmp/bin:$PATH resolve "$R3/lab/model:2024"
expect_eq "token: re-tagged, the new digest" "$out" "$R3/lab/model@$d3b"
echo "{\"auths\":{\"$R3\":{\"identitytoken\":\"bob-T0ken-Pass\"}}}" > "$DOCKER_CONFIG/config.json"
resolve "$R3/lab/model:2024"
expect_eq "token: an identity token, POSTed as OAuth2 refresh token" "$out" "$R3/lab/model@$d3b"
echo "{\"auths\":{\"$R3\":{\"auth\":\"$(printf 'bob:Wr0ng-Secret' | base64)\"}}}" > "$DOCKER_CONFIG/config.json"
resolve "$R3/lab/model:2024"
expect_rc "token, wrong password: exit 3" 3
secrets_seen+=$err

expect_not_in "no password in any message" "$secrets_seen" "Wr0ng-Secret"
expect_not_in "  nor its base64" "$secrets_seen" "$(printf 'ann:Wr0ng-Secret' | base64 | cut -c1-12)"

# ---------------------------------------------------------------- offline
kill "${pids[0]}" && wait "${pids[0]}" 2>/dev/null
resolve "$R1/pipe-test/busybox:1"
expect_rc "registry down: exit 3" 3
expect_in "  cannot reach it" "$err" "image '$R1/pipe-test/busybox:1': cannot reach the registry at http://$R1"
resolve "$R1/pipe-test/busybox@$dA" "$R1/pipe-test/busybox:1@$dA"
expect_eq "pinned: as is, no request" "$out" "$R1/pipe-test/busybox@$dA"$'\n'"$R1/pipe-test/busybox:1@$dA"
finish
