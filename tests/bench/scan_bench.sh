#!/usr/bin/env bash
# Scan benchmark (not part of `make test`): 100,000 files in 100 folders,
# scanned cold and warm through the stat cache, against `git status` on the
# same tree. Usage: tests/bench/scan_bench.sh [DIR] [FOLDERS FILES]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-/tmp/pipe-scan-bench}
folders=${2:-100}
files=${3:-1000}
cd "$root"
make -s build/libpipe.a
# shellcheck disable=SC1091
eval "$(sed -n 's/^\([A-Z_]*\) := \(.*\)/\1="\2"/p' build/config.mk)"
# shellcheck disable=SC2086
cc -std=c11 -D_GNU_SOURCE -O2 -I. $PKG_CFLAGS -o build/scan_bench \
	tests/bench/scan_bench.c build/libpipe.a $PKG_LIBS -ldl -lm
build/scan_bench "$dir" "$folders" "$files"

cd "$dir"
if [ ! -d .git ]; then
	echo ".pipe/" >.gitignore
	git init -q .
	git add -A
	git -c user.name=bench -c user.email=bench@example.com \
		commit -qm bench
fi
git status --porcelain >/dev/null # refresh the index once

# Whole processes, alternating, so that both see the same machine load.
ms() { echo $((($2 - $1) / 100000)); }
pipe_t=() git_t=()
for _ in 1 2 3 4 5 6 7 8 9; do
	t0=$(date +%s%N)
	ONCE=1 "$root/build/scan_bench" "$dir"
	t1=$(date +%s%N)
	git status --porcelain >/dev/null
	t2=$(date +%s%N)
	pipe_t+=("$(ms "$t0" "$t1")")
	git_t+=("$(ms "$t1" "$t2")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 5p; }
p=$(median "${pipe_t[@]}") g=$(median "${git_t[@]}")
printf 'process, median of 9: warm scan %d.%d ms, git status %d.%d ms\n' \
	$((p / 10)) $((p % 10)) $((g / 10)) $((g % 10))
