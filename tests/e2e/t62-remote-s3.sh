#!/usr/bin/env bash
# pipe push / pull over S3, against a real server (versitygw,
# tests/s3/server.sh) with the fault proxy (tests/s3/fault-proxy.py) in
# front when a test counts requests or adds faults: two workspaces share
# results (after a pull, run executes nothing and the outputs are
# identical; a change runs only its stage), a second push uploads nothing
# (the requests the proxy logged), 503s and a connection cut mid-upload
# are retried, concurrent pushes keep both sides' commits, a kill at each
# step of a push (after the pack, before the refs, between refs) and at
# random moments leaves the bucket valid and the next push completes, a
# third workspace then pulls; errors.
# Env: PIPE_S3_CACHE (the server binary's cache, ~/.cache/pipe-s3).
cache=${PIPE_S3_CACHE:-${HOME:-/nonexistent}/.cache/pipe-s3}
go_home=${HOME:-}
. "$(dirname "$0")/lib.sh"
plan 53

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
url=s3://$S3_BUCKET/t62-$RANDOM
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

tpl=$_tmp/tpl
mkdir -p "$tpl"
echo hello >"$tpl/in1.txt"
echo world >"$tpl/in2.txt"
head -c 3000000 /dev/urandom >"$tpl/big.bin"
cat >"$tpl/Pipefile" <<'YML'
stages:
  one:
    cmd: sh -c 'echo one >> ran.txt; tr a-z A-Z < in1.txt > o1.txt'
    inputs: [in1.txt]
    outputs: [o1.txt]
  two:
    cmd: sh -c 'echo two >> ran.txt; mkdir -p out2; cp big.bin out2/big.bin; cat in2.txt > out2/b.txt'
    inputs: [in2.txt, big.bin]
    outputs: [out2/]
YML
mkws() { mkdir -p "$_tmp/$1" && cp "$tpl"/* "$_tmp/$1/" && cd "$_tmp/$1" || exit 1; }
ran() { if [ -f ran.txt ]; then sort ran.txt | tr '\n' ' '; rm -f ran.txt; fi; }
lref() { git --git-dir .pipe/store rev-parse -q --verify "$1" 2>/dev/null; }
same_outputs() {
	if cmp -s o1.txt "$2/o1.txt" && cmp -s out2/big.bin "$2/out2/big.bin" &&
		cmp -s out2/b.txt "$2/out2/b.txt"; then ok "$1"; else
		not_ok "$1" "outputs differ from $2"
	fi
}
# complete DESC: a fresh workspace pulls and tracks a's newest commit of
# stage two (the bucket is valid and complete).
n=0
complete() {
	local want
	want=$(git --git-dir "$_tmp/a/.pipe/store" rev-parse refs/pipe/stages/two)
	n=$((n + 1))
	mkdir -p "$_tmp/x$n" && cp "$tpl/Pipefile" "$_tmp/x$n/"
	(cd "$_tmp/x$n" && pipe pull "$url" >/dev/null 2>&1 &&
		git --git-dir .pipe/store rev-parse "refs/pipe/remotes/$ida/stages/two") >"$_tmp/x$n.out" 2>&1
	expect_eq "$1" "$(cat "$_tmp/x$n.out")" "$want"
}

# --- A runs and pushes; a second push uploads nothing
mkws a
pipe run >/dev/null 2>&1 && ran >/dev/null
proxy
run pipe push --endpoint "$proxy" "$url"
expect_rc "a: push" 0
ida=$(cat .pipe/store/pipe-id)
expect_in "a: push says what it sent" "$err" "pushed 3 refs ("
expect_in "a: ... with the 3 MB file" "$err" "1 files (2.9 MiB) to $url"
expect_eq "a: uploads: 1 pack, 1 CAS file, 3 refs" \
	"$(grep -c "^PUT .*/packs/" "$plog") $(grep -c "^PUT .*/cas/" "$plog") $(grep -c "^PUT .*/refs/$ida/" "$plog")" "1 1 3"
proxy
run pipe push --endpoint "$proxy" "$url"
expect_eq "a: a second push sends nothing" "$rc $err" "0 nothing to push"
expect_eq "a: ... the server got no upload (only a listing)" \
	"$(grep -vc '^GET ' "$plog") $(grep -c '^GET ' "$plog")" "0 1"
run pipe push --json "$url"
expect_eq "a: --json" "$out" '{"version":1,"command":"push","refs":0,"objects":0,"files":0,"bytes":0,"requests":1}'

# --- B pulls: run executes nothing, outputs identical
mkws b
run pipe pull "$url"
expect_rc "b: pull" 0
expect_in "b: pull says what it brought" "$err" "pulled 3 refs, 1 files (2.9 MiB) from $url"
expect_eq "b: pull writes no file of the workspace" "$(ls)" "$(ls "$tpl")"
run pipe run
expect_eq "b: run after pull executes nothing" "$rc $(ran)" "0 "
same_outputs "b: outputs identical to a's" "$_tmp/a"
run pipe pull "$url"
expect_eq "b: a second pull brings nothing" "$rc $err" "0 nothing to pull"
echo changed >in1.txt
run pipe run
expect_eq "b: a changed in1 runs only stage one" "$rc $(ran)" "0 one "
run pipe push "$url"
expect_rc "b: push" 0
idb=$(cat .pipe/store/pipe-id)
cd "$_tmp/a"
run pipe pull "$url"
expect_rc "a: pull b's work" 0
cp "$_tmp/b/in1.txt" in1.txt
run pipe run
expect_eq "a: with b's input, nothing runs" "$rc $(ran)" "0 "
same_outputs "a: outputs identical to b's" "$_tmp/b"

# --- faults: 503s and a connection cut mid-upload are retried
echo two-503 >in2.txt && pipe run >/dev/null 2>&1
proxy --fail503 2
run pipe push --endpoint "$proxy" "$url"
expect_eq "503 twice: push goes through" "$rc $(grep -c ' 503$' "$plog")" "0 2"
complete "... and the bucket is complete"
head -c 2500000 /dev/urandom >big.bin && pipe run >/dev/null 2>&1
proxy --drop 1
run pipe push --endpoint "$proxy" "$url"
expect_eq "connection cut mid-upload: push goes through" "$rc $(grep -c ' dropped$' "$plog")" "0 1"
complete "... and the bucket is complete"

# --- concurrent pushes keep both sides' commits
echo two-a >in2.txt && pipe run >/dev/null 2>&1
cd "$_tmp/b" && echo one-b >in1.txt && pipe run >/dev/null 2>&1
(cd "$_tmp/a" && pipe push "$url" >/dev/null 2>&1; echo $? >"$_tmp/pa.rc") &
p1=$!
(cd "$_tmp/b" && pipe push "$url" >/dev/null 2>&1; echo $? >"$_tmp/pb.rc") &
p2=$!
wait "$p1" "$p2"
expect_eq "two pushes at once both succeed" "$(cat "$_tmp/pa.rc") $(cat "$_tmp/pb.rc")" "0 0"
mkws c0
run pipe pull "$url"
expect_eq "a third workspace gets a's commit" "$(lref "refs/pipe/remotes/$ida/stages/two")" \
	"$(git --git-dir "$_tmp/a/.pipe/store" rev-parse refs/pipe/stages/two)"
expect_eq "... and b's" "$(lref "refs/pipe/remotes/$idb/stages/one")" \
	"$(git --git-dir "$_tmp/b/.pipe/store" rev-parse refs/pipe/stages/one)"
cd "$_tmp/a"
(cd "$_tmp/a" && echo two-a2 >in2.txt && pipe run >/dev/null 2>&1 && pipe push "$url" >/dev/null 2>&1; echo $? >"$_tmp/pa.rc") &
p1=$!
(cd "$_tmp/b" && pipe pull "$url" >/dev/null 2>&1; echo $? >"$_tmp/pb.rc") &
p2=$!
wait "$p1" "$p2"
expect_eq "a push and a pull at once both succeed" "$(cat "$_tmp/pa.rc") $(cat "$_tmp/pb.rc")" "0 0"
complete "... and the bucket is complete"

# --- a kill at each step of a push, then push again
for point in push-s3-after-pack push-s3-before-refs push-s3-one-ref; do
	head -c 1500000 /dev/urandom >big.bin && pipe run >/dev/null 2>&1
	run env PIPE_TEST_CRASH=$point "$PIPE" push "$url"
	expect_rc "killed at $point" 99
	mkdir -p "$_tmp/k-$point" && cp "$tpl/Pipefile" "$_tmp/k-$point/"
	(cd "$_tmp/k-$point" && pipe pull "$url" >/dev/null 2>&1)
	expect_eq "... the bucket stays valid: a pull works" "$?" 0
	run pipe push "$url"
	expect_rc "... push again" 0
	complete "... and the bucket is complete"
done
bad=
for d in 0.05 0.1 0.2 0.4; do
	head -c 1500000 /dev/urandom >big.bin && pipe run >/dev/null 2>&1
	kill_after "$d" "$PIPE" push "$url"
	store_fsck >/dev/null || bad="$bad local:$d"
	(mkdir -p "$_tmp/r$d" && cp "$tpl/Pipefile" "$_tmp/r$d/" && cd "$_tmp/r$d" &&
		pipe pull "$url" >/dev/null 2>&1) || bad="$bad pull:$d"
done
expect_eq "SIGKILL at random moments: store valid, the bucket pullable" "$bad" ""
run pipe push "$url"
expect_rc "push after the kills" 0
complete "... and the bucket is complete"

# --- a third workspace pulls and runs nothing
mkws c
cp "$_tmp/a/in1.txt" "$_tmp/a/in2.txt" "$_tmp/a/big.bin" .
run pipe run --pull "$url"
expect_eq "c: run --pull executes nothing" "$rc $(ran)" "0 "
same_outputs "c: outputs identical to a's (CAS file included)" "$_tmp/a"
expect_fsck "c: store valid"

# --- a pull killed before its refs move, then pull again
mkws k
run env PIPE_TEST_CRASH=pull-s3-after-packs "$PIPE" pull "$url"
expect_rc "k: pull killed before its refs" 99
expect_eq "k: no ref moved" "$(git --git-dir .pipe/store for-each-ref refs/pipe/remotes | wc -l)" 0
run pipe run --pull "$url"
expect_eq "k: run --pull again executes nothing" "$rc $(ran)" "0 "
expect_fsck "k: store valid"

# --- errors
run pipe push "s3://"
expect_rc "a bad s3 url: usage" 2
run env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE=/nonexistent \
	AWS_CONFIG_FILE=/nonexistent "$PIPE" push "$url"
expect_rc "no credentials: environment" 3
run pipe push --endpoint http://127.0.0.1:1 "$url"
expect_rc "a server that is down: environment" 3
expect_not_in "... the secret never printed" "$out$err" "$S3_SECRET"
finish
