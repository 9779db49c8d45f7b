# shellcheck shell=bash disable=SC2034 # the names are for the scripts that source it
# What every script of tests/k8s shares (bash; sourced): where the test
# cluster keeps its binaries and its state, its addresses, and small
# helpers. Binaries live outside the checkout, in
#   $PIPE_K8S_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/pipe-k8s)/bin
# and the state of a running cluster in $PIPE_K8S_RUN ($PIPE_K8S_CACHE/run),
# which `cluster.sh down` removes; daemon logs stay in $PIPE_K8S_CACHE/log.

k8s_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PIPE_K8S_CACHE=${PIPE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pipe-k8s}
export PIPE_K8S_RUN=${PIPE_K8S_RUN:-$PIPE_K8S_CACHE/run}
K8S_BIN=$PIPE_K8S_CACHE/bin
K8S_LOG=$PIPE_K8S_CACHE/log
K8S_PKI=$PIPE_K8S_RUN/pki
K8S_SERVER=https://127.0.0.1:6443
K8S_REGISTRY=127.0.0.1:5000
K8S_NODE=localhost # the apiserver reaches the kubelet by this Hostname
K8S_CG=${PIPE_K8S_CGROUP:-pipe-k8s} # cgroup parent, in every v1 hierarchy
K8S_BRIDGE=pipek8s0
PATH=$PATH:/usr/local/go/bin

# k8s_apt PKG...: installs the Debian packages not installed yet (the
# cluster needs root anyway).
k8s_apt() {
	local p missing=()
	for p; do
		dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null |
			grep -qx installed || missing+=("$p")
	done
	[ ${#missing[@]} = 0 ] && return 0
	echo "k8s: installing ${missing[*]}" >&2
	apt-get update -qq >/dev/null 2>&1
	env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
		{ echo "k8s: cannot install ${missing[*]}" >&2; return 1; }
}

# k8s_go_ok: a Go toolchain of at least 1.24 is on PATH (or in
# /usr/local/go/bin); else says so on stderr. (etcd 3.5.36 wants Go 1.26:
# an older go fetches that toolchain from the module proxy, GOTOOLCHAIN=auto.)
k8s_go_ok() {
	local v
	v=$(go env GOVERSION 2>/dev/null) || {
		echo "no Go toolchain (Go >= 1.24 is needed to build the cluster, e.g. in /usr/local/go)" >&2
		return 1
	}
	v=${v#go}
	case $v in
	1.2[4-9]* | 1.[3-9][0-9]* | [2-9].*) return 0 ;;
	esac
	echo "Go $v is too old (Go >= 1.24 is needed to build the cluster)" >&2
	return 1
}

# k8s_alive PID: the process runs (the daemons are orphans: init reaps
# them, no zombie stays).
k8s_alive() { kill -0 "$1" 2>/dev/null; }

# k8s_start NAME CMD...: CMD in the background, in its own session, its
# output in $K8S_LOG/NAME.log and its pid in $PIPE_K8S_RUN/NAME.pid; it
# does not inherit cluster.sh's lock (fd 9).
k8s_start() {
	local n=$1
	shift
	setsid "$@" >>"$K8S_LOG/$n.log" 2>&1 </dev/null 9>&- &
	echo $! >"$PIPE_K8S_RUN/$n.pid"
}

# k8s_stop NAME...: SIGTERM to their pids at once, SIGKILL to what is left
# after 10 s; their pid files are removed.
k8s_stop() {
	local n p i ps=() left
	for n; do
		p=$(cat "$PIPE_K8S_RUN/$n.pid" 2>/dev/null) && ps+=("$p")
		rm -f "$PIPE_K8S_RUN/$n.pid"
	done
	[ ${#ps[@]} = 0 ] && return 0
	kill "${ps[@]}" 2>/dev/null
	for ((i = 0; i < 40; i++)); do
		left=()
		for p in "${ps[@]}"; do k8s_alive "$p" && left+=("$p"); done
		[ ${#left[@]} = 0 ] && return 0
		sleep 0.25
	done
	kill -9 "${left[@]}" 2>/dev/null
}

# k8s_wait SECONDS WHAT CMD...: until CMD succeeds; a timeout says WHAT.
k8s_wait() {
	local s=$1 what=$2 i
	shift 2
	for ((i = 0; i < s * 4; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.25
	done
	echo "k8s: timeout after ${s}s waiting for $what (logs: $K8S_LOG)" >&2
	return 1
}

# k8s_port_free PORT: nothing listens on 127.0.0.1:PORT.
k8s_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
