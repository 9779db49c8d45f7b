#!/bin/sh
# Writes build/config.mk (the path is $1) from probes: library flags from
# pkg-config, the libgit2 and libcurl sonames from objdump. Env: CC, PKGS,
# LINK_PKGS, MAKE. Runs `make deps` first when a tool or library is
# missing. The file is written only when every probe answered, and replaced
# only when an answer differs from what it holds, so that a library
# installed or upgraded later rebuilds pipe, and an unchanged machine costs
# no rebuild.
set -u
CC=${CC:-cc}
out=$1
tmp=$out.tmp

ready() {
	command -v "${CC%% *}" >/dev/null 2>&1 &&
		command -v objdump >/dev/null 2>&1 &&
		command -v pkg-config >/dev/null 2>&1 &&
		pkg-config --exists $PKGS cmocka 2>/dev/null
}

fail() {
	echo "config: $*" >&2
	rm -f "$tmp"
	exit 1
}

# pc VAR ARGS...: VAR := pkg-config ARGS (may be empty, must succeed)
pc() {
	var=$1
	shift
	val=$(pkg-config "$@") || fail "pkg-config $* failed"
	echo "$var := $val"
}

# soname VAR LIB: VAR := the SONAME of the development link libLIB.so
soname() {
	so=$($CC -print-file-name="lib$2.so") || fail "$CC cannot find lib$2.so"
	[ -f "$so" ] || fail "no lib$2.so (is its -dev package installed?)"
	val=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
	[ -n "$val" ] || fail "no SONAME in $so"
	echo "$2_SONAME := $val" | sed 's/^git2/GIT2/; s/^curl/CURL/'
}

ready || ${MAKE:-make} --no-print-directory deps || exit 1
ready || fail "still missing after 'make deps': $CC, objdump, pkg-config or one of: $PKGS cmocka"
mkdir -p "$(dirname "$out")" || exit 1
{
	pc PKG_CFLAGS --cflags $PKGS &&
		pc PKG_LIBS --libs $LINK_PKGS &&
		soname GIT2 git2 &&
		soname CURL curl &&
		pc CMOCKA_CFLAGS --cflags cmocka &&
		pc CMOCKA_LIBS --libs cmocka
} >"$tmp" || fail "a probe failed; $out left as it was"
if cmp -s "$tmp" "$out"; then
	rm -f "$tmp"
else
	mv "$tmp" "$out"
fi
