#!/usr/bin/env bash
# The S3 client (remote/s3*.c) against a real S3 server, versitygw
# (tests/s3/server.sh), driven by `test_s3 drive` (tests/unit/test_s3.c):
# round trips of 1 byte, 0 bytes and 20 MiB in parts, awkward keys,
# 2,500 objects listed across pages, create-only puts, a wrong secret, a
# server that is down; and through a fault proxy on top of the real
# server (tests/s3/fault-proxy.py): 503s, a connection cut mid-upload, a
# multipart upload that fails and is aborted, one interrupted (SIGINT)
# and aborted, a download that fails, a complete whose answer is lost
# (the server then forgets the upload: the object is taken when its ETag
# is these parts'), one lost before the server saw it with another
# object there (the put fails).
# Env: PIPE_S3_CACHE (the server binary's cache, ~/.cache/pipe-s3).
cache=${PIPE_S3_CACHE:-${HOME:-/nonexistent}/.cache/pipe-s3}
go_home=${HOME:-}
. "$(dirname "$0")/lib.sh"
plan 62

driver=${UNIT_DIR:-$root/build/tests}/test_s3
if [ ! -x "$driver" ]; then
	make -s -C "$root" build/tests/test_s3 >&2 && driver=$root/build/tests/test_s3
fi
[ -x "$driver" ] || skip_all s3 "cannot build build/tests/test_s3"
server() { HOME=$go_home PIPE_S3_CACHE=$cache bash "$root/tests/s3/server.sh" "$@"; }
up=$(server up 2>"$_tmp/up.err") || skip_all s3 "no S3 server: $(tail -3 "$_tmp/up.err")"
eval "$up"
proxy_pid=
cleanup() {
	[ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
	server down >/dev/null 2>&1
	rm -rf "$_tmp"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_ENDPOINT_URL=$S3_ENDPOINT
url=s3://$S3_BUCKET/t48
d() { run "$driver" drive --backoff 50 "$@"; }
md5() { md5sum "$1" | cut -d' ' -f1; }

# --- round trips
printf x >one
: >zero
head -c 20971520 /dev/urandom >big
d "$url" put one.bin one
expect_in "put 1 byte" "$out" "ok in"
d "$url" head one.bin
expect_eq "head 1 byte: size and md5 ETag" "${out%%$'\n'*}" "size=1 etag=$(md5 one)"
d "$url" get one.bin one.back
expect_eq "get 1 byte" "$rc $(cat one.back)" "0 x"
d "$url" put zero.bin zero
d "$url" head zero.bin
expect_eq "put and head 0 bytes" "${out%%$'\n'*}" "size=0 etag=$(md5 zero)"
d "$url" get zero.bin zero.back
expect_eq "get 0 bytes" "$rc $(stat -c %s zero.back)" "0 0"
d "$url" put big.bin big
expect_rc "put 20 MiB in parts" 0
expect_in "20 MiB: create, 3 parts, complete" "$err" "requests: 5"
d "$url" head big.bin
expect_in "20 MiB: size and multipart ETag" "$out" "size=20971520 etag="
expect_in "20 MiB: ETag of 3 parts" "$out" "-3"
d --parallel 1 "$url" get big.bin big.back
expect_eq "get 20 MiB: md5" "$(md5 big.back)" "$(md5 big)"
for k in 'a+b' 'café' 'dir with spaces/x y.txt' 'q?x=1&y#z' '~tilde%41'; do
	d "$url" putmem "odd/$k" "content of $k"
	d "$url" get "odd/$k" odd.back
	expect_eq "awkward key '$k'" "$rc $(cat odd.back)" "0 content of $k"
done
d "$url" list odd/
expect_in "list: awkward keys listed" "$out" "odd/dir with spaces/x y.txt 34"
expect_in "list: 5 keys" "$out" "keys: 5"

# --- delete, missing keys
d "$url" delete one.bin
expect_rc "delete" 0
d "$url" head one.bin
expect_eq "head after delete: missing" "$rc ${out%% in*}" "0 missing"
d "$url" get one.bin gone
expect_eq "get missing: no file" "$rc ${out%% in*} $(ls gone 2>&1 | grep -c 'No such')" "0 missing 1"
d "$url" delete one.bin
expect_rc "delete a missing key: fine" 0

# --- create-only
d "$url" putmem ref/main abc create
expect_in "create-only put: created" "$out" "ok in"
d "$url" putmem ref/main def create
expect_in "create-only put again: refused (412)" "$out" "exists in"
d "$url" get ref/main ref.back
expect_eq "the first content stays" "$(cat ref.back)" "abc"
d "$url" put big.bin big create
expect_in "create-only in parts, key there: nothing sent" "$out $err" "exists in"
expect_in "... after one HEAD" "$err" "requests: 1"

# --- 2,500 objects, listed in pages of 1,000
mkdir many
for i in $(seq -w 1 2500); do echo "object $i" >"many/f$i"; done
d --parallel 16 "$url" putdir many many/
expect_eq "put 2,500 objects (bound 16)" "$rc ${out%% in*}" "0 put 2500 files"
d "$url" list many/
expect_in "list 2,500 keys" "$out" "keys: 2500"
expect_in "... in 3 pages" "$err" "requests: 3"
expect_eq "... sorted, with sizes" "$(sed -n 1p <<<"$out") $(sed -n 2500p <<<"$out")" "many/f0001 12 many/f2500 12"
d --parallel 16 "$url" getdir many.back many/
expect_eq "get 2,500 objects back" "$rc $(diff -r many many.back && echo same)" "0 same"

# --- errors: a wrong secret, a server that is down
AWS_SECRET_ACCESS_KEY=wrong-secret-value-XYZ d "$url" get zero.bin x
expect_rc "wrong secret: exit 3" 3
expect_in "wrong secret: clear message" "$err" "get 's3://$S3_BUCKET/t48/zero.bin': HTTP 403 SignatureDoesNotMatch: "
expect_not_in "wrong secret: not in the message" "$err" "wrong-secret-value"
expect_not_in "nor the right one" "$err" "$S3_SECRET"
AWS_SECRET_ACCESS_KEY=wrong-secret-value-XYZ d "$url" head zero.bin
expect_in "wrong secret, HEAD (no body): still clear" "$err" "pipe: error: head 's3://$S3_BUCKET/t48/zero.bin': HTTP 403 Forbidden (wrong credentials, or no access)"
d --endpoint http://127.0.0.1:1 --attempts 3 "$url" put x one
expect_rc "server down: exit 3" 3
expect_in "server down: message" "$err" "put 's3://$S3_BUCKET/t48/x': http://127.0.0.1:1: "
expect_in "server down: retried" "$err" "(3 attempts)"

# --- faults on top of the real server
# proxy ARGS...: a fault proxy in front of the server; $proxy, $plog.
proxy() {
	[ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
	plog=$_tmp/proxy.$RANDOM.log
	: >"$plog"
	python3 "$root/tests/s3/fault-proxy.py" "${S3_ENDPOINT##*:}" "$plog" "$@" >"$plog.port" &
	proxy_pid=$!
	for _ in $(seq 100); do [ -s "$plog.port" ] && break; sleep 0.05; done
	proxy=http://127.0.0.1:$(head -1 "$plog.port")
}
head -c 3145728 /dev/urandom >mid
proxy --fail503 2
t0=$(date +%s%N)
d --endpoint "$proxy" "$url" put mid.bin mid
t1=$(date +%s%N)
expect_in "503 twice, then through" "$out" "ok in"
expect_eq "the proxy saw 3 requests" "$(awk '{print $3}' "$plog" | tr '\n' ' ')" "503 503 200 "
expect_in "the client counted 3" "$err" "requests: 3"
expect_eq "Retry-After: 1 honoured (>= 2 s)" "$(( (t1 - t0) / 1000000000 >= 2 ))" 1
proxy --drop 1
d --endpoint "$proxy" "$url" put mid2.bin mid
expect_eq "connection cut mid-upload: retried" "$rc $(awk '{print $3}' "$plog" | tr '\n' ' ')" "0 dropped 200 "
d "$url" get mid2.bin mid.back
expect_eq "... and the object is intact" "$(md5 mid.back)" "$(md5 mid)"
proxy --drop 1
d --endpoint "$proxy" --parallel 2 "$url" put big2.bin big
expect_eq "a part cut: retried, 6 requests" "$rc $(grep -c . "$plog") $(grep -c dropped "$plog")" "0 6 1"
d "$url" get big2.bin big.back
expect_eq "... and the object is intact" "$(md5 big.back)" "$(md5 big)"
# the server completes the upload, its answer is lost: the retry finds
# no such upload, and the object there is the one just completed
proxy --cut-answer POST:uploadId=:1 --forget 1
d --endpoint "$proxy" "$url" put big5.bin big
expect_eq "a lost complete answer: the put succeeds" "$rc" 0
expect_eq "... the proxy cut the complete's answer, the retry found no upload" \
	"$(grep 'POST .*uploadId=' "$plog" | awk '{print $3 $4}' | tr '\n' ' ')" "cut200 404 "
d "$url" get big5.bin big.back
expect_eq "... and the object is intact" "$(md5 big.back)" "$(md5 big)"
expect_eq "... checked by a HEAD of the object" "$(tail -1 "$plog" | awk '{print $1 $3}')" "HEAD200"
# the complete never reached the server, which then forgot the upload;
# an older object of other bytes is there: not taken for this upload
d "$url" put big6.bin mid
proxy --lose POST:uploadId=:1 --forget 1
d --endpoint "$proxy" "$url" put big6.bin big
expect_rc "a lost complete, another object there: exit 1" 1
expect_in "... the message says what happened" "$err" \
	"put 's3://$S3_BUCKET/t48/big6.bin': S3 no longer knows the upload when it is completed (NoSuchUpload: completed by a try whose answer was lost, or aborted), and the object there is not it (another size or ETag): put it again"
proxy --fail-parts 100
d --endpoint "$proxy" --attempts 2 "$url" put big3.bin big
expect_rc "parts failing: exit 3" 3
expect_in "... S3's code and message" "$err" "put 's3://$S3_BUCKET/t48/big3.bin': HTTP 503 SlowDown: Please reduce your request rate. (2 attempts)"
expect_in "... the upload aborted" "$(grep DELETE "$plog")" "uploadId="
lsup=$(curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_KEY:$S3_SECRET" \
	-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3_ENDPOINT/$S3_BUCKET?uploads=")
expect_not_in "... no upload left on the server" "$lsup" "<UploadId>"
proxy --fail-parts 100
"$driver" drive --endpoint "$proxy" "$url" put big4.bin big >"$_tmp/int.out" 2>&1 &
pid=$!
sleep 1.5 # the parts wait to be sent again (Retry-After: 1)
kill -INT "$pid"
wait "$pid"
expect_eq "interrupted upload: exit 130" "$? $(grep -c 'pipe: error: interrupted' "$_tmp/int.out")" "130 1"
expect_in "... its upload aborted" "$(grep DELETE "$plog")" "big4.bin?uploadId="
lsup=$(curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_KEY:$S3_SECRET" \
	-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3_ENDPOINT/$S3_BUCKET?uploads=")
expect_not_in "... none left on the server" "$lsup" "<UploadId>"
proxy --fail503 100
d --endpoint "$proxy" --attempts 2 "$url" get big.bin failed.back
expect_rc "a download that fails: exit 3" 3
expect_eq "... leaves no file, no temp" "$(ls -a | grep -c 'failed\.back')" 0
finish
