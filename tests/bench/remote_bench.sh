#!/usr/bin/env bash
# Remote benchmark (issue #16): push and pull of 1 GiB of outputs (8 files
# of 128 MiB, random bytes) and of 10,000 small files (one folder, a few
# hundred bytes each, all different) to a local S3 server
# (tests/s3/server.sh), pipe side by side with `dvc push`/`dvc pull` and
# `aws s3 sync`, alternating, RUNS times each:
#   push     to a fresh prefix per run (every push uploads everything)
#   no-op    the same push again (nothing new to send)
#   pull     into an empty workspace: pipe a copy of the project (Pipefile
#            and generator, no .pipe) running `pipe pull R && pipe run`;
#            dvc a copy with no cache running `dvc pull`; aws `aws s3 sync`
# The three tools move the same bytes (a seeded generator, run by pipe's
# stage); after every pull the workspace is compared byte for byte with the
# generator's folder (diff -r) and a difference ends the script with exit 1.
# Prints "remote bench: ..." (sizes, versions, load), then every run as
# "runs SET.OP.TOOL: s s s" (SET big|small, OP push|noop|pull, TOOL
# pipe|dvc|aws), "failed KEY: why" for a command that exited non-zero,
# "skip TOOL: why" for a tool that is not available, "note: ..." lines.
# Env: PIPE, RUNS (5), QUICK=1 (2 x 16 MiB, 1,000 files), BIG_FILES (8),
# BIG_MIB (128), SMALL_N (10000), JOBS (pipe -j; default: pipe's own),
# DVC (a dvc; pip installs dvc[s3] beside it), CACHE (venvs: aws-venv).
# Not part of `make test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PIPE=${PIPE:-$root/build/pipe}
RUNS=${RUNS:-5}
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pipe-bench}
if [ "${QUICK:-0}" = 1 ]; then
	BIG_FILES=${BIG_FILES:-2} BIG_MIB=${BIG_MIB:-16} SMALL_N=${SMALL_N:-1000}
else
	BIG_FILES=${BIG_FILES:-8} BIG_MIB=${BIG_MIB:-128} SMALL_N=${SMALL_N:-10000}
fi
DVC=${DVC:-$CACHE/dvc-venv/bin/dvc}
AWS=
export DVC_NO_ANALYTICS=1 LC_ALL=C

work=$(mktemp -d "${TMPDIR:-/tmp}/pipe-remote-bench.XXXXXX")
# the server's state file lives in TMPDIR: ours, so no other run's is used
export TMPDIR=$work
cleanup() {
	bash "$root/tests/s3/server.sh" down >/dev/null 2>&1 || true
	[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
say() { printf '%s\n' "$*" >&2; }
die() {
	echo "remote bench: $*" >&2
	echo "remote bench failed: $*"
	exit 1
}

# --- peers: dvc-s3 beside the given dvc, awscli in its own venv ----------
dvc_why="" aws_why=""
setup_dvc_s3() {
	local bin=${DVC%/dvc} v log=$CACHE/dvc-s3-install.log
	[ -x "$DVC" ] || { dvc_why="no dvc at $DVC"; return 1; }
	"$bin/python" -c 'import dvc_s3' 2>/dev/null && return 0
	v=$("$DVC" --version 2>/dev/null) || { dvc_why="$DVC --version failed"; return 1; }
	say "remote bench: pip install dvc[s3]==$v (into ${bin%/bin})"
	"$bin/pip" install -q "dvc[s3]==$v" >"$log" 2>&1 ||
		{ dvc_why="pip install dvc[s3]: $(grep -m1 -i error "$log" || tail -1 "$log")"; return 1; }
}
setup_aws() {
	local venv=$CACHE/aws-venv log=$CACHE/aws-install.log
	if ! "$venv/bin/aws" --version >/dev/null 2>&1; then
		mkdir -p "$CACHE"
		rm -rf "$venv"
		python3 -m venv "$venv" >"$log" 2>&1 || { aws_why="python3 -m venv: $(tail -1 "$log")"; return 1; }
		say "remote bench: pip install awscli (into $venv)"
		"$venv/bin/pip" install -q awscli >>"$log" 2>&1 ||
			{ aws_why="pip install awscli: $(grep -m1 -i error "$log" || tail -1 "$log")"; return 1; }
	fi
	AWS=$venv/bin/aws
}
setup_dvc_s3 || { echo "skip dvc: $dvc_why"; DVC=; }
setup_aws || echo "skip aws: $aws_why"

# --- the server and the environment every tool reads ---------------------
eval "$(bash "$root/tests/s3/server.sh" up)"
B=$S3_BUCKET
objects() { echo "$S3_DATA/$B/$1"; } # where versitygw keeps a prefix
mkdir -p "$work/home"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3
export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET \
	AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL=$S3_ENDPOINT \
	AWS_CONFIG_FILE=$work/home/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/home/aws-credentials \
	DVC_GLOBAL_CONFIG_DIR=$work/home/dvc-global DVC_SYSTEM_CONFIG_DIR=$work/home/dvc-system

# --- the data: one seeded generator, run by pipe's stage and directly -----
cat >"$work/gen.py" <<'PY'
import os, random, sys
kind, n, dest = sys.argv[1], int(sys.argv[2]), sys.argv[4]
os.makedirs(dest, exist_ok=True)
for i in range(n):
    rng = random.Random(i if kind == "big" else 1000000 + i)
    with open(os.path.join(dest, "%05d.bin" % i if kind == "big" else "%05d.txt" % i), "wb") as f:
        if kind == "big":
            f.write(rng.randbytes(int(sys.argv[3]) << 20))
        else:
            f.write(b"%d %s\n" % (i, rng.randbytes(100 + i % 200).hex().encode()))
PY
# project SET N ARG: $work/ref-SET/out made by the generator; pipe's project
# (Pipefile + gen.py) has one stage making the same out/.
project() {
	local set=$1 n=$2 arg=$3 p=$work/pipe-$1
	python3 "$work/gen.py" "$set" "$n" "$arg" "$work/ref-$set/out"
	mkdir -p "$p"
	cp "$work/gen.py" "$p/"
	cat >"$p/Pipefile" <<YML
stages:
  $set:
    cmd: python3 gen.py $set $n $arg out && if [ -n "\$BENCH_RAN" ]; then touch "\$BENCH_RAN"; fi
    inputs: [gen.py]
    outputs: [out/]
YML
}
project big "$BIG_FILES" "$BIG_MIB"
project small "$SMALL_N" 0
BIG_DESC="$((BIG_FILES * BIG_MIB)) MiB ($BIG_FILES files)"
SMALL_DESC="$SMALL_N small files"

# --- timing ---------------------------------------------------------------
declare -A R # R[SET.OP.TOOL]: seconds of each run
# tm KEY DIR CMD...: one timed run of CMD in DIR, its output in $work/last.log
tm() {
	local key=$1 dir=$2 t0 t1 rc=0
	shift 2
	t0=$EPOCHREALTIME
	(cd "$dir" && "$@") >"$work/last.log" 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	R[$key]+=" $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"
	if [ "$rc" != 0 ]; then
		echo "failed $key: exit $rc: $*: $(tail -1 "$work/last.log")"
		say "remote bench: $key: $* exited $rc:"
		tail -5 "$work/last.log" >&2
	fi
	return 0
}
# same SET DIR TOOL WHAT: DIR/out holds exactly the generator's bytes
same() {
	diff -r "$work/ref-$1/out" "$2/out" >"$work/diff.log" 2>&1 ||
		die "$3 $4: the pulled bytes differ from the pushed ones: $(head -3 "$work/diff.log" | tr '\n' ' ')"
}
# unchanged KEY PREFIX MARK: a no-op push rewrote no object
unchanged() {
	local n=0
	[ ! -d "$(objects "$2")" ] || n=$(find "$(objects "$2")" -type f -newer "$3" | wc -l)
	[ "$n" = 0 ] || echo "note: $1 rewrote $n objects under $2"
}

# --- pipe -----------------------------------------------------------------
PJ=()
[ -z "${JOBS:-}" ] || PJ=(-j "$JOBS")
pipe_ok=1
probe=$("$PIPE" push 2>&1 || true)
case $probe in *"unknown command"*)
	pipe_ok=0
	echo "skip pipe: $("$PIPE" --version 2>&1 | head -1) has no push/pull command (${probe%%$'\n'*})"
	;;
esac
pipe_pull() { "$PIPE" pull "${PJ[@]}" "$1" && "$PIPE" run -q; }
pipe_setup() {
	local set=$1
	(cd "$work/pipe-$set" && "$PIPE" run -q) >"$work/last.log" 2>&1 ||
		die "pipe run in pipe-$set failed: $(tail -1 "$work/last.log")"
	same "$set" "$work/pipe-$set" pipe "run"
}
pipe_round() { # pipe_round SET RUN
	local set=$1 i=$2 r=s3://$B/pipe-$1-$2 ws=$work/pull-pipe
	tm "$set.push.pipe" "$work/pipe-$set" "$PIPE" push --json "${PJ[@]}" "$r"
	[ "$i" != 1 ] || echo "note: pipe push of $set, run 1: $(tail -1 "$work/last.log")"
	touch "$work/mark"
	sleep 0.01
	tm "$set.noop.pipe" "$work/pipe-$set" "$PIPE" push --json "${PJ[@]}" "$r"
	[ "$i" != 1 ] || echo "note: pipe no-op push of $set, run 1: $(tail -1 "$work/last.log")"
	unchanged "$set.noop.pipe" "pipe-$set-$i" "$work/mark"
	rm -rf "$ws" "$work/ran"
	mkdir -p "$ws"
	cp "$work/pipe-$set/Pipefile" "$work/pipe-$set/gen.py" "$ws/"
	BENCH_RAN=$work/ran tm "$set.pull.pipe" "$ws" pipe_pull "$r"
	same "$set" "$ws" pipe "pull run $i"
	[ ! -e "$work/ran" ] || die "pipe pull run $i: pipe run executed the stage instead of restoring it"
	rm -rf "$ws" "$(objects "pipe-$set-$i")"
}

# --- dvc ------------------------------------------------------------------
dvc_setup() {
	local set=$1 d=$work/dvc-$1
	mkdir -p "$d"
	cp -r "$work/ref-$set/out" "$d/"
	(cd "$d" && "$DVC" init -q --no-scm && "$DVC" config core.analytics false &&
		"$DVC" add -q out && "$DVC" remote add -d s3 "s3://$B/none" &&
		"$DVC" remote modify s3 endpointurl "$S3_ENDPOINT" &&
		"$DVC" remote modify s3 region us-east-1) >"$work/last.log" 2>&1 ||
		die "dvc setup in dvc-$set failed: $(tail -1 "$work/last.log")"
}
dvc_round() {
	local set=$1 i=$2 d=$work/dvc-$1 ws=$work/pull-dvc
	(cd "$d" && "$DVC" remote modify s3 url "s3://$B/dvc-$set-$i")
	tm "$set.push.dvc" "$d" "$DVC" push -q
	touch "$work/mark"
	sleep 0.01
	tm "$set.noop.dvc" "$d" "$DVC" push -q
	unchanged "$set.noop.dvc" "dvc-$set-$i" "$work/mark"
	rm -rf "$ws"
	mkdir -p "$ws/.dvc"
	cp "$d/out.dvc" "$ws/"
	cp "$d/.dvc/config" "$ws/.dvc/"
	tm "$set.pull.dvc" "$ws" "$DVC" pull -q
	same "$set" "$ws" dvc "pull run $i"
	rm -rf "$ws" "$(objects "dvc-$set-$i")"
}

# --- aws s3 sync ----------------------------------------------------------
aws_round() {
	local set=$1 i=$2 r=s3://$B/aws-$1-$2/ ws=$work/pull-aws
	tm "$set.push.aws" "$work/ref-$set" "$AWS" s3 sync --only-show-errors out/ "$r"
	touch "$work/mark"
	sleep 0.01
	tm "$set.noop.aws" "$work/ref-$set" "$AWS" s3 sync --only-show-errors out/ "$r"
	unchanged "$set.noop.aws" "aws-$set-$i" "$work/mark"
	rm -rf "$ws"
	mkdir -p "$ws"
	tm "$set.pull.aws" "$ws" "$AWS" s3 sync --only-show-errors "$r" out/
	same "$set" "$ws" aws "pull run $i"
	rm -rf "$ws" "$(objects "aws-$set-$i")"
}

# --- the runs ---------------------------------------------------------------
for set in big small; do
	[ "$pipe_ok" = 0 ] || pipe_setup "$set"
	[ -z "$DVC" ] || dvc_setup "$set"
done
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 1 "$RUNS"); do
	for set in big small; do
		say "remote bench: run $i/$RUNS, $set"
		[ "$pipe_ok" = 0 ] || pipe_round "$set" "$i"
		[ -z "$DVC" ] || dvc_round "$set" "$i"
		[ -z "$AWS" ] || aws_round "$set" "$i"
	done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

versions="versitygw $(sed -n 's/^VERSION=//p' "$root/tests/s3/server.sh")"
[ -z "$DVC" ] || versions+=", dvc $("$DVC" --version 2>/dev/null) + dvc-s3 $("${DVC%/dvc}/python" -c 'import importlib.metadata as m; print(m.version("dvc-s3"))' 2>/dev/null)"
[ -z "$AWS" ] || versions+=", $("$AWS" --version 2>&1 | cut -d' ' -f1)"
echo "remote bench: $BIG_DESC and $SMALL_DESC, $versions, $(nproc) cores, load average $load0 before and $load1 after, median of $RUNS"
echo "size big: $BIG_DESC"
echo "size small: $SMALL_DESC"
for k in "${!R[@]}"; do
	echo "runs $k:${R[$k]}"
done | sort
