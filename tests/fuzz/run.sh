#!/usr/bin/env bash
# Runs every fuzz target in BIN_DIR for SECONDS each (make fuzz): new
# inputs go to a scratch corpus beside the binaries, the seeds in
# tests/fuzz/<name>/ are read only. Prints each target's executions and a
# last line "N targets clean, N crashed"; a crash leaves its input in
# BIN_DIR/crashes/ and fails.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:?usage: run.sh BIN_DIR SECONDS}
secs=${2:-60}
clean=0 crashed=0
mkdir -p "$bin/crashes"
for t in "$bin"/fuzz_*; do
	[ -x "$t" ] || continue
	name=${t##*/fuzz_}
	seeds=$root/tests/fuzz/$name
	work=$bin/corpus/$name
	mkdir -p "$work"
	dict=()
	[ -f "$root/tests/fuzz/$name.dict" ] && dict=(-dict="$root/tests/fuzz/$name.dict")
	out=$bin/$name.log
	"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 "${dict[@]}" \
		-artifact_prefix="$bin/crashes/$name-" "$work" "$seeds" >"$out" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$out" | tail -1)
	if [ "$rc" = 0 ]; then
		clean=$((clean + 1))
		echo "ok   fuzz $name: ${runs:-?} runs in ${secs}s, ${cov:-cov: ?}"
	else
		crashed=$((crashed + 1))
		echo "FAIL fuzz $name (exit $rc): input in $bin/crashes/"
		grep -E -A30 '^==[0-9]+==ERROR|runtime error|deadly signal' "$out" | head -40 | sed 's/^/    /'
	fi
done
echo "$clean targets clean, $crashed crashed"
[ "$crashed" = 0 ] && [ "$clean" -gt 0 ]
