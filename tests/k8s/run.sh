#!/usr/bin/env bash
# Runs the Kubernetes tests (tests/k8s/t*.sh) against the real test
# cluster: brings it up once (cluster.sh up; built the first time, about
# 12 minutes), runs each test, prints "N passed, N failed, N skipped" and
# takes the cluster down on exit unless PIPE_K8S_KEEP=1. This is the k8s
# group of tests/run.sh, alone (its env applies: ONLY, CI, PIPE_REQUIRE).
exec env PIPE_GROUPS=k8s bash "$(dirname "$0")/../run.sh"
