#!/usr/bin/env bash
# Kubernetes benchmark, on the test cluster (tests/k8s/cluster.sh; brought
# up here when it is not, and taken down again): a stage of DATUMS datums
# (`sleep 0.1` each, parallelism 10) through `pipe run -f`, against the
# same work submitted by hand as one Indexed Job with kubectl and waited
# for with `kubectl wait`, alternating, the median of RUNS runs each: the
# Job by hand mounts the workspace as pipe's does (read-only, a hostPath
# at its own path, the datums' folder read-write) and each pod finds its
# datum by its index in a list, as a user's Job must to do the same work;
# a bare Job (no volume, nothing read) is timed too, for reference. Then
# `pipe run` finding the stage fresh, with a kubeconfig whose server is
# not there (no API call at all, or it would fail). Prints "runs pipe: …",
# "runs kubectl: …", "runs bare: …", "runs fresh: …" (seconds).
# Env: PIPE, DATUMS (200), RUNS (3). Not part of `make test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PIPE=${PIPE:-$root/build/pipe}
DATUMS=${DATUMS:-200}
RUNS=${RUNS:-3}
k8s=$root/tests/k8s
started_here=0
if ! curl -sk --max-time 2 https://127.0.0.1:6443/readyz >/dev/null 2>&1; then
	bash "$k8s/cluster.sh" up >&2 || { echo "k8s bench: the test cluster does not start" >&2; exit 1; }
	started_here=1
fi
eval "$(bash "$k8s/cluster.sh" env)"
. "$root/tests/docker-env.sh"
[ "$DOCKER_READY" = 1 ] || { echo "k8s bench: no Docker daemon for the test image: $DOCKER_WHY" >&2; exit 1; }
pinned=$(bash "$k8s/cluster.sh" push "$PIPE_TEST_IMAGE" | tail -1)
image=$PIPE_TEST_REGISTRY/pipe-test/busybox:1
kubectl=$PIPE_K8S_KUBECTL
work=$(mktemp -d "${TMPDIR:-/tmp}/pipe-k8s-bench.XXXXXX")
cleanup() {
	rm -rf "$work"
	[ "$started_here" = 0 ] || bash "$k8s/cluster.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
ws=$work/ws
mkdir -p "$ws/in"
for i in $(seq 1 "$DATUMS"); do echo "$i" > "$ws/in/$i.txt"; done
chown -R 1000:1000 "$ws"
cat > "$ws/Pipefile" <<YML
stages:
  sleepy:
    executor: kubernetes
    image: $image
    datums: "in/*.txt"
    parallelism: 10
    cmd: sleep 0.1
    inputs: [in/]
    outputs: [out/]
YML
ls "$ws"/in/*.txt > "$ws/list"
mkdir -p "$ws/out-by-hand"
chown -R 1000:1000 "$ws"
cat > "$work/job.yaml" <<YML
apiVersion: batch/v1
kind: Job
metadata: {name: bench-by-hand, namespace: default}
spec:
  completionMode: Indexed
  completions: $DATUMS
  parallelism: 10
  backoffLimitPerIndex: 0
  template:
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: c
        image: $pinned
        workingDir: $ws
        command: [/bin/sh, -c, 'd=\$\$(sed -n "\$\$((JOB_COMPLETION_INDEX + 1))p" list) && test -f "\$\$d" && sleep 0.1']
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts:
        - {name: ws, mountPath: $ws, readOnly: true}
        - {name: out, mountPath: $ws/out-by-hand}
      volumes:
      - {name: ws, hostPath: {path: $ws, type: Directory}}
      - {name: out, hostPath: {path: $ws/out-by-hand, type: Directory}}
YML
cat > "$work/bare.yaml" <<YML
apiVersion: batch/v1
kind: Job
metadata: {name: bench-bare, namespace: default}
spec:
  completionMode: Indexed
  completions: $DATUMS
  parallelism: 10
  backoffLimitPerIndex: 0
  template:
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: c
        image: $pinned
        command: [/bin/sh, -c, sleep 0.1]
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
YML

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

pipe_once() {
	local t0 t1
	t0=$(now)
	(cd "$ws" && "$PIPE" run -f >/dev/null 2>"$work/pipe.err") ||
		{ echo "k8s bench: pipe run failed: $(tail -3 "$work/pipe.err")" >&2; exit 1; }
	t1=$(now)
	secs "$t0" "$t1"
}

# kubectl_once NAME FILE
kubectl_once() {
	local t0 t1
	"$kubectl" delete job "$1" --ignore-not-found --wait=true >/dev/null 2>&1
	t0=$(now)
	"$kubectl" apply -f "$2" >/dev/null
	"$kubectl" wait --for=condition=complete "job/$1" --timeout=900s >/dev/null ||
		{ echo "k8s bench: job $1 did not complete" >&2; exit 1; }
	t1=$(now)
	"$kubectl" delete job "$1" --wait=false >/dev/null 2>&1
	secs "$t0" "$t1"
}

fresh_once() {
	local t0 t1
	t0=$(now)
	(cd "$ws" && KUBECONFIG=$work/dead.kubeconfig "$PIPE" run >/dev/null 2>&1) ||
		{ echo "k8s bench: a fresh pipe run called the API" >&2; exit 1; }
	t1=$(now)
	secs "$t0" "$t1"
}
sed "s#server: .*#server: https://127.0.0.1:1#" "$KUBECONFIG" > "$work/dead.kubeconfig"

pipe_once >/dev/null # a warm-up of each, not counted
kubectl_once bench-by-hand "$work/job.yaml" >/dev/null
p=() k=() b=() f=()
for _ in $(seq 1 "$RUNS"); do
	p+=("$(pipe_once)")
	k+=("$(kubectl_once bench-by-hand "$work/job.yaml")")
	b+=("$(kubectl_once bench-bare "$work/bare.yaml")")
done
for _ in $(seq 1 5); do f+=("$(fresh_once)"); done
pm=$(printf '%s\n' "${p[@]}" | median)
km=$(printf '%s\n' "${k[@]}" | median)
echo "k8s bench: $DATUMS datums of sleep 0.1, parallelism 10, one node (Kubernetes $("$kubectl" version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' 2>/dev/null || echo '?')), median of $RUNS"
printf 'pipe run -f: %.3fs, kubectl apply + wait: %.3fs, ratio %.3fx (target <= 1.1x)\n' "$pm" "$km" \
	"$(awk -v a="$pm" -v b="$km" 'BEGIN { print a / b }')"
echo "runs pipe: ${p[*]}"
echo "runs kubectl: ${k[*]}"
echo "runs bare: ${b[*]}"
echo "runs fresh: ${f[*]}"
