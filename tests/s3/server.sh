#!/usr/bin/env bash
# A real S3 server on 127.0.0.1 for the tests (versitygw, Apache-2.0, as
# strict as AWS about x-amz-content-sha256; /work/shared/s3-server).
#   eval "$(tests/s3/server.sh up)"   start it with a fresh data folder and
#                                     bucket "pipe-test"; prints export lines
#                                     (S3_ENDPOINT S3_PID S3_KEY S3_SECRET
#                                     S3_DATA S3_BUCKET)
#   tests/s3/server.sh down           stop it ($S3_PID) and remove $S3_DATA
#   tests/s3/server.sh env            the export lines of the running one
# The binary is cached outside the checkout, in
# ${PIPE_S3_CACHE:-$HOME/.cache/pipe-s3}/bin, and built there with
# `go install` (about 72 s, needs the Go module proxy) only when missing.
# Env: S3_PORT (default: a free port), S3_KEY, S3_SECRET.
set -euo pipefail
VERSION=v1.8.0
cache=${PIPE_S3_CACHE:-${HOME:-/nonexistent}/.cache/pipe-s3}
bin=$cache/bin/versitygw
state=${TMPDIR:-/tmp}/pipe-s3-server.$(id -u).env
KEY=${S3_KEY:-testkey}
SECRET=${S3_SECRET:-testsecret123}
BUCKET=pipe-test

build() {
	[ -x "$bin" ] && return 0
	local go
	go=$(command -v go || echo /usr/local/go/bin/go)
	[ -x "$go" ] || { echo "server.sh: no Go to build versitygw $VERSION" >&2; return 1; }
	mkdir -p "$cache/bin"
	echo "# building versitygw $VERSION into $cache/bin (about 72 s)" >&2
	GOBIN=$cache/bin nice -n 10 "$go" install \
		"github.com/versity/versitygw/cmd/versitygw@$VERSION" >&2
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# signed KEY SECRET ARGS...: curl with SigV4, as the client signs.
signed() {
	curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user "$KEY:$SECRET" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@" || true
}

up() {
	build
	local port=${S3_PORT:-$(free_port)} dir pid ep code
	dir=$(mktemp -d "${TMPDIR:-/tmp}/pipe-s3-data.XXXXXX")
	"$bin" --access "$KEY" --secret "$SECRET" --region us-east-1 \
		--port "127.0.0.1:$port" --quiet posix "$dir" >"$dir.log" 2>&1 &
	pid=$!
	ep=http://127.0.0.1:$port
	for _ in $(seq 300); do # a signed ListBuckets answers 200: ~30 s at most
		code=$(signed "$ep/")
		if [ "$code" = 200 ]; then
			code=$(signed -X PUT "$ep/$BUCKET")
			[ "$code" = 200 ] || { echo "server.sh: create bucket: HTTP $code" >&2; kill "$pid"; exit 1; }
			echo "export S3_ENDPOINT=$ep S3_PID=$pid S3_KEY=$KEY S3_SECRET=$SECRET S3_DATA=$dir S3_BUCKET=$BUCKET" | tee "$state"
			exit 0
		fi
		kill -0 "$pid" 2>/dev/null || { echo "versitygw exited:" >&2; cat "$dir.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "versitygw not ready after 30 s; log: $dir.log" >&2
	kill "$pid"
	exit 1
}

down() {
	[ -n "${S3_PID:-}" ] || { [ -f "$state" ] && . "$state"; }
	[ -n "${S3_PID:-}" ] || exit 0
	kill "$S3_PID" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$S3_PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$S3_PID" 2>/dev/null || true
	case ${S3_DATA:-} in */pipe-s3-data.*) rm -rf "$S3_DATA" "$S3_DATA.log" ;; esac
	rm -f "$state"
}

case ${1:-} in
up) up ;;
down) down ;;
env) [ -f "$state" ] && cat "$state" ;;
*) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
