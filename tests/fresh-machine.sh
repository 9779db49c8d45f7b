#!/usr/bin/env bash
# The README's first command on a truly fresh Debian 12: a minbase bookworm
# (debootstrap --variant=minbase: no make, no compiler, no git identity, no
# sudo), imported into Docker, gets the source of one commit (git archive,
# as a user unpacks a tarball) and runs `./do example` as root, twice. Checks
# that the first run built pipe and ran every stage of examples/sentiment
# with the expected outputs, and that the second compiled nothing and ran
# nothing. The same again as a user with sudo (sudo and the user added
# first: a developer machine). Run by .ci/run; needs Docker
# (tests/docker-env.sh) and root or sudo for debootstrap.
#
# The root file system is cached outside the checkout, one per day:
# $PIPE_FRESH_CACHE (~/.cache/pipe-fresh)/bookworm-minbase-YYYYMMDD.tar, and
# imported once as the image pipe-fresh:bookworm-minbase-YYYYMMDD. Env:
# PIPE_FRESH_REF (commit to test, default HEAD), PIPE_FRESH_MIRROR,
# PIPE_FRESH_SUDO=0 (root only).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ref=$(git rev-parse --verify "${PIPE_FRESH_REF:-HEAD}^{commit}")
cache=${PIPE_FRESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pipe-fresh}
mirror=${PIPE_FRESH_MIRROR:-http://deb.debian.org/debian}
day=$(date -u +%Y%m%d)
tarball=$cache/bookworm-minbase-$day.tar
image=pipe-fresh:bookworm-minbase-$day
start=$SECONDS

say() { echo "fresh-machine: $* ($((SECONDS - start))s)"; }
die() {
	echo "fresh-machine: FAIL: $*" >&2
	exit 1
}

# shellcheck source=docker-env.sh
. "$root/tests/docker-env.sh" # also as root: _denv_sudo, _denv_apt
[ "$DOCKER_READY" = 1 ] || die "no Docker daemon: $DOCKER_WHY"
as_root() { _denv_sudo "$@"; }

# --- the root file system, once a day ---
if [ ! -s "$tarball" ]; then
	command -v debootstrap >/dev/null || _denv_apt debootstrap ||
		die "cannot install debootstrap"
	mkdir -p "$cache"
	rootfs=$(mktemp -d "${TMPDIR:-/tmp}/pipe-fresh.XXXXXX")
	say "debootstrap --variant=minbase bookworm from $mirror"
	as_root debootstrap --variant=minbase bookworm "$rootfs" "$mirror" \
		>"$cache/debootstrap.log" 2>&1 ||
		die "debootstrap failed (log: $cache/debootstrap.log)"
	as_root tar -C "$rootfs" -c . >"$tarball.tmp"
	as_root rm -rf "$rootfs"
	mv "$tarball.tmp" "$tarball"
	# earlier days' file systems are stale: keep today's only
	find "$cache" -name 'bookworm-minbase-*.tar' ! -name "${tarball##*/}" -delete
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
	say "docker import $tarball"
	docker import "$tarball" "$image" >/dev/null
	docker images --format '{{.Repository}}:{{.Tag}}' pipe-fresh |
		grep -vx "$image" | xargs -r docker rmi >/dev/null 2>&1 || true
fi

# --- the README's first command, twice, in a new container ---
boxes=()
trap 'docker rm -f "${boxes[@]}" >/dev/null 2>&1 || true' EXIT
fails=0
check() {
	if [ "$2" = "$3" ]; then echo "ok - $1"; else
		echo "not ok - $1"
		printf '    got:  %s\n    want: %s\n' "$2" "$3"
		fails=$((fails + 1))
	fi
}
summary() { grep -E '^[0-9]+ ran, ' "$1" | tail -1 | sed 's/ in [0-9.]*m*s$//'; }

# machine root|sudo: as root on the bare system, or as a user "dev" with
# sudo (the developer machine: only sudo added, as root, first)
machine() {
	local kind=$1 box=pipe-fresh-$$-$1 user=root ex=examples/sentiment
	local log=$cache/$1 t nstages want got
	boxes+=("$box")
	docker run -d --name "$box" "$image" sleep infinity >/dev/null
	if [ "$kind" = sudo ]; then
		user=dev
		docker exec "$box" sh -c 'apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends sudo >/dev/null &&
			useradd -m dev &&
			echo "dev ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/dev' ||
			die "$kind: cannot add sudo and a user"
	fi
	docker exec "$box" sh -c "mkdir /src && chown $user /src"
	git archive --format=tar "$ref" | docker exec -i -u "$user" "$box" tar -x -C /src
	in_box() { docker exec -u "$user" -w /src "$box" "$@"; }
	say "$kind: commit $(git rev-parse --short "$ref") as $user in $box"
	for tool in make cc gcc git; do
		in_box sh -c "! command -v $tool" >/dev/null || die "$kind: not a bare machine: it has $tool"
	done

	for run in first second; do
		t=$SECONDS
		in_box ./do example >"$log-$run.log" 2>&1 || {
			tail -30 "$log-$run.log" >&2
			die "$kind: $run ./do example failed (log: $log-$run.log)"
		}
		say "$kind: $run ./do example took $((SECONDS - t))s"
	done

	nstages=$(in_box sh -c "cd $ex && ../../pipe dag" | wc -l)
	check "$kind: first run: every stage ran" "$(summary "$log-first.log")" \
		"$nstages ran, 0 cached, 0 fresh, 0 failed, 0 skipped"
	check "$kind: second run: every stage fresh" "$(summary "$log-second.log")" \
		"0 ran, 0 cached, $nstages fresh, 0 failed, 0 skipped"
	check "$kind: second run: nothing installed or compiled" \
		"$(grep -cE '^(installing|cc |ar |do: installing)' "$log-second.log")" 0
	check "$kind: pipe status: everything fresh" \
		"$(in_box sh -c "cd $ex && ../../pipe status >/dev/null 2>&1; echo \$?")" 0
	# each new tweet scored, one line each, in order
	want=$(git show "$ref:$ex/data/new/today.txt")
	got=$(in_box cut -f3- "$ex/out/predictions.tsv")
	check "$kind: out/predictions.tsv scores every new tweet" "$got" "$want"
	check "$kind: every score is positive or negative" \
		"$(in_box cut -f1 "$ex/out/predictions.tsv" | grep -cvE '^(positive|negative)$')" 0
	check "$kind: model/weights.tsv has a weight per word" \
		"$(in_box awk -F'\t' 'NF != 2 || $2 !~ /^-?[0-9.]+$/' "$ex/model/weights.tsv" | wc -l)" 0
	check "$kind: model/weights.tsv is not empty" \
		"$(in_box sh -c "test -s $ex/model/weights.tsv && echo yes")" yes
	# the store (libgit2, loaded by the soname the build found) answers
	check "$kind: pipe log train reads the store" \
		"$(in_box sh -c "cd $ex && ../../pipe log train" | grep -c .)" 1
	docker rm -f "$box" >/dev/null
}

machine root
[ "${PIPE_FRESH_SUDO:-1}" = 0 ] || machine sudo
say "$fails failed"
[ "$fails" = 0 ]
