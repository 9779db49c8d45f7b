# Shared helpers for end-to-end tests (sourced). Each test runs the real
# binary ($PIPE) in a fresh temp workspace and ends with `finish`, which
# prints "N passed, N failed".
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PIPE=${PIPE:-$root/build/pipe}
data=$root/tests/data
_passed=0
_failed=0
_tmp=$(mktemp -d "${TMPDIR:-/tmp}/pipe-e2e.XXXXXX")
trap 'rm -rf "$_tmp"' EXIT
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

# expect_in DESC HAYSTACK NEEDLE: fixed-string containment.
expect_in() {
	if [[ $2 == *"$3"* ]]; then ok "$1"; else
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

# expect_fsck DESC: the store passes fsck --strict.
expect_fsck() {
	local o
	if o=$(store_fsck); then ok "$1"; else not_ok "$1" "$o"; fi
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

# need_docker: the Docker daemon and test image (tests/docker-env.sh);
# without them the test ends here, skipped (failed in CI).
need_docker() {
	. "$root/tests/docker-env.sh"
	[ "$DOCKER_READY" = 1 ] && return 0
	if [ -n "${CI:-}" ]; then
		not_ok "a Docker daemon answers" "$DOCKER_WHY"
	else
		echo "# skipped: no Docker daemon ($DOCKER_WHY)"
	fi
	finish
}

finish() {
	echo "$_passed passed, $_failed failed"
	[ "$_failed" = 0 ]
	exit $?
}
