#!/usr/bin/env bash
# `pipe validate` on every tests/data/pipefile/<case>.yml copied to a fresh
# workspace as Pipefile: a case with <case>.err must exit 2 with exactly
# that stderr; one with <case>.out must exit 0 with exactly that stdout.
# REGEN=1 rewrites the expected files from what pipe prints (review them).
. "$(dirname "$0")/lib.sh"

cases=$data/pipefile
for yml in "$cases"/*.yml; do
	name=$(basename "$yml" .yml)
	new_ws
	cp "$yml" Pipefile
	run pipe validate
	if [ "${REGEN:-0}" = 1 ]; then
		rm -f "$cases/$name.err" "$cases/$name.out"
		if [ "$rc" = 0 ]; then
			printf '%s\n' "$out" >"$cases/$name.out"
		else
			printf '%s\n' "$err" >"$cases/$name.err"
		fi
	fi
	if [ -f "$cases/$name.err" ]; then
		expect_rc "$name: exit 2" 2
		expect_eq "$name: stderr" "$err" "$(cat "$cases/$name.err")"
		expect_eq "$name: no stdout" "$out" ""
	elif [ -f "$cases/$name.out" ]; then
		expect_rc "$name: exit 0" 0
		expect_eq "$name: stdout" "$out" "$(cat "$cases/$name.out")"
	else
		not_ok "$name: no $name.err or $name.out beside it"
	fi
done

# Cases that are not files in tests/data: a missing Pipefile, one too
# large to read, one given by --pipefile in a sub-folder.
new_ws
run pipe validate
expect_rc "missing: exit 2" 2
expect_eq "missing: stderr" "$err" "pipe: error: cannot read 'Pipefile': No such file or directory (run 'pipe init' to create one)"

new_ws
head -c $((16 * 1024 * 1024 + 1)) /dev/zero | tr '\0' '#' >Pipefile
run pipe validate
expect_rc "huge: exit 2" 2
expect_eq "huge: stderr" "$err" "pipe: error: Pipefile: file is larger than 16 MiB"

new_ws
mkdir sub
cp "$cases/unknown-key-stage.yml" sub/Pipefile
run pipe --pipefile sub/Pipefile validate
expect_rc "sub-folder: exit 2" 2
expect_in "sub-folder: names the path" "$err" "sub/Pipefile:4:5: unknown key"

# Hostile input fails fast: an alias bomb and deep nesting within 2 s
# (the real figure is a few milliseconds; the bound only catches hangs).
for name in alias-bomb deep-nesting; do
	new_ws
	cp "$cases/$name.yml" Pipefile
	start=$(date +%s%N)
	run pipe validate
	ms=$((($(date +%s%N) - start) / 1000000))
	if [ "$ms" -lt $((2000 * slow)) ]; then ok "$name: fails in ${ms} ms"; else
		not_ok "$name: took ${ms} ms"
	fi
done

# The starter Pipefile of `pipe init` validates.
new_ws
run pipe init
run pipe validate
expect_rc "starter: exit 0" 0
expect_eq "starter: stdout" "$out" "Pipefile: ok: 2 stages, 1 edge"

finish
