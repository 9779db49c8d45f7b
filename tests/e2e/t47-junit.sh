#!/usr/bin/env bash
# pipe run --report FILE: JUnit XML that a common JUnit schema
# (tests/data/junit.xsd) accepts, for a run that succeeds, fails, fails
# one datum, has nothing to do, or is interrupted; written atomically;
# pipe's own report replaced without a word, a user's file at FILE (or
# one edited since, a folder, one that appears during the run) never
# touched; pipe get -o never over an existing file.
. "$(dirname "$0")/lib.sh"
plan 45

# xmllint comes with libxml2-utils; installed when missing, as
# tests/docker-env.sh installs docker.io
if ! command -v xmllint >/dev/null 2>&1; then
	. "$root/tests/docker-env.sh"
	_denv_apt libxml2-utils
fi
command -v xmllint >/dev/null 2>&1 ||
	skip_all xmllint "no xmllint (apt-get install libxml2-utils failed)"

# valid DESC FILE: FILE passes the schema.
valid() {
	local o
	if o=$(xmllint --noout --schema "$data/junit.xsd" "$2" 2>&1); then
		ok "$1"
	else
		not_ok "$1" "$o" "$(head -c 3000 "$2")"
	fi
}

# count FILE XPATH: how many nodes XPATH selects in FILE.
count() { xmllint --xpath "count($2)" "$1"; }

new_ws
mkdir d
echo 1 > d/a.txt
echo 2 > d/b.txt
cp "$data/ci/Pipefile" .
mkdir -p ../reports
run pipe run --report ../reports/ok.xml
expect_rc "all ok: exit 0" 0
valid "all ok: the report passes the schema" ../reports/ok.xml
expect_eq "all ok: a testcase per stage, classname pipe" \
	"$(count ../reports/ok.xml '//testsuite[@name="pipe"]/testcase[@classname="pipe"]')" 2
expect_eq "all ok: the datums stage is a testsuite, a testcase per datum" \
	"$(count ../reports/ok.xml '//testsuite[@name="pipe.d"]/testcase')" 2
expect_eq "all ok: no failure" "$(count ../reports/ok.xml '//failure')" 0
expect_eq "no temp file is left beside the report" "$(ls ../reports)" "ok.xml"

# pipe's own report is replaced without a word; a user's file is not
run pipe run -f --report ../reports/ok.xml
expect_rc "a second report over pipe's own: exit 0" 0
expect_not_in "... without a word about it" "$err" "ok.xml"
valid "... and the new report passes the schema" ../reports/ok.xml
cp ../reports/ok.xml ../reports/edited.xml
echo '<!-- my note -->' >> ../reports/edited.xml
cp ../reports/edited.xml ../edited.want
run pipe run -f --report ../reports/edited.xml
expect_rc "a report edited since pipe wrote it: refused, exit 2" 2
expect_in "... the message names the file and what to do" "$err" \
	"'../reports/edited.xml' exists and is not a report pipe wrote (or it was changed since): --report does not replace it; move it away or name another file"
expect_eq "... and the file is as the user left it" \
	"$(cmp ../reports/edited.xml ../edited.want && echo same)" same
printf 'my notes\n\000\001 not a report\n' > ../reports/mine.xml
cp ../reports/mine.xml ../mine.want
run pipe run -f --report ../reports/mine.xml
expect_rc "a user's file at FILE: refused, exit 2" 2
expect_eq "... byte for byte as it was" \
	"$(cmp ../reports/mine.xml ../mine.want && echo same)" same
expect_not_in "... and nothing ran" "$out$err" "ran "
mkdir ../reports/dir.xml
run pipe run --report ../reports/dir.xml
expect_in "a folder at FILE: refused, named" "$err" "'../reports/dir.xml' is not a file"
: > ../reports/empty.xml
run pipe run --report ../reports/empty.xml
valid "an empty file at FILE holds nothing to lose: replaced" ../reports/empty.xml

run pipe run --report ../reports/fresh.xml
valid "fresh run: the report passes the schema" ../reports/fresh.xml
expect_eq "fresh run: every stage a passing testcase" \
	"$(count ../reports/fresh.xml '//testcase[not(failure) and not(skipped)]')" 3
expect_in "fresh run: system-out says fresh" \
	"$(cat ../reports/fresh.xml)" "<system-out>fresh: nothing to do</system-out>"

# restored from the run-cache: passing, system-out says so
rm -f .pipe/state
run pipe run --report ../reports/cached.xml
valid "cached run: the report passes the schema" ../reports/cached.xml
expect_in "cached run: system-out says restored" \
	"$(cat ../reports/cached.xml)" "(restored from "

# one failing stage: its log's tail, escaped; the stage after it skipped
new_ws
cat > Pipefile <<'YML'
stages:
  a:
    cmd: "printf 'x]]>y\\001z <&> \\n'; seq 1 80; exit 3"
    outputs: [a.out]
  b:
    cmd: cat a.out > b.out
    inputs: [a.out]
    outputs: [b.out]
YML
run pipe run --report fail.xml
expect_rc "a failing stage: exit 1" 1
valid "a failing stage: the report passes the schema" fail.xml
expect_eq "a failing stage: one failure" "$(count fail.xml '//testcase[@name="a"]/failure')" 1
expect_in "a failing stage: the failure's message" \
	"$(xmllint --xpath 'string(//testcase[@name="a"]/failure/@message)' fail.xml)" "stage 'a' failed: exit status 3"
tail_text=$(xmllint --xpath 'string(//testcase[@name="a"]/failure)' fail.xml)
expect_eq "a failing stage: the last 50 lines of its log" \
	"$(printf '%s\n' "$tail_text" | sed -n '1p;$p' | tr '\n' ' ')" "31 80 "
expect_eq "the upstream-failed stage is skipped" "$(count fail.xml '//testcase[@name="b"]/skipped')" 1

new_ws
printf 'x]]>y\001z <&>\n' > weird.txt
cat > Pipefile <<'YML'
stages:
  a:
    cmd: cat weird.txt; exit 1
    inputs: [weird.txt]
    outputs: [a.out]
YML
run pipe run --report fail.xml
valid "a log with ]]>, a control character and <&>: still valid" fail.xml
expect_in "... and its text comes back (the control character as ?)" \
	"$(xmllint --xpath 'string(//failure)' fail.xml)" "x]]>y?z <&>"

# a datums stage with one failing datum
new_ws
mkdir d
echo 1 > d/a.txt
echo bad > d/b.txt
cat > Pipefile <<'YML'
stages:
  d:
    datums: "d/*.txt"
    cmd: grep -q bad $PIPE_DATUM && { echo bad datum; exit 1; }; cp $PIPE_DATUM $PIPE_OUT/
    outputs: [dout/]
YML
run pipe run --report datum.xml
expect_rc "a failing datum: exit 1" 1
valid "a failing datum: the report passes the schema" datum.xml
expect_eq "a failing datum: one failing testcase in the stage's suite" \
	"$(count datum.xml '//testsuite[@name="pipe.d"]/testcase[@name="d/b.txt"]/failure')" 1
expect_eq "a failing datum: the failure names stage and datum" \
	"$(xmllint --xpath 'string(//testcase[@name="d/b.txt"]/failure/@message)' datum.xml)" "stage 'd' failed: datum 'd/b.txt': exit status 1"
expect_in "a failing datum: its log's tail" \
	"$(xmllint --xpath 'string(//testcase[@name="d/b.txt"]/failure)' datum.xml)" "bad datum"
expect_eq "a failing datum: the other datum passes" \
	"$(count datum.xml '//testsuite[@name="pipe.d"]/testcase[@name="d/a.txt" and not(failure)]')" 1

# interrupted: the report is still written, the stage failed
new_ws
cat > Pipefile <<'YML'
stages:
  a:
    cmd: touch started; sleep 30
    outputs: [a.out]
  b:
    cmd: cat a.out > b.out
    inputs: [a.out]
    outputs: [b.out]
YML
"$PIPE" run --report int.xml >/dev/null 2>&1 &
victim=$!
for _ in $(seq $((200 * slow))); do [ -e started ] && break; sleep 0.05; done
kill -INT $victim
wait $victim
expect_eq "interrupted: exit 130" "$?" 130
valid "interrupted: the report passes the schema" int.xml
expect_eq "interrupted: the running stage failed: interrupted" \
	"$(xmllint --xpath 'string(//testcase[@name="a"]/failure/@message)' int.xml)" "interrupted"

# a file the user puts there while the run runs is left as it is
new_ws
cat > Pipefile <<'YML'
stages:
  a:
    cmd: echo mine > late.xml; echo a > a.out
    outputs: [a.out]
YML
run pipe run --report late.xml
expect_eq "a file written at FILE during the run is kept" "$(cat late.xml)" mine
expect_in "... and pipe says it wrote no report" "$err" "wrote no report: '$PWD/late.xml' exists and is not a report pipe wrote"

# pipe get -o: never over an existing file
printf 'keep me\n' > got.txt
run pipe get a a.out -o got.txt
expect_rc "get -o over an existing file: refused, exit 2" 2
expect_in "... the message names it" "$err" "'got.txt' exists: pipe get -o does not replace a file"
expect_eq "... and the file is untouched" "$(cat got.txt)" "keep me"
run pipe get a a.out -o new.txt
expect_eq "get -o to a new file writes it" "$(cat new.txt)" a

finish
