#!/usr/bin/env bash
# Every exit code of SPEC §6 that each command of `pipe help` can return,
# provoked and asserted: 0 ok, 1 a stage failed (status: stale; checkout:
# refused), 2 bad usage or bad Pipefile, 3 environment (an unreadable
# file, a locked workspace), 128 + a signal (130: run on SIGINT).
. "$(dirname "$0")/lib.sh"
plan 110

# rc_is WANT ARGS...: `pipe ARGS` in the current folder exits WANT.
rc_is() {
	local want=$1
	shift
	run pipe "$@"
	expect_rc "$(basename "$PWD" | sed 's/\..*//'): pipe $* -> $want" "$want"
}

# Every command pipe lists is covered here: a new one fails this check
# until its exit codes are.
covered="init validate run status jobs logs log inspect get checkout gc push pull dag reproduce help"
listed=$(pipe --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}' | sort | tr '\n' ' ')
expect_eq "every command of 'pipe help' is covered" "$listed" \
	"$(printf '%s\n' $covered | sort | tr '\n' ' ')"

# a good workspace: two stages run, a job with a log, commits
good=$(mktemp -d "$_tmp/good.XXXXXX")
cd "$good" || exit 1
rc_is 0 init
rc_is 2 init extra
cat > Pipefile <<'YML'
stages:
  a:
    cmd: echo made-a; echo a > a.out
    outputs: [a.out]
  b:
    cmd: cat a.out > b.out
    inputs: [a.out]
    outputs: [b.out]
YML
rc_is 1 status
rc_is 0 run
rc_is 0 status
rc_is 0 status --json
rc_is 2 status --bogus
rc_is 0 validate
rc_is 2 validate --bogus
rc_is 0 dag
rc_is 0 dag --dot
rc_is 2 dag --bogus
rc_is 0 run -n
rc_is 2 run -j 0
rc_is 2 run --bogus
rc_is 2 run no-such-stage
rc_is 0 jobs
rc_is 0 jobs --json
rc_is 2 jobs --bogus
job=$(pipe jobs --json | python3 -c 'import json, sys; print([j["id"] for j in json.load(sys.stdin) if j["stage"] == "a"][0])')
rc_is 0 logs "$job"
rc_is 2 logs
rc_is 2 logs no-such-job
rc_is 0 log a
rc_is 2 log
rc_is 2 log no-such-stage
rc_is 0 inspect a
rc_is 2 inspect
rc_is 2 inspect no-such-ref
rc_is 0 get a a.out
rc_is 2 get a
rc_is 2 get a no-such-file
rc_is 2 get no-such-ref a.out
rc_is 0 checkout a
rc_is 2 checkout
rc_is 2 checkout no-such-ref
echo edited > a.out
rc_is 1 checkout a
rc_is 0 checkout --force a
rc_is 0 gc
rc_is 0 gc --dry-run
rc_is 2 gc --bogus
remote=$_tmp/remote.git
git init -q --bare "$remote"
rc_is 0 push "$remote"
rc_is 0 pull "$remote"
rc_is 0 run --pull "$remote"
rc_is 2 run --pull
rc_is 2 push
rc_is 2 push --bogus "$remote"
rc_is 2 pull -j 0 "$remote"
rc_is 2 push no-such-remote
rc_is 3 push "$_tmp/nowhere.git"
rc_is 3 pull "$_tmp/nowhere.git"
rc_is 2 reproduce
rc_is 2 reproduce --bogus
rc_is 2 reproduce HEAD # not a git repository
rc_is 0 help
rc_is 0 help run
rc_is 2 help no-such-command
rc_is 0 --version
rc_is 2 no-such-command
rc_is 2 --bogus
rc_is 2

# a stage that fails: run exits 1; jobs and logs still 0
cat >> Pipefile <<'YML'
  c:
    cmd: echo broken; exit 7
    outputs: [c.out]
YML
rc_is 1 run
rc_is 1 run -k
rc_is 0 jobs

# 3: .pipe/jobs cannot be read
mv .pipe/jobs .pipe/jobs.kept
mkdir .pipe/jobs
rc_is 3 jobs
rc_is 3 logs "$job"
rmdir .pipe/jobs
mv .pipe/jobs.kept .pipe/jobs

# hold_lock: a stage 'slow' added to the Pipefile and started in the
# background ($holder), holding the workspace's lock
hold_lock() {
	cat >> Pipefile <<'YML'
  slow:
    cmd: touch started; sleep 30
    outputs: [slow.out]
YML
	"$PIPE" run slow >/dev/null 2>&1 &
	holder=$!
	for _ in $(seq $((200 * slow))); do [ -e started ] && break; sleep 0.05; done
}

# 3: the workspace is locked by a running `pipe run`; then 130 for that
# run on SIGINT
hold_lock
rc_is 3 run a
rc_is 3 run --json a
rc_is 3 checkout a
rc_is 3 gc
rc_is 3 push "$remote"
rc_is 3 pull "$remote"
rc_is 1 status
kill -INT "$holder"
wait "$holder"
rc=$?
expect_eq "good: pipe run on SIGINT -> 130" "$rc" 130
rm -f started
"$PIPE" run slow >/dev/null 2>&1 &
holder=$!
for _ in $(seq $((200 * slow))); do [ -e started ] && break; sleep 0.05; done
kill -TERM "$holder"
wait "$holder"
rc=$?
expect_eq "good: pipe run on SIGTERM -> 143" "$rc" 143

# reproduce in a git project: 0, 1 (an output differs), 2, 3 (locked)
gitws=$(mktemp -d "$_tmp/git.XXXXXX")
cd "$gitws" || exit 1
git init -q .
cat > Pipefile <<'YML'
stages:
  t:
    cmd: date +%s%N > t.out
    outputs: [t.out]
YML
printf '.pipe/\n*.out\nmine/\n' > .gitignore
git add -A
git -c user.name=t -c user.email=t@t commit -qm one
rc_is 0 run
rc_is 0 reproduce HEAD
rc_is 1 reproduce HEAD --verify
rc_is 2 reproduce no-such-rev
rc_is 2 reproduce HEAD -o
mkdir mine
touch mine/x
rc_is 2 reproduce HEAD -o mine
hold_lock
rc_is 3 reproduce HEAD
kill -TERM "$holder"
wait "$holder"

# a bad Pipefile: 2 from every command that reads it; help still 0
bad=$(mktemp -d "$_tmp/bad.XXXXXX")
cd "$bad" || exit 1
printf 'stages:\n  a:\n    cmd: true\n    dependz: [x]\n' > Pipefile
for c in validate run status dag jobs "logs x" "log a" "inspect a" \
	"get a x" "checkout a" gc "push $remote" "pull $remote"; do
	# shellcheck disable=SC2086
	rc_is 2 $c
done
rc_is 0 help

# 3: a Pipefile that cannot be read (a symlink to itself: ELOOP, even
# for root)
loop=$(mktemp -d "$_tmp/unreadable.XXXXXX")
cd "$loop" || exit 1
ln -s Pipefile Pipefile
for c in validate run status dag jobs "logs x" "log a" "inspect a" \
	"get a x" "checkout a" gc "push $remote" "pull $remote"; do
	# shellcheck disable=SC2086
	rc_is 3 $c
done

# 3: init cannot create .pipe/
blocked=$(mktemp -d "$_tmp/blocked.XXXXXX")
cd "$blocked" || exit 1
touch .pipe
rc_is 3 init

finish
