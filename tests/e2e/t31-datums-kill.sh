#!/usr/bin/env bash
# SIGKILL at random moments while a datums stage runs and stores its
# results (each run outlasts a one-second flush), 20 times: the store always passes fsck --strict, the stage never
# looks fresh with the wrong output, its record names only results the
# store holds (a run after `rm -rf out` rebuilds from them), and the next
# run repairs.
. "$(dirname "$0")/lib.sh"

new_ws
mkdir -p in
n=40
for i in $(seq 1 $n); do echo "v0 $i" > "in/$i.txt"; done
head -c 1100000 /dev/urandom > pad.bin
cat > Pipefile <<'YML'
stages:
  work:
    datums: "in/*.txt"
    cmd: sh -c 'echo "$PIPE_DATUM" >> ran.log; sleep 0.08; b=$(basename "$PIPE_DATUM" .txt); tr a-z A-Z < "$PIPE_DATUM" > "$PIPE_OUT/$b.up"; if [ $((b % 10)) = 0 ]; then cat "$PIPE_DATUM" pad.bin > "$PIPE_OUT/$b.big"; fi'
    inputs: [pad.bin]
    outputs: [out/]
    parallelism: 2
  count:
    cmd: sh -c 'cat out/*.up | sort > all.txt'
    inputs: [out/]
    outputs: [all.txt]
YML
# out/ is exactly what in/ gives
merged_ok() {
	local i b
	[ "$(ls out | wc -l)" = $((n + n / 10)) ] || return 1
	for i in $(seq 1 $n); do
		[ "$(cat "out/$i.up" 2>/dev/null)" = "$(tr a-z A-Z < "in/$i.txt")" ] || return 1
		if [ $((i % 10)) = 0 ]; then
			cat "in/$i.txt" pad.bin | cmp -s - "out/$i.big" || return 1
		fi
	done
}
units() { if [ -f ran.log ]; then wc -l < ran.log | tr -d ' '; rm -f ran.log; else echo 0; fi; }
run pipe run
expect_rc "first run" 0
merged_ok && ok "first output" || not_ok "first output"
units >/dev/null

# crashes at the two moments of a flush that matter: change five datums,
# die at POINT, check the store and that the stage is stale, run again
crash_at() {
	for i in 1 2 3 4 5; do echo "$1 $i" > "in/$i.txt"; done
	PIPE_TEST_CRASH=$1 "$PIPE" run -q >/dev/null 2>&1
	expect_eq "crash at $1" "$?" "99"
	expect_fsck "fsck after $1"
	run pipe status
	expect_in "the stage is stale after $1" "$out" "stale work"
	units >/dev/null
	run pipe run
	merged_ok && ok "the next run repairs $1" || not_ok "the next run repairs $1"
}
crash_at store-batch-before-refs
expect_eq "nothing was kept: the five datums ran again" "$(units)" "5"
crash_at store-batch-datums-moved
[ "$(units)" -lt 5 ] && ok "kept datum results did not run again" || not_ok "kept datum results did not run again"

trials=20 bad_fsck=0 bad_fresh=0 bad_repair=0
for t in $(seq 1 $trials); do
	# many datums change (the run outlasts a one-second flush), one
	# reverts to an earlier content
	for k in $(seq 1 24); do i=$(( (t * 7 + k * 3) % n + 1 )); echo "v$t $i" > "in/$i.txt"; done
	echo "v0 $(( t % n + 1 ))" > "in/$(( t % n + 1 )).txt"
	kill_after "$((RANDOM % 2)).$((RANDOM % 4))$((RANDOM % 10))" "$PIPE" run -q
	store_fsck || bad_fsck=$((bad_fsck + 1))
	st=$("$PIPE" status 2>/dev/null)
	if echo "$st" | grep -q '^fresh work' && ! merged_ok; then
		bad_fresh=$((bad_fresh + 1))
		echo "trial $t: 'work' looks fresh with a wrong output"
	fi
	if echo "$st" | grep -q '^fresh count' && [ "$(cat all.txt)" != "$(cat out/*.up | sort)" ]; then
		bad_fresh=$((bad_fresh + 1))
	fi
	if [ $((t % 4)) = 0 ]; then
		# the recorded datums must all be in the store: out/ is
		# rebuilt from them (--no-cache: not from a stage commit)
		rm -rf out
		if ! "$PIPE" run -q --no-cache >/dev/null 2>&1 || ! merged_ok ||
			! "$PIPE" status >/dev/null 2>&1; then
			bad_repair=$((bad_repair + 1))
			echo "trial $t: no repair"
		fi
	fi
done
expect_eq "fsck --strict passed after every kill" "$bad_fsck" "0"
expect_eq "no stage looked fresh with a wrong output" "$bad_fresh" "0"
expect_eq "repairs in between worked (out/ rebuilt from the store)" "$bad_repair" "0"
run pipe run
expect_rc "the next run repairs" 0
merged_ok && ok "repaired output is the exact merge" || not_ok "repaired output is the exact merge"
run pipe status
expect_rc "and everything is fresh" 0
expect_fsck "final fsck"
expect_eq "no .pipe/datums" "$(test -e .pipe/datums && echo yes || echo no)" "no"

finish
