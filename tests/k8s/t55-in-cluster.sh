#!/usr/bin/env bash
# `pipe run` itself as a pod: no kubeconfig, only the pod's service account
# (its token, CA and namespace files, KUBERNETES_SERVICE_HOST/PORT), with
# the least a user has to grant it (the Role below, as the README gives
# it). The pod runs this checkout's pipe with the node's /usr mounted
# (its libraries: libgit2 and libcurl), on the node's network so that
# 127.0.0.1 is the apiserver and the registry; it runs a kubernetes stage
# of datums and a local one, and a second pod finds everything fresh.
. "$(dirname "$0")/lib.sh"
plan 11
need_cluster

reg=$PIPE_TEST_REGISTRY
k8s_push pipe-test/busybox:1 >/dev/null || skip_all k8s "cannot push the test image to $reg"

# the image: busybox, and the folders the node's /usr is mounted under
ctx=$_tmp/image
mkdir -p "$ctx/bin" "$ctx/tmp" "$ctx/usr"
cp /bin/busybox "$ctx/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -s busybox "$ctx/bin/$a"
done
ln -s usr/lib "$ctx/lib"
ln -s usr/lib64 "$ctx/lib64"
chmod 1777 "$ctx/tmp"
printf 'FROM scratch\nCOPY . /\nENV PATH=/bin\n' >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t pipe-test/hostlibs:1 "$ctx" >/dev/null 2>"$_tmp/build.err" ||
	skip_all k8s "cannot build the image with the node's libraries: $(tail -1 "$_tmp/build.err")"
k8s_push pipe-test/hostlibs:1 >/dev/null || skip_all k8s "cannot push pipe-test/hostlibs:1 to $reg"

# what pipe needs, and nothing more: Jobs, their pods and logs
rbac="apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ServiceAccount, metadata: {name: pipe-runner, namespace: default}}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: Role
  metadata: {name: pipe-runner, namespace: default}
  rules:
  - {apiGroups: [batch], resources: [jobs], verbs: [create, get, list, watch, delete]}
  - {apiGroups: [''], resources: [pods], verbs: [get, list, watch, delete, deletecollection]}
  - {apiGroups: [''], resources: [pods/log], verbs: [get]}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: pipe-runner, namespace: default}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pipe-runner}
  subjects: [{kind: ServiceAccount, name: pipe-runner, namespace: default}]"
printf '%s\n' "$rbac" >"$_tmp/rbac.yaml"
"$PIPE_K8S_KUBECTL" apply -f "$_tmp/rbac.yaml" >/dev/null 2>"$_tmp/rbac.err"
expect_eq "the service account and its Role" "$? $(cat "$_tmp/rbac.err")" "0 "

new_ws
ws=$PWD
mkdir reads
for i in 1 2 3; do echo "read $i acgt" >"reads/r$i.fq"; done
cat >Pipefile <<YML
stages:
  align:
    executor: kubernetes
    image: $reg/pipe-test/busybox:1
    datums: "reads/*.fq"
    parallelism: 2
    inputs: [reads/]
    outputs: [aligned/]
    cmd: tr a-z A-Z < "\$PIPE_DATUM" > "\$PIPE_OUT/\$(basename "\$PIPE_DATUM" .fq).bam"
  report:
    inputs: [aligned/]
    outputs: [report.txt]
    cmd: cat aligned/*.bam > report.txt
YML
chown -R 1000:1000 "$ws"
bindir=$(cd "$(dirname "$PIPE")" && pwd)

# pod NAME: pipe run in a pod, as uid 1000 (the workspace's owner); its
# log in $_tmp/NAME.log, its phase on stdout
pod() {
	local name=$1 phase i
	kapi DELETE "/api/v1/namespaces/default/pods/$name?gracePeriodSeconds=0" >/dev/null 2>&1
	for ((i = 0; i < 40; i++)); do
		kapi GET "/api/v1/namespaces/default/pods/$name" >/dev/null 2>&1 || break
		sleep 0.25
	done
	kapi POST /api/v1/namespaces/default/pods "apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: default}
spec:
  restartPolicy: Never
  serviceAccountName: pipe-runner
  hostNetwork: true
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  containers:
  - name: pipe
    image: $reg/pipe-test/hostlibs:1
    workingDir: '$ws'
    command: ['$bindir/pipe', run]
    env:
    - {name: KUBERNETES_SERVICE_HOST, value: 127.0.0.1}
    - {name: KUBERNETES_SERVICE_PORT, value: '6443'}
    - {name: HOME, value: /tmp}
    volumeMounts:
    - {name: usr, mountPath: /usr, readOnly: true}
    - {name: bin, mountPath: '$bindir', readOnly: true}
    - {name: ws, mountPath: '$ws'}
  volumes:
  - {name: usr, hostPath: {path: /usr, type: Directory}}
  - {name: bin, hostPath: {path: '$bindir', type: Directory}}
  - {name: ws, hostPath: {path: '$ws', type: Directory}}" >/dev/null || { echo "cannot create"; return; }
	for ((i = 0; i < 480 * slow; i++)); do
		phase=$(kapi GET "/api/v1/namespaces/default/pods/$name" | jfield 'd["status"].get("phase")')
		case $phase in Succeeded | Failed) break ;; esac
		sleep 0.25
	done
	kapi GET "/api/v1/namespaces/default/pods/$name/log" >"$_tmp/$name.log" 2>&1
	kapi DELETE "/api/v1/namespaces/default/pods/$name?gracePeriodSeconds=0" >/dev/null 2>&1
	echo "$phase"
}

phase=$(pod pipe-in-cluster)
log=$(cat "$_tmp/pipe-in-cluster.log")
expect_eq "pipe run in a pod, by its service account: succeeded" "$phase" "Succeeded"
expect_in "... it ran the datums as a Job" "$log" "ok   align (3 datums: 3 processed, 0 skipped)"
expect_in "... and the local stage in the pod" "$log" "ok   report"
expect_eq "... the outputs on the workspace" "$(cat report.txt 2>/dev/null)" "READ 1 ACGT
READ 2 ACGT
READ 3 ACGT"
expect_eq "... no Job of this workspace left" \
	"$(kapi GET "/apis/batch/v1/namespaces/default/jobs?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpipe" |
		jfield '[j["metadata"]["name"] for j in d["items"] if not j["metadata"].get("deletionTimestamp") and j["metadata"]["labels"].get("pipe.dev/stage") == "align"]')" ""
expect_not_in "... no token (a JWT) in its output" "$log" "eyJ"

phase=$(pod pipe-in-cluster-2)
log=$(cat "$_tmp/pipe-in-cluster-2.log")
expect_eq "a second pod: succeeded" "$phase" "Succeeded"
expect_in "... everything fresh" "$log" "0 ran, 0 cached, 2 fresh"

# no RoleBinding: the run fails, and says why (the API's 403)
"$PIPE_K8S_KUBECTL" delete rolebinding pipe-runner >/dev/null 2>&1
echo "read 4 acgt" >reads/r4.fq
chown 1000:1000 reads/r4.fq
phase=$(pod pipe-in-cluster-3)
log=$(cat "$_tmp/pipe-in-cluster-3.log")
expect_eq "no RoleBinding: the run fails" "$phase" "Failed"
expect_in "... with the API's answer" "$log" "403"
"$PIPE_K8S_KUBECTL" delete -f "$_tmp/rbac.yaml" >/dev/null 2>&1
finish
