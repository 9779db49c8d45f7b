#!/usr/bin/env bash
# A run records the inputs the project's git does not hold as they are
# (store.h, "untracked inputs"). pipe asks HEAD's tree about each plain
# file input before any look at it, and reads git's status once, in a
# child process; PIPE_TEST_FULL_INPUTS lists every input first, as pipe
# did before. Both must record the same tree, step after step, in a copy
# of the same repository: a tracked input modified, staged, committed
# (HEAD moved), deleted, removed from the index, its mode changed; an
# untracked input that becomes tracked; another selection of stages; a
# glob, a folder (also named without its '/'), a symlink and a file an
# upstream stage writes; the workspace a folder below the work tree's
# top. pipe never writes the user's .git/index.
. "$(dirname "$0")/lib.sh"
plan 38

gitc() { git -c user.name=t -c user.email=t@t "$@"; }
top=$_tmp/repo
full=$_tmp/repo.full
mkdir -p "$top/proj"
cd "$top" || exit 1
git init -q .
printf '.pipe/\n*.out\ndata/\n' >.gitignore
cd proj || exit 1
cat >Pipefile <<'EOF'
stages:
  a:
    cmd: cat code.txt data/raw.txt > a.out
    inputs: [code.txt, data/raw.txt]
    outputs: [a.out]
  b:
    cmd: cat a.out lib/*.py > b.out
    inputs: [a.out, "lib/*.py"]
    outputs: [b.out]
  c:
    cmd: ls conf > c.out
    inputs: [conf/]
    outputs: [c.out]
  d:
    cmd: cat notes.txt link.txt > d.out
    inputs: [notes.txt, link.txt]
    outputs: [d.out]
  e:
    cmd: cat tool.sh tick.txt > e.out
    inputs: [tool.sh, tick.txt]
    outputs: [e.out]
  f:
    cmd: ls etc > f.out
    inputs: [etc]
    outputs: [f.out]
EOF
mkdir -p data lib conf etc
echo tracked >etc/tracked.cfg
echo local >etc/local.cfg
echo code1 >code.txt
echo raw1 >data/raw.txt
echo 'x = 1' >lib/x.py
echo 'y = 1' >lib/y.py
echo 'k: 1' >conf/a.yml
echo 'k: 2' >conf/b.yml
printf '#!/bin/sh\n' >tool.sh
chmod +x tool.sh
echo notes >notes.txt
ln -s code.txt link.txt
echo 0 >tick.txt
gitc add ../.gitignore Pipefile code.txt lib conf etc/tracked.cfg tool.sh link.txt
gitc commit -qm one

# inputs REPO: the last run record's inputs, one "mode path" a line
inputs() {
	git --git-dir "$1/proj/.pipe/store" ls-tree -r --name-only \
		refs/pipe/runs:inputs 2>/dev/null | grep -v '^\.pipe-manifest$' |
		tr '\n' ' '
}
# tree REPO: the last run record's inputs tree, or "none"
tree() {
	git --git-dir "$1/proj/.pipe/store" rev-parse -q --verify \
		refs/pipe/runs:inputs 2>/dev/null || echo none
}

# index_id: the user's .git/index, its bytes and its stat data
index_id() {
	stat -c '%i %s %y %z' "$top/.git/index"
	sha256sum <"$top/.git/index"
}
index_written=

# step DESC [TARGETS]: a run here and, in a copy made just before, the
# same run listing every input first: the same inputs tree
step() {
	local desc=$1
	shift
	tick=$((${tick:-0} + 1))
	echo "$tick" >"$top/proj/tick.txt" # stage e runs: a record each time
	rm -rf "$full"
	cp -a "$top" "$full"
	before=$(index_id)
	(cd "$top/proj" && "$PIPE" run -q "$@") >/dev/null 2>"$_tmp/.err"
	rc=$?
	[ "$(index_id)" = "$before" ] || index_written="$index_written $tick"
	(cd "$full/proj" && PIPE_TEST_FULL_INPUTS=1 "$PIPE" run -q "$@") \
		>/dev/null 2>>"$_tmp/.err"
	rc=$((rc + $?))
	err=$(cat "$_tmp/.err")
	expect_eq "$desc: both runs exit 0" "$rc $err" "0 "
	expect_eq "$desc: the same inputs as listing them all" \
		"$(tree "$top") $(inputs "$top")" "$(tree "$full") $(inputs "$full")"
	got=$(inputs "$top")
}

step "first run"
expect_eq "first run: the untracked files, no tracked one" "$got" \
	"data/raw.txt etc/local.cfg notes.txt tick.txt "

echo code2 >code.txt
step "a tracked input modified"
expect_in "modified: recorded" "$got" "code.txt"

gitc add code.txt
step "the change staged"
expect_in "staged: still recorded (the index differs from HEAD)" "$got" "code.txt"

gitc commit -qm two
step "the change committed: HEAD moved"
expect_not_in "committed: no longer recorded" "$got" "code.txt"

rm lib/y.py
step "a tracked glob input deleted"
expect_eq "deleted: nothing new recorded" "$got" \
	"data/raw.txt etc/local.cfg notes.txt tick.txt "

gitc add notes.txt
gitc commit -qm three
step "an untracked input now tracked"
expect_not_in "tracked now: not recorded" "$got" "notes.txt"

echo code3 >code.txt
step "another selection of stages" a e
expect_eq "selection: only a's and e's inputs" "$got" \
	"code.txt data/raw.txt tick.txt "

step "the whole pipeline again"
expect_in "whole again: a's changed input still recorded" "$got" "code.txt"

gitc rm -q --cached conf/a.yml
step "a tracked file of a folder input removed from the index"
expect_in "not in the index: recorded" "$got" "conf/a.yml"
expect_not_in "its neighbour is not" "$got" "conf/b.yml"

chmod -x tool.sh
step "a tracked input's mode changed"
expect_in "mode changed: recorded" "$got" "tool.sh"

rm link.txt
ln -s notes.txt link.txt
step "a tracked symlink pointed elsewhere"
expect_in "symlink changed: recorded" "$got" "link.txt"

gitc rm -q --cached notes.txt
gitc commit -qm four
step "HEAD moved to a tree without a tracked input"
expect_in "out of HEAD: notes.txt recorded again" "$got" "notes.txt"

expect_eq "pipe never wrote the user's .git/index (steps that did)" \
	"$index_written" ""

finish
