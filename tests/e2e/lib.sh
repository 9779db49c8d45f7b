# Shared helpers for end-to-end tests (sourced). Each test runs the real
# binary ($PIPE) in a fresh temp workspace, with its own HOME and git
# identity (tests/test-env.sh), and ends with `finish`, which prints
# "N passed, N failed, N skipped". A test that may skip declares its
# number of checks with `plan N`; `finish` fails when that many did not
# run or skip.
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PIPE=${PIPE:-$root/build/pipe}
data=$root/tests/data
_passed=0
_failed=0
_skipped=0
_plan=
# how many times slower pipe runs here than a plain build (20 under
# valgrind): a bound on time that catches a hang is this much wider
slow=${PIPE_TEST_SLOW:-1}
_tmp=$(mktemp -d "${TMPDIR:-/tmp}/pipe-e2e.XXXXXX")
trap 'rm -rf "$_tmp"' EXIT
# shellcheck source=../test-env.sh
. "$root/tests/test-env.sh"
test_home "$_tmp/.home" || exit 1
cd "$_tmp" || exit 1

pipe() { "$PIPE" "$@"; }

ok() { _passed=$((_passed + 1)); echo "ok - $1"; }
not_ok() {
	_failed=$((_failed + 1))
	echo "not ok - $1"
	shift
	[ $# -gt 0 ] && printf '    %s\n' "$@"
	return 0
}

# run CMD...: runs it, keeping stdout in $out, stderr in $err, exit in $rc.
run() {
	"$@" >"$_tmp/.out" 2>"$_tmp/.err"
	rc=$?
	out=$(cat "$_tmp/.out")
	err=$(cat "$_tmp/.err")
}

# expect_rc DESC N: the last `run` exited N.
expect_rc() {
	if [ "$rc" = "$2" ]; then ok "$1"; else
		not_ok "$1" "exit $rc, want $2" "stdout: $out" "stderr: $err"
	fi
}

# expect_in DESC HAYSTACK NEEDLE: fixed-string containment. An empty
# NEEDLE is a failure: every text contains it, so the check could not fail.
expect_in() {
	if [ -z "$3" ]; then
		not_ok "$1" "empty needle: this check cannot fail"
	elif [[ $2 == *"$3"* ]]; then ok "$1"; else
		not_ok "$1" "missing: $3" "in: $2"
	fi
}

expect_not_in() {
	if [[ $2 != *"$3"* ]]; then ok "$1"; else
		not_ok "$1" "unexpected: $3" "in: $2"
	fi
}

expect_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else
		not_ok "$1" "got:  $2" "want: $3"
	fi
}

# new_ws: a fresh empty workspace folder; cd into it.
new_ws() {
	local d
	d=$(mktemp -d "$_tmp/ws.XXXXXX")
	cd "$d" || exit 1
}

# store_fsck: 0 when .pipe/store passes `git fsck --strict` (or is not
# there yet); else prints fsck's first complaints and returns 1.
store_fsck() {
	[ -d .pipe/store ] || return 0
	git --git-dir .pipe/store fsck --strict >/dev/null 2>&1 && return 0
	git --git-dir .pipe/store fsck --strict 2>&1 | head -5
	return 1
}

# expect_fsck DESC: the store exists and passes fsck --strict.
expect_fsck() {
	local o
	if [ ! -d .pipe/store ]; then
		not_ok "$1" "no .pipe/store in $PWD"
	elif o=$(store_fsck); then ok "$1"; else not_ok "$1" "$o"; fi
}

# kill_after DELAY CMD...: CMD in the background, SIGKILLed after DELAY
# seconds (or when it is done, if sooner), and reaped.
kill_after() {
	local delay=$1 pid
	shift
	"$@" >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# plan N: this test has N checks (passed, failed or skipped).
plan() { _plan=$1; }

# skip N TAG REASON: N checks that need TAG (docker) cannot run here. A
# failure where skips are not allowed (test_skip_fails: CI, PIPE_REQUIRE).
skip() {
	if test_skip_fails "$2"; then
		_failed=$((_failed + $1))
		echo "not ok - $1 checks skipped, not allowed here: $3"
	else
		_skipped=$((_skipped + $1))
		echo "# skip: $3"
	fi
}

# skip_all TAG REASON: the whole planned test cannot run here.
skip_all() {
	skip "$((_plan - _passed - _failed - _skipped))" "$1" "$2"
	finish
}

# need_docker: the Docker daemon and test image (tests/docker-env.sh);
# without them the rest of the planned test is skipped (a failure in CI).
need_docker() {
	. "$root/tests/docker-env.sh"
	[ "$DOCKER_READY" = 1 ] || skip_all docker "no Docker daemon: $DOCKER_WHY"
}

finish() {
	local n=$((_passed + _failed + _skipped))
	if [ -n "$_plan" ] && [ "$n" != "$_plan" ]; then
		not_ok "plan: $_plan checks" "$n ran or skipped: fix 'plan' in $(basename "$0")"
	fi
	echo "$_passed passed, $_failed failed, $_skipped skipped"
	[ "$_failed" = 0 ]
	exit $?
}
