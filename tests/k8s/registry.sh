#!/usr/bin/env bash
# registry.sh up|down|env|push IMAGE: a real image registry (distribution's
# `registry`, built by build.sh) on http://127.0.0.1:5000, usable without
# the cluster (cluster.sh up starts it too, and down stops it). Its state
# (config, pid, the filesystem storage) is in $PIPE_K8S_REGISTRY_RUN
# ($PIPE_K8S_CACHE/registry), removed by down. Docker treats 127.0.0.0/8
# as an insecure registry by default: no daemon configuration is needed.
#   up          builds the binary when missing, starts it (kept when it
#               already answers), waits until /v2/ answers
#   down        stops it and removes its state
#   env         export lines: PIPE_TEST_REGISTRY=127.0.0.1:5000
#   push IMAGE  tags the local Docker image IMAGE as 127.0.0.1:5000/IMAGE,
#               pushes it, and prints 127.0.0.1:5000/NAME@sha256:DIGEST
set -uo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
export PIPE_K8S_REGISTRY_RUN=${PIPE_K8S_REGISTRY_RUN:-$PIPE_K8S_CACHE/registry}
R=$PIPE_K8S_REGISTRY_RUN

answers() { curl -sf -o /dev/null "http://$K8S_REGISTRY/v2/"; }

ours() {
	local pid
	pid=$(cat "$R/registry.pid" 2>/dev/null) && k8s_alive "$pid"
}

up() {
	if ours && answers; then
		return 0
	fi
	down >/dev/null
	k8s_port_free 5000 || {
		echo "registry: 127.0.0.1:5000 is taken by another program" >&2
		return 1
	}
	"$k8s_here/build.sh" registry || return 1
	mkdir -p "$R/data" "$K8S_LOG"
	cat >"$R/config.yml" <<EOC
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $R/data}
  delete: {enabled: true}
http:
  addr: $K8S_REGISTRY
  secret: pipe-k8s-test
EOC
	# its pid file sits beside the cluster's: k8s_start writes there
	PIPE_K8S_RUN=$R k8s_start registry "$K8S_BIN/registry" serve "$R/config.yml"
	k8s_wait 30 "the registry on $K8S_REGISTRY" answers
}

down() {
	PIPE_K8S_RUN=$R k8s_stop registry
	rm -rf "$R"
	echo "registry: down"
}

# push IMAGE: the image's pullable reference by digest on stdout.
push() {
	local img=${1:?usage: registry.sh push IMAGE} ref digest
	ref=$K8S_REGISTRY/${img#"$K8S_REGISTRY"/}
	docker tag "$img" "$ref" && docker push -q "$ref" >/dev/null || return 1
	digest=$(curl -sfI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$K8S_REGISTRY/v2/$(name "$ref")/manifests/$(tag "$ref")" |
		tr -d '\r' | sed -n 's/^docker-content-digest: *//Ip')
	[ -n "$digest" ] || { echo "registry: no digest for $ref" >&2; return 1; }
	echo "$K8S_REGISTRY/$(name "$ref")@$digest"
}

# name REF, tag REF: the repository (without the registry) and the tag.
name() {
	local r=${1#"$K8S_REGISTRY"/}
	echo "${r%:*}"
}
tag() {
	local r=${1##*/}
	case $r in *:*) echo "${r##*:}" ;; *) echo latest ;; esac
}

case ${1:-} in
up) up ;;
down) down ;;
env) echo "export PIPE_TEST_REGISTRY=$K8S_REGISTRY" ;;
push) push "${2:-}" ;;
*)
	echo "usage: registry.sh up|down|env|push IMAGE" >&2
	exit 2
	;;
esac
