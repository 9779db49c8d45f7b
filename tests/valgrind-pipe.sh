#!/bin/sh
# $PIPE under `make valgrind`: the real binary ($PIPE_VG_REAL) under
# memcheck, its exit code untouched (the tests check exit codes). What
# memcheck finds, errors or leaks, goes to a file of its own in
# $PIPE_VG_DIR; tests/run.sh fails the script that started it. The
# commands pipe starts (stages, git) are not traced.
exec valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible \
	--suppressions="$(dirname "$0")/valgrind.supp" \
	--log-file="$PIPE_VG_DIR/pipe.%p.log" "$PIPE_VG_REAL" "$@"
