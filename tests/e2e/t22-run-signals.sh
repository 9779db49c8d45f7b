#!/usr/bin/env bash
# Every terminating signal ends a run as Ctrl-C does; checkout holds one
# until it is done; a lock whose named holder is dead is waited for;
# SIGKILL at random moments never leaves a workspace the next run cannot
# lock. KILL_TRIALS (default 40; 200 for the long mode) sets the number of
# kills; KILL_LOAD=1 adds two busy loops, as on a loaded host, which widen
# the moment between a child's fork and exec where the lock fd lived on.
. "$(dirname "$0")/lib.sh"

# wait_for FILE: up to 10 s for FILE to appear.
wait_for() {
	for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done
	return 1
}

# HUP (an ssh drop), QUIT, TERM, USR1: exit 128 + the signal, the stage's
# process group gone before pipe exits (and before the lock is free),
# nothing written after, nothing recorded
for sig in HUP QUIT TERM USR1; do
	new_ws
	cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'echo $$ > group.pid; touch started; sleep 1; echo late > late.txt'
    outputs: [late.txt]
YML
	"$PIPE" run >/dev/null 2>sig.err &
	victim=$!
	wait_for started
	kill -$sig $victim
	wait $victim
	rc=$?
	expect_eq "SIG$sig: exit 128 + the signal" "$rc" "$((128 + $(kill -l $sig)))"
	if kill -0 -- "-$(cat group.pid)" 2>/dev/null; then
		not_ok "SIG$sig: the stage's group is gone when pipe exits"
		kill -9 -- "-$(cat group.pid)" 2>/dev/null
	else
		ok "SIG$sig: the stage's group is gone when pipe exits"
	fi
	expect_in "SIG$sig: says why it stops" "$(cat sig.err)" "interrupted (SIG$sig): stopping 1 running stage"
	sleep 1.2
	expect_eq "SIG$sig: the stage wrote nothing after" "$(ls late.txt 2>&1)" "ls: cannot access 'late.txt': No such file or directory"
	run pipe status
	expect_rc "SIG$sig: the stage is stale" 1
done

# a member of the stage's group that ignores TERM goes too (KILLed once
# the stage's main process has gone), before pipe exits
new_ws
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'echo $$ > group.pid; (trap "" TERM; while :; do echo x >> spin.txt; sleep 0.01; done) & touch started; wait'
    outputs: [never.txt]
YML
"$PIPE" run >/dev/null 2>&1 &
victim=$!
wait_for started
sleep 0.1
kill -HUP $victim
wait $victim
rc=$?
expect_eq "SIGHUP with a TERM-proof child: exit 129" "$rc" "129"
if kill -0 -- "-$(cat group.pid)" 2>/dev/null; then
	not_ok "the TERM-proof child is gone when pipe exits"
	kill -9 -- "-$(cat group.pid)" 2>/dev/null
else
	ok "the TERM-proof child is gone when pipe exits"
fi
before=$(wc -c < spin.txt)
sleep 0.3
expect_eq "and wrote nothing after" "$(wc -c < spin.txt)" "$before"

# checkout (and gc) hold a signal: what they write is finished, then pipe
# exits 128 + the signal. The Pipefile is a FIFO, so the signal comes
# while checkout is surely under way (opening it), whatever the timing.
new_ws
cat > Pipefile <<'YML'
stages:
  a:
    cmd: sh -c 'mkdir -p out; cat n.txt > out/n'
    inputs: [n.txt]
    outputs: [out/]
YML
echo 1 > n.txt
pipe run -q
echo 2 > n.txt
pipe run -q
mkfifo pf.fifo
"$PIPE" --pipefile pf.fifo checkout a~1 >/dev/null 2>co.err &
victim=$!
sleep 0.2
kill -HUP $victim
sleep 0.1
timeout 5 sh -c 'cat Pipefile > pf.fifo'
wait $victim
rc=$?
expect_eq "checkout with a SIGHUP: exit 129" "$rc" "129"
expect_eq "after finishing the checkout" "$(cat out/n)" "1"
expect_in "saying so" "$(cat co.err)" "pipe: finishing what it writes first; a second signal stops it at once"

# Ctrl-C counts stages and datums apart
new_ws
mkdir d
touch d/1 d/2 d/3
cat > Pipefile <<'YML'
stages:
  d:
    datums: "d/*"
    parallelism: 3
    cmd: sh -c 'touch started.$(basename $PIPE_DATUM); sleep 30'
    outputs: [dout/]
  p:
    cmd: sh -c 'touch started.p; sleep 30'
    outputs: [p.txt]
YML
"$PIPE" run -j 4 >/dev/null 2>int.err &
victim=$!
wait_for started.1 && wait_for started.2 && wait_for started.3 && wait_for started.p
kill -INT $victim
wait $victim
rc=$?
expect_eq "SIGINT exits 130" "$rc" "130"
expect_in "stages and datums counted apart" "$(cat int.err)" "interrupted (SIGINT): stopping 2 running stages (3 datums)"

# a lock whose named holder is dead: the fd may live on, for moments, in a
# child it forked that has not exec'd yet; the next run waits for it
new_ws
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'echo ok > out.txt'
    outputs: [out.txt]
YML
mkdir .pipe
sh -c 'exit 0' &
dead=$!
wait $dead
printf 'pid %s\nwhat pipe run\nstarted 2026-01-01 00:00:00\n' "$dead" > .pipe/lock
flock .pipe/lock sleep 0.6 &
holder=$!
sleep 0.1
run pipe run
expect_rc "a dead holder's lock is waited for" 0
expect_eq "and the run ran" "$(cat out.txt 2>/dev/null)" "ok"
wait $holder
# held longer than the wait: exit 3, saying the named holder has exited
printf 'pid %s\nwhat pipe run\nstarted 2026-01-01 00:00:00\n' "$dead" > .pipe/lock
flock .pipe/lock sleep 6 &
holder=$!
sleep 0.1
run pipe run -f
expect_rc "held on past the wait: exit 3" 3
expect_in "naming the dead holder" "$err" "workspace is locked by pid $dead (pipe run, started 2026-01-01 00:00:00), which has exited; a process it started still holds the lock"
kill $holder
wait $holder 2>/dev/null

# SIGKILL at random moments (seeded; stages, datums, commits, git runs):
# the next run always gets the lock and succeeds
new_ws
git init -q . 2>/dev/null
mkdir d
for i in 1 2 3 4; do echo $i > d/$i.txt; done
cat > Pipefile <<'YML'
stages:
  a:
    cmd: sh -c 'mkdir -p out; sleep 0.005; cat n.txt > out/a.txt'
    inputs: [n.txt]
    outputs: [out/]
  b:
    cmd: sh -c 'sleep 0.003; cat out/a.txt > b.txt'
    inputs: [out/]
    outputs: [b.txt]
  c:
    datums: "d/*.txt"
    cmd: sh -c 'cat $PIPE_DATUM n.txt > $PIPE_OUT/$(basename $PIPE_DATUM)'
    inputs: [n.txt]
    outputs: [co/]
YML
trials=${KILL_TRIALS:-40}
RANDOM=12
burn=()
if [ "${KILL_LOAD:-0}" = 1 ]; then
	for _ in 1 2; do
		sh -c 'while :; do :; done' &
		burn+=($!)
	done
fi
locked=0 failed=0 start=$(date +%s%N)
for t in $(seq 1 "$trials"); do
	echo "$t" > n.txt
	kill_after "0.0$((RANDOM % 40))" "$PIPE" run -q --no-cache
	"$PIPE" run -q >next.out 2>&1
	rc=$?
	if [ "$rc" = 3 ]; then
		locked=$((locked + 1))
		sed 's/^/    /' next.out
	elif [ "$rc" != 0 ]; then
		failed=$((failed + 1))
		sed 's/^/    /' next.out
	fi
done
if [ ${#burn[@]} -gt 0 ]; then
	kill "${burn[@]}"
	wait "${burn[@]}" 2>/dev/null
fi
echo "# $trials SIGKILL trials in $((($(date +%s%N) - start) / 1000000)) ms: $locked locked, $failed failed"
expect_eq "after $trials kills the next run never finds the lock held" "$locked" "0"
expect_eq "and always succeeds" "$failed" "0"
expect_eq "with the last input" "$(cat b.txt)" "$trials"

finish
