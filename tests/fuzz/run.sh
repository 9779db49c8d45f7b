#!/usr/bin/env bash
# Runs every fuzz target in BIN_DIR for SECONDS each (make fuzz), as many
# at once as there are cores (FUZZ_JOBS): new inputs go to a scratch
# corpus beside the binaries, the seeds in tests/fuzz/<name>/ are read
# only. Prints each target's executions and a last line "N targets clean,
# N crashed"; a crash leaves its input in BIN_DIR/crashes/ and fails.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:?usage: run.sh BIN_DIR SECONDS}
secs=${2:-60}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
clean=0 crashed=0
mkdir -p "$bin/crashes"

# fuzz_one TARGET: runs it; its exit status into BIN_DIR/NAME.rc
fuzz_one() {
	local t=$1 name=${1##*/fuzz_} dict=()
	mkdir -p "$bin/corpus/$name"
	[ -f "$root/tests/fuzz/$name.dict" ] && dict=(-dict="$root/tests/fuzz/$name.dict")
	"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 "${dict[@]}" \
		-artifact_prefix="$bin/crashes/$name-" "$bin/corpus/$name" \
		"$root/tests/fuzz/$name" >"$bin/$name.log" 2>&1
	echo $? >"$bin/$name.rc"
}

targets=()
for t in "$bin"/fuzz_*; do
	[ -x "$t" ] && targets+=("$t")
done
running=0
for t in "${targets[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
	fuzz_one "$t" &
	running=$((running + 1))
done
wait
for t in "${targets[@]}"; do
	name=${t##*/fuzz_}
	out=$bin/$name.log
	rc=$(cat "$bin/$name.rc" 2>/dev/null || echo 99)
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
