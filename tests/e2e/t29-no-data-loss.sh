#!/usr/bin/env bash
# The no-data-loss property test (issue #12): seeded random sequences of
# user edits, runs, checkouts, gc and SIGKILLs; after every step every
# version of every file the user wrote is in the workspace or retrievable
# with `pipe get` (tests/e2e/no_data_loss.py says how). `make test` runs
# NDL_STEPS (150) steps of seed NDL_SEEDS (1); `make test-long` runs 2,000
# steps of each of five seeds.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "python3 missing (make deps)"; exit 1; }

p=0 f=0
for seed in ${NDL_SEEDS:-1}; do
	python3 "$root/tests/e2e/no_data_loss.py" --steps "${NDL_STEPS:-150}" \
		--seed "$seed" >"$_tmp/ndl.out" 2>&1
	grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$_tmp/ndl.out"
	if grep -q '^ok - ' "$_tmp/ndl.out"; then p=$((p + 1)); else f=$((f + 1)); fi
done
_passed=$p _failed=$f
finish
