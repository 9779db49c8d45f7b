#!/usr/bin/env bash
# Runs every unit test binary (cmocka) and every end-to-end script, then
# prints one summary line "N passed, N failed" and exits non-zero on any
# failure. Env: PIPE (the binary), UNIT_DIR (unit test binaries), ONLY (a
# substring to select tests), VALGRIND=1.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
export PIPE=${PIPE:-$root/build/pipe}
UNIT_DIR=${UNIT_DIR:-$root/build/tests}
ONLY=${ONLY:-}
passed=0 failed=0
failures=()
log=$(mktemp -d "${TMPDIR:-/tmp}/pipe-tests.XXXXXX")
trap 'rm -rf "$log"' EXIT

vg=()
if [ "${VALGRIND:-0}" = 1 ]; then
	vg=(valgrind -q --error-exitcode=99 --leak-check=full)
fi

# cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)".
for t in "$UNIT_DIR"/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	[ -n "$ONLY" ] && [[ $name != *$ONLY* ]] && continue
	out="$log/$name.out"
	"${vg[@]}" "$t" >"$out" 2>&1
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	p=${p:-0} f=${f:-0}
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
	passed=$((passed + p)) failed=$((failed + f))
	if [ "$f" != 0 ]; then
		echo "FAIL unit $name ($p passed, $f failed)"
		sed 's/^/    /' "$out" | tail -40
		failures+=("$name")
	else
		echo "ok   unit $name ($p)"
	fi
done

# Each e2e script ends with "N passed, N failed".
for t in "$root"/tests/e2e/t[0-9]*.sh; do
	[ -f "$t" ] || continue
	name=$(basename "$t")
	[ -n "$ONLY" ] && [[ $name != *$ONLY* ]] && continue
	out="$log/$name.out"
	bash "$t" >"$out" 2>&1
	rc=$?
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
	p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
	f=$(echo "$last" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
	p=${p:-0} f=${f:-0}
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
	passed=$((passed + p)) failed=$((failed + f))
	if [ "$f" != 0 ]; then
		echo "FAIL e2e  $name ($p passed, $f failed)"
		grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$out" | grep -E -A12 '^not ok' | sed 's/^/    /' | head -80
		failures+=("$name")
	else
		echo "ok   e2e  $name ($p)"
	fi
done

[ ${#failures[@]} -gt 0 ] && echo "failing: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ $((passed + failed)) -gt 0 ]
