#!/usr/bin/env bash
# The output guard (issue #12): pipe never deletes or overwrites a byte it
# cannot give back. Files pipe did not write are kept in the store
# (refs/pipe/displaced) before a run, a run-cache restore or a forced
# checkout replaces them; checkout refuses and names them; restores write
# exactly the outputs declared now; declared outputs are in the key; an
# output that flips between file and folder fails cleanly.
. "$(dirname "$0")/lib.sh"

# --- 1. the first run keeps what was in an output folder -----------------
new_ws
echo in > in.txt
mkdir reports
echo my-notes > reports/notes.md
cat > Pipefile <<'YML'
stages:
  a:
    cmd: mkdir -p reports && cp in.txt reports/out.txt
    inputs: [in.txt]
    outputs: [reports/]
YML
run pipe run
expect_rc "1: first run over a folder with a user's file" 0
expect_in "1: it says where the file went" "$err" \
	"kept your 'reports/notes.md' in the store: pipe get displaced reports/notes.md"
run pipe get displaced reports/notes.md
expect_rc "1: pipe get displaced" 0
expect_eq "1: the user's file comes back byte for byte" "$out" "my-notes"
run pipe log displaced
expect_in "1: pipe log displaced names it" "$out" "reports/"
expect_in "1: with the reason" "$out" "before 'pipe run' replaced the outputs of stage 'a'"
# a rerun over pipe's own outputs keeps nothing
echo in2 > in.txt
run pipe run
expect_not_in "1: pipe's own outputs are not kept again" "$err" "kept your"
expect_eq "1: one displaced commit" \
	"$(git --git-dir .pipe/store rev-list refs/pipe/displaced | wc -l)" 1
# a hand edit and an extra file are kept before the next run replaces them
echo hand > reports/out.txt
echo extra > reports/extra.md
echo in3 > in.txt
run pipe run
expect_in "1: a hand edit is kept" "$err" "kept your 'reports/out.txt'"
expect_in "1: an extra file is kept" "$err" "kept your 'reports/extra.md'"
run pipe get displaced reports/out.txt
expect_eq "1: the hand edit comes back" "$out" "hand"
run pipe get displaced reports/notes.md
expect_eq "1: older displaced files are still found" "$out" "my-notes"
run pipe get displaced~1 reports/notes.md
expect_eq "1: displaced~N names an older copy" "$out" "my-notes"
run pipe get displaced nothing-here.txt
expect_rc "1: a path never displaced" 2
expect_in "1: says so" "$err" "'nothing-here.txt' was never displaced"
expect_fsck "1: fsck"

# --- 2. restores write exactly the outputs declared now -------------------
new_ws
echo 1 > in.txt
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'cp in.txt a.txt; [ ! -f want-b ] || cp in.txt b.txt'
    inputs: [in.txt]
    outputs: [a.txt]
YML
run pipe run
expect_rc "2: run with outputs [a.txt]" 0
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'cp in.txt a.txt; [ ! -f want-b ] || cp in.txt b.txt'
    inputs: [in.txt]
    outputs: [a.txt, b.txt]
YML
touch want-b
run pipe run
expect_rc "2: run with outputs [a.txt, b.txt]" 0
rm want-b
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'cp in.txt a.txt; [ ! -f want-b ] || cp in.txt b.txt'
    inputs: [in.txt]
    outputs: [a.txt]
YML
echo mine > b.txt
rm a.txt
run pipe run
expect_rc "2: back to [a.txt]" 0
expect_in "2: restored from the run-cache" "$err" "cache s"
expect_eq "2: a.txt restored" "$(cat a.txt)" "1"
expect_eq "2: the user's b.txt is untouched" "$(cat b.txt)" "mine"
# checkout of the commit that had b.txt writes only a.txt
run pipe checkout --force s~1
expect_rc "2: checkout of the [a.txt, b.txt] commit" 0
expect_in "2: it says b.txt is not restored" "$err" \
	"'b.txt' is no longer an output of stage 's': not restored"
expect_eq "2: b.txt is still the user's" "$(cat b.txt)" "mine"

# the issue's own sequence: [a, b] first, then [a] with the user's b.txt
new_ws
echo 1 > in.txt
touch want-b
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'cp in.txt a.txt; [ ! -f want-b ] || cp in.txt b.txt'
    inputs: [in.txt]
    outputs: [a.txt, b.txt]
YML
pipe run >/dev/null 2>&1
rm want-b
sed -i 's/outputs: \[a.txt, b.txt\]/outputs: [a.txt]/' Pipefile
echo mine > b.txt
rm a.txt
run pipe run
expect_rc "2: [a, b] then [a]: run" 0
expect_eq "2: [a, b] then [a]: the user's b.txt is untouched" "$(cat b.txt)" "mine"
expect_eq "2: [a, b] then [a]: a.txt is there" "$(cat a.txt)" "1"

# a checkout of a commit that lacks an output declared now leaves that
# output the user's: a later run keeps it before replacing it
new_ws
echo 1 > in.txt
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'cp in.txt a.txt'
    inputs: [in.txt]
    outputs: [a.txt]
YML
pipe run >/dev/null 2>&1
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'cp in.txt a.txt; cp in.txt b.txt'
    inputs: [in.txt]
    outputs: [a.txt, b.txt]
YML
pipe run >/dev/null 2>&1
echo mine > b.txt
run pipe checkout --force s~1
expect_rc "2: checkout of a commit without b.txt" 0
expect_eq "2: b.txt is left alone" "$(cat b.txt)" "mine"
run pipe run -f
expect_rc "2: then run -f" 0
expect_in "2: keeps the user's b.txt first" "$err" "kept your 'b.txt'"
expect_eq "2: which comes back" "$(pipe get displaced b.txt)" "mine"

# --- 3. checkout refuses to overwrite hand edits --------------------------
new_ws
echo 1 > in.txt
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'mkdir -p out && cp in.txt out/x && cp in.txt f.txt'
    inputs: [in.txt]
    outputs: [out/, f.txt]
YML
pipe run >/dev/null 2>&1
echo 2 > in.txt
pipe run >/dev/null 2>&1
echo hand > f.txt
echo extra > out/extra
run pipe status
expect_in "3: status reports the edit" "$out$err" "output 'f.txt' modified"
run pipe checkout s~1
expect_rc "3: checkout refuses" 1
expect_in "3: names f.txt" "$err" "    f.txt"
expect_in "3: names the extra file in out/" "$err" "    out/extra"
expect_not_in "3: not the unchanged out/x" "$err" "    out/x"
expect_in "3: says what to do" "$err" "pipe checkout --force s~1"
expect_eq "3: the edit is untouched" "$(cat f.txt)" "hand"
expect_eq "3: the extra file is untouched" "$(cat out/extra)" "extra"
expect_eq "3: nothing was displaced" \
	"$(git --git-dir .pipe/store rev-parse -q --verify refs/pipe/displaced)" ""
run pipe checkout --force s~1
expect_rc "3: checkout --force" 0
expect_eq "3: the old output is back" "$(cat f.txt)" "1"
expect_eq "3: the extra file is gone from the folder" "$(ls out)" "x"
expect_eq "3: the edit is kept" "$(pipe get displaced f.txt)" "hand"
expect_eq "3: the extra file is kept" "$(pipe get displaced out/extra)" "extra"
# after a checkout the restored outputs are pipe's: no refusal next time
run pipe checkout s
expect_rc "3: a second checkout goes ahead (outputs are pipe's)" 0
expect_eq "3: the newest output is back" "$(cat f.txt)" "2"
run pipe status
expect_rc "3: and the stage is fresh" 0
run pipe checkout s~1
expect_rc "3: checkout of the old commit again" 0
run pipe status
expect_rc "3: stale after checking out an old commit" 1
expect_in "3: naming the input" "$out$err" "input 'in.txt' changed"
expect_not_in "3: not the outputs" "$out$err" "modified"
expect_fsck "3: fsck"

# --- 4. declared outputs are in the key -----------------------------------
new_ws
echo 1 > in.txt
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'cp in.txt a.txt; cp in.txt c.txt'
    inputs: [in.txt]
    outputs: [a.txt]
YML
pipe run >/dev/null 2>&1
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sh -c 'cp in.txt a.txt; cp in.txt c.txt'
    inputs: [in.txt]
    outputs: [a.txt, c.txt]
YML
run pipe status
expect_rc "4: adding an output makes the stage stale" 1
expect_in "4: and says why" "$out$err" "output 'c.txt' declared"
run pipe run
expect_in "4: it runs (no cache hit for another set of outputs)" "$err" "ok   s"
expect_not_in "4: not restored" "$err" "cache s"
run pipe status
expect_rc "4: then it is fresh" 0
run pipe run
expect_in "4: a second run runs nothing" "$err" "0 ran, 0 cached, 1 fresh"
git --git-dir .pipe/store log --format=%s refs/pipe/stages/s >/dev/null
expect_eq "4: and adds no commit" \
	"$(git --git-dir .pipe/store rev-list refs/pipe/stages/s | wc -l)" 2

# --- 8. an output that flips between file and folder -----------------------
new_ws
echo 1 > in.txt
cat > Pipefile <<'YML'
stages:
  a:
    cmd: sh -c 'if [ -f flip ]; then cp in.txt out; else mkdir -p out; cp in.txt out/x; fi'
    inputs: [in.txt]
    outputs: [out/]
YML
pipe run >/dev/null 2>&1
echo 2 > in.txt
touch flip
run pipe run
expect_rc "8: declared out/, wrote a file: the stage fails" 1
expect_in "8: with a clear error" "$err" "wrote a file at 'out', but declares a folder 'out/'"
expect_eq "8: the old folder is back" "$(cat out/x)" "1"
run pipe status
expect_rc "8: status works (stale)" 1
rm flip
run pipe run
expect_rc "8: the next run works" 0
expect_eq "8: new output" "$(cat out/x)" "2"
# a file declared, a folder written
new_ws
echo 1 > in.txt
cat > Pipefile <<'YML'
stages:
  a:
    cmd: sh -c 'if [ -f flip ]; then mkdir -p out; cp in.txt out/x; else cp in.txt out; fi'
    inputs: [in.txt]
    outputs: [out]
YML
pipe run >/dev/null 2>&1
echo 2 > in.txt
touch flip
run pipe run
expect_rc "8: declared out, wrote a folder: the stage fails" 1
expect_in "8: with a clear error" "$err" "is a folder; declare it as 'out/'"
expect_eq "8: the old file is back" "$(cat out)" "1"
rm flip
run pipe run
expect_rc "8: the next run works" 0
expect_eq "8: new output" "$(cat out)" "2"
# a user replaced a declared folder by a file: status and run go on
rm -rf out
cat > Pipefile <<'YML'
stages:
  a:
    cmd: sh -c 'rm -rf out; mkdir -p out; cp in.txt out/x'
    inputs: [in.txt]
    outputs: [out/]
YML
echo users-file > out
run pipe status
expect_rc "8: a file where a folder is declared: status says stale" 1
run pipe run
expect_rc "8: run goes on" 0
expect_eq "8: the user's file is kept" "$(pipe get displaced out)" "users-file"
expect_fsck "8: fsck"

finish
