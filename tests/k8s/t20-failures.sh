#!/usr/bin/env bash
# Kubernetes stages that cannot succeed end within seconds with a clear
# message, their Jobs and pods gone, nothing recorded as fresh: an image
# that cannot be pulled, a request no node can fit, one failing datum of
# six (the five others kept), a timeout, and Ctrl-C during a Job.
. "$(dirname "$0")/lib.sh"
plan 24
need_cluster

reg=$PIPE_TEST_REGISTRY
image=$reg/pipe-test/busybox:1
k8s_push pipe-test/busybox:1 >/dev/null || skip_all k8s "cannot push the test image to $reg"

sel=app.kubernetes.io%2Fmanaged-by%3Dpipe
left() { # left: pipe's Jobs and pods still there
	local j p
	j=$(kapi GET "/apis/batch/v1/namespaces/default/jobs?labelSelector=$sel" | jfield 'len(d["items"])')
	p=$(kapi GET "/api/v1/namespaces/default/pods?labelSelector=$sel" | jfield 'len(d["items"])')
	echo $((j + p))
}
# gone_within SECONDS: until nothing of pipe's is left
gone_within() {
	local i
	for ((i = 0; i < $1 * 4; i++)); do
		[ "$(left)" = 0 ] && return 0
		sleep 0.25
	done
	return 1
}
stage() { # stage NAME CMD [EXTRA YAML LINES]
	cat > Pipefile <<YML
stages:
  $1:
    executor: kubernetes
    image: ${IMAGE:-$image}
    cmd: $2
    outputs: [out.txt]
${3:-}
YML
}
timed() { local t0=$SECONDS; run "$@"; took=$((SECONDS - t0)); }

# what earlier runs left in the namespace would be counted as this one's
kapi DELETE "/apis/batch/v1/namespaces/default/jobs?labelSelector=$sel&propagationPolicy=Background" >/dev/null 2>&1
kapi DELETE "/api/v1/namespaces/default/pods?labelSelector=$sel&gracePeriodSeconds=0" >/dev/null 2>&1
gone_within 60 || echo "# $(left) objects of earlier runs are still there"

new_ws
chown 1000:1000 .

# an image that is not there: pinned to a digest the registry lacks
IMAGE="$reg/pipe-test/busybox@sha256:$(printf '0%.0s' $(seq 64))" stage pull 'echo hi > out.txt'
timed pipe run
expect_rc "an image that cannot be pulled fails the stage" 1
expect_in "... saying so" "$err" "cannot start the container (ErrImagePull"
[ "$took" -le 30 ] && ok "... within seconds (${took}s)" || not_ok "... within seconds" "took ${took}s"
gone_within 30 && ok "... its Job and pods are gone" || not_ok "... its Job and pods are gone" "$(left) left"
run pipe status
expect_rc "... and it is not fresh" 1

stage big 'echo hi > out.txt' '    resources: {memory: 1Ti}'
timed pipe run
expect_rc "a request no node can fit fails the stage" 1
expect_in "... with the scheduler's reason" "$err" "no node can run the pod (FailedScheduling)"
expect_in "... naming the resource" "$err" "nsufficient memory"
[ "$took" -le 30 ] && ok "... within seconds (${took}s)" || not_ok "... within seconds" "took ${took}s"
gone_within 30 && ok "... its Job and pods are gone" || not_ok "... its Job and pods are gone" "$(left) left"

mkdir -p reads && for i in 1 2 3 4 5 6; do echo "r$i" > "reads/r$i.txt"; done
chown -R 1000:1000 reads
touch stop
cat > Pipefile <<YML
stages:
  align:
    executor: kubernetes
    image: $image
    datums: "reads/*.txt"
    parallelism: 3
    cmd: 'case "\$PIPE_DATUM" in *r3.txt) if [ -e stop ]; then echo bad datum >&2; exit 3; fi;; esac; cp "\$PIPE_DATUM" "\$PIPE_OUT/"'
    inputs: [reads/]
    outputs: [aligned/]
YML
run pipe run
expect_rc "one failing datum of six fails the stage" 1
expect_in "... naming the datum and its exit status" "$err" "datum 'reads/r3.txt': exit status 3"
expect_in "... its output streamed" "$out" "[align reads/r3.txt] bad datum"
gone_within 30 && ok "... its Job and pods are gone" || not_ok "... its Job and pods are gone" "$(left) left"
rm stop
run pipe run -v
expect_rc "after the fix" 0
expect_in "... only the failed datum ran again (the five others kept)" "$err" '"completions":1,'
expect_eq "... every output there" "$(ls aligned | tr '\n' ' ')" "r1.txt r2.txt r3.txt r4.txt r5.txt r6.txt "

stage slow 'sleep 60; echo hi > out.txt' '    timeout: 3s'
timed pipe run
expect_rc "a stage past its timeout fails" 1
expect_in "... saying it timed out" "$err" "timed out after 3s"
[ "$took" -le 40 ] && ok "... within seconds (${took}s)" || not_ok "... within seconds" "took ${took}s"
gone_within 30 && ok "... its Job and pods are gone" || not_ok "... its Job and pods are gone" "$(left) left"

stage long 'sleep 120; echo hi > out.txt'
"$PIPE" run > "$_tmp/int.out" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
	[ "$(kapi GET "/api/v1/namespaces/default/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpipe" |
		jfield '[p["status"]["phase"] for p in d["items"]]')" = Running ] && break
	sleep 0.25
done
t0=$SECONDS
kill -INT "$pid"
wait "$pid"
rc=$?
expect_eq "Ctrl-C during a Job: exit 130" "$rc" "130"
[ $((SECONDS - t0)) -le 15 ] && ok "... within seconds ($((SECONDS - t0))s)" || not_ok "... within seconds" "took $((SECONDS - t0))s"
gone_within 30 && ok "... its Job and pods are gone" || not_ok "... its Job and pods are gone" "$(left) left"
finish
