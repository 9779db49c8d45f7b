#!/usr/bin/env bash
# Runs record the inputs git does not hold; `pipe inspect` lists them;
# `pipe reproduce GIT-REV` gives an old commit's outputs back from the
# store without running anything, even after the data is gone;
# --verify tells deterministic stages from the others; every error names
# what is missing; a kill leaves the workspace as it was.
. "$(dirname "$0")/lib.sh"
plan 62

counter=$_tmp/counter # a line per stage execution, outside the workspace
: >"$counter"
gitc() { git -c user.name=t -c user.email=t@t "$@"; }
sum() { sha256sum "$@" | cut -d' ' -f1; }

new_ws
ws=$PWD
git init -q .
echo readme >README
gitc add README
gitc commit -qm zero
ZERO=$(git rev-parse HEAD)

cat >Pipefile <<EOF
stages:
  clean:
    cmd: mkdir -p out && cat data/raw.txt code.txt > out/clean.txt && echo clean >> $counter
    inputs: [data/raw.txt, code.txt]
    outputs: [out/]
  count:
    cmd: wc -c < out/clean.txt > count.txt && echo count >> $counter
    inputs: [out/clean.txt]
    outputs: [count.txt]
  big:
    cmd: sha256sum data/big.bin > big.txt && echo big >> $counter
    inputs: [data/big.bin]
    outputs: [big.txt]
  stamp:
    cmd: if [ -f $_tmp/slow ]; then sleep 30; fi; date +%s%N > stamp.txt && echo stamp >> $counter
    inputs: [code.txt]
    outputs: [stamp.txt]
EOF
printf '.pipe/\ndata/\nout/\n*.txt\n!code.txt\n' >.gitignore
mkdir data
echo raw1 >data/raw.txt
head -c 1500000 /dev/urandom >data/big.bin
echo code1 >code.txt
gitc add -A
gitc commit -qm first
FIRST=$(git rev-parse HEAD)
run pipe run
expect_rc "first run: exit 0" 0
first_clean=$(sum out/clean.txt)
first_count=$(sum count.txt)
first_big=$(sum big.txt)

# ---- what the run recorded
run pipe inspect runs
expect_in "inspect: the project commit" "$out" "git head  $FIRST"
expect_in "inspect: the untracked data file, its size" "$out" "  5  data/raw.txt"
expect_in "inspect: the large untracked file goes through the CAS" \
	"$out" "1500000  data/big.bin  (cas)"
expect_not_in "inspect: code.txt, tracked and clean, is not copied" \
	"$out" "code.txt"
big_hash=$(echo "$out" | awk '/data\/big.bin/ {print $2}')
expect_eq "the CAS holds the large input" \
	"$(test -f ".pipe/store/cas/${big_hash:0:2}/${big_hash:2}" && echo yes)" yes

# ---- change code and data, commit, run again
echo raw2 >data/raw.txt
echo code2 >code.txt
gitc commit -qam second
run pipe run
expect_rc "second run: exit 0" 0
run pipe inspect runs
expect_in "second run: its own commit" "$out" "git head  $(git rev-parse HEAD)"
expect_in "second run: the unchanged large file, same id" "$out" "$big_hash"
second_clean=$(sum out/clean.txt)
state_before=$(sum .pipe/state)
runs_before=$(git --git-dir .pipe/store rev-parse refs/pipe/runs)
clean_ref_before=$(git --git-dir .pipe/store rev-parse refs/pipe/stages/clean)

# ---- reproduce the first commit with its data gone
rm -rf data
execs=$(wc -l <"$counter")
run pipe reproduce "$FIRST"
expect_rc "reproduce FIRST: exit 0" 0
scratch=$ws/.pipe/reproduce/${FIRST:0:12}
expect_in "reproduce: every stage from the store" "$out" \
	"from the store clean, count, big, stamp"
expect_in "reproduce: nothing ran" "$out" "ran            (none)"
expect_in "reproduce: says where the outputs are" "$out" "outputs in     $scratch"
expect_eq "reproduce: no stage executed" "$(wc -l <"$counter")" "$execs"
expect_eq "reproduce: out/clean.txt byte for byte" "$(sum "$scratch/out/clean.txt")" "$first_clean"
expect_eq "reproduce: count.txt byte for byte" "$(sum "$scratch/count.txt")" "$first_count"
expect_eq "reproduce: big.txt byte for byte" "$(sum "$scratch/big.txt")" "$first_big"
expect_eq "reproduce: the first commit's code" "$(cat "$scratch/code.txt")" code1
expect_eq "reproduce: the recorded data" "$(cat "$scratch/data/raw.txt")" raw1
expect_eq "the workspace's state is untouched" "$(sum .pipe/state)" "$state_before"
expect_eq "the workspace's outputs are untouched" "$(sum out/clean.txt)" "$second_clean"
expect_eq "the workspace's run history is untouched" \
	"$(git --git-dir .pipe/store rev-parse refs/pipe/runs)" "$runs_before"
expect_eq "the workspace's stage history is untouched" \
	"$(git --git-dir .pipe/store rev-parse refs/pipe/stages/clean)" "$clean_ref_before"
expect_eq "the workspace's git sees no change" "$(git status --porcelain)" ""
expect_fsck "the workspace's store passes fsck"

run pipe reproduce HEAD~1
expect_rc "reproduce again, by a relative rev, into pipe's own folder: exit 0" 0
expect_eq "again: no stage executed" "$(wc -l <"$counter")" "$execs"

# ---- --verify
run pipe reproduce "$FIRST" --verify
expect_rc "--verify with a stage that writes the time: exit 1" 1
expect_in "--verify: a deterministic stage is identical" "$out" "clean"
expect_eq "--verify: clean identical" "$(echo "$out" | awk '$1 == "clean" {print $2}')" identical
expect_eq "--verify: big identical" "$(echo "$out" | awk '$1 == "big" {print $2}')" identical
expect_in "--verify: the time stage differs, with its path" "$out" "differs: stamp.txt"
expect_eq "--verify: every stage executed" "$(($(wc -l <"$counter") - execs))" 4

# ---- errors
run pipe reproduce no-such-rev
expect_rc "unknown rev: exit 2" 2
expect_in "unknown rev: named" "$err" "unknown revision 'no-such-rev'"
run pipe reproduce "$ZERO"
expect_rc "a rev without a Pipefile: exit 2" 2
expect_in "a rev without a Pipefile: named" "$err" "has no file 'Pipefile'"
echo code3 >code.txt
gitc commit -qam third
run pipe reproduce HEAD
expect_rc "a commit no run recorded: exit 2" 2
expect_in "a commit no run recorded: named" "$err" "no run recorded at commit $(git rev-parse --short=12 HEAD)"

# a run that covered one stage only lacks the other stages' inputs
mkdir -p data
echo raw4 >data/raw.txt
echo other >data/other.txt
cat >>Pipefile <<'EOF'
  other:
    cmd: cat data/other.txt > other.txt
    inputs: [data/other.txt]
    outputs: [other.txt]
EOF
gitc commit -qam fourth
run pipe run clean
run pipe reproduce HEAD
expect_rc "inputs never recorded: exit 1" 1
expect_in "inputs never recorded: the path is named" "$err" "'data/other.txt'"

mkdir mine
echo notes >mine/notes.txt
run pipe reproduce "$FIRST" -o mine
expect_rc "-o DIR holding the user's files: exit 2" 2
expect_in "-o DIR: refused, naming it" "$err" "'$ws/mine' exists and holds files pipe did not write there ('notes.txt')"
expect_eq "-o DIR: the user's file is untouched" "$(cat mine/notes.txt)" notes

run pipe reproduce "$FIRST" -o ../elsewhere
expect_rc "-o a new folder: exit 0" 0
expect_eq "-o: the outputs are there" "$(sum ../elsewhere/out/clean.txt)" "$first_clean"
(cd "$ws/.." && "$PIPE" --pipefile "$ws/Pipefile" reproduce "$FIRST" -o rel-out >/dev/null 2>&1)
expect_eq "-o is relative to where pipe started" \
	"$(sum "$ws/../rel-out/out/clean.txt")" "$first_clean"

# ---- gc keeps what the runs recorded
run pipe gc
expect_rc "gc: exit 0" 0
expect_eq "gc keeps the large input's CAS file" \
	"$(test -f ".pipe/store/cas/${big_hash:0:2}/${big_hash:2}" && echo yes)" yes
run pipe reproduce "$FIRST" -o ../after-gc
expect_eq "after gc: reproduce gives the outputs byte for byte" \
	"$(sum ../after-gc/big.txt)" "$first_big"

# ---- SIGKILL mid-run leaves the workspace as it was; reproduce again works
touch "$_tmp/slow"
state_before=$(sum .pipe/state)
runs_before=$(git --git-dir .pipe/store rev-parse refs/pipe/runs)
kill_after 2 "$PIPE" reproduce "$FIRST" --verify
rm -f "$_tmp/slow"
expect_eq "killed: the workspace's state is untouched" "$(sum .pipe/state)" "$state_before"
expect_eq "killed: the workspace's run history is untouched" \
	"$(git --git-dir .pipe/store rev-parse refs/pipe/runs)" "$runs_before"
for _ in $(seq 1 50); do # the run in the scratch tree stops on its own
	run pipe reproduce "$FIRST"
	[ "$rc" = 3 ] || break
	sleep 0.2
done
expect_rc "after a kill, reproduce again: exit 0" 0
expect_eq "after a kill: the outputs byte for byte" "$(sum "$scratch/out/clean.txt")" "$first_clean"
expect_fsck "after a kill: the workspace's store passes fsck"

# ---- a tracked input changed since HEAD is recorded, and wins over git
new_ws
git init -q .
printf 'stages:\n  s:\n    cmd: cat code.txt > out.txt\n    inputs: [code.txt]\n    outputs: [out.txt]\n' >Pipefile
printf '.pipe/\nout.txt\n' >.gitignore
echo committed >code.txt
gitc add -A
gitc commit -qm one
echo edited >code.txt
run pipe run
run pipe inspect runs
expect_in "dirty: the run says so" "$out" "(dirty)"
expect_in "dirty: the changed tracked file is recorded" "$out" "  code.txt"
run pipe reproduce HEAD
expect_rc "dirty: reproduce: exit 0" 0
expect_eq "dirty: the recorded copy wins over git's" \
	"$(cat ".pipe/reproduce/$(git rev-parse --short=12 HEAD)/out.txt")" edited

# ---- outside git: nothing to reproduce from, nothing recorded
new_ws
printf 'stages:\n  s:\n    cmd: cat in.txt > out.txt\n    inputs: [in.txt]\n    outputs: [out.txt]\n' >Pipefile
echo data >in.txt
run pipe run
run pipe inspect runs
expect_in "no git: no project commit" "$out" "git head  none (not in a git repository)"
expect_in "no git: no input recorded" "$out" "untracked 0 input files recorded"
run pipe reproduce HEAD
expect_in "no git: reproduce says why it cannot" "$err" "not in a git repository"

finish
