#!/usr/bin/env bash
# The faults of issue #15 on the real test cluster: the apiserver killed and
# started again while a stage runs; through faultproxy.py, a watch of Jobs
# answered "410 Gone", watch streams cut every 2 s, Job creates refused
# with 503 (retried) and 403 (not); and an image re-tagged between the
# start of a run and the stage that uses it (the Job's digest and what the
# pod ran agree). Everything runs in its own namespace (pipe-kfault).
# shellcheck source=lib.sh disable=SC2015,SC2317 # ok && ... || not_ok as in t20; functions run by the trap and k8s_wait
. "$(dirname "$0")/lib.sh"
plan 62
need_cluster

reg=$PIPE_TEST_REGISTRY
image=$reg/pipe-test/busybox:1
NS=${PIPE_K8S_FAULT_NS:-pipe-kfault}
k8s_push pipe-test/busybox:1 >/dev/null || skip_all k8s "cannot push the test image to $reg"

proxy_pids=()
cleanup() {
	local p
	for p in "${proxy_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	kapi DELETE "/apis/batch/v1/namespaces/$NS/jobs?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpipe&propagationPolicy=Background" >/dev/null 2>&1
	kapi DELETE "/api/v1/namespaces/$NS/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpipe" >/dev/null 2>&1
	# PIPE_T40_KEEP=DIR: pipe's output and the proxies' logs kept there
	[ -n "${PIPE_T40_KEEP:-}" ] && mkdir -p "$PIPE_T40_KEEP" &&
		cp "$_tmp"/*.err "$_tmp"/*.out "$_tmp"/*.log "$_tmp"/*.observed "$PIPE_T40_KEEP"/ 2>/dev/null
	rm -rf "$_tmp"
}
trap cleanup EXIT

# our namespace, and its default ServiceAccount (pods need it)
kapi GET "/api/v1/namespaces/$NS" >/dev/null 2>&1 ||
	kapi POST /api/v1/namespaces "{apiVersion: v1, kind: Namespace, metadata: {name: $NS}}" >/dev/null ||
	skip_all k8s "cannot create namespace $NS"
k8s_wait 60 "the default service account of $NS" kapi GET "/api/v1/namespaces/$NS/serviceaccounts/default" ||
	skip_all k8s "namespace $NS has no default service account"

# left: pipe's Jobs in our namespace that are not being deleted
left() {
	kapi GET "/apis/batch/v1/namespaces/$NS/jobs?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpipe" |
		jfield '[j["metadata"]["name"] for j in d["items"] if not j["metadata"].get("deletionTimestamp")]'
}
# expect_no_job DESC: no Job of pipe's is left in the namespace
expect_no_job() { expect_eq "$1" "$(left)" ""; }
stage() { # stage NAME CMD [EXTRA YAML LINES]
	cat > Pipefile <<YML
kubernetes: {namespace: $NS}
stages:
  $1:
    executor: kubernetes
    image: ${IMAGE:-$image}
    cmd: $2
    outputs: [out.txt]
${3:-}
YML
}
# pod_running: a pod of ours runs
pod_running() {
	[[ " $(kapi GET "/api/v1/namespaces/$NS/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpipe" |
		jfield '[p["status"]["phase"] for p in d["items"]]') " == *" Running "* ]]
}

# ---------------------------------------------------------------- 1
# The apiserver killed (SIGKILL) and started again while a stage runs
new_ws
chown 1000:1000 .
stage restart 'echo before; sleep 15; echo after; echo survived > out.txt'
t0=$SECONDS
pipe run -v > "$_tmp/restart.out" 2> "$_tmp/restart.err" &
pid=$!
if k8s_wait 60 "the pod to run" pod_running; then
	sleep 2
	bash "$k8s_dir/apiserver-restart.sh" KILL > "$_tmp/restart.log" 2>&1
	restarted=$?
else
	restarted=1
fi
expect_eq "the apiserver was killed and is back (apiserver-restart.sh)" "$restarted" 0
wait "$pid"
rc=$? out=$(cat "$_tmp/restart.out") err=$(cat "$_tmp/restart.err")
expect_rc "pipe re-watched and the stage finished: exit 0" 0
expect_eq "... its output there" "$(cat out.txt 2>/dev/null)" "survived"
expect_in "... it said it retried while the API was away" "$err" "retrying in"
[ $((SECONDS - t0)) -le $((90 * slow)) ] && ok "... within seconds ($((SECONDS - t0))s)" ||
	not_ok "... within seconds" "took $((SECONDS - t0))s"
expect_in "... the pod's log before the restart streamed" "$out" "[restart] before"
expect_in "... and its log after the restart too" "$out" "[restart] after"
expect_no_job "... no Job left"
cat .pipe/logs/*.log > "$_tmp/restart.unit.log" 2>/dev/null

# ---------------------------------------------------------------- 2
# faultproxy.py: its serving certificate, signed by the cluster's CA
pk=$_tmp/proxy-pki
mkdir -p "$pk"
openssl req -newkey rsa:2048 -nodes -keyout "$pk/proxy.key" -out "$pk/proxy.csr" \
	-subj /CN=faultproxy >/dev/null 2>&1
printf '%s\n' basicConstraints=CA:FALSE keyUsage=digitalSignature,keyEncipherment \
	extendedKeyUsage=serverAuth subjectAltName=IP:127.0.0.1 > "$pk/proxy.ext"
openssl x509 -req -in "$pk/proxy.csr" -CA "$K8S_PKI/ca.crt" -CAkey "$K8S_PKI/ca.key" \
	-CAcreateserial -CAserial "$pk/ca.srl" -out "$pk/proxy.crt" -days 2 \
	-extfile "$pk/proxy.ext" >/dev/null 2>&1
token=$(cat "$PIPE_K8S_TOKEN_FILE")

# proxy NAME FLAGS...: faultproxy.py started with FLAGS, its request log in
# $_tmp/NAME.log, and $_tmp/NAME.kubeconfig pointing at it (the bearer
# token, passed through to the apiserver); port in $port
proxy() {
	local name=$1 i
	shift
	rm -f "$_tmp/$name.port"
	python3 "$k8s_dir/faultproxy.py" --cert "$pk/proxy.crt" --key "$pk/proxy.key" \
		--upstream "$PIPE_K8S_SERVER" --upstream-ca "$PIPE_K8S_CA" \
		--log "$_tmp/$name.log" --port-file "$_tmp/$name.port" --exit-with $$ "$@" \
		2> "$_tmp/$name.proxy.err" &
	proxy_pids+=($!)
	for ((i = 0; i < 40; i++)); do
		[ -s "$_tmp/$name.port" ] && break
		sleep 0.25
	done
	port=$(cat "$_tmp/$name.port" 2>/dev/null)
	cat > "$_tmp/$name.kubeconfig" <<YML
apiVersion: v1
kind: Config
current-context: p
clusters: [{name: p, cluster: {server: "https://127.0.0.1:${port:-1}", certificate-authority: "$PIPE_K8S_CA"}}]
users: [{name: u, user: {token: "$token"}}]
contexts: [{name: p, context: {cluster: p, user: u}}]
YML
}
stop_proxies() {
	local p
	for p in "${proxy_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	proxy_pids=()
}
# proxied NAME STAGE CMD FLAGS...: a fresh workspace whose one stage runs
# CMD through a new faultproxy.py NAME started with FLAGS (pipe run -v)
proxied() {
	local name=$1 st=$2 cmd=$3
	shift 3
	stop_proxies
	proxy "$name" "$@"
	new_ws
	chown 1000:1000 .
	stage "$st" "$cmd"
	KUBECONFIG=$_tmp/$name.kubeconfig run pipe run -v
	cp "$_tmp/.err" "$_tmp/$name.pipe.err"
}
jobs_path=/apis/batch/v1/namespaces/$NS/jobs
# lines_after LOG WORD: the request lines of LOG after its first WORD line
lines_after() { sed -n "/ $2\$/,\$p" "$1" | sed 1d; }

# the proxy itself: a plain request through it reaches the apiserver
proxy plain
v=$(curl -sS --cacert "$PIPE_K8S_CA" -H "Authorization: Bearer $token" "https://127.0.0.1:$port/version" | jfield 'd["gitVersion"]')
expect_eq "faultproxy.py forwards (the apiserver's version through it)" "$v" "v1.34.4"

# a watch of Jobs answered 410 Gone: pipe lists again and finishes
proxied gone gone 'sleep 4; echo gone-ok > out.txt' --gone-once
expect_rc "a watch of Jobs answered 410 Gone: the stage finishes" 0
expect_eq "... its output there" "$(cat out.txt 2>/dev/null)" "gone-ok"
expect_eq "... the proxy did answer 410" "$(grep -c ' GONE$' "$_tmp/gone.log")" 1
expect_eq "... then Jobs were listed again (no watch=)" \
	"$(lines_after "$_tmp/gone.log" GONE | grep "^GET $jobs_path?" | grep -vc 'watch=')" 1
expect_in "... pipe said so" "$err" "410 Gone: listing again"
expect_no_job "... no Job left"

# watch streams cut every 2 s (the connection closed mid-stream)
proxied drop drop 'sleep 10; echo drop-ok > out.txt' --drop-after 2
expect_rc "watch streams cut every 2 s: a 10 s stage finishes" 0
expect_eq "... its output there" "$(cat out.txt 2>/dev/null)" "drop-ok"
n=$(grep -c ' DROPPED$' "$_tmp/drop.log")
[ "$n" -ge 4 ] && ok "... the streams were cut ($n times)" || not_ok "... the streams were cut" "$n cuts"
n=$(lines_after "$_tmp/drop.log" DROPPED | grep -c "^GET $jobs_path?.*watch=1.*resourceVersion=.* 200\$")
[ "$n" -ge 1 ] && ok "... Jobs watched again from a resourceVersion ($n)" || not_ok "... Jobs watched again from a resourceVersion" "$(cat "$_tmp/drop.log")"
expect_no_job "... no Job left"

# the same, on a stage longer than the 90 s pipe gives an API that does
# not answer: a stream that was cut had answered, the API is there
new_ws
chown 1000:1000 .
stage droplong 'sleep 100; echo droplong-ok > out.txt' '    timeout: 5m'
KUBECONFIG=$_tmp/drop.kubeconfig run pipe run -v
expect_rc "watch streams cut every 2 s: a 100 s stage finishes too" 0
expect_eq "... its output there" "$(cat out.txt 2>/dev/null)" "droplong-ok"
expect_not_in "... pipe did not give up on the API" "$err" "cannot reach the Kubernetes API"
cp "$_tmp/.err" "$_tmp/droplong.err"
expect_no_job "... no Job left"

# Pod logs: a datum pod that ended before its log was followed is read
# from the file its tee wrote beside its PIPE_OUT, not from the API; a pod
# that has no such file (this one removes its own) is read from the API.
# d3 removes its file only once tee has written its first line there: the
# command starts beside tee, and a file removed before tee opens it is
# made again whole (CI saw 0 requests when the rm won that race)
stop_proxies
proxy logs
new_ws
chown 1000:1000 .
mkdir data && for d in d1 d2 d3 d4; do echo "$d" > data/$d; done
cat > Pipefile <<YML
kubernetes: {namespace: $NS}
stages:
  lg:
    executor: kubernetes
    image: $image
    datums: "data/*"
    parallelism: 2
    inputs: [data/]
    outputs: [out/]
    cmd: echo "said \$PIPE_DATUM"; case \$PIPE_DATUM in *d3) i=0; until grep -qs said "\$PIPE_OUT"-*.log || [ \$i -ge 30 ]; do sleep 1; i=\$((i+1)); done; rm -f "\$PIPE_OUT"-*.log; echo "after-rm \$PIPE_DATUM";; esac; cp "\$PIPE_DATUM" "\$PIPE_OUT/"
YML
KUBECONFIG=$_tmp/logs.kubeconfig run pipe run -v
cp "$_tmp/.err" "$_tmp/logs.pipe.err"
expect_rc "pod logs: 4 datums, parallelism 2" 0
for d in d1 d2 d3 d4; do
	expect_in "... [lg data/$d]'s line in pipe's output" "$out" "[lg data/$d] said data/$d"
done
expect_in "... the pod whose file was gone: its log from the API, whole" "$out" "[lg data/d3] after-rm data/d3"
n=$(grep -c "^GET /api/v1/namespaces/$NS/pods/[^ ]*/log?" "$_tmp/logs.log")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] && ok "... log requests to the API: $n (the pod without its file; 4 pods ran)" ||
	not_ok "... log requests to the API: 1 (2 on a slow machine)" "$n" "$(grep /log "$_tmp/logs.log")"
expect_eq "... the outputs are the datums' files, no log file among them" "$(ls -A out | tr '\n' ' ')" "d1 d2 d3 d4 "
expect_eq "... no log file left in .pipe" "$(find .pipe -name '*.log' -path '*tmp*' | wc -l)" 0
expect_no_job "... no Job left"

# Job creates refused twice with 503: retried, the stage succeeds
proxied fail503 busy 'echo busy-ok > out.txt' --fail-first 2 503
expect_rc "two creates answered 503: retried, the stage succeeds" 0
expect_eq "... its output there" "$(cat out.txt 2>/dev/null)" "busy-ok"
expect_eq "... the POSTs: 503, 503, 201" \
	"$(grep "^POST $jobs_path " "$_tmp/fail503.log" | awk '{print $3}' | tr '\n' ' ')" "503 503 201 "
expect_no_job "... no Job left"

# every create answered 503: pipe gives up after its tries, saying why
proxied fail503all busy 'echo busy-ok > out.txt' --fail-first 100 503
expect_rc "every create answered 503: the stage fails" 1
expect_in "... naming the status and the API's message" "$err" "answered 503: faultproxy: injected 503 on the create of a Job"
n=$(grep -c "^POST $jobs_path " "$_tmp/fail503all.log")
[ "$n" -ge 2 ] && ok "... after retrying ($n POSTs)" || not_ok "... after retrying" "$n POSTs"
expect_no_job "... no Job left"

# a create refused with 403: not retried, the stage fails saying why
proxied fail403 refused 'echo no > out.txt' --fail-first 1 403
expect_rc "a create answered 403: the stage fails" 1
expect_in "... naming the HTTP status" "$err" "403"
expect_in "... and the API's message" "$err" "faultproxy: injected 403 on the create of a Job"
expect_eq "... not retried (one POST)" "$(grep -c "^POST $jobs_path " "$_tmp/fail403.log")" 1
expect_no_job "... no Job left"
run pipe status
expect_rc "... and the stage is not fresh" 1
stop_proxies

# ---------------------------------------------------------------- 4
# An image re-tagged between the start of a run and the stage that uses
# it: two images FROM scratch, /marker A or B; retag:1 names A when the
# run starts, and its first (local) stage makes it name B. Whatever pipe
# resolves, the Job runs that digest and the key says so: a stage keyed
# on A is stale afterwards (the tag names B), one keyed on B is fresh.
# Round 1: the first run (the second stage's input does not exist yet);
# round 2: the tag back on A, the first stage changed so that it runs
# again (its output is there when the run starts).
retag_build() { # retag_build TAG MARKER
	local ctx a rc
	ctx=$(mktemp -d "$_tmp/img.XXXXXX")
	mkdir -p "$ctx/bin"
	cp /bin/busybox "$ctx/bin/busybox"
	for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$ctx/bin/$a"; done
	echo "$2" > "$ctx/marker"
	printf 'FROM scratch\nCOPY bin/ /bin/\nCOPY marker /marker\nENV PATH=/bin\n' > "$ctx/Dockerfile"
	DOCKER_BUILDKIT=0 docker build -q -t "$1" "$ctx" > "$ctx/build.log" 2>&1
	rc=$?
	[ "$rc" = 0 ] || cat "$ctx/build.log" >&2
	return "$rc"
}
# digest NAME TAG: the registry's digest of the manifest NAME:TAG
digest() {
	curl -sSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$reg/v2/$1/manifests/$2" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p'
}
tag_a() { docker tag pipe-test/retag:a "$reg/pipe-test/retag:1" && docker push -q "$reg/pipe-test/retag:1" >/dev/null; }
retag_pipefile() { # retag_pipefile MARK: what the first stage writes
	cat > Pipefile <<YML
kubernetes: {namespace: $NS}
stages:
  retag:
    cmd: docker tag pipe-test/retag:b $reg/pipe-test/retag:1 && docker push -q $reg/pipe-test/retag:1 > /dev/null && echo $1 > retagged.txt
    outputs: [retagged.txt]
  marker:
    executor: kubernetes
    image: $reg/pipe-test/retag:1
    cmd: cat /marker > out.txt
    inputs: [retagged.txt]
    outputs: [out.txt]
YML
}
# retag_round N: runs the Pipefile with the tag on A; the checks (6)
retag_round() {
	local job_image ran st
	expect_eq "round $1: retag:1 names A when the run starts" "$(digest pipe-test/retag 1)" "$da"
	run pipe run -v
	cp "$_tmp/.err" "$_tmp/retag$1.pipe.err"
	expect_rc "round $1: a run whose first stage re-tags the second's image" 0
	job_image=$(printf '%s\n' "$err" | sed -n 's/^.*kubernetes: Job pipe-marker-[^:]*: //p' | head -1 |
		jfield 'd["spec"]["template"]["spec"]["containers"][0]["image"]')
	case $job_image in
	"$reg/pipe-test/retag@$da") ran=A ;;
	"$reg/pipe-test/retag@$db") ran=B ;;
	*) ran="neither A nor B" ;;
	esac
	{ [ "$ran" = A ] || [ "$ran" = B ]; } && ok "... the Job's image is A or B, by digest ($ran)" ||
		not_ok "... the Job's image is A or B, by digest" "image: $job_image" "A: $da" "B: $db"
	expect_eq "... the pod ran that digest (its /marker)" "$(cat out.txt 2>/dev/null)" "$ran"
	run pipe status
	st=$out
	if [ "$ran" = A ]; then
		expect_rc "... pipe resolved A: afterwards the stage is stale (the tag names B)" 1
		expect_in "... pipe status says so" "$st" "stale marker"
	else
		expect_rc "... pipe resolved B (after the first stage): afterwards all is fresh" 0
		expect_in "... pipe status says so" "$st" "fresh marker"
	fi
	printf 'round %s: A=%s B=%s Job image=%s ran=%s\npipe status (exit %s):\n%s\n' \
		"$1" "$da" "$db" "$job_image" "$ran" "$rc" "$st" >> "$_tmp/retag.observed"
	echo "# retag round $1: the Job ran $ran ($job_image); pipe status: $(echo "$st" | tr '\n' ' ')"
}
if retag_build pipe-test/retag:a A && retag_build pipe-test/retag:b B &&
	k8s_push pipe-test/retag:a >/dev/null && k8s_push pipe-test/retag:b >/dev/null && tag_a; then
	da=$(digest pipe-test/retag a) db=$(digest pipe-test/retag b)
	[ -n "$da" ] && [ -n "$db" ] && [ "$da" != "$db" ] && ok "A and B are different images ($da, $db)" ||
		not_ok "A and B are different images" "A $da" "B $db"
	new_ws
	chown 1000:1000 .
	retag_pipefile B1
	retag_round 1
	tag_a
	retag_pipefile B2
	retag_round 2
	expect_no_job "no Job left"
else
	not_ok "the two retag images could not be built and pushed"
	skip 13 k8s "no retag images"
fi
finish
