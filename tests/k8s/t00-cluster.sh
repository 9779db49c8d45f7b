#!/usr/bin/env bash
# The test cluster itself, with curl only: the apiserver answers with the
# admin's client certificate and with the bearer token (and refuses
# anonymous requests); an image pushed to the test registry is pulled by digest; a Job
# of it runs as a non-root user and writes into hostPath folders of the
# workspace; the pod's log comes back over REST; an Indexed Job with
# backoffLimitPerIndex 0 whose index 1 fails ends with exactly that index
# failed. Its Jobs are deleted at the end.
. "$(dirname "$0")/lib.sh"
plan 22
need_cluster

id=$$
hello=t00-hello-$id idx=t00-idx-$id
# shellcheck disable=SC2317 # run by the trap
cleanup() { jobs_delete "$hello" "$idx"; }
trap 'cleanup; rm -rf "$_tmp"' EXIT

# --- the apiserver ---
run kapi GET /version
expect_in "client certificate: the apiserver answers" "$out" '"gitVersion": "v1.34.4"'
run kapi_token /api/v1/namespaces/default
expect_in "bearer token: the apiserver answers" "$out" '"name": "default"'
run curl -s -o /dev/null -w '%{http_code}' --cacert "$PIPE_K8S_CA" "$PIPE_K8S_SERVER/api/v1/namespaces"
expect_eq "no credentials: anonymous, refused" "$out" 403
run kapi GET "/api/v1/nodes/$K8S_NODE"
expect_eq "the node is Ready" "$(echo "$out" | jfield '[c["status"] for c in d["status"]["conditions"] if c["type"] == "Ready"]')" True

# --- the registry ---
run k8s_push "${PIPE_TEST_IMAGE:-pipe-test/busybox:1}"
expect_rc "the test image is pushed to the registry" 0
image=$out
expect_in "its reference is by digest" "$image" "$PIPE_TEST_REGISTRY/pipe-test/busybox@sha256:"
run curl -sf "http://$PIPE_TEST_REGISTRY/v2/_catalog"
expect_in "the registry lists it" "$out" '"pipe-test/busybox"'

# --- a non-root Job with hostPath folders of the workspace ---
new_ws
mkdir open owned closed
chmod 0777 open           # anyone may write
chown 65534:65534 owned   # the pod's user owns it (mode 0755)
chmod 0755 closed         # root's: the pod may not write
run kapi POST /apis/batch/v1/namespaces/default/jobs "
apiVersion: batch/v1
kind: Job
metadata: {name: $hello}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      securityContext: {runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534}
      containers:
      - name: main
        image: $image
        imagePullPolicy: IfNotPresent
        command: [/bin/sh, -c]
        args:
        - id -u; echo open >/ws/open/f && echo owned >/ws/owned/f
          && { { echo closed >/ws/closed/f; } 2>/dev/null || echo closed-denied; }
        volumeMounts:
        - {name: open, mountPath: /ws/open}
        - {name: owned, mountPath: /ws/owned}
        - {name: closed, mountPath: /ws/closed}
      volumes:
      - {name: open, hostPath: {path: $PWD/open, type: Directory}}
      - {name: owned, hostPath: {path: $PWD/owned, type: Directory}}
      - {name: closed, hostPath: {path: $PWD/closed, type: Directory}}
"
expect_rc "the Job is created" 0
expect_eq "it completes" "$(job_wait "$hello" 120)" Complete
expect_eq "it wrote into the 0777 folder" "$(cat open/f 2>&1)" open
expect_eq "as uid 65534" "$(stat -c %u open/f 2>&1)" 65534
expect_eq "it wrote into the folder its user owns" "$(cat owned/f 2>&1)" owned
expect_eq "not into root's 0755 folder" "$(ls closed)" ""
pod=$(job_pods "$hello")
run kapi GET "/api/v1/namespaces/default/pods/$pod"
expect_in "the pod ran the image by digest" "$(echo "$out" | jfield 'd["status"]["containerStatuses"][0]["imageID"]')" "${image#*@}"
run kapi GET "/api/v1/namespaces/default/pods/$pod/log"
expect_eq "client certificate: the pod's log" "$out" "65534
closed-denied"
run kapi_token "/api/v1/namespaces/default/pods/$pod/log"
expect_in "bearer token: the pod's log" "$out" closed-denied

# --- an Indexed Job: index 1 fails, 0 and 2 complete ---
run kapi POST /apis/batch/v1/namespaces/default/jobs "
apiVersion: batch/v1
kind: Job
metadata: {name: $idx}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 3
  backoffLimitPerIndex: 0
  template:
    spec:
      restartPolicy: Never
      securityContext: {runAsNonRoot: true, runAsUser: 65534}
      containers:
      - name: main
        image: $image
        imagePullPolicy: IfNotPresent
        command: [/bin/sh, -c, 'echo index \$JOB_COMPLETION_INDEX; test \$JOB_COMPLETION_INDEX != 1']
"
expect_rc "the Indexed Job is created" 0
expect_eq "it fails" "$(job_wait "$idx" 120)" Failed
run kapi GET "/apis/batch/v1/namespaces/default/jobs/$idx"
expect_eq "failedIndexes" "$(echo "$out" | jfield 'd["status"].get("failedIndexes")')" 1
expect_eq "completedIndexes" "$(echo "$out" | jfield 'd["status"].get("completedIndexes")')" 0,2

# --- clean-up ---
run jobs_delete "$hello" "$idx"
expect_rc "its pods are gone" 0
jobs=$(kapi GET /apis/batch/v1/namespaces/default/jobs | jfield "[j['metadata']['name'] for j in d['items'] if j['metadata']['name'] in ('$hello', '$idx')]")
expect_eq "its Jobs are deleted" "$jobs" ""
finish
