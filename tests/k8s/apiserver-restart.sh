#!/usr/bin/env bash
# apiserver-restart.sh [KILL|TERM]: the test cluster's kube-apiserver
# killed (SIGKILL by default: a crash; TERM: a graceful stop) and started
# again with the very command line up.sh gave it (read from /proc before
# the kill), under the same pid file ($PIPE_K8S_RUN/kube-apiserver.pid)
# and log; returns once /readyz answers again (120 s at most). The other
# daemons reconnect by themselves. Prints how long the API was away.
set -uo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
sig=${1:-KILL}
P=$K8S_PKI

readyz() {
	curl -sf --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" \
		"$K8S_SERVER/readyz" >/dev/null
}

pid=$(cat "$PIPE_K8S_RUN/kube-apiserver.pid" 2>/dev/null) || {
	echo "apiserver-restart: no $PIPE_K8S_RUN/kube-apiserver.pid (is the cluster up?)" >&2
	exit 1
}
k8s_alive "$pid" || { echo "apiserver-restart: pid $pid is not running" >&2; exit 1; }
cmd=()
while IFS= read -r -d '' a; do cmd+=("$a"); done <"/proc/$pid/cmdline"
# up.sh runs it through setsid, which execs it (the pid is the apiserver's
# own) unless it had to fork: then the command line still starts with it
[ "$(basename "${cmd[0]:-}")" = setsid ] && cmd=("${cmd[@]:1}")
case $(basename "${cmd[0]:-}") in
kube-apiserver) ;;
*)
	echo "apiserver-restart: pid $pid is not kube-apiserver: ${cmd[*]:0:1}" >&2
	exit 1
	;;
esac

t0=$(date +%s.%N)
# from the kill on, the apiserver is started again whatever happens: a
# Ctrl-C of the test must not leave the shared cluster without it
trap '' INT TERM HUP
kill "-$sig" "$pid" || exit 1
for ((i = 0; i < 120; i++)); do # 30 s
	k8s_alive "$pid" || break
	sleep 0.25
done
k8s_alive "$pid" && { kill -9 "$pid"; sleep 0.5; }
for ((i = 0; i < 80; i++)); do # the port, 20 s
	k8s_port_free 6443 && break
	sleep 0.25
done
k8s_port_free 6443 || { echo "apiserver-restart: 127.0.0.1:6443 still taken" >&2; exit 1; }
echo "--- restarted by apiserver-restart.sh (SIG$sig) at $(date -u +%FT%TZ)" >>"$K8S_LOG/kube-apiserver.log"
k8s_start kube-apiserver "${cmd[@]}"
k8s_wait 120 "the apiserver to answer /readyz again" readyz || exit 1
awk -v a="$t0" -v b="$(date +%s.%N)" -v p="$(cat "$PIPE_K8S_RUN/kube-apiserver.pid")" \
	'BEGIN { printf "apiserver-restart: away %.1fs; new pid %s\n", b - a, p }'
