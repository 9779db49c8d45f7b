#!/usr/bin/env bash
# The docker executor through `pipe run`, against the real daemon: a mixed
# local -> docker -> local pipeline, read-only inputs and no network, the
# caller's uid (also as a non-root user), rebuilding the image reruns that
# stage only, datums in containers, a failing container, OOM, interrupt,
# and a daemon that cannot be reached.
. "$(dirname "$0")/lib.sh"
plan 63
need_docker

IMG=$PIPE_TEST_IMAGE

# containers [STATUS]: how many containers pipe left for this workspace.
containers() {
	local f=(--filter "label=pipe.workspace=$PWD")
	[ -n "${1:-}" ] && f+=(--filter "status=$1")
	docker ps -aq "${f[@]}" | wc -l | tr -d ' '
}

setup_mixed() {
	new_ws
	mkdir -p data
	echo "a,1" > data/a.csv
	echo "b,2" > data/b.csv
	cat > Pipefile <<YML
version: 1
stages:
  prep:
    cmd: sh -c 'mkdir -p clean; cat data/*.csv > clean/all.csv'
    inputs: [data/]
    outputs: [clean/]
  count:
    executor: docker
    image: $IMG
    cmd: >-
      wc -l < clean/all.csv > stats/lines.txt &&
      id -u > stats/uid.txt && ls /sys/class/net > stats/net.txt &&
      { echo x >> clean/all.csv && echo writable || echo read-only; } > stats/ro.txt &&
      echo counted
    inputs: [clean/]
    outputs: [stats/]
  report:
    cmd: sh -c 'echo "lines \$(cat stats/lines.txt)" > report.txt'
    inputs: [stats/]
    outputs: [report.txt]
YML
}

# --- a mixed pipeline ---
setup_mixed
run pipe run
expect_rc "mixed local -> docker -> local runs" 0
expect_eq "docker stage read the local stage's output" "$(cat stats/lines.txt 2>/dev/null)" "2"
expect_eq "local stage read the docker stage's output" "$(cat report.txt 2>/dev/null)" "lines 2"
expect_in "container stdout streamed with the prefix" "$out" "[count] counted"
expect_in "container stderr streamed with the prefix" "$err" "[count] /bin/sh: can't create clean/all.csv: Read-only file system"
expect_eq "inputs are read-only in the container" "$(cat stats/ro.txt 2>/dev/null)" "read-only"
expect_eq "input unchanged" "$(cat clean/all.csv)" "$(printf 'a,1\nb,2')"
expect_eq "no network but lo" "$(cat stats/net.txt 2>/dev/null)" "lo"
expect_eq "the container ran as the caller" "$(cat stats/uid.txt 2>/dev/null)" "$(id -u)"
expect_eq "outputs owned by the caller" "$(stat -c %u stats/lines.txt)" "$(id -u)"
expect_eq "no container left" "$(containers)" "0"

run pipe run
expect_rc "second run succeeds" 0
expect_in "second run: everything fresh" "$err" "0 ran, 0 cached, 3 fresh"

# --- rebuilding the image under the same tag reruns that stage, only it ---
old_id=$(docker image inspect -f '{{.Id}}' "$IMG")
pipe_test_build_image "$IMG" "rebuilt-$$-$RANDOM"
new_id=$(docker image inspect -f '{{.Id}}' "$IMG")
[ "$old_id" != "$new_id" ] && docker rmi "$old_id" >/dev/null 2>&1
run pipe status
expect_rc "status: stale after the rebuild" 1
expect_in "the reason names the image and its new id" "$out$err" "image '$IMG' now $new_id"
run pipe run
expect_rc "run after the rebuild succeeds" 0
expect_in "the docker stage reruns" "$err" "run  count: image '$IMG' now sha256:"
expect_not_in "the upstream stage does not" "$err" "run  prep"
expect_not_in "the downstream stage does not (same outputs)" "$err" "run  report"
expect_in "one stage ran" "$err" "1 ran"

# --- daemon unreachable ---
setup_mixed
DOCKER_HOST=unix:///nonexistent run pipe run
expect_rc "daemon unreachable: exit 3" 3
expect_in "daemon unreachable: the message" "$err" "cannot reach the Docker daemon at /nonexistent: No such file or directory"
expect_not_in "daemon unreachable: the docker stage is not marked as run" "$err" "ok   count"
run pipe status
expect_in "the docker stage is still never run" "$out" "stale count
      never run"
DOCKER_HOST=tcp://127.0.0.1:2375 run pipe run
expect_rc "tcp:// is not supported yet: exit 3" 3
expect_in "tcp:// says so" "$err" "only unix:// sockets for now"

# --- a failing container: its exit code and its log ---
new_ws
cat > Pipefile <<YML
stages:
  boom:
    executor: docker
    image: $IMG
    cmd: echo before; echo boom >&2; exit 7
    outputs: [never.txt]
YML
run pipe run
expect_rc "failing container: exit 1" 1
expect_in "its exit status" "$err" "exit status 7"
expect_in "its stderr streamed" "$err" "[boom] boom"
logs=$(cat .pipe/logs/* .pipe/logs/*/* 2>/dev/null)
expect_in "its log kept" "$logs" "boom"
expect_in "its stdout kept" "$logs" "before"
expect_eq "no container left after a failure" "$(containers)" "0"

# --- OOM ---
new_ws
cat > Pipefile <<YML
stages:
  hog:
    executor: docker
    image: $IMG
    cmd: head -c 200000000 /dev/zero | tail > /dev/null
    outputs: [never.txt]
    resources: { memory: 8Mi }
YML
run pipe run
expect_rc "OOM: the stage fails" 1
expect_in "OOM: said so" "$err" "out of memory"

# --- datums in containers, with parallelism ---
new_ws
mkdir -p data
for i in 1 2 3 4 5 6; do echo "tweet $i" > "data/$i.txt"; done
cat > Pipefile <<YML
stages:
  upper:
    executor: docker
    image: $IMG
    datums: "data/*.txt"
    cmd: tr a-z A-Z < "\$PIPE_DATUM" > "\$PIPE_OUT/\$(basename "\$PIPE_DATUM")"
    inputs: [data/]
    outputs: [out/]
    parallelism: 3
YML
run pipe run -j 3
expect_rc "datums in containers run" 0
expect_eq "every datum's output merged" "$(cat out/*.txt | sort | tr '\n' ' ')" \
	"TWEET 1 TWEET 2 TWEET 3 TWEET 4 TWEET 5 TWEET 6 "
echo "tweet 7" > data/7.txt
run pipe run -j 3
expect_rc "a new datum runs" 0
expect_in "only the new datum ran" "$err" "1 processed, 6 skipped"
expect_eq "its output merged" "$(cat out/7.txt 2>/dev/null)" "TWEET 7"
expect_eq "no container left after datums" "$(containers)" "0"

# --- interrupt: no container left behind ---
new_ws
cat > Pipefile <<YML
stages:
  slow:
    executor: docker
    image: $IMG
    datums: "d/*"
    cmd: sleep 60
    inputs: [d/]
    outputs: [out/]
    parallelism: 2
YML
mkdir d && touch d/1 d/2 d/3
"$PIPE" run -j 2 >"$_tmp/int.out" 2>"$_tmp/int.err" &
pid=$!
for _ in $(seq 1 300); do
	[ "$(containers running)" = 2 ] && break
	sleep 0.1
done
expect_eq "two containers run" "$(containers running)" "2"
t0=$(date +%s)
kill -INT "$pid"
wait "$pid"
rc=$?
t1=$(date +%s)
expect_eq "interrupted: exit 130" "$rc" "130"
expect_eq "interrupted: no container left" "$(containers)" "0"
[ $((t1 - t0)) -lt 30 ] && ok "interrupt is prompt" || not_ok "interrupt is prompt" "$((t1 - t0))s"
run pipe status
expect_rc "interrupted stage is still stale" 1

# --- pipe killed outright: the next run removes what it left ---
new_ws
cat > Pipefile <<YML
stages:
  slow:
    executor: docker
    image: $IMG
    cmd: sleep 60
    outputs: [o/]
YML
"$PIPE" run >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 300); do
	[ "$(containers running)" = 1 ] && break
	sleep 0.1
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null
expect_eq "killed pipe: its container is left running" "$(containers running)" "1"
sed -i 's/sleep 60/true/' Pipefile
run pipe run
expect_rc "next run succeeds" 0
expect_in "next run removes the orphan" "$err" "removing 1 container left in '$PWD' by an earlier run"
expect_eq "nothing left after the next run" "$(containers)" "0"

# --- a glob input shows what it matches, never a folder with more ---
new_ws
echo "TOKEN=secret" > .env
echo one > a.txt
echo two > b.txt
mkdir -p lib/a notes data d
echo py > lib/a/m.py
echo key > lib/a/key.pem
echo note > notes/n.md
echo 1 > data/1.csv
echo 2 > data/2.csv
echo x > d/x.txt
echo y > d/y.txt
cat > Pipefile <<YML
stages:
  peek:
    executor: docker
    image: $IMG
    cmd: >-
      cat *.txt > seen/txt && cat lib/a/m.py data/*.csv > seen/more &&
      { cat .env 2>&1 || echo no-env; } > seen/env &&
      { cat lib/a/key.pem 2>&1 || echo no-pem; } > seen/pem &&
      pwd > seen/pwd && ls -A > seen/ls &&
      { grep -c ' /workspace/data ' /proc/self/mountinfo || true; } > seen/whole
    inputs: ["*.txt", "lib/**/*.py", "data/*.csv"]
    outputs: [seen/]
  each:
    executor: docker
    image: $IMG
    datums: "d/*.txt"
    cmd: ls d > "\$PIPE_OUT/\$(basename "\$PIPE_DATUM")"
    outputs: [each/]
YML
run pipe run
expect_rc "glob inputs: the stage runs" 0
expect_eq "glob inputs: the matched files are readable" "$(cat seen/txt 2>/dev/null)" "$(printf 'one\ntwo')"
expect_eq "glob inputs: matches in folders are readable" "$(cat seen/more 2>/dev/null)" "$(printf 'py\n1\n2')"
expect_in "glob inputs: .env beside '*.txt' is not there" "$(cat seen/env 2>/dev/null)" "No such file"
expect_in "glob inputs: a file beside a '**' match is not there" "$(cat seen/pem 2>/dev/null)" "No such file"
expect_eq "glob inputs: the working folder is /workspace" "$(cat seen/pwd 2>/dev/null)" "/workspace"
expect_eq "glob inputs: /workspace holds the matches and outputs only" \
	"$(tr '\n' ' ' < seen/ls 2>/dev/null)" "a.txt b.txt data lib seen "
expect_eq "glob inputs: a folder of matches only is mounted whole" "$(cat seen/whole 2>/dev/null)" "1"
expect_eq "datums: each datum sees its own match only" "$(cat each/x.txt each/y.txt 2>/dev/null | tr '\n' ' ')" "x.txt y.txt "
expect_eq "glob inputs: the workspace is untouched" "$(cat .env)" "TOKEN=secret"

# --- a non-root caller in the docker group ---
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && getent group docker >/dev/null; then
	id pipetest >/dev/null 2>&1 || useradd -M -N -g docker -s /bin/sh pipetest 2>/dev/null
	setup_mixed
	chown -R pipetest "$PWD"
	chmod 755 "$_tmp"
	mkdir -p "$_tmp/home" && chown pipetest "$_tmp/home"
	HOME=$_tmp/home run setpriv --reuid=pipetest --regid=docker --init-groups "$PIPE" run
	expect_rc "non-root caller: runs" 0
	expect_eq "non-root caller: the container ran as them" \
		"$(cat stats/uid.txt 2>/dev/null)" "$(id -u pipetest)"
	expect_eq "non-root caller: outputs owned by them" \
		"$(stat -c %U stats/lines.txt 2>/dev/null)" "pipetest"
	expect_eq "non-root caller: downstream output owned by them" \
		"$(stat -c %U report.txt 2>/dev/null)" "pipetest"
else
	skip 4 docker "non-root caller: needs root, setpriv and a docker group"
fi

finish
