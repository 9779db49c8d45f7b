#!/usr/bin/env bash
# cluster.sh build|up|down|env|push IMAGE: the real single-node Kubernetes
# (v1.34.4, etcd 3.5.36, built from Go modules) and image registry the
# Kubernetes tests run against; everything on 127.0.0.1.
#   build       the binaries into $PIPE_K8S_CACHE/bin (build.sh; about 12
#               minutes the first time, seconds once they are there)
#   up          installs missing Debian packages, builds, starts it all and
#               waits until pods can be created (up.sh; about 12 s)
#   down        stops it all and removes its state (down.sh)
#   env         export lines for a test: KUBECONFIG (the admin's client
#               certificate), PIPE_K8S_CA, PIPE_K8S_CERT, PIPE_K8S_KEY,
#               PIPE_K8S_TOKEN_FILE, PIPE_K8S_SERVER, PIPE_TEST_REGISTRY,
#               PIPE_K8S_KUBECTL (kubectl, for debugging)
#   push IMAGE  tags and pushes a local Docker image to the registry and
#               prints its reference by digest (registry.sh push)
#   check       why the cluster cannot run here (exit 1), or nothing
# Needs root, cgroup v1 and Go >= 1.24 (/usr/local/go is found). Env:
# PIPE_K8S_CACHE (binaries, logs), PIPE_K8S_RUN (state), PIPE_K8S_IMAGES,
# PIPE_K8S_USER (the pid of a test run sharing the cluster: see lock).
set -uo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

check() {
	[ "$(id -u)" = 0 ] || { echo "not root (the node needs cgroups and mounts)"; return 1; }
	[ -d /sys/fs/cgroup/pids ] || { echo "no cgroup v1 hierarchies under /sys/fs/cgroup"; return 1; }
	k8s_go_ok 2>&1 || return 1
}

# Checkouts on one machine share the cache, the run folder and the ports:
# one up or down at a time, and a run that brought the cluster up
# (PIPE_K8S_USER, its pid) takes it down only when no other such run lives.
# The daemons do not hold the lock (common.sh: k8s_start).
lock() {
	mkdir -p "$PIPE_K8S_CACHE"
	exec 9>"$PIPE_K8S_CACHE/lock"
	flock 9
}
users=$PIPE_K8S_RUN/users

# others: the live runs, other than PIPE_K8S_USER, using the cluster.
others() {
	local f p
	for f in "$users"/*; do
		p=${f##*/}
		[ -f "$f" ] || continue
		[ "$p" != "${PIPE_K8S_USER:-}" ] || continue
		if k8s_alive "$p"; then echo "$p"; else rm -f "$f"; fi
	done
}

case ${1:-} in
build) "$k8s_here/build.sh" ;;
up)
	why=$(check) || { echo "k8s: cannot run here: $why" >&2; exit 1; }
	k8s_apt containerd runc containernetworking-plugins openssl gcc libc6-dev \
		curl iproute2 python3 || exit 1
	lock
	"$k8s_here/build.sh" && "$k8s_here/up.sh" || exit 1
	[ -z "${PIPE_K8S_USER:-}" ] || { mkdir -p "$users" && touch "$users/$PIPE_K8S_USER"; }
	;;
down)
	lock
	if [ -n "${PIPE_K8S_USER:-}" ]; then
		rm -f "$users/$PIPE_K8S_USER"
		o=$(others | tr '\n' ' ')
		[ -z "$o" ] || { echo "k8s: left up: other runs use it (pids ${o% })"; exit 0; }
	fi
	"$k8s_here/down.sh"
	;;
env)
	printf 'export %s=%q\n' KUBECONFIG "$K8S_PKI/admin.kubeconfig" \
		PIPE_K8S_CA "$K8S_PKI/ca.crt" PIPE_K8S_CERT "$K8S_PKI/admin.crt" \
		PIPE_K8S_KEY "$K8S_PKI/admin.key" PIPE_K8S_TOKEN_FILE "$K8S_PKI/token" \
		PIPE_K8S_SERVER "$K8S_SERVER" PIPE_TEST_REGISTRY "$K8S_REGISTRY" \
		PIPE_K8S_KUBECTL "$K8S_BIN/kubectl"
	;;
push) "$k8s_here/registry.sh" push "${2:-}" ;;
check) check ;;
*)
	echo "usage: cluster.sh build|up|down|env|push IMAGE|check" >&2
	exit 2
	;;
esac
