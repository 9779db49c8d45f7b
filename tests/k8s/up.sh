#!/usr/bin/env bash
# up.sh: a single-node Kubernetes on 127.0.0.1 that really runs pods (run
# by `cluster.sh up`): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, and a node made of a private containerd (not Docker's)
# and a kubelet, plus the image registry (registry.sh). Root and cgroup v1
# (the cgroupfs driver). The node runs in its own mount namespace
# (node-ns.sh) and under the cgroup parent /pipe-k8s, so down.sh finds and
# removes all of it. State left by a run that crashed is taken down first;
# a cluster that is up and answers is kept. Env: PIPE_K8S_IMAGES, the
# local Docker images pushed to the registry (pipe-test/busybox:1 when it
# exists).
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
RUN=$PIPE_K8S_RUN P=$K8S_PKI
CTR=(ctr --address "$RUN/containerd/containerd.sock" -n k8s.io)
t0=$(date +%s.%N)
trap 'echo "k8s: up.sh failed at line $LINENO (logs: $K8S_LOG)" >&2' ERR

say() {
	awk -v a="$t0" -v b="$(date +%s.%N)" -v m="$*" \
		'BEGIN { printf "k8s: [up %5.1fs] %s\n", b - a, m }' >&2
}

api() {
	curl -sf --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" "$K8S_SERVER$1"
}

# alive NAME...: each daemon's pid file names a live process.
alive() {
	local n p
	for n; do
		p=$(cat "$RUN/$n.pid" 2>/dev/null) && k8s_alive "$p" || return 1
	done
}

daemons=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)
if [ -f "$RUN/up" ] && alive "${daemons[@]}" && api /readyz >/dev/null; then
	"$k8s_here/registry.sh" up
	say "already up"
	exit 0
fi
[ -e "$RUN" ] && { say "taking down what a previous run left"; "$k8s_here/down.sh" >/dev/null; }
for port in 2379 2380 6443 10248 10250 10257 10259; do
	k8s_port_free "$port" || {
		echo "k8s: 127.0.0.1:$port is taken by another program" >&2
		exit 1
	}
done
rm -rf "$K8S_LOG"
mkdir -p "$RUN/conf/cni" "$K8S_LOG"
for f in containerd.toml kubelet.yaml cni/10-pipe-k8s.conflist; do
	sed "s|@RUN@|$RUN|g; s|@CG@|$K8S_CG|g" "$k8s_here/conf/$f" >"$RUN/conf/$f"
done
"$k8s_here/pki.sh" "$P" "$K8S_NODE"
"$k8s_here/registry.sh" up

k8s_start etcd "$K8S_BIN/etcd" --name pipe-k8s --data-dir "$RUN/etcd" \
	--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster pipe-k8s=http://127.0.0.1:2380
k8s_wait 30 "etcd" curl -sf http://127.0.0.1:2379/health
say "etcd healthy"

# --endpoint-reconciler-type=none: an Endpoints object may not hold a
# loopback address, and nothing here uses the kubernetes Service.
# --kubelet-preferred-address-types=Hostname: the apiserver reaches the
# kubelet as "localhost" (it listens on 127.0.0.1 only).
k8s_start kube-apiserver "$K8S_BIN/kube-apiserver" \
	--etcd-servers=http://127.0.0.1:2379 \
	--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
	--endpoint-reconciler-type=none --service-cluster-ip-range=10.0.0.0/24 \
	--tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
	--client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
	--kubelet-client-certificate="$P/apiserver-kubelet-client.crt" \
	--kubelet-client-key="$P/apiserver-kubelet-client.key" \
	--kubelet-preferred-address-types=Hostname,InternalIP \
	--service-account-issuer=https://kubernetes.default.svc.cluster.local \
	--service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
	--authorization-mode=Node,RBAC --allow-privileged=true --profiling=false
k8s_wait 120 "the apiserver" api /readyz
say "apiserver ready"

k8s_start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
	--kubeconfig="$P/controller-manager.kubeconfig" \
	--authentication-kubeconfig="$P/controller-manager.kubeconfig" \
	--authorization-kubeconfig="$P/controller-manager.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
	--service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
	--cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" --profiling=false
k8s_start kube-scheduler "$K8S_BIN/kube-scheduler" \
	--kubeconfig="$P/scheduler.kubeconfig" \
	--authentication-kubeconfig="$P/scheduler.kubeconfig" \
	--authorization-kubeconfig="$P/scheduler.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false --profiling=false

# The node's cgroup parent, in every v1 hierarchy (kubelet checks the
# name=systemd one too); cpuset needs its cpus and mems before a task joins.
for d in /sys/fs/cgroup/*/; do
	[ -f "$d/cgroup.procs" ] || continue
	[ "$d" != /sys/fs/cgroup/unified/ ] || continue
	mkdir -p "$d$K8S_CG/daemons"
	[ -f "$d/cpuset.cpus" ] || continue
	for c in "$K8S_CG" "$K8S_CG/daemons"; do
		cat "$d/cpuset.cpus" >"$d$c/cpuset.cpus"
		cat "$d/cpuset.mems" >"$d$c/cpuset.mems"
	done
done
"$k8s_here/node-ns.sh" "$RUN"
mkdir -p "$RUN/containerd" "$RUN/kubelet" "$RUN/pod-logs"
# node CMD...: CMD in the node's cgroup (every shim and container it starts
# inherits it) and mount namespace
node() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	k8s_start "$1" bash -c 'for d in /sys/fs/cgroup/*/'"$K8S_CG"'/daemons; do echo $$ >"$d/cgroup.procs"; done
		exec nsenter --mount="$0" -- "$@"' "$RUN/mntns" "${@:2}"
}
node containerd containerd --config "$RUN/conf/containerd.toml"
k8s_wait 30 "containerd" "${CTR[@]}" version
# the pause (sandbox) image: a static C program in a one-layer image
pause=$PIPE_K8S_CACHE/pause.tar
if [ ! -s "$pause" ] || [ "$k8s_here/pause.c" -nt "$pause" ]; then
	rm -rf "$PIPE_K8S_CACHE/pause-root"
	mkdir -p "$PIPE_K8S_CACHE/pause-root"
	gcc -Os -static -s -o "$PIPE_K8S_CACHE/pause-root/pause" "$k8s_here/pause.c"
	"$k8s_here/mkimage.sh" docker.io/pipe-k8s/pause:1 "$PIPE_K8S_CACHE/pause-root" "$pause" /pause
fi
"${CTR[@]}" images import "$pause" >/dev/null
node kubelet "$K8S_BIN/kubelet" \
	--config="$RUN/conf/kubelet.yaml" --kubeconfig="$P/kubelet.kubeconfig" \
	--root-dir="$RUN/kubelet" --cert-dir="$RUN/kubelet/pki" --hostname-override="$K8S_NODE" --v=1

for img in ${PIPE_K8S_IMAGES-pipe-test/busybox:1}; do
	docker image inspect "$img" >/dev/null 2>&1 || continue
	"$k8s_here/registry.sh" push "$img" >/dev/null
	say "pushed $img to $K8S_REGISTRY"
done

node_ready() {
	alive kubelet || return 0 # it died: stop waiting
	api "/api/v1/nodes/$K8S_NODE" | python3 -c 'import json, sys
c = json.load(sys.stdin)["status"]["conditions"]
sys.exit(not any(x["type"] == "Ready" and x["status"] == "True" for x in c))'
}
k8s_wait 180 "the node to be Ready" node_ready
alive kubelet || {
	echo "k8s: kubelet exited:" >&2
	grep -m3 '^[EF]' "$K8S_LOG/kubelet.log" >&2
	exit 1
}
say "node Ready"
# pods can be created once the namespace's default ServiceAccount exists
k8s_wait 60 "the default service account" api /api/v1/namespaces/default/serviceaccounts/default
alive "${daemons[@]}" || { echo "k8s: a daemon exited (logs: $K8S_LOG)" >&2; exit 1; }
touch "$RUN/up"
say "cluster up"
