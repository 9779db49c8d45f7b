#!/usr/bin/env bash
# Connecting: client-certificate, bearer-token and exec-plugin kubeconfigs
# all run a stage; an exec credential is cached until it expires, run
# again after that and after a 401; --context picks a context; and no
# token, key or plugin output ever shows in pipe's output or logs.
. "$(dirname "$0")/lib.sh"
plan 16
need_cluster

reg=$PIPE_TEST_REGISTRY
image=$reg/pipe-test/busybox:1
k8s_push pipe-test/busybox:1 >/dev/null || skip_all k8s "cannot push the test image to $reg"
token=$(cat "$PIPE_K8S_TOKEN_FILE")
key_line=$(sed -n 2p "$PIPE_K8S_KEY") # a line of the client key's base64
ca=$(base64 -w0 < "$PIPE_K8S_CA")
all_output="$_tmp/all-output"
: > "$all_output"
keep() { printf '%s\n%s\n' "$out" "$err" >> "$all_output"; cat .pipe/logs/*.log .pipe/logs/*/* >> "$all_output" 2>/dev/null; }

kubeconfig() { # kubeconfig FILE USER-YAML [CONTEXT]
	cat > "$1" <<YML
apiVersion: v1
kind: Config
current-context: ${3:-lab}
clusters:
- name: lab
  cluster: {server: "$PIPE_K8S_SERVER", certificate-authority-data: "$ca"}
contexts:
- name: lab
  context: {cluster: lab, user: u}
- name: other
  context: {cluster: lab, user: nobody}
users:
- name: nobody
  user: {token: not-a-token}
- name: u
  user:
$2
YML
}
stage() {
	cat > Pipefile <<YML
stages:
  s:
    executor: kubernetes
    image: $image
    cmd: echo $1 > out.txt; sleep ${2:-0}
    outputs: [out.txt]
YML
}

new_ws
chown 1000:1000 .
stage cert
run pipe run -v
keep
expect_rc "client-certificate kubeconfig (cluster.sh's)" 0

kubeconfig "$_tmp/token.kubeconfig" "    token: $token"
stage token
KUBECONFIG=$_tmp/token.kubeconfig run pipe run -v
keep
expect_rc "bearer-token kubeconfig" 0
expect_eq "... ran" "$(cat out.txt)" "token"

stage other
KUBECONFIG=$_tmp/token.kubeconfig run pipe run --context other
keep
expect_rc "--context picks a context (its user is refused)" 3
expect_in "... the API's answer is named" "$err" "401"
KUBECONFIG=$_tmp/token.kubeconfig run pipe run --context nope
expect_rc "an unknown context is a usage error" 2
expect_in "... naming the known ones" "$err" "lab"

# an exec plugin: prints its token with an expiry 3 s away; the first
# call of the second kubeconfig prints a token the API refuses (a 401
# re-runs it)
plugin=$_tmp/plugin.sh
cat > "$plugin" <<EOS
#!/bin/sh
n=\$(cat "\$1" 2>/dev/null || echo 0); n=\$((n + 1)); echo \$n > "\$1"
tok=$token
[ "\$2" = bad-first ] && [ \$n = 1 ] && tok=expired-token-xyz
exp=\$(date -u -d @\$((\$(date +%s) + 3)) +%Y-%m-%dT%H:%M:%SZ)
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}\n' "\$tok" "\$exp"
EOS
chmod +x "$plugin"
exec_user() {
	printf '    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: %s\n      args: [%s, %s]\n      interactiveMode: Never\n' \
		"$plugin" "$1" "${2:-ok}"
}
kubeconfig "$_tmp/exec.kubeconfig" "$(exec_user "$_tmp/count1")"
stage exec 8
KUBECONFIG=$_tmp/exec.kubeconfig run pipe run -v
keep
expect_rc "exec-plugin kubeconfig, the credential expiring mid-run" 0
expect_eq "... ran" "$(cat out.txt)" "exec"
n=$(cat "$_tmp/count1")
[ "$n" -ge 2 ] && ok "... the plugin ran again after the expiry ($n runs)" || not_ok "... the plugin ran again after the expiry" "$n runs"
[ "$n" -le 12 ] && ok "... and was cached meanwhile ($n runs in ~10 s)" || not_ok "... and was cached meanwhile" "$n runs"

kubeconfig "$_tmp/exec401.kubeconfig" "$(exec_user "$_tmp/count2" bad-first)"
stage exec401
KUBECONFIG=$_tmp/exec401.kubeconfig run pipe run -v
keep
expect_rc "a refused exec credential (401) is asked for again" 0
expect_eq "... ran" "$(cat out.txt)" "exec401"

expect_not_in "the bearer token never shows" "$(cat "$all_output")" "$token"
expect_not_in "the client key never shows" "$(cat "$all_output")" "$key_line"
expect_not_in "an exec plugin's bad token never shows" "$(cat "$all_output")" "expired-token-xyz"
finish
