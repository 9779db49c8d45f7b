#!/usr/bin/env bash
# node-ns.sh RUN: the node's (containerd's and kubelet's) own mount
# namespace, pinned at RUN/mntns. Inside it:
#  - the six sysctls kubelet would otherwise rewrite on the host
#    (kernel.panic=10, kernel.panic_on_oops=1, vm.overcommit_memory=1, ...)
#    are covered by files that hold the values it wants, so it writes none;
#  - a tmpfs covers each path kubelet, containerd and libcni hard-code
#    outside their root folders, so nothing of the node stays on the host
#    (only the empty mount points, which down.sh removes).
set -euo pipefail
RUN=$1
grep -q " $RUN/mntns " /proc/self/mountinfo && exit 0
touch "$RUN/mntns"
unshare --mount="$RUN/mntns" --propagation private true
N=(nsenter --mount="$RUN/mntns" --)
mkdir -p "$RUN/sysctl"
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
	kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
	k=${kv%=*}
	f=$RUN/sysctl/${k//\//.}
	echo "${kv#*=}" >"$f"
	"${N[@]}" mount --bind "$f" "/proc/sys/$k"
done
for d in /run/containerd /var/lib/kubelet /var/log/containers /var/lib/cni; do
	[ -d "$d" ] || { mkdir -p "$d" && echo "$d" >>"$RUN/mountpoints"; }
	"${N[@]}" mount -t tmpfs -o mode=0755 pipe-k8s "$d"
done
