#!/usr/bin/env bash
# make bench: pipe side by side with the tools that do the same work (make,
# ninja, Snakemake, DVC, git, xxhsum, md5sum, cp, docker run, dvc push/pull
# and aws s3 sync to a local S3 server), on workloads
# generated in a temp folder; each workload's tools run alternately, RUNS
# times each, and every row shows median and spread (min-max), the ratio
# pipe/peer and whether its target is met. Writes bench/results/latest.json,
# latest.md and plot.png (BENCH_OUT=DIR elsewhere). QUICK=1 (make
# bench-quick) runs smaller sizes and writes to build/bench-quick/.
# RUNS=N (5) runs per tool; KEEP=1 keeps the temp folder.
# ONLY="1 5" runs some workloads; SKIP_DOCKER=1 skips workload 6,
# SKIP_K8S=1 workload 8 (the test cluster: tests/k8s/cluster.sh),
# SKIP_REMOTE=1 workload 9 (push/pull to a local S3 server);
# FAST_PEERS=1 leaves Snakemake and DVC out (pipe against itself, make and
# ninja: a before/after comparison in minutes, not an hour).
# Workload 10 (scale: pipe, make and ninja on N independent cp stages for
# each N of SCALE, "2000 20000 100000" by default, QUICK "20000" with its
# one-change row alone). At 100,000 stages each tool's full run takes
# minutes (make's over ten): SCALE="2000 20000" leaves them out.
# Installs missing peers itself (apt-get; pip into venvs for DVC, dvc-s3
# and awscli).
# Not part of `make test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PIPE=${PIPE:-$root/build/pipe}
QUICK=${QUICK:-0}
RUNS=${RUNS:-5}
ONLY=${ONLY:-0 1 2 3 4 5 6 7 8 9 10}
# bench-quick's figures are for a quick look, not the record: under build/
if [ "$QUICK" = 1 ]; then OUT=${BENCH_OUT:-$root/build/bench-quick}; else OUT=${BENCH_OUT:-$root/bench/results}; fi
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/pipe-bench
export DEBIAN_FRONTEND=noninteractive DVC_NO_ANALYTICS=1 LC_ALL=C

# Sizes: the issue's, and QUICK's (bench-quick: a few minutes with docker, the
# test cluster, the S3 server and a 20,000-stage row; SKIP_DOCKER, SKIP_K8S
# and SKIP_REMOTE leave the first three out).
if [ "$QUICK" = 1 ]; then
	RUNS=3
	N_VALIDATE=2000 N_TRIVIAL=200 N_TRIVIAL_DVC=20
	MANY_STAGES=20 MANY_PER=250
	HASH_MIB=256 STORE_MIB=256 SETTLE_MS=200
	N_DATUMS=500 N_DATUMS_SNK="100"
	DOCKER_STAGES=5
	K8S_DATUMS=20 K8S_RUNS=1
	SCALE=${SCALE:-20000} SCALE_FULL=0
else
	N_VALIDATE=10000 N_TRIVIAL=2000 N_TRIVIAL_DVC=200
	MANY_STAGES=100 MANY_PER=1000
	HASH_MIB=1024 STORE_MIB=1024 SETTLE_MS=1000
	N_DATUMS=10000 N_DATUMS_SNK="500 1000"
	DOCKER_STAGES=20
	K8S_DATUMS=200 K8S_RUNS=3
	SCALE=${SCALE:-2000 20000 100000} SCALE_FULL=1
fi
# DVC's `dvc repro` grows faster than linearly with the stage count (50
# stages 3.5 s, 200 stages 37 s on 2 cores: each stage rewrites dvc.lock);
# 2000 stages would take about an hour a run, so it runs N_TRIVIAL_DVC
# stages, with pipe measured on the same scale for its rows.
# Snakemake's full run over datums grows quadratically too (1000: 19 s,
# 3000: 150 s), so its full-run rows use N_DATUMS_SNK with pipe on the same
# N; its one-change row uses the full N_DATUMS, its outputs made by a shell
# loop and marked done with `snakemake --touch`.

work=$(mktemp -d "${TMPDIR:-/tmp}/pipe-bench.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
started=$EPOCHREALTIME
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
say() { printf '%s\n' "$*" >&2; }

# --- peers: installed when missing ---------------------------------------

apt_updated=0
# need CMD PACKAGE: install PACKAGE with apt-get when CMD is not found.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	[ "$(id -u)" = 0 ] || { say "bench: $1 missing (apt-get install $2)"; return 1; }
	if [ "$apt_updated" = 0 ]; then
		apt-get update -qq >/dev/null 2>&1 || true
		apt_updated=1
	fi
	say "bench: installing $2"
	apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 ||
		{ say "bench: could not install $2"; return 1; }
}
for t in make:make git:git bc:bc ninja:ninja-build snakemake:snakemake \
	xxhsum:xxhash md5sum:coreutils gnuplot:gnuplot-nox /usr/bin/time:time \
	python3:python3; do
	need "${t%%:*}" "${t#*:}" || true
done

# DVC from PyPI into a venv kept across runs; DVC empty when it cannot be.
DVC=
dvc_why=
setup_dvc() {
	local venv=$CACHE/dvc-venv log=$CACHE/dvc-install.log
	if [ -x "$venv/bin/dvc" ] && "$venv/bin/dvc" --version >/dev/null 2>&1; then
		DVC=$venv/bin/dvc
		return 0
	fi
	mkdir -p "$CACHE"
	rm -rf "$venv"
	if ! python3 -m venv "$venv" >"$log" 2>&1; then
		# Debian keeps ensurepip in python3-venv
		rm -rf "$venv"
		if [ "$(id -u)" = 0 ]; then
			apt-get install -y -qq python3-venv >>"$log" 2>&1 || true
		fi
		python3 -m venv "$venv" >>"$log" 2>&1 ||
			{ dvc_why="python3 -m venv failed: $(tail -1 "$log")"; return 1; }
	fi
	say "bench: pip install dvc (into $venv)"
	if ! "$venv/bin/pip" install -q dvc >>"$log" 2>&1; then
		dvc_why=$(grep -m1 -i error "$log" || tail -1 "$log")
		return 1
	fi
	DVC=$venv/bin/dvc
}
if [ "${FAST_PEERS:-0}" != 1 ] && { want 1 || want 2 || want 9; }; then
	setup_dvc || say "dvc: skipped (pip could not install it: $dvc_why)"
fi

# C helpers (tests/bench/*.c) built against build/libpipe.a.
helper() {
	(cd "$root" && make -s build/libpipe.a >/dev/null &&
		eval "$(sed -n 's/^\([A-Z_]*\) := \(.*\)/\1="\2"/p' build/config.mk)" &&
		mkdir -p build/tests &&
		# shellcheck disable=SC2086
		cc -std=c11 -D_GNU_SOURCE -O2 -I. $PKG_CFLAGS -o "build/tests/$1" \
			"tests/bench/$1.c" build/libpipe.a $PKG_LIBS -ldl -lm)
}

# --- timing and rows -----------------------------------------------------

SNK=0
[ "${FAST_PEERS:-0}" = 1 ] || ! command -v snakemake >/dev/null 2>&1 || SNK=1
# racy_wait: pipe's stat cache trusts an entry only once the file is 3 s
# older than its hash (git's "racily clean" guard), so a no-op status
# right after a run re-hashes the run's outputs. Steady state is a status
# more than 3 s later: wait until 3.2 s have passed since the last pipe run.
last_pipe=0
racy_wait() {
	local left
	left=$(awk -v a="$last_pipe" -v b="$EPOCHREALTIME" 'BEGIN { d = 3.2 - (b - a); printf "%.2f", (d > 0 ? d : 0) }')
	sleep "$left"
}

declare -A T  # T[key]: seconds of each run, space-separated
declare -A L  # L[key]: the tool's label (the command line shown)
declare -A BAD # BAD[key]: how a run failed, if one did
# tm KEY EXPECT_RC DIR CMD...: one timed run of CMD in DIR, output thrown
# away; a run that exits other than EXPECT_RC is noted against the row.
tm() {
	local key=$1 want_rc=$2 dir=$3 t0 t1 rc=0
	shift 3
	cd "$dir"
	t0=$EPOCHREALTIME
	"$@" >/dev/null 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	cd "$work"
	[ "$1" != "$PIPE" ] || last_pipe=$t1
	T[$key]+=" $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"
	if [ "$rc" != "$want_rc" ]; then
		BAD[$key]="exit $rc (expected $want_rc): $*"
		say "bench: $key: $* in $dir exited $rc"
	fi
}
# rss KEY DIR CMD...: peak RSS (MB) of one run of CMD in DIR.
rss() {
	local key=$1 dir=$2
	shift 2
	(cd "$dir" && /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>&1) || true
	[ "$1" != "$PIPE" ] || last_pipe=$EPOCHREALTIME
	T[$key]=" $(tail -1 "$work/rss" | awk '{ printf "%.1f", $1 / 1024 }')"
}
# stats "LIST": median min max
stats() {
	printf '%s\n' $1 | sort -g | awk '{ a[NR] = $1 }
		END { printf "%.6f %.6f %.6f", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2, a[1], a[NR] }'
}
# fmt SECONDS: 12.3 ms or 4.56 s
fmt() { awk -v s="$1" 'BEGIN { if (s < 1) printf "%.1f ms", s * 1000; else printf "%.2f s", s }'; }
jlist() { printf '%s' "$1" | awk '{ for (i = 1; i <= NF; i++) printf "%s%.6f", (i > 1 ? ", " : ""), $i }'; }
jtool() { # jtool KEY: a tool's JSON object
	local m lo hi
	read -r m lo hi <<<"$(stats "${T[$1]}")"
	printf '{"tool": "%s", "runs": [%s], "median": %s, "min": %s, "max": %s%s}' \
		"${L[$1]//\"/\\\"}" "$(jlist "${T[$1]}")" "$m" "$lo" "$hi" \
		"${BAD[$1]:+, \"failed\": \"${BAD[$1]//\"/\\\"}\"}"
}

ROWS_JSON=() ROWS_MD=() PLOT=() NOTES=() SECS=()
# note TEXT: said now, and kept under the tables of latest.md / .json
note() {
	echo "($1)"
	NOTES+=("$1")
}
# row ID NAME PKEY QKEY TARGET: pipe (PKEY) against a peer (QKEY, or -).
# TARGET: ratio<=X (pipe/peer), time<X (pipe's median, seconds),
# rss<X (MB), or info; "TARGET|shown as" gives the text shown.
row() {
	local id=$1 name=$2 p=$3 q=$4 target=${5%%|*} shown lim val unit=s met
	local pm plo phi qm qlo qhi ratio=null pcell qcell=- qlabel=- rcell=-
	[ -n "${T[$p]:-}" ] || return 0
	read -r pm plo phi <<<"$(stats "${T[$p]}")"
	# a peer that was not measured (FAST_PEERS=1): pipe's side alone
	[ "$q" = - ] || [ -n "${T[$q]:-}" ] || q=-
	if [ "$q" != - ]; then
		read -r qm qlo qhi <<<"$(stats "${T[$q]}")"
		ratio=$(awk -v a="$pm" -v b="$qm" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
	fi
	case $target in
	ratio\<=*) lim=${target#ratio<=} val=$ratio shown="≤ ${lim}x" ;;
	time\<*) lim=${target#time<} val=$pm shown="< $lim s" ;;
	rss\<*) lim=${target#rss<} val=$pm shown="< $lim MB" unit=MB ;;
	*) lim= val= shown=- ;;
	esac
	[ "$5" = "$target" ] || shown=${5#*|}
	if [ -n "${BAD[$p]:-}${BAD[$q]:-}" ]; then
		met="NOT met (a run failed)"
		[ -n "$val" ] || met="a run failed"
	elif [ -z "$val" ]; then
		met=-
	elif awk -v v="$val" -v l="$lim" -v t="$target" \
		'BEGIN { exit !(t ~ /<=/ ? v <= l : v < l) }'; then
		met=met
	else
		met="NOT met"
	fi
	if [ $unit = MB ]; then
		pcell=$(printf '%.1f MB' "$pm")
	else
		pcell="$(fmt "$pm") ($(fmt "$plo")–$(fmt "$phi"))"
	fi
	if [ "$q" != - ]; then
		qcell="$(fmt "$qm") ($(fmt "$qlo")–$(fmt "$qhi"))"
		qlabel=${L[$q]}
		rcell=$(printf '%.2fx' "$ratio")
	fi
	printf '%-3s %-42s %-20s %-30s %-20s %-30s %-7s %-13s %s\n' "$id" "$name" \
		"${L[$p]}" "$pcell" "$qlabel" "$qcell" "$rcell" "$(echo "$shown" | sed 's/≤/<=/; s/≥/>=/')" "$met"
	if [ "$q" = - ]; then
		qcell=-
	else
		qcell="\`$qlabel\` $qcell"
	fi
	[ "$met" = met ] || [ "$met" = - ] || met="**$met**"
	ROWS_MD+=("| $id | $name | \`${L[$p]}\` $pcell | $qcell | $rcell | $shown | $met |")
	ROWS_JSON+=("$(printf '{"id": "%s", "workload": "%s", "pipe": %s, "peer": %s, "ratio": %s, "target": "%s", "met": %s}' \
		"$id" "$name" "$(jtool "$p")" "$([ "$q" = - ] && echo null || jtool "$q")" \
		"$ratio" "$target" "$(case $met in met) echo true ;; -) echo null ;; *) echo false ;; esac)")")
}
header() {
	printf '\n== %s\n' "$1"
	printf '%-3s %-42s %-20s %-30s %-20s %-30s %-7s %-13s %s\n' id workload pipe "median (min–max)" \
		peer "median (min–max)" ratio target met
}
# plot GROUP TOOL KEY: a bar for the plot (median seconds)
plot() { [ -n "${T[$3]:-}" ] && PLOT+=("$1|$2|$(stats "${T[$3]}" | cut -d' ' -f1)") || true; }

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain -uno 2>/dev/null | grep -q . && echo "+dirty" || true)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fstype=$(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work")
memgib=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo "pipe bench$([ "$QUICK" = 1 ] && echo ' (quick)'): $date, commit $commit$dirty, $(nproc) cores ($cpu), ${memgib} GiB, Linux $(uname -r), temp dir on $fstype; $RUNS runs each, alternating"

# --- 0. validate a 10,000-stage Pipefile (target < 0.2 s) -----------------
w0() {
	local n=$N_VALIDATE w=$work/w0 i
	mkdir -p "$w"
	{
		echo "version: 1"
		echo "stages:"
		for i in $(seq 0 $((n - 1))); do
			printf '  s%d:\n    cmd: cp in/%d out/%d\n    inputs: [in/%d, out/%d]\n    outputs: [out/%d]\n' \
				"$i" "$i" "$i" "$i" $((i == 0 ? n + 1 : i - 1)) "$i"
		done
	} >"$w/Pipefile"
	L[w0]="pipe validate"
	for _ in $(seq "$RUNS"); do tm w0 0 "$w" "$PIPE" validate; done
	header "0. parse + validate + graph of a $n-stage Pipefile"
	row 0 "validate $n stages (a chain)" w0 - "time<0.2"
}

# --- 1. N independent trivial stages: cp in/i out/i -----------------------
# trivial DIR N TOOLS: the same N stages for each of TOOLS in DIR/<tool>/.
trivial() {
	local w=$1 n=$2 tools=$3 t i
	mkdir -p "$w"/{pipe,make,ninja,snakemake,dvc}
	for t in $tools; do
		mkdir -p "$w/$t/in" "$w/$t/out"
		for i in $(seq 0 $((n - 1))); do echo "$i" >"$w/$t/in/$i"; done
	done
	{
		echo "stages:"
		for i in $(seq 0 $((n - 1))); do
			printf '  s%d:\n    cmd: cp in/%d out/%d\n    inputs: [in/%d]\n    outputs: [out/%d]\n' "$i" "$i" "$i" "$i" "$i"
		done
	} >"$w/pipe/Pipefile"
	{
		printf 'all:'
		for i in $(seq 0 $((n - 1))); do printf ' out/%d' "$i"; done
		printf '\nout/%%: in/%%\n\tcp $< $@\n'
	} >"$w/make/Makefile"
	{
		printf 'rule cp\n  command = cp $in $out\n'
		for i in $(seq 0 $((n - 1))); do echo "build out/$i: cp in/$i"; done
	} >"$w/ninja/build.ninja"
	cat >"$w/snakemake/Snakefile" <<EOF
rule all:
    input: expand("out/{i}", i=range($n))
rule cp:
    input: "in/{i}"
    output: "out/{i}"
    shell: "cp {input} {output}"
EOF
	{
		echo "stages:"
		for i in $(seq 0 $((n - 1))); do
			printf '  s%d:\n    cmd: cp in/%d out/%d\n    deps: [in/%d]\n    outs: [out/%d]\n' "$i" "$i" "$i" "$i" "$i"
		done
	} >"$w/dvc/dvc.yaml"
	if [ -n "$DVC" ] && [ -d "$w/dvc/in" ]; then
		(cd "$w/dvc" && "$DVC" init -q --no-scm && "$DVC" config core.analytics false) >/dev/null 2>&1
	fi
}
# fresh DIR TOOL: remove TOOL's outputs and state, for a full run.
fresh() {
	local d=$1/$2
	rm -rf "$d/out" "$d/.pipe" "$d/.ninja_log" "$d/.ninja_deps" "$d/.snakemake" \
		"$d/dvc.lock" "$d/.dvc/cache" "$d/.dvc/tmp"
	mkdir -p "$d/out"
}
count_out() { # count_out DIR N WHO
	local c
	c=$(find "$1/out" -type f | wc -l)
	[ "$c" = "$2" ] || say "bench: $3 left $c outputs, not $2"
}

w1() {
	local n=$N_TRIVIAL nd=$N_TRIVIAL_DVC w=$work/w1 wd=$work/w1dvc t
	trivial "$w" "$n" "pipe make ninja snakemake"
	L[w1.full.pipe]="pipe run -j2" L[w1.full.make]="make -j2"
	L[w1.full.ninja]="ninja -j2" L[w1.full.snakemake]="snakemake --cores 2"
	L[w1.noop.pipe]="pipe status" L[w1.noop.make]="make -q"
	L[w1.noop.ninja]="ninja -n" L[w1.noop.snakemake]="snakemake -n"
	say "1: $n trivial stages, full runs"
	for _ in $(seq "$RUNS"); do
		fresh "$w" pipe; tm w1.full.pipe 0 "$w/pipe" "$PIPE" run -q -j2
		fresh "$w" make; tm w1.full.make 0 "$w/make" make -s -j2
		fresh "$w" ninja; tm w1.full.ninja 0 "$w/ninja" ninja -j2
		if [ "$SNK" = 1 ]; then
			fresh "$w" snakemake; tm w1.full.snakemake 0 "$w/snakemake" snakemake -q --cores 2
		fi
	done
	for t in pipe make ninja; do count_out "$w/$t" "$n" "$t"; done
	[ "$SNK" = 0 ] || count_out "$w/snakemake" "$n" snakemake
	# DVC on a smaller scale (see the top), alternating with pipe there
	if [ -n "$DVC" ]; then
		trivial "$wd" "$nd" "pipe dvc"
		L[w1d.full.pipe]="pipe run -j2" L[w1d.full.dvc]="dvc repro"
		L[w1d.noop.pipe]="pipe status" L[w1d.noop.dvc]="dvc status"
		say "1: $nd trivial stages (DVC scale), full runs"
		for _ in $(seq "$RUNS"); do
			fresh "$wd" pipe; tm w1d.full.pipe 0 "$wd/pipe" "$PIPE" run -q -j2
			fresh "$wd" dvc; tm w1d.full.dvc 0 "$wd/dvc" "$DVC" repro -q
		done
		count_out "$wd/dvc" "$nd" dvc
	fi
	# steady state: each tool's check once, untimed, as any second check
	# would (for pipe after racy_wait: see there)
	racy_wait
	(cd "$w/pipe" && "$PIPE" status && cd ../make && make -q && cd ../ninja &&
		ninja -n) >/dev/null 2>&1 || true
	[ "$SNK" = 0 ] || (cd "$w/snakemake" && snakemake -n) >/dev/null 2>&1 || true
	[ -z "$DVC" ] || (cd "$wd/pipe" && "$PIPE" status && cd ../dvc && "$DVC" status) >/dev/null 2>&1 || true
	say "1: $n trivial stages, no-op checks"
	for _ in $(seq "$RUNS"); do
		tm w1.noop.pipe 0 "$w/pipe" "$PIPE" status
		tm w1.noop.make 0 "$w/make" make -q
		tm w1.noop.ninja 0 "$w/ninja" ninja -n
		if [ "$SNK" = 1 ]; then
			tm w1.noop.snakemake 0 "$w/snakemake" snakemake -n
		fi
	done
	if [ -n "$DVC" ]; then
		say "1: $nd trivial stages (DVC scale), no-op checks"
		for _ in $(seq "$RUNS"); do
			tm w1d.noop.pipe 0 "$wd/pipe" "$PIPE" status
			tm w1d.noop.dvc 0 "$wd/dvc" "$DVC" status -q
		done
	fi
	L[w1.rss.full]="pipe run -j2" L[w1.rss.noop]="pipe status"
	rss w1.rss.noop "$w/pipe" "$PIPE" status
	fresh "$w" pipe
	rss w1.rss.full "$w/pipe" "$PIPE" run -q -j2

	header "1. $n independent trivial stages (cp in/i out/i)"
	row 1a "$n stages, full run" w1.full.pipe w1.full.make "ratio<=1.2"
	row 1b "$n stages, full run" w1.full.pipe w1.full.ninja info
	row 1c "$n stages, full run" w1.full.pipe w1.full.snakemake info
	row 1d "$n stages, no-op check" w1.noop.pipe w1.noop.ninja "ratio<=2"
	row 1e "$n stages, no-op check" w1.noop.pipe w1.noop.make "ratio<=0.1|≥ 10x faster"
	row 1f "$n stages, no-op check" w1.noop.pipe w1.noop.snakemake info
	if [ -n "$DVC" ]; then
		row 1g "$nd stages, full run (DVC scale)" w1d.full.pipe w1d.full.dvc info
		row 1h "$nd stages, no-op check (DVC scale)" w1d.noop.pipe w1d.noop.dvc info
		note "1g-1h: dvc repro runs one stage at a time and grows faster than linearly with the stage count (each stage rewrites dvc.lock): 2000 stages would take about an hour a run, so DVC runs $nd stages, and pipe the same $nd for these rows"
	else
		echo "1g-1h: dvc: skipped (pip could not install it: $dvc_why)"
	fi
	for t in pipe make ninja snakemake; do
		plot "1: full run -j2\\n$n stages" $t w1.full.$t
		plot "1: no-op check\\n$n stages" $t w1.noop.$t
	done
	for t in pipe dvc; do
		plot "1: full run -j2\\n$nd stages" $t w1d.full.$t
		plot "1: no-op check\\n$nd stages" $t w1d.noop.$t
	done
}

# --- 2. no-op status over 100,000 input files in 100 stages ---------------
w2() {
	local stages=$MANY_STAGES per=$MANY_PER files=$((MANY_STAGES * MANY_PER)) w=$work/w2 d
	mkdir -p "$w/pipe/out"
	# the same files for DVC (a copy, which cp -r makes slower)
	for t in pipe $([ -z "$DVC" ] || echo dvc); do
		for d in $(seq 0 $((stages - 1))); do
			mkdir -p "$w/$t/data/$d"
			awk -v d="$d" -v n="$per" -v dir="$w/$t/data/$d" \
				'BEGIN { for (i = 1; i <= n; i++) { f = dir "/" i; print d, i > f; close(f) } }'
		done
	done
	{
		echo "stages:"
		for d in $(seq 0 $((stages - 1))); do
			printf '  s%d:\n    cmd: ls data/%d | wc -l > out/%d\n    inputs: [data/%d/]\n    outputs: [out/%d]\n' "$d" "$d" "$d" "$d" "$d"
		done
	} >"$w/pipe/Pipefile"
	if [ -n "$DVC" ]; then
		mkdir -p "$w/dvc/out"
		{
			echo "stages:"
			for d in $(seq 0 $((stages - 1))); do
				printf '  s%d:\n    cmd: ls data/%d | wc -l > out/%d\n    deps: [data/%d]\n    outs: [out/%d]\n' "$d" "$d" "$d" "$d" "$d"
			done
		} >"$w/dvc/dvc.yaml"
	fi
	say "2: $files files: git commit, pipe run$([ -n "$DVC" ] && echo ', dvc repro')"
	(cd "$w/pipe" && git init -q && git add -A && git -c user.email=b@b -c user.name=b commit -qm x)
	(cd "$w/pipe" && "$PIPE" run -q -j2) >/dev/null 2>&1 || say "bench: 2: pipe run failed"
	last_pipe=$EPOCHREALTIME
	if [ -n "$DVC" ]; then
		(cd "$w/dvc" && "$DVC" init -q --no-scm && "$DVC" config core.analytics false &&
			"$DVC" repro -q) >/dev/null 2>&1 || say "bench: 2: dvc repro failed"
	fi
	racy_wait
	(cd "$w/pipe" && "$PIPE" status && git status) >/dev/null 2>&1 || true
	if [ -n "$DVC" ]; then
		(cd "$w/dvc" && "$DVC" status) >/dev/null 2>&1 || true
	fi
	L[w2.pipe]="pipe status" L[w2.git]="git status" L[w2.dvc]="dvc status"
	say "2: $files files: no-op checks"
	for _ in $(seq "$RUNS"); do
		tm w2.pipe 0 "$w/pipe" "$PIPE" status
		tm w2.git 0 "$w/pipe" git status --porcelain
		if [ -n "$DVC" ]; then
			tm w2.dvc 0 "$w/dvc" "$DVC" status -q
		fi
	done
	L[w2.rss]="pipe status"
	rss w2.rss "$w/pipe" "$PIPE" status
	header "2. no-op status over $files input files in $stages stages"
	row 2a "$files files, no-op status" w2.pipe w2.git "ratio<=1.0"
	if [ -n "$DVC" ]; then
		row 2b "$files files, no-op status" w2.pipe w2.dvc info
	else
		echo "2b: dvc: skipped (pip could not install it: $dvc_why)"
	fi
	[ "${KEEP:-0}" = 1 ] || rm -rf "$w"
}

# --- 3. hash a 1 GiB file ------------------------------------------------
w3() {
	local w=$work/w3 mib=$HASH_MIB h1 h2
	helper hash_bench || { echo "3: hash bench: could not build"; return 0; }
	mkdir -p "$w"
	head -c "${mib}M" /dev/urandom >"$w/big.bin"
	printf 'stages:\n  h:\n    cmd: wc -c big.bin > n.txt\n    inputs: [big.bin]\n    outputs: [n.txt]\n' >"$w/Pipefile"
	(cd "$w" && "$PIPE" run -q) >/dev/null 2>&1 || say "bench: 3: pipe run failed"
	h1=$("$root/build/tests/hash_bench" "$w/big.bin" | cut -c1-32)
	h2=$(xxhsum -H2 "$w/big.bin" 2>/dev/null | cut -c1-32)
	[ "$h1" = "$h2" ] || say "bench: 3: pipe's hash $h1 differs from xxhsum -H2 $h2"
	md5sum "$w/big.bin" >/dev/null # the page cache holds the file for all
	L[w3.pipe]="pipe hash_file" L[w3.status]="pipe status (cold)"
	L[w3.xxh]="xxhsum -H2" L[w3.md5]="md5sum"
	say "3: hash $mib MiB"
	for _ in $(seq "$RUNS"); do
		tm w3.pipe 0 "$w" "$root/build/tests/hash_bench" big.bin
		rm -f "$w/.pipe/statcache"
		tm w3.status 0 "$w" "$PIPE" status
		tm w3.xxh 0 "$w" xxhsum -H2 big.bin
		tm w3.md5 0 "$w" md5sum big.bin
	done
	header "3. hash a $mib MiB file (page cache warm)"
	row 3a "hash $mib MiB" w3.pipe w3.xxh "ratio<=1.2"
	row 3b "hash $mib MiB" w3.pipe w3.md5 "ratio<=1.0|faster"
	row 3c "pipe status re-hashing its $mib MiB input" w3.status w3.xxh "ratio<=1.2"
	note "3: the file is in the page cache for every tool; pipe hash_file is tests/bench/hash_bench.c calling util/hash.c's hash_file (the path run and status take); pipe status (cold) deletes .pipe/statcache before each run, so it re-hashes the input"
	[ "${KEEP:-0}" = 1 ] || rm -rf "$w"
}

# --- 4. commit and restore 1 GiB of outputs vs cp -------------------------
w4() {
	local mib=$STORE_MIB r cp cps rl c rs
	helper store_bench || { echo "4: store bench: could not build"; return 0; }
	say "4: commit and restore $mib MiB (store_bench, caches dropped between steps)"
	SETTLE_MS=$SETTLE_MS VERBOSE=1 "$root/build/tests/store_bench" "$work/w4" "$mib" 1 "$RUNS" >"$work/w4.out" 2>&1 ||
		{ echo "4: store bench failed: $(tail -1 "$work/w4.out")"; return 0; }
	while read -r _ _ _ cp _ cps _ rl _ c _ rs; do
		T[w4.cp]+=" $cp" T[w4.cps]+=" $cps" T[w4.commit]+=" $c" T[w4.restore]+=" $rs"
		[ "$rl" = -1.000000 ] || T[w4.rl]+=" $rl"
	done < <(grep '^run ' "$work/w4.out")
	L[w4.cp]="cp -r" L[w4.cps]="cp -r + sync" L[w4.rl]="cp -r --reflink=always"
	L[w4.commit]="store commit" L[w4.restore]="store restore"
	header "4. commit and restore $mib MiB of outputs (one file)"
	row 4a "commit $mib MiB" w4.commit w4.cp "ratio<=1.5"
	row 4b "commit $mib MiB" w4.commit w4.cps info
	row 4c "restore $mib MiB" w4.restore w4.cp "ratio<=1.2"
	row 4d "restore $mib MiB" w4.restore w4.cps info
	if [ -n "${T[w4.rl]:-}" ]; then
		row 4e "commit $mib MiB" w4.commit w4.rl info
		row 4f "restore $mib MiB" w4.restore w4.rl info
	else
		note "4e-4f: cp --reflink=always: skipped ($fstype here cannot reflink)"
	fi
	note "4: tests/bench/store_bench.c times store_commit_stage and store_restore (what pipe run and pipe checkout do) against cp -r of the same file in the same loop; the page cache is dropped and the source read back before each step; store_bench's $(grep 'peak RSS' "$work/w4.out" | tr -s ' ')"
}

# --- 5. datums: full run, and the run after changing one file -------------
# datums DIR N: N one-line files under DIR/{pipe,snakemake}/in, and the
# stage / rule that upper-cases each into out/.
datums() {
	local w=$1 n=$2 t
	for t in pipe snakemake; do
		mkdir -p "$w/$t/in" "$w/$t/out"
		awk -v n="$n" -v dir="$w/$t/in" \
			'BEGIN { for (i = 1; i <= n; i++) { f = dir "/" i ".txt"; print "line", i > f; close(f) } }'
	done
	cat >"$w/pipe/Pipefile" <<'YML'
stages:
  upper:
    datums: "in/*.txt"
    cmd: tr a-z A-Z < "$PIPE_DATUM" > "$PIPE_OUT/${PIPE_DATUM#in/}"
    outputs: [out/]
    parallelism: 2
YML
	cat >"$w/snakemake/Snakefile" <<'SNK'
IDS, = glob_wildcards("in/{id}.txt")
rule all:
    input: expand("out/{id}.txt", id=IDS)
rule upper:
    input: "in/{id}.txt"
    output: "out/{id}.txt"
    shell: "tr a-z A-Z < {input} > {output}"
SNK
}

w5() {
	local n=$N_DATUMS w=$work/w5 k s f id
	L[w5.full.pipe]="pipe run -j2" L[w5.one.pipe]="pipe run -j2"
	L[w5.one.snakemake]="snakemake --cores 2"
	datums "$w" "$n"
	say "5: $n datums, full runs (pipe)"
	for _ in $(seq "$RUNS"); do
		fresh "$w" pipe
		tm w5.full.pipe 0 "$w/pipe" "$PIPE" run -q -j2
	done
	count_out "$w/pipe" "$n" pipe
	L[w5.rss.full]="pipe run -j2" L[w5.rss.one]="pipe run -j2"
	fresh "$w" pipe
	rss w5.rss.full "$w/pipe" "$PIPE" run -q -j2
	# Snakemake's outputs for the same N without its (quadratic) full run
	(cd "$w/snakemake" && awk '{ f = FILENAME; sub(/^in/, "out", f); print toupper($0) > f; close(f) }' in/*.txt &&
		snakemake -q --touch --cores 2) >/dev/null 2>&1 || say "bench: 5: snakemake --touch failed"
	racy_wait
	(cd "$w/pipe" && "$PIPE" status) >/dev/null 2>&1 || true
	say "5: $n datums, runs after one change"
	for k in $(seq "$RUNS"); do
		f=in/$((k * 37 % n + 1)).txt
		echo "changed $k" >"$w/pipe/$f"
		echo "changed $k" >"$w/snakemake/$f"
		tm w5.one.pipe 0 "$w/pipe" "$PIPE" run -q -j2
		if [ "$SNK" = 1 ]; then
			tm w5.one.snakemake 0 "$w/snakemake" snakemake -q --cores 2
		fi
		for s in pipe snakemake; do
			[ "$(cat "$w/$s/out/${f#in/}")" = "CHANGED $k" ] || say "bench: 5: $s did not redo $f"
		done
	done
	f=in/$(((RUNS + 1) * 37 % n + 1)).txt
	echo "changed again" >"$w/pipe/$f"
	rss w5.rss.one "$w/pipe" "$PIPE" run -q -j2
	[ "${KEEP:-0}" = 1 ] || rm -rf "$w"
	# Snakemake's full run on smaller N, pipe on the same N
	for s in $N_DATUMS_SNK; do
		w=$work/w5-$s
		datums "$w" "$s"
		L[w5.full$s.pipe]="pipe run -j2" L[w5.full$s.snakemake]="snakemake --cores 2"
		say "5: $s datums, full runs (pipe and snakemake)"
		for _ in $(seq "$RUNS"); do
			fresh "$w" pipe; tm "w5.full$s.pipe" 0 "$w/pipe" "$PIPE" run -q -j2
			if [ "$SNK" = 1 ]; then
				fresh "$w" snakemake; tm "w5.full$s.snakemake" 0 "$w/snakemake" snakemake -q --cores 2
			fi
		done
		count_out "$w/snakemake" "$s" snakemake
		rm -rf "$w"
	done
	header "5. datums (one tr per file)"
	row 5a "$n datums, full run" w5.full.pipe - info
	id=b
	for s in $N_DATUMS_SNK; do
		row "5$id" "$s datums, full run (Snakemake scale)" "w5.full$s.pipe" "w5.full$s.snakemake" info
		plot "5: full run -j2\\n$s datums" pipe "w5.full$s.pipe"
		plot "5: full run -j2\\n$s datums" snakemake "w5.full$s.snakemake"
		id=$(echo "$id" | tr a-y b-z)
	done
	snake_scale
	row "5$id" "$n datums, run after one change" w5.one.pipe w5.one.snakemake "time<0.2"
	note "5: Snakemake's full run over datums grows faster than linearly, so its full-run rows use ${N_DATUMS_SNK// /, } datums with pipe on the same; for the one-change row on $n datums its outputs were made by a shell loop and marked done with snakemake --touch"
	plot "5: one change\\n$n datums" pipe w5.one.pipe
	plot "5: one change\\n$n datums" snakemake w5.one.snakemake
}
# Snakemake's growth between the two smallest scales, as an exponent.
SNAKE_SCALE=
snake_scale() {
	local a b ta tb
	read -r a b _ <<<"$N_DATUMS_SNK"
	[ -n "$b" ] && [ -n "${T[w5.full$a.snakemake]:-}" ] || return 0
	ta=$(stats "${T[w5.full$a.snakemake]}" | cut -d' ' -f1)
	tb=$(stats "${T[w5.full$b.snakemake]}" | cut -d' ' -f1)
	SNAKE_SCALE=$(awk -v a="$a" -v b="$b" -v ta="$ta" -v tb="$tb" -v n="$N_DATUMS" \
		'BEGIN { e = log(tb / ta) / log(b / a); printf "Snakemake full run grows as N^%.2f between %d and %d datums (%.1f s, %.1f s); at that rate %d datums would take %.0f s, a lower bound as the exponent rises with N", e, a, b, ta, tb, n, tb * (n / b) ^ e }')
	note "5: $SNAKE_SCALE"
}

# --- 6. 20 Docker stages vs a docker run --rm loop ------------------------
w6() {
	local out=$work/w6.out
	if [ "${SKIP_DOCKER:-0}" = 1 ]; then
		echo "6: docker: skipped (SKIP_DOCKER=1)"
		return 0
	fi
	say "6: $DOCKER_STAGES docker stages"
	if ! STAGES=$DOCKER_STAGES RUNS=$RUNS PIPE=$PIPE bash "$root/tests/bench/docker_bench.sh" >"$out" 2>&1; then
		echo "6: docker: could not run: $(tail -1 "$out")"
		return 0
	fi
	T[w6.pipe]=$(sed -n 's/^runs pipe: //p' "$out")
	T[w6.loop]=$(sed -n 's/^runs loop: //p' "$out")
	L[w6.pipe]="pipe run -f -j4" L[w6.loop]="docker run --rm loop"
	header "6. $DOCKER_STAGES trivial Docker stages ($(sed -n 's/^docker bench: //p' "$out"))"
	row 6a "$DOCKER_STAGES docker stages" w6.pipe w6.loop "ratio<=1.0"
	note "6: tests/bench/docker_bench.sh: pipe run -f -j4 of $DOCKER_STAGES docker stages against a shell loop of docker run --rm with the same image, mounts, user, no network, capabilities dropped and --init; $(sed -n 's/^docker bench: //p' "$out")"
}

# --- 8. Kubernetes: 200 datums vs one Indexed Job by hand ------------------
w8() {
	local out=$work/w8.out
	if [ "${SKIP_K8S:-0}" = 1 ]; then
		echo "8: kubernetes: skipped (SKIP_K8S=1)"
		return 0
	fi
	say "8: $K8S_DATUMS datums on the test cluster"
	if ! DATUMS=$K8S_DATUMS RUNS=$K8S_RUNS PIPE=$PIPE bash "$root/tests/bench/k8s_bench.sh" >"$out" 2>&1; then
		echo "8: kubernetes: could not run: $(tail -1 "$out")"
		return 0
	fi
	T[w8.pipe]=$(sed -n 's/^runs pipe: //p' "$out")
	T[w8.kubectl]=$(sed -n 's/^runs kubectl: //p' "$out")
	T[w8.bare]=$(sed -n 's/^runs bare: //p' "$out")
	T[w8.fresh]=$(sed -n 's/^runs fresh: //p' "$out")
	L[w8.pipe]="pipe run -f" L[w8.kubectl]="kubectl apply + wait" L[w8.fresh]="pipe run (fresh)"
	L[w8.bare]="kubectl: a bare Job"
	header "8. Kubernetes: $K8S_DATUMS datums ($(sed -n 's/^k8s bench: //p' "$out"))"
	row 8a "$K8S_DATUMS datums of sleep 0.1, parallelism 10" w8.pipe w8.kubectl "ratio<=1.1"
	row 8b "a fresh kubernetes stage, no API call" w8.fresh - "time<0.2"
	row 8c "8a against a Job with no volume, reading nothing" w8.pipe w8.bare -
	note "8: tests/bench/k8s_bench.sh: pipe run -f of one kubernetes stage of $K8S_DATUMS datums against the same Indexed Job (completions $K8S_DATUMS, parallelism 10, the same pinned image and security context, the workspace mounted read-only at its path and the output folder read-write as pipe mounts them, each pod finding its datum by its index in a list) applied with kubectl and waited for with kubectl wait --for=condition=complete; 8c: the same against a bare Job (no volume, sleep 0.1 only), for reference; 8b runs pipe with a kubeconfig whose server does not exist"
}

# --- 9. push and pull to a local S3 server vs dvc and aws s3 sync --------
w9() {
	local out=$work/w9.out s o k v what id=a
	if [ "${SKIP_REMOTE:-0}" = 1 ]; then
		echo "9: remote: skipped (SKIP_REMOTE=1)"
		return 0
	fi
	say "9: push and pull to a local S3 server (tests/bench/remote_bench.sh)"
	if ! RUNS=$RUNS QUICK=$QUICK PIPE=$PIPE DVC=$DVC CACHE=$CACHE bash "$root/tests/bench/remote_bench.sh" >"$out" 2>"$work/w9.err"; then
		echo "9: remote: could not run: $(tail -1 "$out")"
		return 0
	fi
	while IFS=: read -r k v; do T[w9.${k#runs }]=$v; done < <(grep '^runs ' "$out")
	while IFS=: read -r k v; do BAD[w9.${k#failed }]=${v# }; done < <(grep '^failed ' "$out")
	while IFS= read -r v; do note "9: $v"; done < <(sed -n 's/^skip \([a-z]*\): \(.*\)/\1 not available: \2/p; s/^note: //p' "$out")
	for s in big small; do
		L[w9.$s.push.pipe]="pipe push" L[w9.$s.noop.pipe]="pipe push" L[w9.$s.pull.pipe]="pipe pull + pipe run"
		L[w9.$s.push.dvc]="dvc push" L[w9.$s.noop.dvc]="dvc push" L[w9.$s.pull.dvc]="dvc pull"
		L[w9.$s.push.aws]="aws s3 sync" L[w9.$s.noop.aws]="aws s3 sync" L[w9.$s.pull.aws]="aws s3 sync"
	done
	header "9. push and pull to a local S3 server ($(sed -n 's/^remote bench: //p' "$out"))"
	for s in big small; do
		what=$(sed -n "s/^size $s: //p" "$out")
		for o in push noop pull; do
			k=w9.$s.$o
			v="$([ $o = noop ] && echo "no-op push" || echo $o) $what"
			if [ -n "${T[$k.pipe]:-}" ]; then
				row "9$id" "$v" "$k.pipe" "$k.dvc" "ratio<=1.0"
				id=$(echo "$id" | tr a-y b-z)
				row "9$id" "$v" "$k.pipe" "$k.aws" info
			else # pipe's side missing: DVC against aws, for the record
				row "9$id" "$v" "$k.dvc" "$k.aws" info
			fi
			id=$(echo "$id" | tr a-y b-z)
		done
	done
	note "9: tests/bench/remote_bench.sh: each tool pushes the same bytes to its own fresh prefix of one bucket (versitygw on 127.0.0.1), then pushes again (no-op), then pulls into an empty workspace (pipe: Pipefile and generator only; dvc: out.dvc and config, no cache), alternating; every pull is compared byte for byte with what was pushed"
}

# --- 7. peak memory of pipe ----------------------------------------------
w7() {
	header "7. peak memory (max RSS) of pipe"
	row 7a "1: $N_TRIVIAL stages, full run" w1.rss.full - "rss<100"
	row 7b "1: $N_TRIVIAL stages, no-op status" w1.rss.noop - "rss<100"
	row 7c "2: $((MANY_STAGES * MANY_PER)) files, no-op status" w2.rss - "rss<100"
	row 7d "5: $N_DATUMS datums, full run" w5.rss.full - "rss<100"
	row 7e "5: $N_DATUMS datums, run after one change" w5.rss.one - "rss<100"
}

# --- 10. scale: N independent cp stages (tests/bench/scale.sh) -----------
. "$root/tests/bench/scale.sh"

for wl in 0 1 2 3 4 5 6 8 9 10; do
	if want "$wl"; then
		t0=$EPOCHREALTIME
		"w$wl"
		t0=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
		SECS+=("\"$wl\": $t0")
		say "($wl took $t0 s)"
	fi
done
want 7 && w7

# --- results -------------------------------------------------------------
total=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
mkdir -p "$OUT"
tools_json() {
	local v sep=""
	for t in "pipe:$PIPE --version" "make:make --version" "ninja:ninja --version" \
		"snakemake:snakemake --version" "dvc:${DVC:-$CACHE/dvc-venv/bin/dvc} --version" \
		"git:git --version" "xxhsum:xxhsum --version" "docker:docker version -f {{.Server.Version}}"; do
		v=$(timeout 20 ${t#*:} 2>&1 | head -1 | tr -d '"\\') || v=
		printf '%s"%s": "%s"' "$sep" "${t%%:*}" "${v:-missing}"
		sep=", "
	done
}
{
	printf '{\n"date": "%s", "commit": "%s%s", "quick": %s, "runs": %s, "total_seconds": %s,\n' \
		"$date" "$commit" "$dirty" "$([ "$QUICK" = 1 ] && echo true || echo false)" "$RUNS" "$total"
	printf '"machine": {"nproc": %s, "cpu": "%s", "memory_gib": %s, "kernel": "%s", "tmp_fs": "%s"},\n' \
		"$(nproc)" "$cpu" "$memgib" "$(uname -r)" "$fstype"
	printf '"tools": {%s},\n' "$(tools_json)"
	printf '"workload_seconds": {%s},\n' "$(IFS=,; echo "${SECS[*]}")"
	printf '"notes": [%s],\n' "$(sep=; for t in "${NOTES[@]}"; do printf '%s"%s"' "$sep" "${t//\"/\\\"}"; sep=", "; done)"
	printf '"rows": [\n'
	sep=""
	for r in "${ROWS_JSON[@]}"; do
		printf '%s%s\n' "$sep" "$r"
		sep=","
	done
	printf ']}\n'
} >"$OUT/latest.json"
{
	echo "Measured $date on commit \`$commit$dirty\`$([ "$QUICK" = 1 ] && echo ' (bench-quick)'): $(nproc) cores ($cpu), ${memgib} GiB, Linux $(uname -r), $fstype; median (min–max) of $RUNS alternating runs; ratio = pipe / peer; $total s in all."
	echo
	echo "| # | workload | pipe | peer | ratio | target | met |"
	echo "|---|---|---|---|---|---|---|"
	printf '%s\n' "${ROWS_MD[@]}"
	echo
	[ "${#NOTES[@]}" = 0 ] || printf -- '- %s\n' "${NOTES[@]}"
} >"$OUT/latest.md"

# Plot: grouped bars (log scale) of workloads 1 and 5.
if [ "${#PLOT[@]}" -gt 0 ] && command -v gnuplot >/dev/null; then
	tools=
	for t in pipe make ninja snakemake dvc; do
		if printf '%s\n' "${PLOT[@]}" | grep -q "|$t|"; then
			tools="$tools${tools:+ }$t"
		fi
	done
	{
		echo "group $tools"
		printf '%s\n' "${PLOT[@]}" | awk -F'|' -v tools="$tools" '
			{ if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } v[$1, $2] = $3 }
			END { nt = split(tools, t, " ")
				for (i = 1; i <= n; i++) { printf "\"%s\"", order[i]
					for (j = 1; j <= nt; j++) printf " %s", ((order[i], t[j]) in v) ? v[order[i], t[j]] : "?"
					print "" } }'
	} >"$OUT/plot.dat"
	gnuplot -e "datafile='$OUT/plot.dat'; outfile='$OUT/plot.png'; subtitle='$date, commit $commit$dirty, $(nproc) cores'; tools='$tools'; groups=$(($(wc -l <"$OUT/plot.dat") - 1))" \
		"$root/tests/bench/plot.gp" && echo "wrote $OUT/plot.png" || echo "plot: gnuplot failed"
fi
plot_scale "$OUT"
echo
cat "$OUT/latest.md"
echo
echo "wrote $OUT/latest.json and latest.md; make bench$([ "$QUICK" = 1 ] && echo -quick) took $total s"
