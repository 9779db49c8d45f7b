#!/usr/bin/env bash
# down.sh: stops what up.sh started and leaves nothing behind (run by
# `cluster.sh down`; safe to run when nothing is up): the daemons by their
# pid files, every shim and container by its membership of the /pipe-k8s
# cgroup, then the cgroups, the node's mount namespace, the mount points it
# created, the CNI bridge, the registry and $PIPE_K8S_RUN. The logs stay
# in $PIPE_K8S_CACHE/log.
set -uo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
RUN=$PIPE_K8S_RUN

k8s_stop kubelet
k8s_stop containerd
for pass in 1 2 3 4 5; do # pause and job containers, containerd-shim-runc-v2
	pids=$(find "/sys/fs/cgroup/pids/$K8S_CG" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
	[ -z "$pids" ] && break
	# shellcheck disable=SC2086 # one pid a word
	kill -9 $pids 2>/dev/null
	sleep "0.$pass"
done
for d in /sys/fs/cgroup/*/"$K8S_CG"; do
	[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
done
k8s_stop kube-scheduler kube-controller-manager kube-apiserver etcd
grep -q " $RUN/mntns " /proc/self/mountinfo && umount "$RUN/mntns"
# the mount points node-ns.sh made (empty on the host)
while read -r d; do rmdir "$d" 2>/dev/null; done 2>/dev/null <"$RUN/mountpoints"
ip link del "$K8S_BRIDGE" 2>/dev/null
"$k8s_here/registry.sh" down >/dev/null
rm -rf "$RUN"
cgs=$(ls -d /sys/fs/cgroup/*/"$K8S_CG" 2>/dev/null)
[ -z "$cgs" ] || { echo "k8s: down: cgroups left: $cgs" >&2; exit 1; }
echo "k8s: down"
