#!/usr/bin/env bash
# SIGKILL at random moments during runs with the run cache on: a run of
# 60 of 600 stages appends what it learns to the run-cache index's log at
# each flush (the refs' digest "-" until its end), so a kill leaves the
# index covering the commits on disk. No stage looks fresh unless its
# output is right for its inputs, a run back to an input seen before
# restores its stages from the cache with the right outputs, and the
# index stays one pipe reads.
. "$(dirname "$0")/lib.sh"

new_ws
mkdir in out
awk 'BEGIN { print "stages:"; for (i = 0; i < 600; i++) {
	print i > ("in/" i)
	if (i < 60)
		printf "  s%d:\n    cmd: sh -c \"sleep 0.05; cat in/%d n.txt > out/%d\"\n    inputs: [in/%d, n.txt]\n", i, i, i, i
	else
		printf "  s%d:\n    cmd: cp in/%d out/%d\n    inputs: [in/%d]\n", i, i, i, i
	printf "    outputs: [out/%d]\n", i } }' >Pipefile
# how many of the stages that read n.txt have an output not right for v
wrong() {
	local bad=0
	for i in $(seq 0 59); do
		[ "$(cat "out/$i" 2>/dev/null)" = "$(printf '%s\n%s' "$i" "$1")" ] ||
			bad=$((bad + 1))
	done
	echo "$bad"
}
echo 0 >n.txt
run pipe run -q -j2
expect_rc "a first run" 0
bad_fresh=0 bad_cache=0 bad_fsck=0 logged=0
for t in 1 2 3 4 5 6 7 8; do
	echo "$t" >n.txt
	kill_after "$((RANDOM % 3 + 1)).$((RANDOM % 10))" "$PIPE" run -q -j2
	store_fsck || bad_fsck=$((bad_fsck + 1))
	tail -1 .pipe/store/pipe-keys.log 2>/dev/null | grep -q '^refs -$' &&
		logged=$((logged + 1))
	for s in $("$PIPE" status 2>/dev/null | awk '$1 == "fresh" { print $2 }'); do
		i=${s#s}
		[ "$i" -ge 60 ] ||
			[ "$(cat "out/$i")" = "$(printf '%s\n%s' "$i" "$t")" ] ||
			bad_fresh=$((bad_fresh + 1))
	done
	if [ $((t % 2)) = 0 ]; then # back to an earlier value
		echo "$((t - 2))" >n.txt
		"$PIPE" run -q -j2 >/dev/null 2>&1 &&
			[ "$(wrong $((t - 2)))" = 0 ] || bad_cache=$((bad_cache + 1))
	fi
done
expect_eq "fsck --strict passed after every kill" "$bad_fsck" "0"
expect_eq "no stage looked fresh with a wrong output" "$bad_fresh" "0"
expect_eq "runs back to an earlier input were right" "$bad_cache" "0"
echo "kills after a flush that appended to the index's log: $logged"
echo 8 >n.txt
run pipe run -q -j2
expect_rc "the next run completes" 0
expect_eq "every output right" "$(wrong 8)" "0"
echo 0 >n.txt
run pipe run -j2
expect_rc "a run back to the first input" 0
expect_in "restores from the cache" "$out$err" "restored from"
expect_eq "every output right for it" "$(wrong 0)" "0"
expect_fsck "final fsck"

finish
