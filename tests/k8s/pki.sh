#!/usr/bin/env bash
# pki.sh DIR NODE: the test cluster's certificates (openssl, about 3 s): a
# CA, the apiserver's serving certificate, client certificates for admin
# (system:masters), the apiserver's kubelet client, the controller-manager,
# the scheduler and the node; the service-account key pair; a static bearer
# token (user pipe-test in system:masters, in DIR/token); and a kubeconfig
# per client certificate. Does nothing when DIR/ca.crt exists.
set -euo pipefail
D=$1 NODE=${2:-localhost} API=https://127.0.0.1:6443
mkdir -p "$D"
cd "$D"
[ -f ca.crt ] && exit 0
o() { openssl "$@" 2>/dev/null; }
o req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj /CN=pipe-k8s-ca

# cert NAME SUBJECT [SAN [USAGE]]
cert() {
	o req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
	printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
		"extendedKeyUsage=${4:-clientAuth}" ${3:+"subjectAltName=$3"} >"$1.ext"
	o x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
		-days 3650 -extfile "$1.ext"
	rm -f "$1.csr" "$1.ext"
}
cert apiserver /CN=kube-apiserver "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" serverAuth
cert admin "/O=system:masters/CN=admin"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert controller-manager /CN=system:kube-controller-manager
cert scheduler /CN=system:kube-scheduler
cert kubelet "/O=system:nodes/CN=system:node:$NODE"
o genrsa -out sa.key 2048
o rsa -in sa.key -pubout -out sa.pub
openssl rand -hex 16 >token
echo "$(cat token),pipe-test,pipe-test,\"system:masters\"" >tokens.csv

# kubeconfig NAME: NAME.kubeconfig, with NAME's client certificate
kubeconfig() {
	cat >"$1.kubeconfig" <<EOK
apiVersion: v1
kind: Config
clusters: [{name: pipe-k8s, cluster: {server: "$API", certificate-authority: "$D/ca.crt"}}]
users: [{name: $1, user: {client-certificate: "$D/$1.crt", client-key: "$D/$1.key"}}]
contexts: [{name: pipe-k8s, context: {cluster: pipe-k8s, user: $1}}]
current-context: pipe-k8s
EOK
}
for n in admin controller-manager scheduler kubelet; do kubeconfig "$n"; done
