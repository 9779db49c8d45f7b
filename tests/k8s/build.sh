#!/usr/bin/env bash
# build.sh [cluster|registry]...: builds the test cluster's binaries into
# $PIPE_K8S_CACHE/bin (common.sh): etcd and kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kubectl from the
# wrapper modules in gomod/ (go.mod and go.sum committed: only the Go
# module proxy is needed), and distribution's registry (both by default). A
# binary that already reports the wanted version is kept. Go's own caches
# stay where Go keeps them, so a rebuild after a version change is
# incremental. Cold (empty Go caches), about 12 minutes on 2 cores.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
k8s_go_ok
REGISTRY_VERSION=v3.1.2
export GOFLAGS=-buildvcs=false CGO_ENABLED=0
what=${*:-cluster registry}
V=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print substr($3, 2) }' "$k8s_here/gomod/k8s/go.mod")
E=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print substr($2, 2) }' "$k8s_here/gomod/etcd/go.mod")
src=$PIPE_K8S_CACHE/src
mkdir -p "$K8S_BIN" "$src"

# build NAME MODULE PACKAGE LDFLAGS: one binary, from a copy of the module.
build() {
	local s=$SECONDS
	rm -rf "${src:?}/$2" && cp -r "$k8s_here/gomod/$2" "$src/$2"
	(cd "$src/$2" && nice -n 10 go build -trimpath -ldflags "$4" -o "$K8S_BIN/$1.new" "$3")
	mv "$K8S_BIN/$1.new" "$K8S_BIN/$1"
	echo "k8s: built $1 in $((SECONDS - s))s" >&2
}

# version NAME: what the binary says its version is (captured whole: a
# `| grep -q` under pipefail can SIGPIPE the writer and fake a mismatch).
version() {
	case $1 in
	kubectl) "$K8S_BIN/kubectl" version --client ;;
	registry) go version -m "$K8S_BIN/registry" ;;
	*) "$K8S_BIN/$1" --version ;;
	esac 2>/dev/null
}

cluster() {
	[[ "$(version etcd)" == *"Version: $E"* ]] ||
		build etcd etcd go.etcd.io/etcd/server/v3 "-s -w"
	local ld="-s -w" p n minor=${V#*.}
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $p.gitVersion=v$V -X $p.gitMajor=${V%%.*}"
		ld="$ld -X $p.gitMinor=${minor%%.*} -X $p.gitTreeState=clean"
	done
	for n in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
		[[ "$(version "$n")" == *"v$V"* ]] || build "$n" k8s "k8s.io/kubernetes/cmd/$n" "$ld"
	done
}

registry() {
	local s=$SECONDS
	# `go version -m`: "mod<TAB>MODULE<TAB>VERSION<TAB>SUM"
	[[ "$(version registry)" == *"distribution/v3"$'\t'"$REGISTRY_VERSION"* ]] && return
	GOBIN=$K8S_BIN nice -n 10 go install -trimpath -ldflags "-s -w" \
		"github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
	echo "k8s: built registry in $((SECONDS - s))s" >&2
}

for w in $what; do
	case $w in
	cluster | registry) "$w" ;;
	*) echo "usage: build.sh [cluster|registry]..." >&2; exit 2 ;;
	esac
done
