#!/usr/bin/env bash
# On a terminal pipe run redraws a live progress line (escape
# sequences); never when stdout or stderr is not a terminal, nor under
# NO_COLOR (any non-empty value) or CI (non-empty, not "false" or "0").
. "$(dirname "$0")/lib.sh"
plan 9

# on_tty CMD...: CMD with stdin, stdout and stderr on a new
# pseudo-terminal; prints what it wrote there.
on_tty() {
	python3 - "$@" <<'PY'
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
PY
}

# has_esc DESC yes|no ENV...: a forced run on a terminal with ENV (and
# without any other NO_COLOR or CI) writes an ESC, or not.
has_esc() {
	local desc=$1 want=$2 got=no text
	shift 2
	text=$(on_tty env -u NO_COLOR -u CI "$@" "$PIPE" run -f)
	[[ $text == *$'\e'* ]] && got=yes
	if [ "$got" = "$want" ]; then ok "$desc"; else
		not_ok "$desc" "escape sequences: $got, want $want" "$(printf '%s' "$text" | od -c | head -5)"
	fi
}

new_ws
cat > Pipefile <<'YML'
stages:
  s:
    cmd: sleep 0.7; echo done > s.out
    outputs: [s.out]
YML
pipe run >/dev/null 2>&1
has_esc "a terminal: the live line is drawn" yes
has_esc "NO_COLOR=1: no escape sequence" no NO_COLOR=1
has_esc "NO_COLOR empty: as if unset" yes NO_COLOR=
has_esc "CI=true: no escape sequence" no CI=true
has_esc "CI=1: no escape sequence" no CI=1
has_esc "CI=false: as if unset" yes CI=false
has_esc "CI=0: as if unset" yes CI=0
text=$(on_tty sh -c 'env -u NO_COLOR -u CI "$0" run -f | cat' "$PIPE")
expect_not_in "stdout not a terminal: no escape sequence" "$text" $'\e'
text=$(on_tty sh -c 'env -u NO_COLOR -u CI "$0" run -f 2>run.err' "$PIPE")
expect_not_in "stderr not a terminal: no escape sequence" "$text$(cat run.err)" $'\e'

finish
