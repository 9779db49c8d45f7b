#!/bin/bash
# gen-k8s-gomod.sh VERSION > go.mod -- wrapper module for k8s.io/kubernetes: one
# replace per staging module (every `k8s.io/* v0.0.0` require in that version's go.mod),
# pointing at the published v0.MINOR.PATCH tag. Then: go mod tidy (needs tools.go).
set -euo pipefail
V=${1#v}
mod=$(go mod download -json "k8s.io/kubernetes@v$V" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
echo "module pipe-k8s/k8s"; echo; grep -E '^(go|godebug) ' "$mod"; echo
echo "require k8s.io/kubernetes v$V"; echo; echo "replace ("
grep -E '^\s+k8s.io/[a-z0-9-]+ v0\.0\.0$' "$mod" | awk '{print $1}' | sort -u | while read -r m; do echo "	$m => $m v0.${V#*.}"; done
echo ")"
