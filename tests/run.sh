#!/usr/bin/env bash
# Runs every unit test binary (cmocka) and every end-to-end script, each
# with its own HOME and git identity (tests/test-env.sh), then prints one
# summary line "N passed, N failed, N skipped" and exits non-zero on any
# failure. A group that cannot run here prints
#   SKIP t40-docker.sh (63 checks): no Docker daemon: REASON
# and counts as skipped; in CI (CI=true) or with PIPE_REQUIRE=docker a
# skip is a failure. Env: PIPE (the binary), UNIT_DIR (unit test
# binaries), E2E_DIR (the e2e scripts), ONLY (a substring to select
# tests), VALGRIND=1 (unit tests and every pipe the e2e tests start under
# memcheck), PIPE_SKIP=docker, PIPE_TEST_LINES (of a failure's output, 80).
# Last, the Kubernetes group (K8S_DIR, tests/k8s): a real single-node
# cluster and image registry (tests/k8s/cluster.sh) is brought up before
# its first test, built the first time (about 12 minutes), and taken down
# at the end unless PIPE_K8S_KEEP=1; without root, cgroup v1, Go or Docker
# its tests are skipped. K8S=0 or PIPE_SKIP=k8s leaves the group out.
# PIPE_GROUPS: the groups to run ("unit e2e k8s").
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
export PIPE=${PIPE:-$root/build/pipe}
UNIT_DIR=${UNIT_DIR:-$root/build/tests}
ONLY=${ONLY:-}
passed=0 failed=0 skipped=0
failures=()
skips=()
E2E_DIR=${E2E_DIR:-$root/tests/e2e}
K8S_DIR=${K8S_DIR:-$root/tests/k8s}
PIPE_GROUPS=${PIPE_GROUPS:-unit e2e k8s}
log=$(mktemp -d "${TMPDIR:-/tmp}/pipe-tests.XXXXXX")
vgdir=
k8s_started=0
trap 'k8s_down; rm -rf "$log" $vgdir' EXIT
trap 'exit 130' INT TERM
# shellcheck source=test-env.sh
. "$root/tests/test-env.sh"

vg=()
if [ "${VALGRIND:-0}" = 1 ]; then
	vg=(valgrind -q --error-exitcode=99 --leak-check=full
		--suppressions="$root/tests/valgrind.supp")
	# every pipe an e2e test starts: tests/valgrind-pipe.sh, which logs
	# memcheck's findings to $PIPE_VG_DIR (checked after each script;
	# writable by the non-root user of t40)
	vgdir=$(mktemp -d "${TMPDIR:-/tmp}/pipe-vg.XXXXXX") && chmod 1777 "$vgdir"
	export PIPE_VG_REAL=$PIPE PIPE_VG_DIR=$vgdir
	export PIPE=$root/tests/valgrind-pipe.sh
	# bounds on how long pipe takes are this much wider (lib.sh: slow)
	export PIPE_TEST_SLOW=20
fi

# memcheck_found SCRIPT: what memcheck reported under SCRIPT, if anything,
# appended to its output; the logs are then removed. With -q a log holds
# only errors and leaks ("==PID=="), and warnings ("--PID--") such as
# the pidfd_open it does not know (pipe falls back to polling).
memcheck_found() {
	local f found=1
	for f in "$PIPE_VG_DIR"/*; do
		[ -f "$f" ] || continue
		if grep -q '^==[0-9]*==' "$f"; then
			[ "$found" = 0 ] || echo "memcheck: errors in pipe under $1:"
			cat "$f"
			found=0
		fi
		rm -f "$f"
	done
	return "$found"
}

# The docker tests share one look for a daemon (tests/docker-env.sh, which
# may install and start one): its answer is exported to them.
docker_checked=0
need_docker() {
	[[ $1 == *docker* ]] && [ "$docker_checked" = 0 ] || return 0
	docker_checked=1
	# shellcheck source=docker-env.sh
	. "$root/tests/docker-env.sh"
}

# The Kubernetes tests share one cluster, brought up before the first of
# them: its address and credentials (cluster.sh env) are exported to them,
# and PIPE_K8S_READY=1, or 0 with PIPE_K8S_WHY, the reason they skip. A
# cluster that cannot run here is a skip; one that fails to come up, a
# failure. Prints "k8s: cluster up in Ns".
k8s_checked=0
need_k8s() {
	[ "$k8s_checked" = 0 ] || return 0
	k8s_checked=1
	local t0=$SECONDS why
	export PIPE_K8S_READY=0 PIPE_K8S_WHY=
	if ! why=$(bash "$K8S_DIR/cluster.sh" check); then
		PIPE_K8S_WHY="no test cluster here: $why"
		return
	fi
	need_docker docker
	if [ "${DOCKER_READY:-0}" != 1 ]; then
		PIPE_K8S_WHY="no Docker daemon for the test image: $DOCKER_WHY"
		return
	fi
	k8s_started=1
	echo "k8s: bringing the test cluster up (built the first time: 12 minutes or more)"
	if ! PIPE_K8S_USER=$$ bash "$K8S_DIR/cluster.sh" up >"$log/k8s-up.out" 2>&1; then
		PIPE_K8S_WHY="the test cluster did not come up"
		report "k8s " "cluster up" "$log/k8s-up.out" 1 0 1 0
		tail -n 20 "$log/k8s-up.out" | sed 's/^/    /'
		return
	fi
	grep '^k8s: built' "$log/k8s-up.out"
	echo "k8s: cluster up in $((SECONDS - t0))s"
	eval "$(bash "$K8S_DIR/cluster.sh" env)"
	PIPE_K8S_READY=1
}

k8s_down() {
	[ "$k8s_started" = 1 ] && [ "${PIPE_K8S_KEEP:-0}" != 1 ] || return 0
	k8s_started=0
	PIPE_K8S_USER=$$ bash "$K8S_DIR/cluster.sh" down >"$log/k8s-down.out" 2>&1 ||
		sed 's/^/    /' "$log/k8s-down.out"
}

# in_group GROUP: GROUP is to run (PIPE_GROUPS; K8S=0 or PIPE_SKIP=k8s
# leave k8s out).
in_group() {
	[[ " $PIPE_GROUPS " == *" $1 "* ]] || return 1
	[ "$1" = k8s ] || return 0
	[ "${K8S:-1}" != 0 ] && [[ ",${PIPE_SKIP:-}," != *,k8s,* ]]
}

# report KIND NAME OUT RC P F S: one line for a test group, and the totals.
report() {
	local kind=$1 name=$2 out=$3 rc=$4 p=$5 f=$6 s=$7 why tag=docker
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
	if [ "$s" != 0 ]; then
		why=$(sed -n 's/^# skip: //p' "$out" | head -1)
		skips+=("$name")
		# the tests decide first (lib.sh, NEED_DOCKER); this catches a
		# skip that did not ask (under valgrind, timing skips stand)
		[ "$kind" = "k8s " ] && tag=k8s
		if [ "${VALGRIND:-0}" != 1 ] && test_skip_fails "$tag"; then
			echo "FAIL $kind $name: $s checks skipped (not allowed: CI or PIPE_REQUIRE): ${why:-no reason given}"
			f=$((f + s)) s=0
		else
			echo "SKIP $name ($s checks): ${why:-no reason given}"
		fi
	fi
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	if [ "$f" != 0 ]; then
		echo "FAIL $kind $name ($p passed, $f failed)"
		failures+=("$name")
		return 1
	fi
	[ "$p" = 0 ] && [ "$s" != 0 ] || echo "ok   $kind $name ($p)"
}

# cmocka prints "[  PASSED  ] N test(s).", "[  FAILED  ] N test(s)" and
# "[  SKIPPED ] N test(s)".
count() { sed -n "s/^\[  $1 *\] \([0-9]*\) test.*/\1/p" "$2" | tail -1; }

for t in "$UNIT_DIR"/test_*; do
	in_group unit || break
	[ -x "$t" ] || continue
	name=$(basename "$t")
	[ -n "$ONLY" ] && [[ $name != *$ONLY* ]] && continue
	need_docker "$name"
	out="$log/$name.out"
	(test_home "$log/home/$name" && exec "${vg[@]}" "$t") >"$out" 2>&1
	rc=$?
	p=$(count PASSED "$out") f=$(count FAILED "$out") s=$(count SKIPPED "$out")
	report unit "$name" "$out" "$rc" "${p:-0}" "${f:-0}" "${s:-0}" ||
		sed 's/^/    /' "$out" | tail -40
done

# scripts KIND DIR: each DIR/t*.sh, which ends with "N passed, N failed,
# N skipped".
scripts() {
	local kind=$1 t name out rc last p f s
	for t in "$2"/t[0-9]*.sh; do
		[ -f "$t" ] || continue
		name=$(basename "$t")
		[ -n "$ONLY" ] && [[ $name != *$ONLY* ]] && continue
		if [ "$kind" = "k8s " ]; then need_k8s; else need_docker "$name"; fi
		out="$log/$name.out"
		bash "$t" >"$out" 2>&1
		rc=$?
		last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
		p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
		f=$(echo "$last" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
		s=$(echo "$last" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
		if [ "${VALGRIND:-0}" = 1 ] && memcheck_found "$name" >>"$out"; then
			echo "not ok - memcheck found errors or leaks (see above)" >>"$out"
			f=$((${f:-0} + 1))
		fi
		report "$kind" "$name" "$out" "$rc" "${p:-0}" "${f:-0}" "${s:-0}" || {
			grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$out" | grep -E -A12 '^not ok|^memcheck' | sed 's/^/    /' | head -"${PIPE_TEST_LINES:-80}"
		}
	done
}

in_group e2e && scripts "e2e " "$E2E_DIR"
in_group k8s && scripts "k8s " "$K8S_DIR"
k8s_down

[ ${#failures[@]} -gt 0 ] && echo "failing: ${failures[*]}"
[ ${#skips[@]} -gt 0 ] && echo "skipped: ${skips[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] && [ $((passed + failed)) -gt 0 ]
