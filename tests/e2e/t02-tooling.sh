#!/usr/bin/env bash
# The tools around the tests and the build: tests/run.sh counts and prints
# skipped groups and fails them where skips are not allowed, and a test's
# plan must match what ran; tests/docker-env.sh gives up at once when
# dockerd exits; mk/config.sh writes build/config.mk only when every probe
# answered, and replaces it only when an answer changed.
. "$(dirname "$0")/lib.sh"

# --- tests/run.sh over a folder of made-up tests ---
new_ws
mkdir e2e unit
cat >e2e/t01-fine.sh <<EOF
. "$root/tests/e2e/lib.sh"
expect_eq "one" 1 1
finish
EOF
cat >e2e/t02-skips.sh <<EOF
. "$root/tests/e2e/lib.sh"
plan 3
expect_eq "runs before the skip" 1 1
skip_all docker "no Docker daemon: made up"
EOF
runner() {
	E2E_DIR=$PWD/e2e UNIT_DIR=$PWD/unit K8S_DIR=$PWD/k8s run env -u CI -u PIPE_REQUIRE \
		-u VALGRIND -u ONLY -u K8S -u PIPE_SKIP -u PIPE_GROUPS "$@" bash "$root/tests/run.sh"
}
runner
expect_rc "a skip outside CI passes" 0
expect_in "the skipped group is named with its count and reason" "$out" \
	"SKIP t02-skips.sh (2 checks): no Docker daemon: made up"
expect_in "the closing line counts the skipped checks" "$out" "2 passed, 0 failed, 2 skipped"
runner CI=true
expect_rc "a skip in CI fails" 1
expect_in "and says why" "$out" "not ok - 2 checks skipped, not allowed here: no Docker daemon: made up"
expect_in "the skipped checks count as failed" "$out" "2 passed, 2 failed, 0 skipped"
runner CI=false PIPE_REQUIRE=docker
expect_rc "PIPE_REQUIRE=docker: a skip fails" 1
sed -i 's/plan 3/plan 4/' e2e/t02-skips.sh
sed -i 's/skip_all docker .*/finish/' e2e/t02-skips.sh
runner
expect_rc "a plan that does not match fails" 1
expect_in "it names the plan" "$out" "not ok - plan: 4 checks"

# --- tests/run.sh's Kubernetes group, with a cluster.sh that cannot run ---
new_ws
mkdir e2e unit k8s
printf '. "%s/tests/e2e/lib.sh"\nexpect_eq one 1 1\nfinish\n' "$root" >e2e/t01-fine.sh
# shellcheck disable=SC2016 # $1 is the fake script's
printf '#!/bin/sh\n[ "$1" = check ] && echo made up && exit 1\necho "$1" >>%s/calls\n' "$PWD" >k8s/cluster.sh
cat >k8s/t00-fake.sh <<EOF
. "$root/tests/e2e/lib.sh"
plan 2
[ "\$PIPE_K8S_READY" = 1 ] || skip_all k8s "\$PIPE_K8S_WHY"
EOF
runner
expect_rc "k8s: a cluster that cannot run here is a skip outside CI" 0
expect_in "k8s: the group is skipped with the reason" "$out" \
	"SKIP t00-fake.sh (2 checks): no test cluster here: made up"
expect_eq "k8s: nothing was brought up" "$(cat calls 2>/dev/null)" ""
runner CI=true
expect_in "k8s: in CI the skip fails" "$out" "1 passed, 2 failed, 0 skipped"
runner PIPE_SKIP=k8s
expect_not_in "k8s: PIPE_SKIP=k8s leaves the group out" "$out" t00-fake
runner K8S=0
expect_not_in "k8s: so does K8S=0" "$out" t00-fake

# --- tests/docker-env.sh when dockerd dies at once ---
# (it starts dockerd through sudo when not root: the fake one needs root)
new_ws
if [ "$(id -u)" != 0 ]; then
	skip 5 root "docker-env.sh with a fake dockerd: not root"
else
	mkdir bin
	printf '#!/bin/sh\nexit 1\n' >bin/docker
	printf '#!/bin/sh\necho "level=info msg=starting"\necho "failed to start daemon: made up"\necho " (exit status 4)"\nexit 4\n' >bin/dockerd
	chmod +x bin/docker bin/dockerd
	t0=$(date +%s)
	run env -u DOCKER_READY -u DOCKER_WHY PATH="$PWD/bin:$PATH" PIPE_DOCKER_WAIT=60 \
		PIPE_DOCKERD_LOG="$PWD/dockerd.log" PIPE_DOCKERD_PIDFILE="$PWD/none.pid" \
		bash "$root/tests/docker-env.sh"
	expect_rc "a dead dockerd: not ready" 1
	expect_eq "it stops waiting at once" "$(($(date +%s) - t0 < 10))" 1
	expect_in "it gives dockerd's error" "$err" "dockerd exited: failed to start daemon: made up (log: $PWD/dockerd.log)"
	run env DOCKER_READY=0 DOCKER_WHY="found before" PATH="$PWD/bin:$PATH" \
		PIPE_DOCKERD_LOG="$PWD/again.log" bash "$root/tests/docker-env.sh"
	expect_in "a later test of the run does not try again" "$err" "found before"
	expect_eq "nor starts dockerd" "$(test -e again.log && echo started || echo no)" no
fi

# --- mk/config.sh ---
new_ws
cfg() { run env MAKE=true PKGS="$1" LINK_PKGS=yaml-0.1 sh "$root/mk/config.sh" config.mk; }
cfg yaml-0.1
expect_rc "config: every probe answers" 0
expect_in "config: the libgit2 soname" "$(cat config.mk)" "GIT2_SONAME := libgit2.so."
expect_in "config: the libcurl soname" "$(cat config.mk)" "CURL_SONAME := libcurl.so."
before=$(stat -c %Y.%y config.mk)
sleep 1
cfg yaml-0.1
expect_eq "config: the same answers leave the file alone" "$(stat -c %Y.%y config.mk)" "$before"
sed -i 's/^GIT2_SONAME := .*/GIT2_SONAME := /' config.mk
cfg yaml-0.1
expect_in "config: an answer that changed rewrites it" "$(cat config.mk)" "GIT2_SONAME := libgit2.so."
cp config.mk good.mk
cfg "yaml-0.1 no-such-package"
expect_rc "config: a probe that fails is an error" 1
expect_in "config: which one" "$err" "no-such-package"
expect_eq "config: and the file is left as it was" "$(cmp config.mk good.mk && echo same)" same
rm config.mk
cfg "yaml-0.1 no-such-package"
expect_eq "config: no file rather than a partial one" "$(ls config.mk* 2>/dev/null)" ""

finish
