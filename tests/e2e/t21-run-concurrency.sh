#!/usr/bin/env bash
# -j overlap, the workspace lock, SIGKILL and SIGINT during a stage.
. "$(dirname "$0")/lib.sh"

# state PID, pgid PID: from /proc (procps' ps is not in a minimal Debian)
state() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) && s=${s##*) } && echo "${s%% *}"; }
pgid() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) && s=${s##*) } && set -- $s && echo "$3"; }

# wait_for FILE: up to 10 s for FILE to appear.
wait_for() {
	for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done
	return 1
}

new_ws
# under -j 2 each stage waits (up to 10 s) to see the other one started:
# only stages running at the same time both see it, however slow the
# machine; one at a time, each records its start and end
cat > Pipefile <<'YML'
stages:
  a:
    cmd: sh -c 'date +%s.%N > a.start; for i in $(seq 100); do [ -e b.start ] && break; sleep 0.1; done; [ -e b.start ] && echo a saw b > a.saw; date +%s.%N > a.end; echo a > a.txt'
    outputs: [a.txt]
  b:
    cmd: sh -c 'date +%s.%N > b.start; for i in $(seq 100); do [ -e a.start ] && break; sleep 0.1; done; [ -e a.start ] && echo b saw a > b.saw; date +%s.%N > b.end; echo b > b.txt'
    outputs: [b.txt]
YML
run pipe run -j 2
expect_rc "two independent stages run" 0
expect_eq "-j 2 overlaps independent stages" "$(cat a.saw b.saw 2>/dev/null | tr '\n' ' ')" "a saw b b saw a "
rm -f a.txt b.txt a.saw b.saw a.start b.start
cat > Pipefile <<'YML'
stages:
  a:
    cmd: sh -c 'date +%s.%N > a.start; sleep 0.5; date +%s.%N > a.end; echo a > a.txt'
    outputs: [a.txt]
  b:
    cmd: sh -c 'date +%s.%N > b.start; sleep 0.5; date +%s.%N > b.end; echo b > b.txt'
    outputs: [b.txt]
YML
run pipe run -j 1 --no-cache
expect_rc "-j 1: both stages run" 0
expect_eq "-j 1: each recorded its start and end" "$(cat a.start a.end b.start b.end | wc -l)" "4"
overlap=$(awk -v as="$(cat a.start)" -v ae="$(cat a.end)" -v bs="$(cat b.start)" -v be="$(cat b.end)" \
	'BEGIN { print (as < be && bs < ae) ? "yes" : "no" }')
expect_eq "-j 1 runs them one at a time" "$overlap" "no"

# on a terminal (script(1), from the essential bsdutils): a live progress
# line, cleared before other output
rm -f a.txt b.txt
# (CI=true, as in CI, turns the live line off: tested in t48)
env -u CI -u NO_COLOR script -qec "$PIPE run --no-cache -j 2" /dev/null > tty.out 2>&1
expect_in "a progress line on a terminal" "$(cat tty.out)" "[0/2] running: a, b"
expect_in "finished stages still get their line" "$(cat tty.out)" "ok   a ("
rm -f a.txt b.txt
run pipe run --no-cache -j 2
expect_not_in "no progress line when not a terminal" "$err" "running:"

# the lock: a second run exits 3 naming the first's pid
new_ws
cat > Pipefile <<'YML'
stages:
  slow:
    cmd: sh -c 'touch started; sleep 3; echo done > out.txt'
    outputs: [out.txt]
YML
"$PIPE" run >first.out 2>&1 &
first=$!
wait_for started
run pipe run
expect_rc "second concurrent run exits 3" 3
expect_in "second run names the first's pid" "$err" "workspace is locked by pid $first (pipe run"
run pipe status
expect_rc "status does not take the lock" 1
wait $first
expect_eq "first run finished" "$(cat out.txt)" "done"
rm -f started out.txt
"$PIPE" run >first.out 2>&1 &
first=$!
wait_for started
run pipe run --wait
expect_rc "--wait waits for the lock" 0
wait $first

# kill -9 of pipe during a stage: the stage stays stale; the next run repairs
new_ws
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'echo $(cat in.txt) > out.txt; echo $$ > stage.pid; touch started; sleep 30'
    inputs: [in.txt]
    outputs: [out.txt]
YML
echo 1 > in.txt
sed -i 's/; sleep 30//' Pipefile
run pipe run
expect_eq "first version built" "$(cat out.txt)" "1"
sed -i "s/touch started'/touch started; sleep 30'/" Pipefile
echo 2 > in.txt
rm -f started
"$PIPE" run >/dev/null 2>&1 &
victim=$!
wait_for started
kill -9 $victim
wait $victim 2>/dev/null
# the stage's process group outlives pipe: end it (the stage's shell leads it)
g=$(pgid "$(cat stage.pid)")
[ -n "$g" ] && [ "$g" != "$(pgid $$)" ] && kill -9 -- "-$g"
run pipe status
expect_rc "after kill -9 the stage is stale" 1
sed -i 's/; sleep 30//' Pipefile
run pipe run
expect_rc "the next run repairs" 0
expect_eq "repaired output" "$(cat out.txt)" "2"
run pipe status
expect_rc "and then it is fresh" 0

# SIGINT: every stage group gets TERM; nothing recorded; exit 130
new_ws
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'sleep 30 & echo $! > child.pid; touch started; wait'
    outputs: [never.txt]
YML
"$PIPE" run >/dev/null 2>int.err &
victim=$!
wait_for started
kill -INT $victim
wait $victim
rc=$?
expect_eq "SIGINT exits 130" "$rc" "130"
sleep 0.2
# a killed child may linger as a zombie if nothing reaps orphans here
child=$(cat child.pid 2>/dev/null)
if [ -z "$child" ]; then
	not_ok "SIGINT stops the stage's whole process group" "no child.pid"
elif [ -n "$(state "$child")" ] && [ "$(state "$child")" != Z ]; then
	not_ok "SIGINT stops the stage's whole process group" "child $child: state $(state "$child")"
	kill "$child"
else
	ok "SIGINT stops the stage's whole process group"
fi
run pipe status
expect_rc "an interrupted stage is stale" 1

finish
