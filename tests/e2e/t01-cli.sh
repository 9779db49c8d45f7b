#!/usr/bin/env bash
# The command line: help, version, unknown commands and flags, init, dag.
. "$(dirname "$0")/lib.sh"

new_ws
run pipe --version
expect_rc "--version exits 0" 0
expect_in "--version prints the version" "$out" "pipe 0."
run pipe --help
expect_rc "--help exits 0" 0
expect_in "--help lists commands" "$out" "validate"
run pipe help run
expect_rc "help COMMAND exits 0" 0
expect_in "help run shows usage" "$out" "usage: pipe run [STAGE...]"
run pipe help nosuch
expect_rc "help of an unknown command exits 2" 2
run pipe frobnicate
expect_rc "unknown command exits 2" 2
expect_in "unknown command is named" "$err" "unknown command 'frobnicate'"
run pipe --bogus validate
expect_rc "unknown global option exits 2" 2
expect_in "unknown option is named" "$err" "unknown option '--bogus'"
run pipe dag --bogus
expect_rc "unknown command option exits 2" 2
expect_in "usage shown" "$err" "usage: pipe dag"
run pipe
expect_rc "no command exits 2" 2
run pipe validate
expect_rc "missing Pipefile exits 2" 2
expect_in "missing Pipefile says what to do" "$err" "pipe init"

run pipe init
expect_rc "init exits 0" 0
expect_eq "init writes a Pipefile" "$(test -f Pipefile && echo yes)" "yes"
expect_eq "init creates .pipe/" "$(test -d .pipe && echo yes)" "yes"
expect_in "init ignores .pipe/" "$(cat .gitignore)" ".pipe/"
run pipe validate
expect_rc "the starter Pipefile validates" 0
echo "# custom" >> Pipefile
cp Pipefile Pipefile.keep
run pipe init
expect_eq "init keeps an existing Pipefile" "$(cmp -s Pipefile Pipefile.keep && echo same)" "same"
expect_eq "init does not duplicate the ignore line" "$(grep -c '^.pipe/$' .gitignore)" "1"

new_ws
cat > Pipefile <<'YML'
stages:
  report:
    cmd: cat model/m out/x > report.txt
    inputs: [model/, out/x]
    outputs: [report.txt]
  pre:
    cmd: mkdir -p out && touch out/x
    outputs: [out/]
  train:
    cmd: mkdir -p model && touch model/m
    inputs: [out/]
    outputs: [model/]
YML
run pipe validate
expect_rc "validate exits 0" 0
expect_eq "validate summary" "$out" "Pipefile: ok: 3 stages, 3 edges"
run pipe dag
expect_eq "dag text in run order" "$out" "pre
train <- pre
report <- pre, train"
run pipe dag --dot
expect_in "dag --dot has an edge" "$out" '"pre" -> "train";'
run pipe dag --mermaid
expect_in "dag --mermaid is a flowchart" "$out" "flowchart LR"
expect_in "dag --mermaid has an edge" "$out" "s1 --> s2"

cat > Pipefile <<'YML'
stages:
  a:
    cmd: cp b.txt a.txt
    inputs: [b.txt]
    outputs: [a.txt]
  b:
    cmd: cp a.txt b.txt
    inputs: [a.txt]
    outputs: [b.txt]
YML
run pipe validate
expect_rc "a cycle is a Pipefile error" 2
expect_in "the cycle is printed" "$err" "dependency cycle: a -> b -> a"
expect_in "the cycle is located" "$err" "Pipefile:2:3:"
run pipe dag
expect_rc "dag refuses a cycle too" 2

finish
