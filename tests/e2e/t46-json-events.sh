#!/usr/bin/env bash
# pipe run --json: one JSON object a line on stdout and nothing else;
# every kind of event, with its fields and the schema version; the
# stages' output and the human lines on stderr.
. "$(dirname "$0")/lib.sh"
plan 26

# events FILE: checks every line of FILE with python3 and prints one
# line per event, "KIND FIELD=VALUE ...", or "BAD: why" for a line that
# is not a JSON object with the fields its kind needs.
events() {
	python3 - "$1" <<'PY'
import json, sys
need = {
    "run_start": ["v", "time", "pipe_version", "workspace", "targets", "jobs", "dry_run"],
    "stage_planned": ["stage", "verb", "reasons"],
    "unit_started": ["stage", "datum", "attempt"],
    "unit_finished": ["stage", "datum", "ok", "exit_code", "message", "duration_ms", "log"],
    "stage_cached": ["stage", "restored_from"],
    "stage_fresh": ["stage"],
    "stage_ok": ["stage", "duration_ms"],
    "stage_failed": ["stage", "message"],
    "stage_skipped": ["stage", "reason", "message"],
    "run_end": ["ran", "cached", "fresh", "failed", "skipped", "interrupted", "duration_ms", "exit_code", "error"],
}
for n, line in enumerate(open(sys.argv[1]), 1):
    try:
        o = json.loads(line)
    except ValueError as e:
        print("BAD: line %d is not JSON: %s: %r" % (n, e, line)); continue
    if not isinstance(o, dict) or o.get("event") not in need:
        print("BAD: line %d: no known event: %r" % (n, line)); continue
    miss = [k for k in need[o["event"]] + ["time"] if k not in o]
    if miss:
        print("BAD: line %d: %s lacks %s" % (n, o["event"], miss)); continue
    out = [o["event"]]
    for k in ("stage", "datum", "verb", "v", "ok", "exit_code", "reason", "restored_from"):
        if k in o and o[k] is not None:
            out.append("%s=%s" % (k, str(o[k]).lower() if isinstance(o[k], bool) else o[k]))
    if o["event"] == "stage_planned":
        out.append("kinds=" + ",".join(r["kind"] for r in o["reasons"]))
    if o["event"] == "run_end":
        out.append("counts=%d/%d/%d/%d/%d" % (o["ran"], o["cached"], o["fresh"], o["failed"], o["skipped"]))
    print(" ".join(out))
PY
}

new_ws
mkdir d
echo 1 > d/a.txt
echo 2 > d/b.txt
cp "$data/ci/Pipefile" .
run pipe run --json -j 1
expect_rc "a first run exits 0" 0
printf '%s\n' "$out" > ev0.jsonl
# without its records every stage is restored from the run-cache; then
# every stage is fresh
rm -f .pipe/state
"$PIPE" run --json -j 1 >ev1.jsonl 2>/dev/null
"$PIPE" run --json -j 1 >ev2.jsonl 2>/dev/null
e0=$(events ev0.jsonl)
e1=$(events ev1.jsonl)
e2=$(events ev2.jsonl)
all="$e0"$'\n'"$e1"$'\n'"$e2"
expect_not_in "every line is a JSON object with its fields" "$all" "BAD:"
expect_eq "stdout has only events: as many lines as objects" \
	"$(printf '%s\n' "$out" | wc -l)" "$(printf '%s\n' "$e0" | wc -l)"
expect_in "run_start carries the schema version 1" "$e0" "run_start v=1"
expect_eq "run_start comes first, run_end last" \
	"$(printf '%s\n' "$e0" | sed -n '1s/ .*//p;$s/ .*//p' | tr '\n' ' ')" "run_start run_end "
expect_in "stage_planned: verb run, reason code never_run" "$e0" "stage_planned stage=a verb=run kinds=never_run"
expect_in "unit_started for a whole stage" "$e0" "unit_started stage=a"
expect_in "unit_finished: ok and exit code" "$e0" "unit_finished stage=a ok=true exit_code=0"
expect_in "unit_started for a datum" "$e0" "unit_started stage=d datum=d/a.txt"
expect_in "unit_finished for a datum" "$e0" "unit_finished stage=d datum=d/b.txt ok=true exit_code=0"
expect_in "stage_ok" "$e0" "stage_ok stage=b"
expect_in "run_end: counts and exit code" "$e0" "run_end exit_code=0 counts=3/0/0/0/0"
expect_not_in "the stages' output is not on stdout" "$out" "from-a"
expect_in "the stages' output goes to stderr" "$err" "[a] from-a"
expect_in "the human lines stay on stderr" "$err" "3 ran, 0 cached, 0 fresh, 0 failed, 0 skipped"
expect_in "stage_planned: verb cache" "$e1" "stage_planned stage=a verb=cache"
expect_in "stage_cached names the commit" "$e1" "stage_cached stage=a restored_from="
expect_in "stage_planned: verb fresh" "$e2" "stage_planned stage=a verb=fresh"
expect_in "stage_fresh" "$e2" "stage_fresh stage=b"

# a failure: stage_failed, stage_skipped, exit code 1 in run_end
new_ws
cat > Pipefile <<'YML'
stages:
  a:
    cmd: echo broken; exit 3
    outputs: [a.out]
  b:
    cmd: cat a.out > b.out
    inputs: [a.out]
    outputs: [b.out]
YML
run pipe run --json
expect_rc "a failed run exits 1" 1
printf '%s\n' "$out" > ev.jsonl
e=$(events ev.jsonl)
expect_not_in "a failed run's lines are JSON objects with their fields" "$e" "BAD:"
expect_in "unit_finished: exit code 3" "$e" "unit_finished stage=a ok=false exit_code=3"
expect_in "stage_failed" "$e" "stage_failed stage=a"
expect_in "stage_skipped: upstream_failed" "$e" "stage_skipped stage=b reason=upstream_failed"
expect_in "run_end: exit code 1" "$e" "run_end exit_code=1 counts=0/0/0/1/1"
kinds=$(printf '%s\n' "$all" "$e" | sed 's/ .*//' | sort -u | tr '\n' ' ')
expect_eq "every kind of event appeared" "$kinds" \
	"run_end run_start stage_cached stage_failed stage_fresh stage_ok stage_planned stage_skipped unit_finished unit_started "

finish
