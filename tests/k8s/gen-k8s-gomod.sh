#!/usr/bin/env bash
# gen-k8s-gomod.sh VERSION > gomod/k8s/go.mod: the wrapper module for
# k8s.io/kubernetes at VERSION (e.g. 1.34.4), with one replace per staging
# module (each `k8s.io/* v0.0.0` require of that version's go.mod) pointing
# at its published v0.MINOR.PATCH tag. Then, in gomod/k8s: `go mod tidy`
# (tools.go imports the commands), and commit go.mod and go.sum.
set -euo pipefail
V=${1#v}
mod=$(go mod download -json "k8s.io/kubernetes@v$V" |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
echo "module pipe-k8s/k8s"
echo
grep -E '^(go|godebug) ' "$mod"
echo
echo "require k8s.io/kubernetes v$V"
echo
echo "replace ("
grep -E '^\s+k8s.io/[a-z0-9-]+ v0\.0\.0$' "$mod" | awk '{ print $1 }' | sort -u |
	while read -r m; do printf '\t%s => %s v0.%s\n' "$m" "$m" "${V#*.}"; done
echo ")"
