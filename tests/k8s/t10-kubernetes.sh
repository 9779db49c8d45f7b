#!/usr/bin/env bash
# The Kubernetes executor on the real test cluster: a genomics-shaped
# pipeline (local -> kubernetes datums -> local) gives the local
# executor's bytes; a second run submits no Job and calls no API; one new
# datum is an Indexed Job of one completion; the Job pipe sends reads back
# with the restricted security profile, resources and a digest-pinned
# image; every Job is gone afterwards.
. "$(dirname "$0")/lib.sh"
plan 33
need_cluster

reg=$PIPE_TEST_REGISTRY
image=$reg/pipe-test/busybox:1
k8s_push pipe-test/busybox:1 >/dev/null || skip_all k8s "cannot push the test image to $reg"

# our_jobs: names of the Jobs pipe made for this workspace that are left
our_jobs() {
	kapi GET "/apis/batch/v1/namespaces/default/jobs?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpipe" |
		jfield '[j["metadata"]["name"] for j in d["items"] if not j["metadata"].get("deletionTimestamp")]'
}
jobs_sent() { grep -c 'kubernetes: Job pipe-' "$1" || true; }
# left_of FILE: the Jobs a run's -v output names that still exist
left_of() {
	local n
	for n in $(sed -n 's/^kubernetes: Job \(pipe-[a-z0-9-]*\): .*/\1/p' "$1"); do
		kapi GET "/apis/batch/v1/namespaces/default/jobs/$n" >/dev/null 2>&1 && printf '%s ' "$n"
	done
}

pipeline() { # pipeline EXECUTOR: the same three stages
	cat > Pipefile <<YML
stages:
  split:
    cmd: mkdir -p reads && for i in 1 2 3 4 5 6; do printf 'read %s acgt\n' \$i > reads/r\$i.fq; done
    outputs: [reads/]
  align:
    executor: $1
    image: $image
    datums: "reads/*.fq"
    parallelism: 3
    cmd: echo "aligned \$PIPE_DATUM"; tr a-z A-Z < "\$PIPE_DATUM" > "\$PIPE_OUT/\$(basename "\$PIPE_DATUM" .fq).bam" && id -u > "\$PIPE_OUT/\$(basename "\$PIPE_DATUM" .fq).uid"
    inputs: [reads/]
    outputs: [aligned/]
    resources: {cpu: 100m, memory: 64Mi}
  report:
    cmd: cat aligned/*.bam > report.txt
    inputs: [aligned/]
    outputs: [report.txt]
YML
}

# the reference: the same pipeline on the local executor
new_ws
ref=$PWD
pipeline local
sed -i 's/ && id -u > .*$//' Pipefile
run pipe run
expect_rc "reference run on the local executor" 0

new_ws
ws=$PWD
chown 1000:1000 "$ws"
pipeline kubernetes
sed -i 's/ && id -u > .*$//' Pipefile
run pipe validate
expect_rc "a kubernetes stage validates" 0
run pipe run -v
expect_rc "local -> kubernetes (6 datums, parallelism 3) -> local" 0
cp "$_tmp/.err" "$_tmp/run1.err"
expect_eq "one Indexed Job submitted" "$(jobs_sent "$_tmp/run1.err")" "1"
expect_in "its 6 completions, 3 at once" "$err" '"completions":6,"parallelism":3'
if diff -r "$ref/aligned" aligned >/dev/null && cmp -s "$ref/report.txt" report.txt; then
	ok "outputs byte-identical to the local executor's"
else
	not_ok "outputs byte-identical to the local executor's" "$(diff -r "$ref/aligned" aligned | head -5)"
fi
expect_in "each pod's log streamed, prefixed [stage datum]" "$out" "[align reads/r3.fq] aligned reads/r3.fq"
expect_eq "no Job left behind" "$(left_of "$_tmp/run1.err")" ""

run pipe run -v
expect_rc "second run" 0
expect_eq "second run: no Job" "$(jobs_sent "$_tmp/.err")" "0"

# a fresh kubernetes stage costs no API call: a cluster that is not there
# does not matter
sed "s#server: .*#server: https://127.0.0.1:1#" "$KUBECONFIG" > "$_tmp/dead.kubeconfig"
KUBECONFIG=$_tmp/dead.kubeconfig run pipe run
expect_rc "everything fresh: no API call (the cluster may be down)" 0

sed -i 's/for i in 1 2 3 4 5 6;/for i in 1 2 3 4 5 6 7;/' Pipefile
run pipe run -v
expect_rc "one datum added" 0
expect_in "an Indexed Job of exactly one completion" "$err" '"completions":1,'
expect_eq "one Job" "$(jobs_sent "$_tmp/.err")" "1"
expect_eq "its output" "$(cat aligned/r7.bam)" "READ 7 ACGT"
expect_in "the report has it" "$(cat report.txt)" "READ 7 ACGT"

# read back what pipe sent, while it runs
new_ws
chown 1000:1000 .
cat > Pipefile <<YML
stages:
  slow:
    executor: kubernetes
    image: $image
    cmd: sleep 4; echo done > out.txt
    outputs: [out.txt]
    resources: {cpu: 250m, memory: 32Mi}
    timeout: 5m
YML
pipe run > "$_tmp/slow.out" 2>&1 &
pid=$!
job=
for _ in $(seq 1 80); do
	job=$(our_jobs | tr ' ' '\n' | grep pipe-slow- | head -1)
	[ -n "$job" ] && break
	sleep 0.1
done
spec=$(kapi GET "/apis/batch/v1/namespaces/default/jobs/$job")
wait "$pid"
rc=$?
expect_eq "the slow stage ran" "$rc $(cat out.txt 2>/dev/null)" "0 done"
expect_eq "Job name pipe-<stage>-<id>" "$(printf '%s' "$job" | grep -cE '^pipe-slow-[0-9a-f]{12}$')" "1"
expect_eq "runAsNonRoot, RuntimeDefault seccomp" \
	"$(printf '%s' "$spec" | jfield 'd["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], d["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]["type"]')" \
	"(True, 'RuntimeDefault')"
expect_eq "no privilege escalation, every capability dropped" \
	"$(printf '%s' "$spec" | jfield 'd["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"], d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"]')" \
	"(False, ['ALL'])"
expect_eq "no service account token" \
	"$(printf '%s' "$spec" | jfield 'd["spec"]["template"]["spec"]["automountServiceAccountToken"]')" "False"
expect_eq "resources as requests and limits" \
	"$(printf '%s' "$spec" | jfield 'd["spec"]["template"]["spec"]["containers"][0]["resources"]')" \
	"{'limits': {'cpu': '250m', 'memory': '32Mi'}, 'requests': {'cpu': '250m', 'memory': '32Mi'}}"
digest=$(curl -sSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$reg/v2/pipe-test/busybox/manifests/1" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
expect_eq "the image pinned by digest" \
	"$(printf '%s' "$spec" | jfield 'd["spec"]["template"]["spec"]["containers"][0]["image"]')" \
	"$reg/pipe-test/busybox@$digest"

# a datum sees the workspace read-only: only its PIPE_OUT takes writes
new_ws
mkdir in
echo a > in/a.txt
echo b > in/b.txt
echo keep > notes.txt
chown -R 1000:1000 .
cat > Pipefile <<'YML'
stages:
  d:
    executor: kubernetes
    image: IMAGE
    datums: "in/*.txt"
    parallelism: 2
    inputs: [in/]
    outputs: [out/]
    cmd: >-
      cp "$PIPE_DATUM" "$PIPE_OUT/";
      for f in notes.txt in/new.txt stray.txt .pipe/stray; do
        if (echo x >> "$f") 2>/dev/null; then echo "WROTE $f"; exit 1; fi;
      done
YML
sed -i "s#IMAGE#$image#" Pipefile
run pipe run
expect_rc "datums: written to PIPE_OUT, nowhere else" 0
expect_eq "... their outputs merged" "$(cat out/a.txt out/b.txt 2>/dev/null)" "a
b"
expect_eq "... the workspace untouched" \
	"$(cat notes.txt) $(ls in | tr '\n' ' ')$(ls -A | grep -c stray)" "keep a.txt b.txt 0"

# every scheduling key the Pipefile has, accepted by the real apiserver,
# and the workspace through a PersistentVolumeClaim (a hostPath PV bound
# by hand: the test cluster has no RWX provisioner)
new_ws
chown 1000:1000 .
wsdir=$PWD
kapi DELETE /api/v1/namespaces/default/persistentvolumeclaims/pipe-t10-claim >/dev/null 2>&1
kapi DELETE /api/v1/persistentvolumes/pipe-t10-pv >/dev/null 2>&1
sleep 1
kapi POST /api/v1/persistentvolumes "{apiVersion: v1, kind: PersistentVolume,
  metadata: {name: pipe-t10-pv}, spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteMany],
  storageClassName: manual, persistentVolumeReclaimPolicy: Retain, hostPath: {path: '$wsdir'}}}" >/dev/null
kapi POST /api/v1/namespaces/default/persistentvolumeclaims "{apiVersion: v1, kind: PersistentVolumeClaim,
  metadata: {name: pipe-t10-claim}, spec: {accessModes: [ReadWriteMany], storageClassName: manual,
  volumeName: pipe-t10-pv, resources: {requests: {storage: 1Gi}}}}" >/dev/null
for _ in $(seq 1 60); do # bound by the controller, not at once
	[ "$(kapi GET /api/v1/namespaces/default/persistentvolumeclaims/pipe-t10-claim | jfield 'd["status"]["phase"]')" = Bound ] && break
	sleep 0.25
done
cat > Pipefile <<YML
kubernetes:
  namespace: default
  workspace: {claim: pipe-t10-claim}
  runAsUser: 1000
  runAsGroup: 1000
  imagePullSecrets: [pipe-t10-none]
  tolerations: [{key: example.com/spot, operator: Exists, effect: NoSchedule}]
stages:
  placed:
    executor: kubernetes
    image: $image
    cmd: id -u > out.txt
    outputs: [out.txt]
    kubernetes:
      nodeSelector: {kubernetes.io/hostname: localhost}
      serviceAccountName: default
  datums:
    executor: kubernetes
    image: $image
    datums: "in/*.txt"
    inputs: [in/]
    outputs: [dout/]
    cmd: cat "\$PIPE_DATUM" > "\$PIPE_OUT/\$(basename "\$PIPE_DATUM")"
YML
mkdir in
echo one > in/1.txt
echo two > in/2.txt
chown -R 1000:1000 .
run pipe run -v
expect_rc "nodeSelector, tolerations, serviceAccountName, imagePullSecrets and a claim: accepted, run" 0
expect_eq "... as runAsUser" "$(cat out.txt 2>/dev/null)" "1000"
expect_in "... the claim mounted at the workspace's path" "$err" "\"persistentVolumeClaim\":{\"claimName\":\"pipe-t10-claim\"}"
expect_in "... the node selector sent" "$err" "\"nodeSelector\":{\"kubernetes.io/hostname\":\"localhost\"}"
expect_in "... the toleration sent" "$err" "\"tolerations\":[{\"key\":\"example.com/spot\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]"
expect_in "... the service account" "$err" "\"serviceAccountName\":\"default\""
expect_eq "datums through a claim: their folder a subPath of it" "$(cat dout/1.txt dout/2.txt 2>/dev/null)" "one
two"
kapi DELETE /api/v1/namespaces/default/persistentvolumeclaims/pipe-t10-claim >/dev/null 2>&1
kapi DELETE /api/v1/persistentvolumes/pipe-t10-pv >/dev/null 2>&1
finish
