#!/usr/bin/env bash
# SIGKILL at random moments during runs and commits, 50 times: the store
# always passes fsck --strict, no stage looks fresh unless its outputs are
# right for its inputs, and the next run repairs.
. "$(dirname "$0")/lib.sh"

new_ws
head -c 2500000 /dev/urandom > base.bin
cat > Pipefile <<'YML'
stages:
  make:
    cmd: sh -c 'mkdir -p out; for i in 1 2 3 4 5 6 7 8; do cat n.txt > out/f$i.txt; done; cat base.bin n.txt > out/big.bin'
    inputs: [n.txt, base.bin]
    outputs: [out/]
  sum:
    cmd: sh -c 'cat out/f*.txt | sort -u > sum.txt'
    inputs: [out/]
    outputs: [sum.txt]
YML
trials=50 bad_fsck=0 bad_fresh=0 bad_repair=0
for t in $(seq 1 $trials); do
	echo "$t" > n.txt
	kill_after "0.0$((RANDOM % 60))" "$PIPE" run -q --no-cache
	store_fsck || bad_fsck=$((bad_fsck + 1))
	# a stage reported fresh must have the outputs its inputs give
	st=$("$PIPE" status 2>/dev/null)
	if echo "$st" | grep -q '^fresh make'; then
		for i in 1 2 3 4 5 6 7 8; do
			[ "$(cat out/f$i.txt 2>/dev/null)" = "$t" ] || { bad_fresh=$((bad_fresh + 1)); break; }
		done
	fi
	if echo "$st" | grep -q '^fresh sum' && [ "$(cat sum.txt 2>/dev/null)" != "$t" ]; then
		bad_fresh=$((bad_fresh + 1))
	fi
	if [ $((t % 10)) = 0 ]; then
		"$PIPE" run -q >/dev/null 2>&1 && [ "$(cat sum.txt)" = "$t" ] &&
			"$PIPE" status >/dev/null 2>&1 || bad_repair=$((bad_repair + 1))
	fi
done
expect_eq "fsck --strict passed after every kill" "$bad_fsck" "0"
expect_eq "no stage looked fresh with wrong outputs" "$bad_fresh" "0"
run pipe run
expect_rc "the next run repairs" 0
expect_eq "repaired output" "$(cat sum.txt)" "$trials"
expect_eq "repairs in between worked" "$bad_repair" "0"
run pipe status
expect_rc "and everything is fresh" 0
expect_fsck "final fsck"

finish
