#!/usr/bin/env bash
# Docker benchmark: 20 trivial docker stages through `pipe run -f -j N`
# against a shell loop of `docker run --rm` for the same containers (same
# image, mounts, user, network none, caps dropped, init), alternating, the
# median of RUNS runs each; prints both and the ratio (target <= 1.0x),
# then every run ("runs pipe: ...", "runs loop: ...").
# Env: PIPE, STAGES (20), JOBS (4), RUNS (5). Not part of `make test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PIPE=${PIPE:-$root/build/pipe}
STAGES=${STAGES:-20}
JOBS=${JOBS:-4}
RUNS=${RUNS:-5}
. "$root/tests/docker-env.sh"
[ "$DOCKER_READY" = 1 ] || { echo "docker bench: no daemon: $DOCKER_WHY" >&2; exit 1; }
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc; } >/dev/null 2>&1

work=$(mktemp -d "${TMPDIR:-/tmp}/pipe-docker-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
ws=$work/ws
mkdir -p "$ws"
{
	echo "version: 1"
	echo "stages:"
	for i in $(seq 1 "$STAGES"); do
		printf '  s%d:\n    executor: docker\n    image: %s\n' "$i" "$PIPE_TEST_IMAGE"
		printf '    cmd: echo %d > o/%d/x\n    outputs: [o/%d/]\n' "$i" "$i" "$i"
	done
} >"$ws/Pipefile"

now() { date +%s%N; }
secs() { echo "scale=3; ($2 - $1) / 1000000000" | bc; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

pipe_once() {
	local t0 t1
	t0=$(now)
	(cd "$ws" && "$PIPE" run -f -j "$JOBS" >/dev/null 2>&1)
	t1=$(now)
	for i in $(seq 1 "$STAGES"); do
		[ "$(cat "$ws/o/$i/x")" = "$i" ] || { echo "pipe: wrong output o/$i/x" >&2; exit 1; }
	done
	secs "$t0" "$t1"
}

loop_once() {
	local t0 t1 i
	rm -rf "$work/loop"
	mkdir -p "$work/loop"
	t0=$(now)
	for i in $(seq 1 "$STAGES"); do
		mkdir -p "$work/loop/o/$i"
		docker run --rm --network none --cap-drop ALL \
			--security-opt no-new-privileges --init \
			--user "$(id -u):$(id -g)" -w /workspace \
			-v "$work/loop/o/$i:/workspace/o/$i" \
			--label pipe.bench=1 "$PIPE_TEST_IMAGE" \
			sh -c "echo $i > o/$i/x" >/dev/null
	done
	t1=$(now)
	secs "$t0" "$t1"
}

# a warm-up of each, not counted
pipe_once >/dev/null
loop_once >/dev/null
p=() l=()
for _ in $(seq 1 "$RUNS"); do
	p+=("$(pipe_once)")
	l+=("$(loop_once)")
done
pm=$(printf '%s\n' "${p[@]}" | median)
lm=$(printf '%s\n' "${l[@]}" | median)
ratio=$(echo "scale=3; $pm / $lm" | bc)
met=$(echo "$ratio <= 1.0" | bc)
[ "$met" = 1 ] && met=met || met="NOT met"
echo "docker bench: $STAGES trivial stages, $(nproc) cores, $(docker version -f '{{.Server.Version}}' 2>/dev/null) daemon, median of $RUNS"
printf '%-40s %8.3fs  (%s)\n' "pipe run -f -j $JOBS" "$pm" "${p[*]}"
printf '%-40s %8.3fs  (%s)\n' "shell loop of docker run --rm" "$lm" "${l[*]}"
printf 'ratio %.3fx  target <= 1.0x  %s\n' "$ratio" "$met"
# every run, for tests/bench/run.sh
echo "runs pipe: ${p[*]}"
echo "runs loop: ${l[*]}"
