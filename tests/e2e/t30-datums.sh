#!/usr/bin/env bash
# datums: one unit of work per match, only new or changed datums rerun;
# parallelism; failing datums; matrix and params.
. "$(dirname "$0")/lib.sh"

new_ws
mkdir -p data
for i in $(seq 1 200); do echo "tweet $i" > "data/$i.txt"; done
cat > Pipefile <<'YML'
stages:
  upper:
    datums: "data/*.txt"
    cmd: sh -c 'echo "$PIPE_DATUM" >> ran.log; tr a-z A-Z < "$PIPE_DATUM" > "$PIPE_OUT/$(basename "$PIPE_DATUM")"'
    inputs: [data/]
    outputs: [out/]
    parallelism: 4
  count:
    cmd: sh -c 'cat out/* | wc -l > n.txt'
    inputs: [out/]
    outputs: [n.txt]
YML
units() { if [ -f ran.log ]; then wc -l < ran.log | tr -d ' '; rm -f ran.log; else echo 0; fi; }
# the output folder must equal the merge of every current datum's result
merged_ok() {
	local want got
	want=$(for f in data/*.txt; do printf '%s %s\n' "$(basename "$f")" "$(tr a-z A-Z < "$f" | md5sum | cut -c1-32)"; done)
	got=$(for f in out/*; do printf '%s %s\n' "$(basename "$f")" "$(md5sum < "$f" | cut -c1-32)"; done)
	[ "$want" = "$got" ]
}

run pipe run
expect_rc "200 datums run" 0
expect_eq "every datum processed once" "$(units)" "200"
expect_in "progress names datums" "$err" "200 datums: 200 processed, 0 skipped"
expect_eq "downstream sees all" "$(cat n.txt)" "200"
merged_ok && ok "output is the merge of all datums" || not_ok "output is the merge of all datums"

run pipe run
expect_eq "second run: no unit" "$(units)" "0"

echo "tweet new" > data/new.txt
run pipe run
expect_eq "a new datum: exactly one unit" "$(units)" "1"
expect_eq "its output appears" "$(cat out/new.txt)" "TWEET NEW"
expect_eq "downstream reruns" "$(cat n.txt)" "201"

echo "tweet changed" > data/7.txt
run pipe status
expect_in "status names the changed datum" "$out" "input 'data/7.txt' changed"
run pipe run
expect_eq "a changed datum: exactly one unit" "$(units)" "1"
expect_eq "its output changes" "$(cat out/7.txt)" "TWEET CHANGED"

# the stage commit takes the unchanged results' blobs from its parent
# unread (their stat cache entries are trusted once settled): it must
# still hold exactly the files of the output folder
sleep 3.1
run pipe status # re-reads the entries hashed within the racy window
echo "tweet changed again" > data/8.txt
run pipe run
expect_eq "one more changed datum: one unit" "$(units)" "1"
tree_ok() {
	local want got
	want=$(for f in out/*; do printf '%s %s\n' "$(git hash-object "$f")" "$f"; done | sort -k2)
	got=$(git --git-dir .pipe/store ls-tree -r refs/pipe/stages/upper | awk '$4 ~ /^out\// { print $3, $4 }' | sort -k2)
	[ -n "$want" ] && [ "$want" = "$got" ]
}
tree_ok && ok "the stage commit holds exactly the output folder" || not_ok "the stage commit holds exactly the output folder"

rm data/9.txt
run pipe run
expect_eq "a removed datum: no unit" "$(units)" "0"
expect_eq "its output is gone" "$(test -e out/9.txt && echo present || echo gone)" "gone"
expect_eq "downstream sees the removal" "$(cat n.txt)" "200"
merged_ok && ok "output is still the exact merge" || not_ok "output is still the exact merge"

echo "tweet 7" > data/7.txt
run pipe run
expect_eq "a reverted datum is restored, not rerun" "$(units)" "0"
expect_eq "its earlier output is back" "$(cat out/7.txt)" "TWEET 7"

rm -rf out
run pipe run
expect_eq "a deleted output folder is rebuilt from kept results" "$(units)" "0"
merged_ok && ok "rebuilt output is the exact merge" || not_ok "rebuilt output is the exact merge"

sed -i 's/tr a-z A-Z/sed "s|^|> |"/' Pipefile
run pipe run
expect_rc "a command change: the run succeeds" 0
expect_eq "a command change reruns every datum" "$(units)" "200"
expect_eq "with the new command's output" "$(cat out/7.txt)" "> tweet 7"

# parallelism: 3 over 9 slow datums -> exactly 3 at the peak
new_ws
mkdir -p d
for i in $(seq 1 9); do echo "$i" > "d/$i"; done
cat > Pipefile <<'YML'
stages:
  slow:
    datums: "d/*"
    cmd: sh -c 'echo "+ $(date +%s%N)" >> ts.log; sleep 0.4; echo "- $(date +%s%N)" >> ts.log; cp "$PIPE_DATUM" "$PIPE_OUT/"'
    outputs: [o/]
    parallelism: 3
YML
run pipe run -j 8
expect_rc "9 slow datums run" 0
peak=$(sort -k2 -n ts.log | awk '$1 == "+" { n++; if (n > m) m = n } $1 == "-" { n-- } END { print m }')
expect_eq "parallelism 3: peak of exactly 3 at once" "$peak" "3"
rm -f ts.log o/*
rm -rf .pipe
run pipe run -j 2
peak=$(sort -k2 -n ts.log | awk '$1 == "+" { n++; if (n > m) m = n } $1 == "-" { n-- } END { print m }')
expect_eq "-j 2 bounds the whole run" "$peak" "2"

# a failing datum fails the stage, names the datum, stops dependents;
# the fixed rerun processes only the failed datum
new_ws
mkdir -p in
for i in 1 2 3 4; do echo "$i" > "in/$i"; done
cat > Pipefile <<'YML'
stages:
  work:
    datums: "in/*"
    cmd: sh -c 'echo "$PIPE_DATUM" >> ran.log; grep -q bad "$PIPE_DATUM" && exit 3; cp "$PIPE_DATUM" "$PIPE_OUT/"'
    outputs: [res/]
    parallelism: 2
  after:
    cmd: sh -c 'ls res > list.txt'
    inputs: [res/]
    outputs: [list.txt]
YML
echo bad > in/3
run pipe run
expect_rc "a failing datum fails the run" 1
expect_in "the datum is named" "$err" "stage 'work' failed: datum 'in/3': exit status 3"
expect_in "it printed nothing: no log to name" "$err" "exit status 3 (no output)"
expect_in "dependents are skipped" "$err" "skipped 'after'"
expect_eq "no list written" "$(test -e list.txt && echo yes || echo no)" "no"
rm -f ran.log
echo 3 > in/3
run pipe run
expect_rc "fixed rerun succeeds" 0
expect_eq "only the failed datum reruns" "$(cat ran.log)" "in/3"
expect_eq "the dependent ran" "$(cat list.txt | tr '\n' ' ')" "1 2 3 4 "

# retries: a datum that fails once succeeds on the retry
new_ws
mkdir -p in
echo x > in/a
cat > Pipefile <<'YML'
stages:
  flaky:
    datums: "in/*"
    cmd: sh -c 'if [ ! -f tried ]; then touch tried; exit 1; fi; cp "$PIPE_DATUM" "$PIPE_OUT/"'
    outputs: [o/]
    retries: 2
YML
run pipe run
expect_rc "retries: succeeds after one failure" 0
expect_in "the retry is shown" "$err" "retry in/a (1 of 2)"

# two datums writing the same path
new_ws
mkdir -p in
echo 1 > in/a; echo 2 > in/b
cat > Pipefile <<'YML'
stages:
  clash:
    datums: "in/*"
    cmd: sh -c 'cp "$PIPE_DATUM" "$PIPE_OUT/same"'
    outputs: [o/]
YML
run pipe run
expect_rc "two datums writing one path fail" 1
expect_in "both datums are named" "$err" "datums 'in/a' and 'in/b' both write 'same'"

# matrix: changing one value reruns only the stages that use it
new_ws
printf 'train:\n  epochs: 3\nunused: 1\n' > params.yaml
cat > Pipefile <<'YML'
stages:
  sweep:
    matrix: { lr: [0.1, 0.01], depth: [3, 5] }
    cmd: sh -c 'echo "${lr} ${depth}" >> ran.log; mkdir -p models/${lr}-${depth}; echo ${lr} > models/${lr}-${depth}/m'
    outputs: ["models/${lr}-${depth}/"]
    params: [train.epochs]
YML
run pipe run
expect_eq "matrix: four stages run" "$(units)" "4"
expect_eq "matrix output" "$(cat models/0.01-5/m)" "0.01"
sed -i 's/depth: \[3, 5\]/depth: [3, 7]/' Pipefile
run pipe run
expect_eq "a changed matrix value runs only the new stages" "$(units)" "2"
sed -i 's/unused: 1/unused: 2/' params.yaml
run pipe run
expect_eq "an unrelated param key reruns nothing" "$(units)" "0"
sed -i 's/epochs: 3/epochs: 4/' params.yaml
run pipe run
expect_eq "a used param key reruns its stages" "$(units)" "4"
expect_in "the reason names the key with old and new value" "$err" "param 'train.epochs' 3 -> 4"
run pipe run 'sweep@lr=0.1,depth=7' -f
expect_eq "one matrix stage by name" "$(units)" "1"

# results live in the store (refs/pipe/datums/STAGE), not in .pipe/datums:
# a reverted datum comes back from it, after gc too; big results go to the
# CAS and survive gc; git reads it all
new_ws
mkdir -p data
for i in 1 2 3 4 5; do echo "row $i" > "data/$i.txt"; done
cat > Pipefile <<'YML'
stages:
  big:
    datums: "data/*.txt"
    cmd: sh -c 'echo "$PIPE_DATUM" >> ran.log; d="$PIPE_OUT/d$(basename "$PIPE_DATUM" .txt)"; mkdir -p "$d"; tr a-z A-Z < "$PIPE_DATUM" > "$d/up.txt"; { cat "$PIPE_DATUM"; head -c 1200000 /dev/zero; } > "$d/big.bin"'
    outputs: [out/]
    parallelism: 2
YML
big_ok() { # DATUM: its big file is right
	{ cat "data/$1.txt"; head -c 1200000 /dev/zero; } | cmp -s - "out/d$1/big.bin"
}
keys() { git --git-dir .pipe/store ls-tree -r -d --name-only refs/pipe/datums/big | awk -F/ 'NF == 2' | wc -l | tr -d ' '; }
run pipe run
expect_rc "big datums run" 0
expect_eq "five units" "$(units)" "5"
expect_eq "no .pipe/datums folder" "$(test -e .pipe/datums && echo yes || echo no)" "no"
expect_eq "the index maps five keys (ab/cdef... fan-out)" "$(keys)" "5"
expect_in "git log reads the index" "$(git --git-dir .pipe/store log --format=%s refs/pipe/datums/big 2>&1)" "datums: "
expect_eq "big files are in the CAS" "$(find .pipe/store/cas -type f ! -name unsynced | wc -l | tr -d ' ')" "5"
echo "changed" > data/3.txt
run pipe run
expect_eq "a changed big datum: one unit" "$(units)" "1"
expect_eq "its output" "$(cat out/d3/up.txt)" "CHANGED"
big_ok 3 && ok "its big file" || not_ok "its big file"
run pipe gc
expect_rc "gc" 0
rm -rf .pipe/datums .pipe/tmp
echo "row 3" > data/3.txt
# --no-cache: not the stage's run-cache (the first run had this key),
# the datum's result
run pipe run --no-cache
expect_rc "revert after gc" 0
expect_eq "a reverted datum is restored from the store after gc, not rerun" "$(units)" "0"
expect_in "from its datum result" "$err" "5 datums: 0 processed, 5 skipped"
expect_eq "its small file is back" "$(cat out/d3/up.txt)" "ROW 3"
big_ok 3 && ok "its big (CAS) file is back" || not_ok "its big (CAS) file is back"
expect_fsck "fsck --strict after gc and restore"
rm -rf out
run pipe run --no-cache
expect_eq "a deleted output folder comes back from the datum results" "$(units)" "0"
expect_in "all five of them" "$err" "5 datums: 0 processed, 5 skipped"
good=1; for i in 1 2 3 4 5; do big_ok "$i" || good=0; done
expect_eq "every big file is right" "$good" "1"
expect_eq "the index kept every key (a union)" "$(keys)" "6"

# results an older pipe kept in .pipe/datums/STAGE/KEY move into the store
# on the first run of that stage, and the folder goes
git --git-dir .pipe/store ls-tree -r -d --name-only refs/pipe/datums/big | awk -F/ 'NF == 2' |
	while read -r e; do
		d=.pipe/datums/big/${e%%/*}${e#*/}
		mkdir -p "$d"
		git --git-dir .pipe/store archive "refs/pipe/datums/big:$e" | tar -x -C "$d"
		# the archive has CAS pointers: put the content there
		grep '^cas ' "$d/.pipe-manifest" | while read -r _ h _ f; do
			rm -f "$d/$f"
			cp ".pipe/store/cas/${h:0:2}/${h:2}" "$d/$f"
		done
		rm -f "$d/.pipe-manifest"
	done
only_index=$(git --git-dir .pipe/store rev-parse "refs/pipe/datums/big:$(git --git-dir .pipe/store ls-tree -r -d --name-only refs/pipe/datums/big | awk -F/ 'NF == 2' | head -1)/.pipe-manifest")
git --git-dir .pipe/store update-ref -d refs/pipe/datums/big
run pipe gc
expect_eq "without its ref, gc drops the results" \
	"$(git --git-dir .pipe/store cat-file -e "$only_index" 2>/dev/null && echo kept || echo dropped)" "dropped"
echo "row 2 changed" > data/2.txt
rm -rf out
run pipe run --no-cache
expect_rc "a run over old kept results" 0
expect_eq "only the changed datum runs" "$(units)" "1"
good=1; for i in 1 2 3 4 5; do big_ok "$i" || good=0; done
expect_eq "the rest come from the imported results" "$good" "1"
expect_eq ".pipe/datums is gone" "$(test -e .pipe/datums && echo yes || echo no)" "no"
expect_eq "the index holds them again" "$(keys)" "7"
# results deleted behind pipe's back: the rebuild says so and how to redo
git --git-dir .pipe/store update-ref -d refs/pipe/datums/big
rm -rf out
run pipe run --no-cache
expect_rc "a rebuild without the results fails" 1
expect_in "and says how to redo them" "$err" "runs every datum again"
run pipe run -f
expect_rc "pipe run -f redoes them" 0
good=1; for i in 1 2 3 4 5; do big_ok "$i" || good=0; done
expect_eq "every big file is right again" "$good" "1"
expect_fsck "final fsck --strict"

# checkout of a datums stage records which datum wrote which file, so the
# next incremental merge removes a changed datum's old files
new_ws
mkdir -p in
echo 1 > in/a; echo 2 > in/b
cat > Pipefile <<'YML'
stages:
  named:
    cmd: sh -c 'cp "$PIPE_DATUM" "$PIPE_OUT/$(cat "$PIPE_DATUM").txt"'
    datums: "in/*"
    outputs: [out/]
YML
run pipe run
expect_eq "each datum names its file by content" "$(ls out | tr '\n' ' ')" "1.txt 2.txt "
run pipe checkout named
expect_rc "checkout of the datums stage" 0
expect_in "it is fresh" "$err" "fresh named"
echo 3 > in/b
run pipe run
expect_eq "after checkout, the changed datum's old file is gone" "$(ls out | tr '\n' ' ')" "1.txt 3.txt "

finish
