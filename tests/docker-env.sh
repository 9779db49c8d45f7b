#!/usr/bin/env bash
# Makes sure a Docker daemon answers and the test image pipe-test/busybox:1
# exists; sourced by tests/run.sh (once, before the first docker test),
# the docker tests and CI, or run (exit 0 when ready).
# When `docker info` fails, installs Debian's docker.io (apt-get) and starts
# dockerd in the background (log: $PIPE_DOCKERD_LOG), waiting at most
# $PIPE_DOCKER_WAIT seconds (60) for it to answer, and not at all once it
# has exited. The image is built FROM scratch from Debian's busybox-static,
# its applets linked in /bin: no registry is needed. Sets DOCKER_READY=1
# (else 0, with DOCKER_WHY) and exports both: a later test in the same run
# that finds DOCKER_WHY set does not try again. PIPE_SKIP=docker: no try.

if [ "${DOCKER_READY:-}" = 0 ] && [ -n "${DOCKER_WHY:-}" ]; then
	_denv_known=1 # an earlier test of this run found no daemon
else
	_denv_known=0
	DOCKER_READY=0
	DOCKER_WHY=
fi
PIPE_TEST_IMAGE=pipe-test/busybox:1
_denv_log=${PIPE_DOCKERD_LOG:-${TMPDIR:-/tmp}/pipe-dockerd.log}
_denv_pidfile=${PIPE_DOCKERD_PIDFILE:-/var/run/docker.pid} # another for tests

_denv_sudo() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		return 1
	fi
}

_denv_apt() {
	_denv_sudo apt-get update -qq >/dev/null 2>&1
	_denv_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "$@" >/dev/null 2>&1
}

_denv_answers() {
	# the default socket: a DOCKER_HOST of the caller's is left alone
	timeout 10 docker info >/dev/null 2>&1
}

# _denv_alive PID: the process runs (and is not a zombie); /proc, not
# pgrep, which a minimal Debian lacks.
_denv_alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# _denv_other: a dockerd started by someone else runs (its pid file).
_denv_other() {
	local pid
	pid=$(cat "$_denv_pidfile" 2>/dev/null) || return 1
	[ -n "$pid" ] && _denv_alive "$pid"
}

# _denv_last_error: why dockerd stopped, from its log (its last error).
_denv_last_error() {
	local l
	l=$(grep -E 'failed to start daemon|level=(fatal|error)' "$_denv_log" 2>/dev/null | tail -n 1)
	[ -n "$l" ] || l=$(grep . "$_denv_log" 2>/dev/null | tail -n 1)
	echo "${l:0:400}"
}

_denv_daemon() {
	local i pid=
	_denv_answers && return 0
	if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
		_denv_apt docker.io || { DOCKER_WHY="cannot install docker.io"; return 1; }
	fi
	getent group docker >/dev/null 2>&1 || _denv_sudo groupadd -r docker 2>/dev/null
	if ! _denv_other; then
		# setsid: the daemon outlives the test that started it
		_denv_sudo setsid dockerd --group docker >"$_denv_log" 2>&1 </dev/null &
		pid=$!
	fi
	for ((i = 0; i < ${PIPE_DOCKER_WAIT:-60} * 10; i++)); do
		_denv_answers && return 0
		# ours died (another dockerd may have won the pid file: wait for it)
		if [ -n "$pid" ] && ! _denv_alive "$pid" && ! _denv_other; then
			DOCKER_WHY="dockerd exited: $(_denv_last_error) (log: $_denv_log)"
			return 1
		fi
		sleep 0.1
	done
	DOCKER_WHY="dockerd did not answer within ${PIPE_DOCKER_WAIT:-60}s (log: $_denv_log)"
	return 1
}

_denv_busybox() {
	# busybox-static, not the dynamic busybox: it must run FROM scratch
	if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
		_denv_apt busybox-static || { DOCKER_WHY="cannot install busybox-static"; return 1; }
	fi
	[ -x /bin/busybox ] || { DOCKER_WHY="no /bin/busybox"; return 1; }
}

# pipe_test_build_image TAG [LABEL]: the busybox image under TAG; a label
# value makes a different image id.
pipe_test_build_image() {
	local tag=$1 label=${2:-} ctx a rc
	ctx=$(mktemp -d "${TMPDIR:-/tmp}/pipe-image.XXXXXX") || return 1
	mkdir -p "$ctx/bin"
	cp /bin/busybox "$ctx/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$ctx/bin/$a"
	done
	{
		echo "FROM scratch"
		echo "COPY bin/ /bin/"
		echo "ENV PATH=/bin"
		[ -n "$label" ] && echo "LABEL pipe.test=\"$label\""
	} >"$ctx/Dockerfile"
	DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >"$ctx/build.log" 2>&1
	rc=$?
	[ "$rc" = 0 ] || cat "$ctx/build.log" >&2
	rm -rf "$ctx"
	return "$rc"
}

_denv_image() {
	docker image inspect "$PIPE_TEST_IMAGE" >/dev/null 2>&1 && return 0
	pipe_test_build_image "$PIPE_TEST_IMAGE" ||
		{ DOCKER_WHY="cannot build $PIPE_TEST_IMAGE"; return 1; }
}

if [ "$_denv_known" = 1 ]; then
	:
elif [ "${PIPE_SKIP:-}" = docker ]; then
	DOCKER_WHY="PIPE_SKIP=docker"
elif _denv_daemon && _denv_busybox && _denv_image; then
	DOCKER_READY=1
fi
export PIPE_TEST_IMAGE DOCKER_READY DOCKER_WHY

# Run rather than sourced: say why, and exit with the outcome.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	[ "$DOCKER_READY" = 1 ] || { echo "docker-env: $DOCKER_WHY" >&2; exit 1; }
	exit 0
fi
