#!/usr/bin/env bash
# pipe push / pull over a git remote (a bare repository on disk, as
# libgit2 reaches any): two workspaces share results (after a pull, run
# executes nothing and the outputs are identical byte for byte; a change
# runs only its stage), a second push sends nothing, concurrent pushes
# and interleaved push/pull keep both sides' commits, a kill during a push
# (at the point between the large files and the refs, and at random
# moments) leaves both sides valid and the next push completes, a third
# workspace then pulls; a 3 MB file travels through the CAS; errors.
. "$(dirname "$0")/lib.sh"
command -v xxhsum >/dev/null || { echo "xxhsum missing (make deps)"; exit 1; }

remote=$_tmp/remote.git
git init -q --bare "$remote"
tpl=$_tmp/tpl
mkdir -p "$tpl"
echo hello >"$tpl/in1.txt"
echo world >"$tpl/in2.txt"
head -c 3000000 /dev/urandom >"$tpl/big.bin"
cat >"$tpl/Pipefile" <<'YML'
stages:
  one:
    cmd: sh -c 'echo one >> ran.txt; tr a-z A-Z < in1.txt > o1.txt'
    inputs: [in1.txt]
    outputs: [o1.txt]
  two:
    cmd: sh -c 'echo two >> ran.txt; mkdir -p out2; cp big.bin out2/big.bin; cat in2.txt > out2/b.txt'
    inputs: [in2.txt, big.bin]
    outputs: [out2/]
YML
# mkws NAME: a workspace made from the template; cd there.
mkws() { mkdir -p "$_tmp/$1" && cp "$tpl"/* "$_tmp/$1/" && cd "$_tmp/$1" || exit 1; }
ran() { if [ -f ran.txt ]; then sort ran.txt | tr '\n' ' '; rm -f ran.txt; fi; }
rref() { git --git-dir "$remote" rev-parse -q --verify "$1" 2>/dev/null; }
lref() { git --git-dir .pipe/store rev-parse -q --verify "$1" 2>/dev/null; }
remote_fsck() {
	if o=$(git --git-dir "$remote" fsck --strict 2>&1); then ok "$1"; else not_ok "$1" "$o"; fi
}
same_outputs() { # same_outputs DESC DIR: o1.txt and out2/ equal DIR's
	if cmp -s o1.txt "$2/o1.txt" && cmp -s out2/big.bin "$2/out2/big.bin" &&
		cmp -s out2/b.txt "$2/out2/b.txt"; then ok "$1"; else
		not_ok "$1" "outputs differ from $2"
	fi
}

# --- A runs and pushes; a second push sends nothing
mkws a
run pipe run
expect_rc "a: run" 0
ran >/dev/null
run pipe push "$remote"
expect_rc "a: push" 0
ida=$(cat .pipe/store/pipe-id)
expect_in "a: push says what it sent" "$err" "pushed 3 refs, 1 files (2.9 MiB) to $remote"
expect_eq "the remote has a's stage 'one' under a's namespace" \
	"$(rref "refs/pipe/ws/$ida/stages/one")" "$(lref refs/pipe/stages/one)"
expect_eq "the remote has a's run records" \
	"$(rref "refs/pipe/ws/$ida/runs")" "$(lref refs/pipe/runs)"
expect_in "the 3 MB file travels as a blob on a's cas ref" \
	"$(git --git-dir "$remote" ls-tree -r "refs/pipe/ws/$ida/cas")" \
	"$(xxhsum -H2 big.bin | cut -d' ' -f1)"
remote_fsck "remote valid after the push"
before=$(git --git-dir "$remote" for-each-ref)
run pipe push "$remote"
expect_eq "a: a second push sends nothing" "$rc $err" "0 nothing to push"
expect_eq "a: the remote's refs did not move" "$(git --git-dir "$remote" for-each-ref)" "$before"

# --- B pulls: run executes nothing, outputs identical
mkws b
run pipe pull "$remote"
expect_rc "b: pull" 0
expect_in "b: pull says what it brought" "$err" "pulled 3 refs, 1 files (2.9 MiB) from $remote"
expect_eq "b: pull writes no file of the workspace" "$(ls)" "$(ls "$tpl")"
expect_eq "b: pull moves no stage of b" "$(lref refs/pipe/stages/one)" ""
run pipe run
expect_rc "b: run after pull" 0
expect_eq "b: run executed nothing" "$(ran)" ""
expect_in "b: the stages came from the store" "$out$err" "0 ran, 2 cached"
same_outputs "b: outputs identical to a's" "$_tmp/a"
run pipe pull "$remote"
expect_eq "b: a second pull brings nothing" "$rc $err" "0 nothing to pull"

# --- a change in one input runs only that stage; a takes it back
echo changed >in1.txt
run pipe run
expect_eq "b: a changed in1 runs only stage one" "$rc $(ran)" "0 one "
run pipe push "$remote"
expect_rc "b: push" 0
idb=$(cat .pipe/store/pipe-id)
cd "$_tmp/a"
run pipe pull "$remote"
expect_rc "a: pull b's work" 0
cp "$_tmp/b/in1.txt" in1.txt
run pipe run
expect_eq "a: with b's input, nothing runs" "$rc $(ran)" "0 "
same_outputs "a: outputs identical to b's" "$_tmp/b"

# --- a remote named in the project's git config
git init -q . && git remote add origin "$remote"
run pipe push origin
expect_eq "a: push origin (the project's git remote)" "$rc" "0"

# --- concurrent pushes keep both sides' commits
echo two-a >in2.txt
pipe run >/dev/null 2>&1
cd "$_tmp/b" && echo one-b >in1.txt && pipe run >/dev/null 2>&1
(cd "$_tmp/a" && pipe push "$remote" >"$_tmp/pa.out" 2>&1; echo $? >"$_tmp/pa.rc") &
p1=$!
(cd "$_tmp/b" && pipe push "$remote" >"$_tmp/pb.out" 2>&1; echo $? >"$_tmp/pb.rc") &
p2=$!
wait "$p1" "$p2"
expect_eq "two pushes at once both succeed" "$(cat "$_tmp/pa.rc") $(cat "$_tmp/pb.rc")" "0 0"
expect_eq "the remote has a's new commit" "$(rref "refs/pipe/ws/$ida/stages/two")" \
	"$(git --git-dir "$_tmp/a/.pipe/store" rev-parse refs/pipe/stages/two)"
expect_eq "the remote has b's new commit" "$(rref "refs/pipe/ws/$idb/stages/one")" \
	"$(git --git-dir "$_tmp/b/.pipe/store" rev-parse refs/pipe/stages/one)"
remote_fsck "remote valid after concurrent pushes"

# --- interleaved push and pull
cd "$_tmp/a" && echo two-a2 >in2.txt && pipe run >/dev/null 2>&1
(cd "$_tmp/a" && pipe push "$remote" >/dev/null 2>&1; echo $? >"$_tmp/pa.rc") &
p1=$!
(cd "$_tmp/b" && pipe pull "$remote" >/dev/null 2>&1; echo $? >"$_tmp/pb.rc") &
p2=$!
wait "$p1" "$p2"
expect_eq "a push and a pull at once both succeed" "$(cat "$_tmp/pa.rc") $(cat "$_tmp/pb.rc")" "0 0"
cd "$_tmp/b"
run pipe pull "$remote"
expect_eq "b: after pulling again, b tracks a's newest commit" \
	"$(lref "refs/pipe/remotes/$ida/stages/two")" \
	"$(git --git-dir "$_tmp/a/.pipe/store" rev-parse refs/pipe/stages/two)"
expect_fsck "b: store valid"

# --- a kill between the large files and the refs, then push again
cd "$_tmp/a"
head -c 2000000 /dev/urandom >big.bin
pipe run >/dev/null 2>&1
old=$(rref "refs/pipe/ws/$ida/stages/two")
run env PIPE_TEST_CRASH=push-git-before-refs "$PIPE" push "$remote"
expect_rc "a: push killed before its refs" 99
remote_fsck "remote valid after the kill"
expect_eq "the remote's ref did not move" "$(rref "refs/pipe/ws/$ida/stages/two")" "$old"
run pipe push "$remote"
expect_rc "a: push again" 0
expect_eq "the remote is complete" "$(rref "refs/pipe/ws/$ida/stages/two")" "$(lref refs/pipe/stages/two)"
# and SIGKILL at random moments of pushes
bad=
for d in 0.02 0.05 0.1 0.2 0.4; do
	head -c 1500000 /dev/urandom >big.bin
	pipe run >/dev/null 2>&1
	kill_after "$d" "$PIPE" push "$remote"
	git --git-dir "$remote" fsck --strict >/dev/null 2>&1 || bad="$bad $d"
	store_fsck >/dev/null || bad="$bad local:$d"
done
expect_eq "SIGKILL during pushes: remote and store stay valid" "$bad" ""
run pipe push "$remote"
expect_rc "a: push after the kills" 0
expect_eq "the remote is complete after the kills" \
	"$(rref "refs/pipe/ws/$ida/stages/two")" "$(lref refs/pipe/stages/two)"

# --- a third workspace pulls and runs nothing
mkws c
cp "$_tmp/a/in1.txt" "$_tmp/a/in2.txt" "$_tmp/a/big.bin" .
run pipe run --pull "$remote"
expect_rc "c: run --pull" 0
expect_eq "c: nothing executed" "$(ran)" ""
expect_in "c: run --pull says what it pulled" "$err" "pulled "
same_outputs "c: outputs identical to a's (3 MB file included)" "$_tmp/a"
expect_fsck "c: store valid"

# --- a pull killed before its refs move, then pull again
mkws k
run env PIPE_TEST_CRASH=pull-git-before-refs "$PIPE" pull "$remote"
expect_rc "k: pull killed before its refs" 99
expect_eq "k: no ref moved" "$(git --git-dir .pipe/store for-each-ref refs/pipe/remotes | wc -l)" 0
run pipe run --pull "$remote"
expect_eq "k: run --pull again executes nothing" "$rc $(ran)" "0 "
expect_fsck "k: store valid"

# --- errors
run pipe push nosuchremote
expect_rc "unknown remote name: usage" 2
expect_in "unknown remote name: named" "$err" "unknown remote 'nosuchremote'"
run pipe push "$_tmp/nonexistent.git"
expect_rc "unreachable remote: environment" 3
expect_in "unreachable remote: named" "$err" "nonexistent.git"
run pipe pull
expect_rc "no remote given: usage" 2
run pipe push -j 0 "$remote"
expect_rc "-j 0: usage" 2
mkdir -p "$_tmp/empty" && cd "$_tmp/empty"
run pipe push "$remote"
expect_rc "not a pipe workspace: usage" 2
expect_in "not a pipe workspace: says so" "$err" "Pipefile"
# --- a teammate reproduces a commit from what was pushed: the project's
# git has the code, the pulled run record the untracked data
proj=$_tmp/proj
mkdir -p "$proj" && cp "$tpl"/* "$proj/" && cd "$proj" || exit 1
git init -q && git add Pipefile in1.txt && git commit -qm first
first=$(git rev-parse HEAD)
run pipe run
expect_rc "proj: run at the first commit (in2.txt and big.bin untracked)" 0
rm -f ran.txt
run pipe push "$remote"
expect_rc "proj: push" 0
git clone -q "$proj" "$_tmp/mate" && cd "$_tmp/mate" || exit 1
run pipe reproduce "$first"
expect_rc "mate, before a pull: no run recorded at that commit" 2
run pipe pull "$remote"
expect_rc "mate: pull" 0
run pipe reproduce "$first"
expect_rc "mate: reproduce the first commit from the pulled run" 0
scratch=$(ls -d .pipe/reproduce/*/ 2>/dev/null | head -1)
expect_eq "... nothing executed" "$(ls "$scratch" 2>/dev/null | grep -c '^ran.txt$')" "0"
if [ -n "$scratch" ] && cmp -s "$scratch/o1.txt" "$proj/o1.txt" &&
	cmp -s "$scratch/out2/big.bin" "$proj/out2/big.bin" &&
	cmp -s "$scratch/in2.txt" "$proj/in2.txt"; then
	ok "... the outputs and the untracked inputs, byte for byte"
else
	not_ok "... the outputs and the untracked inputs, byte for byte" "scratch: '$scratch'"
fi

finish
