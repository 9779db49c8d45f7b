#!/usr/bin/env bash
# The store: stage commits with provenance, the run-cache, jobs, logs,
# get, checkout, inspect, log, gc — and fsck after everything.
. "$(dirname "$0")/lib.sh"
command -v xxhsum >/dev/null || { echo "xxhsum missing (make deps)"; exit 1; }

fsck_ok() {
	expect_fsck "fsck --strict: $1"
}

new_ws
echo A > in.txt
head -c 3000000 /dev/urandom > big.bin
cat > Pipefile <<'YML'
stages:
  copy:
    cmd: sh -c 'echo copy >> ran.txt; echo "copy says $(cat in.txt)"; mkdir -p out; cat in.txt > out/a.txt; cp big.bin out/big.bin'
    inputs: [in.txt, big.bin]
    outputs: [out/]
  count:
    cmd: sh -c 'echo count >> ran.txt; wc -c < out/a.txt > n.txt'
    inputs: [out/]
    outputs: [n.txt]
YML
ran() { if [ -f ran.txt ]; then sort ran.txt | tr '\n' ' '; rm -f ran.txt; fi; }
run pipe run
expect_rc "run 1" 0
ran >/dev/null
c1=$(git --git-dir .pipe/store rev-parse refs/pipe/stages/copy)
r1=$(git --git-dir .pipe/store rev-parse refs/pipe/runs)
fsck_ok "after the first run"
echo B > in.txt
run pipe run
expect_eq "run 2 reruns both" "$(ran)" "copy count "
c2=$(git --git-dir .pipe/store rev-parse refs/pipe/stages/copy)
echo A > in.txt
run pipe run
expect_eq "A -> B -> A: the third run executes nothing" "$(ran)" ""
expect_in "it says it restored from the cache" "$err" "cache copy"
expect_eq "A's output back byte for byte" "$(cat out/a.txt)" "A"
expect_eq "the large file back byte for byte" "$(cmp big.bin out/big.bin && echo same)" "same"
run pipe status
expect_rc "after the restore every stage is fresh" 0
fsck_ok "after the run-cache restore"

run pipe get "$c2" out/a.txt
expect_eq "get of run 2's commit prints run 2's content" "$out" "B"
run pipe get copy out/a.txt
expect_eq "get STAGE prints the latest" "$out" "A"
run pipe get copy~1 out/a.txt
expect_eq "get STAGE~1" "$out" "B"
run pipe get "copy@${c2:0:10}" out/a.txt
expect_eq "get STAGE@REF with an abbreviated id" "$out" "B"
run pipe get copy out/big.bin -o got.bin
expect_eq "get -o writes a large file from the CAS" "$(cmp big.bin got.bin && echo same)" "same"
run pipe get copy no/such/file
expect_rc "get of a missing path fails" 2
run pipe get nosuchref out/a.txt
expect_rc "a bad REF exits 2" 2

run pipe inspect copy
expect_rc "inspect exits 0" 0
expect_in "inspect shows the input with xxhsum's hash" "$out" "$(xxhsum -H2 in.txt | cut -d' ' -f1)  in.txt"
expect_in "inspect shows the big input too" "$out" "$(xxhsum -H2 big.bin | cut -d' ' -f1)  big.bin"
expect_in "inspect shows the state" "$out" "state     cached"
run pipe inspect count
expect_in "inspect follows the upstream chain" "$out" "upstream  copy"
run pipe inspect runs
expect_in "inspect of a run lists its stage commits" "$out" "stage     copy"
run pipe log copy
expect_eq "log lists every commit of the stage" "$(echo "$out" | wc -l | tr -d ' ')" "3"

run pipe jobs
expect_rc "jobs exits 0" 0
expect_in "jobs has a header" "$out" "ID            STAGE"
expect_in "jobs shows cached jobs" "$out" "cached"
run pipe jobs --json
expect_in "jobs --json has the fields" "$out" '"duration_ms"'
# the newest job that ran copy: run 2, with in.txt B
job=$(pipe jobs | awk 'NR > 1 && $2 == "copy" && $NF == "success" { print $1; exit }')
run pipe logs "$job"
expect_rc "logs JOB exits 0" 0
expect_eq "logs JOB prints what the job printed" "$out" "copy says B"
run pipe logs ffffffffffff
expect_rc "logs of an unknown job exits 2" 2

# checkout a whole run: every output as it was then
echo B > in.txt
pipe run >/dev/null 2>&1
run pipe checkout "$r1"
expect_rc "checkout of run 1" 0
expect_eq "checkout restores run 1's outputs" "$(cat out/a.txt) $(cat n.txt)" "A 2"
run pipe status
expect_rc "after checkout, outputs that do not match the inputs are stale" 1
echo A > in.txt
run pipe checkout "$r1"
run pipe status
expect_rc "after checkout with matching inputs, fresh" 0
fsck_ok "after checkout"

# gc: an unreferenced CAS file and objects go; every ref still restores
cas_before=$(find .pipe/store/cas -type f ! -name unsynced | wc -l)
count_before=$(git --git-dir .pipe/store rev-parse refs/pipe/stages/count)
head -c 2000000 /dev/urandom > big.bin
pipe run >/dev/null 2>&1
expect_eq "a new large output adds a CAS file" "$(find .pipe/store/cas -type f ! -name unsynced | wc -l | tr -d ' ')" "$((cas_before + 1))"
# forget that run: nothing refers to its commits any more
git --git-dir .pipe/store update-ref -d refs/pipe/runs
git --git-dir .pipe/store update-ref refs/pipe/stages/copy "$c1"
git --git-dir .pipe/store update-ref refs/pipe/stages/count "$count_before"
run pipe gc --dry-run
expect_in "gc --dry-run says what it would free" "$out" "would free"
run pipe gc
expect_rc "gc exits 0" 0
expect_in "gc says how much it freed" "$out" "freed"
cas_after=$(find .pipe/store/cas -type f ! -name unsynced | wc -l)
expect_eq "gc removed the unreferenced CAS file" "$cas_after" "$cas_before"
run pipe checkout copy
expect_rc "after gc, the stage ref still restores" 0
expect_eq "restored content" "$(cat out/a.txt)" "A"
fsck_ok "after gc"

# Large files are committed without waiting for the disk: listed in
# cas/unsynced until a writer settles them (on the same boot: fsync, once
# the kernel has had time to write them back by itself)
echo C > in.txt
run pipe run
expect_rc "run with a new large output" 0
expect_in "its object is listed as not yet known on disk" "$(cat .pipe/store/cas/unsynced 2>/dev/null)" "$(cat /proc/sys/kernel/random/boot_id)"
run pipe run
expect_eq "the next writer leaves a young object listed" "$(test -e .pipe/store/cas/unsynced && echo left || echo gone)" "left"
find .pipe/store/cas -type f ! -name unsynced -exec touch -d '-2 minutes' {} +
run pipe run
expect_eq "a writer after writeback settled the list" "$(test -e .pipe/store/cas/unsynced && echo left || echo gone)" "gone"
# after a restart, a listed object whose content a power cut lost is
# removed, and the stage that needs it runs again instead of restoring it
echo D > in.txt
pipe run >/dev/null 2>&1
ran >/dev/null
for f in $(find .pipe/store/cas -type f ! -name unsynced); do
	h=$(basename "$(dirname "$f")")$(basename "$f")
	echo "0000-another-boot $h $(stat -c %s "$f")" >> .pipe/store/cas/unsynced
	chmod u+w "$f"; head -c "$(stat -c %s "$f")" /dev/zero > "$f"
done
echo C > in.txt
run pipe run
expect_rc "a run after the damage succeeds" 0
expect_in "it names the damaged file" "$err" "is corrupt"
expect_eq "the stage ran instead of restoring garbage" "$(ran)" "copy "
expect_eq "its output is right" "$(cmp big.bin out/big.bin && echo same)" "same"
fsck_ok "after settling a restart"

# the project's git HEAD and dirty state come from libgit2 (no git
# process): as git itself sees them
new_ws
git init -q . && printf 'stages:\n  g:\n    cmd: echo g > g.txt\n    outputs: [g.txt]\n' > Pipefile
echo '.pipe/' > .gitignore
git add Pipefile .gitignore && git commit -qm one
pipe run >/dev/null 2>&1
run pipe inspect g
expect_in "inspect names the project's HEAD" "$out" "git head  $(git rev-parse HEAD)"
expect_not_in "a clean work tree is not dirty" "$out" "(dirty)"
echo '# edit' >> Pipefile
pipe run -f >/dev/null 2>&1
run pipe inspect g
expect_in "a changed tracked file makes it dirty" "$out" "$(git rev-parse HEAD) (dirty)"
git checkout -q Pipefile && echo x > untracked.txt
pipe run -f >/dev/null 2>&1
run pipe inspect g
expect_not_in "an untracked file does not" "$out" "(dirty)"

finish
