#!/usr/bin/env bash
# mkimage.sh NAME:TAG ROOTFS OUT.tar [ENTRYPOINT [ARG...]]: a docker-archive
# tarball (what `docker save` writes and `ctr images import` reads) of one
# layer made from the folder ROOTFS; no Docker daemon and no registry.
set -euo pipefail
name=$1 root=$2 out=$3
shift 3
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$root" -cf "$w/layer.tar" .
diff=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
ep=null
if [ $# -gt 0 ]; then
	ep=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@")
fi
cat >"$w/config.json" <<EOC
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],"Entrypoint":$ep},"rootfs":{"type":"layers","diff_ids":["sha256:$diff"]}}
EOC
cfg=$(sha256sum "$w/config.json" | cut -d' ' -f1)
mv "$w/config.json" "$w/$cfg.json"
echo "[{\"Config\":\"$cfg.json\",\"RepoTags\":[\"$name\"],\"Layers\":[\"layer.tar\"]}]" >"$w/manifest.json"
tar -C "$w" -cf "$out" manifest.json "$cfg.json" layer.tar
