#!/usr/bin/env bash
# Installing like a C tool: `make dist` makes a tarball whose `make && make
# install DESTDIR=...` works from a clean unpack and installs the binary,
# the man page (which `man -l` renders, with every command of `pipe
# --help`) and the bash and zsh completions (commands, options, stages).
. "$(dirname "$0")/lib.sh"

# A build of its own, with the defaults: not the flags of a `make asan`
# that may be running this test.
unset MAKEFLAGS MFLAGS MAKELEVEL
dest=$_tmp/dest
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	run make -s -C "$root" dist DISTDIR="$_tmp"
	expect_rc "make dist exits 0" 0
	tarball=$(ls "$_tmp"/pipe-*.tar.gz 2>/dev/null)
	expect_in "make dist names its tarball" "$out" "pipe-"
	run tar -xzf "$tarball" -C "$_tmp"
	expect_rc "the tarball unpacks" 0
	src=$(ls -d "$_tmp"/pipe-*/ 2>/dev/null | head -1)
	for f in Makefile README.md docs/DESIGN.md contrib/completion/_pipe \
		contrib/completion/pipe.bash tests/fuzz/fuzz.h; do
		if [ -f "$src/$f" ]; then ok "tarball has $f"; else
			not_ok "tarball has $f"
		fi
	done
else
	# an unpacked tarball itself: install from here, built elsewhere
	echo "# not a git checkout: make dist not tried; installing this tree"
	src=$root
fi

run make -s -C "$src" -j2
expect_rc "make in the unpacked tree exits 0" 0
run make -s -C "$src" install DESTDIR="$dest" PREFIX=/usr
expect_rc "make install exits 0" 0
bin=$dest/usr/bin/pipe
man1=$dest/usr/share/man/man1/pipe.1
bashc=$dest/usr/share/bash-completion/completions/pipe
zshc=$dest/usr/share/zsh/site-functions/_pipe
for f in "$bin" "$man1" "$bashc" "$zshc"; do
	if [ -s "$f" ]; then ok "installed ${f#"$dest"}"; else
		not_ok "installed ${f#"$dest"}"
	fi
done
run "$bin" --version
expect_in "the installed binary runs" "$out" "pipe "

# The man page: the commands of `pipe --help`, each a subsection.
man_src=$(cat "$man1")
expect_in "man page has a NAME" "$man_src" ".SH NAME"
expect_in "man page header" "$man_src" ".TH PIPE 1"
missing=""
for c in $("$bin" --help | awk '/^commands:/ { f = 1; next } /^$/ { f = 0 } f { print $1 }'); do
	grep -q "^\.SS \"pipe $c" "$man1" || missing="$missing $c"
done
expect_eq "every command of pipe --help is in the man page" "$missing" ""
if command -v man >/dev/null; then
	run env MANWIDTH=80 man -l "$man1"
	expect_rc "man -l renders the page" 0
	expect_in "rendered page has NAME" "$out" "NAME"
	expect_in "rendered page shows pipe run" "$out" "pipe run [STAGE...]"
	expect_not_in "renders without warnings" "$err" "warning"
else
	# no man(1) here: groff's checks are not there either; the
	# roff is checked by hand: requests known, quotes balanced
	bad=$(grep -n '^\.' "$man1" | grep -vE '^[0-9]+:\.(TH|SH|SS|TP|B|PP) ?' | head -3)
	expect_eq "man page uses only TH SH SS TP B PP (no man(1) here)" "$bad" ""
fi

# bash completion: commands, a command's options, stage names.
new_ws
cat >Pipefile <<'PF'
stages:
  prep:
    cmd: "true"
    outputs: [a]
  train:
    cmd: "true"
    inputs: [a]
    outputs: [b]
  sweep:
    matrix: { lr: [1, 2] }
    cmd: "true"
    outputs: ["m${lr}"]
PF
complete_bash() {
	bash -c '
		. "$1"
		COMP_LINE=$2 COMP_POINT=${#2}
		read -ra COMP_WORDS <<<"$2"
		COMP_WORDS[0]=$3
		[[ $2 == *" " ]] && COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_pipe
		echo "${COMPREPLY[*]}"' _ "$bashc" "$1" "$bin"
}
expect_in "bash completes commands" "$(complete_bash "pipe ")" "checkout"
expect_in "bash completes run's options" "$(complete_bash "pipe run --d")" "--dry-run"
expect_eq "bash completes stage names" "$(complete_bash "pipe run t")" "train"
expect_in "bash completes matrix stages" "$(complete_bash "pipe run sw")" "sweep@lr=2"
expect_eq "bash completes after --pipefile" \
	"$(complete_bash "pipe --pipefile Pipefile log p")" "prep"
if command -v zsh >/dev/null; then
	run zsh -f -c '
		compadd() { [[ $1 == -a ]] && print -r -- "${(P)2}" || print -r -- "$@"; }
		_describe() { print -r -- "${(P)4}"; }
		_files() { print FILES; }
		_call_program() { shift; "$@"; }
		. "$1"
		words=("$2" run ""); CURRENT=3; PREFIX=""
		_pipe' _ "$zshc" "$bin"
	expect_in "zsh completes stage names" "$out" "prep train sweep@lr=1"
fi

run make -s -C "$src" uninstall DESTDIR="$dest" PREFIX=/usr
left=$(find "$dest" -type f)
expect_eq "make uninstall removes every file" "$left" ""
finish
