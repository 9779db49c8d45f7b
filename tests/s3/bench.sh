#!/usr/bin/env bash
# Figures for the S3 client against the local versitygw (tests/s3/server.sh):
# 1 GiB put in 8 MiB parts with 4 parts in flight and with 1, got back;
# 10,000 small files put with 16 requests in flight and with 1.
# usage: tests/s3/bench.sh [DRIVER]   (default build/tests/test_s3)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
driver=${1:-$root/build/tests/test_s3}
work=$(mktemp -d "${TMPDIR:-/tmp}/pipe-s3-bench.XXXXXX")
eval "$(bash "$root/tests/s3/server.sh" up)"
trap 'bash "$root/tests/s3/server.sh" down; rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_ENDPOINT_URL=$S3_ENDPOINT
url=s3://$S3_BUCKET/bench
cd "$work"
head -c 1073741824 /dev/urandom >big
mkdir small
for i in $(seq -w 1 10000); do echo "small file $i" >"small/f$i"; done
# t: the seconds the driver reports ("ok in 1.234 s", "put N files in ...")
t() { "$driver" drive "$@" 2>/dev/null | sed -n 's/.* in \([0-9.]*\) s$/\1/p'; }
for p in 4 1; do
	s=$(t --parallel "$p" "$url" put big-$p.bin big)
	echo "1 GiB put, 8 MiB parts, $p in flight: $s s ($(echo "1024 / $s" | bc) MiB/s)"
done
s=$(t "$url" get big-4.bin big.back)
echo "1 GiB get (one stream): $s s ($(echo "1024 / $s" | bc) MiB/s)"
cmp big big.back
for p in 16 1; do
	s=$(t --parallel "$p" "$url" putdir small small-$p/)
	echo "10,000 small files put, $p in flight: $s s ($(echo "10000 / $s" | bc) files/s)"
done
