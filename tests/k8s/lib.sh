# shellcheck shell=bash
# Shared helpers for the Kubernetes tests (sourced): everything of
# tests/e2e/lib.sh (ok, not_ok, run, expect_*, plan, skip, finish, a temp
# workspace and its own HOME), the test cluster's address and credentials
# (cluster.sh env: KUBECONFIG, PIPE_K8S_CA, PIPE_K8S_CERT, PIPE_K8S_KEY,
# PIPE_K8S_TOKEN_FILE, PIPE_K8S_SERVER, PIPE_TEST_REGISTRY) and helpers for
# its REST API, with curl. tests/k8s/run.sh brings the cluster up first.

k8s_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# before e2e/lib.sh gives the test its own HOME: the cache is the caller's
# shellcheck source=common.sh
. "$k8s_dir/common.sh"
eval "$(bash "$k8s_dir/cluster.sh" env)"
# shellcheck source=../e2e/lib.sh
. "$k8s_dir/../e2e/lib.sh"

# need_cluster: the cluster answers; else the rest of the planned test is
# skipped (a failure in CI), with the reason run.sh found.
need_cluster() {
	[ "${PIPE_K8S_READY:-}" = 0 ] && skip_all k8s "${PIPE_K8S_WHY:-no test cluster}"
	kapi GET /readyz >/dev/null 2>&1 ||
		skip_all k8s "no test cluster answers at $PIPE_K8S_SERVER (tests/k8s/run.sh brings one up)"
}

# kapi METHOD PATH [BODY]: a request with the admin's client certificate;
# the body of the answer on stdout, non-zero unless it is a 2xx. A BODY
# (JSON or YAML: the apiserver reads both) is sent as YAML.
kapi() {
	local a=(-sS --fail-with-body --cacert "$PIPE_K8S_CA"
		--cert "$PIPE_K8S_CERT" --key "$PIPE_K8S_KEY" -X "$1")
	[ $# -gt 2 ] && a+=(-H 'Content-Type: application/yaml' --data-binary "$3")
	curl "${a[@]}" "$PIPE_K8S_SERVER$2"
}

# kapi_token PATH: a GET with the bearer token instead.
kapi_token() {
	curl -sS --fail-with-body --cacert "$PIPE_K8S_CA" \
		-H "Authorization: Bearer $(cat "$PIPE_K8S_TOKEN_FILE")" "$PIPE_K8S_SERVER$1"
}

# jfield EXPR: EXPR (Python, over the JSON document d on stdin) on stdout;
# nothing for None, lists joined by spaces.
jfield() {
	python3 -c 'import json, sys
try:
    d = json.load(sys.stdin)
    v = eval(sys.argv[1])
except Exception:
    sys.exit(1)
if isinstance(v, list):
    v = " ".join(str(x) for x in v)
print("" if v is None else v)' "$1"
}

# k8s_push IMAGE: the local Docker image pushed to the test registry; its
# reference by digest on stdout (127.0.0.1:5000/NAME@sha256:...).
k8s_push() { bash "$k8s_dir/registry.sh" push "$1"; }

# job_wait NAME [SECONDS]: until the Job in the default namespace is
# Complete or Failed (60 s); that condition on stdout, or "timeout".
job_wait() {
	local i c
	for ((i = 0; i < ${2:-60} * 4 * slow; i++)); do
		c=$(kapi GET "/apis/batch/v1/namespaces/default/jobs/$1" 2>/dev/null | jfield \
			'[x["type"] for x in d["status"].get("conditions", []) if x["type"] in ("Complete", "Failed") and x["status"] == "True"]')
		[ -n "$c" ] && { echo "$c"; return 0; }
		sleep 0.25
	done
	echo timeout
	return 1
}

# job_pods NAME: the names of the Job's pods.
job_pods() {
	kapi GET "/api/v1/namespaces/default/pods?labelSelector=job-name%3D$1" |
		jfield '[p["metadata"]["name"] for p in d["items"]]'
}

# jobs_delete NAME...: the Jobs and their pods, waiting until the pods are
# gone (30 s); non-zero when some are left.
jobs_delete() {
	local n i
	for n; do
		kapi DELETE "/apis/batch/v1/namespaces/default/jobs/$n?propagationPolicy=Background" >/dev/null 2>&1
	done
	for ((i = 0; i < 120; i++)); do
		for n; do [ -n "$(job_pods "$n" 2>/dev/null)" ] && break; n=; done
		[ -z "$n" ] && return 0
		sleep 0.25
	done
	return 1
}
