#!/usr/bin/env bash
# Fails when a C file differs from what clang-format (.clang-format) makes
# of it. Checks the files given, or every tracked C file.
set -u
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then files=("$@"); else
	mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null)
fi
bad=0
for f in "${files[@]}"; do
	[ -f "$f" ] || continue
	if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "not formatted: $f (run: make format)"
		bad=1
	fi
done
[ "$bad" = 0 ] && echo "format ok (${#files[@]} files)"
exit "$bad"
