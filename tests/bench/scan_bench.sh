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
	tests/bench/scan_bench.c build/libpipe.a $PKG_LIBS -lm
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
times=()
for _ in 1 2 3 4 5 6 7; do
	t0=$(date +%s%N)
	git status --porcelain >/dev/null
	t1=$(date +%s%N)
	times+=($(((t1 - t0) / 100000)))
done
mapfile -t sorted < <(printf '%s\n' "${times[@]}" | sort -n)
m=${sorted[3]}
printf 'git status, median of 7: %d.%d ms\n' $((m / 10)) $((m % 10))
