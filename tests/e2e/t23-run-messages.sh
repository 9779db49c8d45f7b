#!/usr/bin/env bash
# What pipe says when something is wrong: located, once, short, and true
# (no "stopped after a failure" when nothing failed).
. "$(dirname "$0")/lib.sh"

# a params file that is missing, or lacks the key: located at the key in
# the Pipefile; the stages that did not run are not said to have stopped
# after a failure
new_ws
cat > Pipefile <<'YML'
params: params.yaml
stages:
  a:
    cmd: sh -c 'echo a > a.txt'
    params: [x.y]
    outputs: [a.txt]
  b:
    cmd: sh -c 'cat a.txt > b.txt'
    inputs: [a.txt]
    outputs: [b.txt]
YML
run pipe run
expect_rc "a missing params file: exit 2" 2
expect_in "located at the key" "$err" "pipe: error: Pipefile:5:14: stage 'a': cannot read params file 'params.yaml': No such file or directory
    5 |     params: [x.y]
      |              ^"
expect_not_in "no stage stopped after a failure" "$err" "stopped after a failure"
echo 'x: {z: 1}' > params.yaml
run pipe run
expect_in "a missing key: located too" "$err" "pipe: error: Pipefile:5:14: stage 'a': param 'x.y' is not in 'params.yaml'"
expect_not_in "still no failure listed" "$err" "stopped after a failure"
echo 'x: [' > params.yaml
run pipe run
expect_in "an error inside the params file keeps its own place" "$err" "pipe: error: params.yaml:2:1: "

# context is said once: "stage 'a' failed: datums ...", not "stage 'a':
# stage 'a': ..."
new_ws
mkdir d
touch d/1 d/2
cat > Pipefile <<'YML'
stages:
  a:
    datums: "d/*"
    cmd: sh -c 'echo x > $PIPE_OUT/same'
    outputs: [o/]
YML
run pipe run
expect_rc "two datums writing one path fail the stage" 1
expect_in "said once" "$err" "stage 'a' failed: datums 'd/1' and 'd/2' both write 'same'"
expect_not_in "not twice" "$err" "stage 'a': stage 'a'"
cat > Pipefile <<'YML'
stages:
  b:
    executor: docker
    image: example/none:1
    cmd: x
    outputs: [k/]
YML
DOCKER_HOST=unix://$PWD/no.sock run pipe run
expect_rc "no daemon: exit 3" 3
expect_in "the stage named once" "$err" "pipe: error: stage 'b': cannot reach the Docker daemon"
expect_not_in "not twice (daemon)" "$err" "stage 'b': stage 'b'"

# one log per datum: d/a_b.txt and d/a/b.txt used to share d_a_b.txt.log
new_ws
mkdir -p d/a
echo one > d/a_b.txt
echo two > d/a/b.txt
cat > Pipefile <<'YML'
stages:
  s:
    datums: "d/**/*.txt"
    cmd: sh -c 'echo "log of $PIPE_DATUM"; cp $PIPE_DATUM $PIPE_OUT/$(cat $PIPE_DATUM)'
    outputs: [o/]
YML
run pipe run -q
expect_rc "two datums ran" 0
job=$(pipe jobs | awk 'NR == 2 { print $1 }')
run pipe logs "$job" --datum d/a_b.txt
expect_eq "d/a_b.txt has its own log" "$out" "log of d/a_b.txt"
run pipe logs "$job" --datum d/a/b.txt
expect_eq "d/a/b.txt has its own log" "$out" "log of d/a/b.txt"
run pipe logs "$job"
expect_in "all logs, headed by datum" "$out" "== d/a/b.txt ==
log of d/a/b.txt"
expect_in "all logs, the other" "$out" "== d/a_b.txt ==
log of d/a_b.txt"

# a 20,000-stage cycle: one short line with its ends and its length
new_ws
awk 'BEGIN { n = 20000; print "stages:"
	for (i = 0; i < n; i++)
		printf "  s%d:\n    cmd: x\n    inputs: [o%d/]\n    outputs: [o%d/]\n", i, (i + n - 1) % n, i }' > Pipefile
run pipe validate
expect_rc "a long cycle: exit 2" 2
expect_in "its ends and length" "$err" "pipe: error: Pipefile:2:3: dependency cycle of 20000 stages: s0 -> s1 -> s2 -> s3 -> ... -> s19996 -> s19997 -> s19998 -> s19999 -> s0"
expect_eq "in a short message" "$(printf '%s' "$err" | wc -c | awk '{ print ($1 < 400) }')" "1"
# where .pipe/ exists, the graph of a large Pipefile is built beside the
# state file's load: the same error, and nothing written
mkdir .pipe
run pipe run
expect_rc "a long cycle beside the state: exit 2" 2
expect_in "the same message" "$err" "pipe: error: Pipefile:2:3: dependency cycle of 20000 stages: s0 -> s1"
expect_eq "no state written" "$(ls .pipe | grep -c state)" "0"

finish
