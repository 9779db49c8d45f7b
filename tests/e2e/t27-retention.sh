#!/usr/bin/env bash
# Retention (issue #12): a unit's log is made on its first byte and
# capped (head and tail kept, the cut named) while the terminal gets
# everything; `pipe logs` of a quiet job says so; `keep:` bounds the job
# log and the logs, applied by `pipe gc`, which never drops the newest job
# of a stage and removes logs that no job names.
. "$(dirname "$0")/lib.sh"

# job_of STAGE [N]: the id of STAGE's Nth newest job (1: the newest).
job_of() {
	pipe jobs | awk -v s="$1" -v n="${2:-1}" 'NR > 1 && $2 == s && ++k == n { print $1 }'
}

size_of() { stat -c %s "$1" 2>/dev/null || echo missing; }

# stages_of_jobs: "N stage, " per stage in pipe jobs, sorted by name.
stages_of_jobs() {
	pipe jobs | awk 'NR > 1 { print $2 }' | sort | uniq -c | awk '{ printf "%s %s, ", $1, $2 }'
}

# --- a stage that prints 40 MB: a 1 MiB log, every line streamed ---
new_ws
cat > Pipefile <<'YML'
stages:
  chatty:
    cmd: sh -c 'seq 1 5000000; mkdir -p o'
    outputs: [o/]
  quiet:
    cmd: mkdir -p q
    outputs: [q/]
YML
run pipe run
expect_rc "a chatty stage runs" 0
expect_eq "every line went to the terminal" "$(grep -c '^\[chatty\] [0-9]' "$_tmp/.out")" "5000000"
job=$(job_of chatty)
log=.pipe/logs/$job.log
sz=$(size_of "$log")
[ "$sz" != missing ] && [ "$sz" -le $((1048576 + 64)) ] && [ "$sz" -ge 1048000 ] &&
	ok "the log is capped at 1 MiB ($sz bytes)" || not_ok "the log is capped at 1 MiB" "size $sz"
seq 1 5000000 > "$_tmp/printed"
expect_eq "the log keeps the first 512 KiB as printed" \
	"$(head -c 524288 "$log" | xxhsum -H2 | cut -d' ' -f1)" \
	"$(head -c 524288 "$_tmp/printed" | xxhsum -H2 | cut -d' ' -f1)"
cut_line=$(grep -an '^\[\.\.\. [0-9]* bytes cut \.\.\.\]$' "$log")
expect_in "the log says what was cut" "$cut_line" " bytes cut ...]"
tail -n +"$((${cut_line%%:*} + 1))" "$log" > "$_tmp/tail"
tail_bytes=$(size_of "$_tmp/tail")
expect_eq "after it, the last lines as printed" \
	"$(xxhsum -H2 < "$_tmp/tail" | cut -d' ' -f1)" \
	"$(tail -c "$tail_bytes" "$_tmp/printed" | xxhsum -H2 | cut -d' ' -f1)"
expect_eq "the tail starts on a whole line" "$(head -c 1 "$_tmp/tail" | tr -dc 0-9 | wc -c)" "1"
expect_eq "the tail ends with the last line" "$(tail -1 "$_tmp/tail")" "5000000"
cut=$(echo "${cut_line#*:}" | tr -dc 0-9)
expect_eq "head + cut + tail = what the stage printed" \
	"$((524288 + cut + tail_bytes))" "$(size_of "$_tmp/printed")"
run pipe logs "$job"
expect_rc "pipe logs of the capped job" 0
expect_in "pipe logs shows the cut" "$out" "bytes cut ...]"

# --- a job that printed nothing has no log, and pipe logs says so ---
job=$(job_of quiet)
expect_eq "no log file for a quiet job" "$(ls .pipe/logs | grep -c "$job")" "0"
run pipe logs "$job"
expect_rc "pipe logs of a quiet job exits 0" 0
expect_eq "pipe logs of a quiet job prints nothing" "$out" ""
expect_in "pipe logs of a quiet job says so" "$err" "job '$job' printed nothing"

# --- keep: { log: SIZE }, -q, and quiet datums ---
new_ws
mkdir in
for i in 1 2 3; do echo "$i" > "in/$i"; done
cat > Pipefile <<'YML'
keep: { log: 64Ki }
stages:
  chatty:
    cmd: sh -c 'seq 1 200000; mkdir -p o'
    outputs: [o/]
  each:
    datums: "in/*"
    cmd: sh -c 'grep -q 2 "$PIPE_DATUM" && echo "two here"; cp "$PIPE_DATUM" "$PIPE_OUT/"'
    outputs: [res/]
YML
run pipe run -q
expect_rc "runs with -q" 0
sz=$(size_of ".pipe/logs/$(job_of chatty).log")
[ "$sz" != missing ] && [ "$sz" -le $((65536 + 64)) ] && [ "$sz" -ge 65000 ] &&
	ok "keep.log caps the log, with -q too ($sz bytes)" || not_ok "keep.log caps the log" "size $sz"
job=$(job_of each)
expect_eq "a datums job keeps a log for the datum that printed only" \
	"$(ls ".pipe/logs/$job" 2>/dev/null | tr '\n' ' ')" "in%2F2.log "
run pipe logs "$job" --datum in/1
expect_rc "pipe logs of a quiet datum exits 0" 0
expect_in "pipe logs of a quiet datum says so" "$err" "datum in/1 printed nothing"
run pipe logs "$job" --datum in/2
expect_eq "pipe logs of the datum that printed" "$out" "two here"

# --- a retried unit's log is the last attempt's ---
new_ws
cat > Pipefile <<'YML'
stages:
  flaky:
    cmd: sh -c 'if [ -e tried ]; then mkdir -p o; else echo first try; touch tried; exit 1; fi'
    outputs: [o/]
    retries: 1
YML
run pipe run
expect_rc "the retry succeeds" 0
expect_eq "no log left from the failed attempt" "$(ls .pipe/logs)" ""

# --- a failing stage that printed nothing: no log to name ---
new_ws
cat > Pipefile <<'YML'
stages:
  mute:
    cmd: sh -c 'exit 4'
    outputs: [o/]
YML
run pipe run
expect_rc "a mute failure fails" 1
expect_in "it says there was no output" "$err" "stage 'mute' failed: exit status 4 (no output)"

# --- keep: { jobs: N }: pipe gc drops older jobs and their logs ---
new_ws
cat > Pipefile <<'YML'
keep: { jobs: 3 }
stages:
  prep:
    cmd: sh -c 'echo prep; mkdir -p p'
    outputs: [p/]
  train:
    cmd: sh -c 'echo train; mkdir -p t'
    inputs: [p/]
    outputs: [t/]
YML
pipe run >/dev/null 2>&1
for _ in 1 2 3 4 5; do pipe run -f train >/dev/null 2>&1; done
expect_eq "6 train and 1 prep jobs" "$(stages_of_jobs)" "1 prep, 6 train, "
expect_eq "7 logs before gc" "$(ls .pipe/logs | wc -l | tr -d ' ')" "7"
prep_job=$(job_of prep)
old_job=$(job_of train 6)
echo "left by a killed run" > .pipe/logs/0123456789ab.log
echo "mine" > .pipe/logs/notes.txt
mkdir -p .pipe/tmp/docker-99999-0/0 .pipe/tmp/other .pipe/trash/gone/0
echo "a container wrote this" > .pipe/tmp/docker-99999-0/0/out.txt
echo "not a staging folder" > .pipe/tmp/other/x
echo "moved aside by a killed run" > .pipe/trash/gone/0/model.bin
run pipe gc --dry-run
expect_rc "gc --dry-run" 0
expect_in "gc --dry-run says what it would drop" "$out" "would drop 3 job records and 4 logs"
expect_eq "gc --dry-run drops nothing" "$(pipe jobs | wc -l | tr -d ' ')" "8"
run pipe gc
expect_rc "gc with keep.jobs" 0
expect_in "gc says what it dropped" "$out" "dropped 3 job records and 4 logs"
expect_in "gc says what is left in the trash" "$out" "in .pipe/trash: outputs of 1 stage moved aside by a killed run"
expect_eq "gc leaves the trash alone" "$(cat .pipe/trash/gone/0/model.bin)" "moved aside by a killed run"
expect_eq "gc removes a killed run's container staging" "$(ls .pipe/tmp | tr '\n' ' ')" "other "
expect_eq "the newest 3 jobs and the newest prep are left" \
	"$(stages_of_jobs)" "1 prep, 3 train, "
expect_eq "the newest job of a stage stays, however old" "$(job_of prep)" "$prep_job"
expect_eq "an old job's log is gone" "$(size_of ".pipe/logs/$old_job.log")" "missing"
run pipe logs "$old_job"
expect_rc "pipe logs of a dropped job exits 2" 2
expect_eq "a log no job names is gone" "$(size_of .pipe/logs/0123456789ab.log)" "missing"
expect_eq "a file pipe did not name is left" "$(cat .pipe/logs/notes.txt)" "mine"
expect_eq "4 logs and the other file left" "$(ls .pipe/logs | wc -l | tr -d ' ')" "5"
run pipe logs "$(job_of train)"
expect_eq "the newest log is intact" "$out" "train"
run pipe gc
expect_not_in "a second gc drops nothing more" "$out" "dropped"
run pipe status
expect_rc "everything is still fresh" 0
expect_fsck "fsck --strict after gc"

# --- a stage whose history no ref keeps: its jobs go with it ---
git --git-dir .pipe/store update-ref -d refs/pipe/stages/train
git --git-dir .pipe/store update-ref -d refs/pipe/runs
run pipe gc
expect_rc "gc after refs were deleted" 0
expect_in "jobs whose commits are gone are dropped" "$out" "dropped 2 job records"
expect_eq "only the newest job of each stage is left" \
	"$(pipe jobs | awk 'NR > 1 { print $2 }' | sort | tr '\n' ' ')" "prep train "

# --- pipe run trims the job log once it has grown well past keep: ---
new_ws
cat > Pipefile <<'YML'
keep: { jobs: 1 }
stages:
  w:
    matrix: { i: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100] }
    cmd: sh -c 'echo ${i}; mkdir -p o/${i}'
    outputs: ["o/${i}/"]
YML
pipe run >/dev/null 2>&1
expect_eq "100 jobs after one run" "$(pipe jobs | tail -n +2 | wc -l | tr -d ' ')" "100"
for _ in 1 2 3 4 5; do pipe run -f >/dev/null 2>&1; done
n=$(pipe jobs | tail -n +2 | wc -l | tr -d ' ')
[ "$n" -lt 600 ] && [ "$n" -ge 100 ] && ok "pipe run trimmed the job log ($n of 600 jobs left)" ||
	not_ok "pipe run trimmed the job log" "$n jobs"
expect_eq "a log for each job left" "$(ls .pipe/logs | wc -l | tr -d ' ')" "$n"
expect_eq "the job log stays small" "$(( $(size_of .pipe/jobs) < 65536 + 20000 ))" "1"

finish
