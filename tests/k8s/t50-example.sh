#!/usr/bin/env bash
# examples/kubernetes runs on the test cluster as the README says, and a
# second run finds it fresh.
. "$(dirname "$0")/lib.sh"
plan 4
need_cluster
k8s_push pipe-test/busybox:1 >/dev/null || skip_all k8s "cannot push the test image to $PIPE_TEST_REGISTRY"
new_ws
cp "$root/examples/kubernetes/Pipefile" .
chown 1000:1000 .
run pipe run
expect_rc "examples/kubernetes runs" 0
expect_eq "its summary" "$(cat summary.txt 2>/dev/null | tr -d ' ')" "12"
expect_in "the pods' output streamed" "$out" "[align reads/r4.fq] aligning reads/r4.fq"
run pipe run
expect_in "a second run: everything fresh" "$out$err" "0 ran, 0 cached, 3 fresh"
finish
