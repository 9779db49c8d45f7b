#!/bin/sh
# The first command on a new machine: `./do example`, `./do test`, or any
# other make goal. Installs make with apt-get when it is missing (as root,
# or through sudo), then runs `make deps` (the compiler, binutils,
# pkg-config and the libraries) and `make GOAL...`. POSIX sh: a minimal
# Debian has no bash-only tools to rely on before this runs.
set -e
cd "$(dirname "$0")"

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "do: '$*' needs root: run as root or install sudo" >&2
		exit 1
	fi
}

if ! command -v make >/dev/null 2>&1; then
	echo "do: installing make"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends make
fi
make --no-print-directory deps
exec make --no-print-directory "$@"
