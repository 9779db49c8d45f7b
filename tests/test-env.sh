# The environment every test runs in (bash; sourced by tests/run.sh for each
# test and by tests/e2e/lib.sh): its own empty HOME and a fixed git
# identity, so nothing depends on the host's ~/.gitconfig, /etc/gitconfig
# or ~/.docker. Also the one rule for skips: test_skip_fails TAG.

# test_home DIR: HOME=DIR (created), git with no system or global config.
test_home() {
	mkdir -p "$1" || return 1
	export HOME=$1
	export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
	export GIT_AUTHOR_NAME="pipe tests" GIT_AUTHOR_EMAIL=tests@pipe.invalid
	export GIT_COMMITTER_NAME="pipe tests" GIT_COMMITTER_EMAIL=tests@pipe.invalid
	unset XDG_CONFIG_HOME GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE \
		GIT_OBJECT_DIRECTORY GIT_CONFIG GIT_CONFIG_PARAMETERS
}

# test_skip_fails TAG: true when a skipped check needing TAG (docker) is a
# failure: in CI (CI set, and not "false" or "0") or when PIPE_REQUIRE
# names TAG or "all"; never for TAG slow.
test_skip_fails() {
	# a timing check left out under valgrind (slow) is not a missing
	# environment: it is listed, never a failure
	[ "$1" = slow ] && return 1
	case ${CI:-} in '' | false | 0) ;; *) return 0 ;; esac
	local req=${PIPE_REQUIRE:-}
	case " ${req//,/ } " in *" $1 "* | *" all "*) return 0 ;; esac
	return 1
}
