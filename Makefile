# pipe: make for data. One GNU Makefile; see README.md.
#
#   make            build ./pipe (installs missing Debian packages first)
#   make example    build and run examples/sentiment
#   make test       unit tests (cmocka) + end-to-end tests + the Kubernetes
#                   tests on a real local cluster (K8S=0: without them);
#                   last line "N passed, N failed, N skipped"
#   make test-k8s   only the Kubernetes tests (tests/k8s; the cluster is
#                   built the first time, about 12 minutes)
#   make valgrind   the same with pipe under memcheck
#   make asan       the same tests under -fsanitize=address,undefined
#   make bench      pipe against make, ninja, Snakemake, DVC, git, cp, docker;
#                   writes bench/results/ (bench-quick: smaller, minutes; not in test)
#   make install    bin/pipe, man1/pipe.1 and bash/zsh completion under
#                   $(DESTDIR)$(PREFIX) (PREFIX=/usr/local); make uninstall
#   make dist       pipe-VERSION.tar.gz (git archive of HEAD) in DISTDIR (.)
#   make fuzz       each libFuzzer target of tests/fuzz/ for FUZZ_SECONDS (60)
#                   under ASan/UBSan (clang; build-fuzz/)
#
# On a machine without make: ./do GOAL (installs make, then make deps).

CC      ?= cc
B       ?= build
# The one version, as `pipe --version` prints it.
VERSION := $(shell sed -n 's/^\#define PIPE_VERSION "\(.*\)"/\1/p' cli/main.c)
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
PKGS    := yaml-0.1 libgit2 libxxhash libcurl jansson zlib
# Linked at start-up. libgit2 and libcurl (with the dozens of libraries they
# pull in) are loaded with dlopen when first needed: store/git.c and
# executors/http.c, by the sonames found here.
LINK_PKGS := yaml-0.1 libxxhash jansson zlib
# Everything the build and the tests need on a minimal Debian 12 (make
# itself comes from ./do): compiler, binutils (objdump), pkg-config, the
# libraries' -dev packages, git and xxhsum for the tests.
DEBS    := make gcc libc6-dev binutils pkg-config libyaml-dev libgit2-dev \
           libxxhash-dev libcurl4-openssl-dev libjansson-dev \
           libcmocka-dev zlib1g-dev xxhash git python3
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Werror
OPT     ?= -O2 -g
SAN     ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SAN) -I. -MMD -MP
LDFLAGS += $(SAN)

# The layers, lowest first (see README "Design"). Each folder may include
# only itself and the folders named after it in LAYER_<dir>.
LIB_DIRS := util pipefile store executors remote engine
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
CLI_SRC  := $(wildcard cli/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

NO_CONFIG_GOALS := clean deps format format-check check-layers help fuzz dist \
                   uninstall
ifeq ($(filter-out $(NO_CONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
else
-include $(B)/config.mk
endif

.PHONY: FORCE all deps test test-k8s test-long unit e2e asan valgrind example \
        bench bench-quick format format-check check-layers clean fuzz fuzz-build \
        install uninstall dist
all: pipe $(B)/pipe.1

# Library flags come from pkg-config, the libgit2 and libcurl sonames from
# objdump, into $(B)/config.mk: mk/config.sh probes on every make (about
# 40 ms), writes the file only when every probe succeeded, and replaces it
# only when an answer changed (a library installed, upgraded or removed),
# which rebuilds everything. A missing tool or package is installed first
# (`make deps`): a fresh machine needs nothing by hand.
$(B)/config.mk: FORCE
	@CC='$(CC)' PKGS='$(PKGS)' LINK_PKGS='$(LINK_PKGS)' MAKE='$(MAKE)' \
	  sh mk/config.sh $@

SONAMES = -DPIPE_LIBGIT2='"$(GIT2_SONAME)"' -DPIPE_LIBCURL='"$(CURL_SONAME)"'

# Installs the DEBS not installed yet (apt-get; through sudo when not root).
deps:
	@missing=$$(for p in $(DEBS); do \
	  dpkg-query -W -f='$${db:Status-Status}\n' $$p 2>/dev/null | grep -qx installed || echo $$p; \
	done | tr '\n' ' '); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "make deps: not root and no sudo: install $$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing; \
	fi

$(B)/%.o: %.c $(B)/config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(SONAMES) -c -o $@ $<

$(B)/libpipe.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/pipe: $(CLI_OBJ) $(B)/libpipe.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(B)/libpipe.a $(PKG_LIBS) -ldl -lm

pipe: $(B)/pipe
	@if [ "$(B)" = build ]; then ln -sf $(B)/pipe pipe; fi

# The man page is `pipe help --man`: the same command table as `pipe help`.
$(B)/pipe.1: $(B)/pipe
	$(B)/pipe help --man > $@.tmp && mv $@.tmp $@

install: $(B)/pipe $(B)/pipe.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 755 $(B)/pipe $(DESTDIR)$(BINDIR)/pipe
	install -m 644 $(B)/pipe.1 $(DESTDIR)$(MANDIR)/man1/pipe.1
	install -m 644 contrib/completion/pipe.bash $(DESTDIR)$(BASHCOMPDIR)/pipe
	install -m 644 contrib/completion/_pipe $(DESTDIR)$(ZSHCOMPDIR)/_pipe

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pipe $(DESTDIR)$(MANDIR)/man1/pipe.1 \
	  $(DESTDIR)$(BASHCOMPDIR)/pipe $(DESTDIR)$(ZSHCOMPDIR)/_pipe

# What is committed, as pipe-VERSION/; its `make && make install` builds
# from nothing but the tarball (tests/e2e/t05-install.sh).
DISTDIR ?= .
dist:
	git archive --format=tar.gz --prefix=pipe-$(VERSION)/ \
	  -o $(DISTDIR)/pipe-$(VERSION).tar.gz HEAD
	@echo "$(DISTDIR)/pipe-$(VERSION).tar.gz"

$(B)/tests/%: tests/unit/%.c $(B)/libpipe.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(CMOCKA_CFLAGS) -o $@ $< $(B)/libpipe.a \
	  $(PKG_LIBS) $(CMOCKA_LIBS) -ldl -lm

# One summary line at the end: "N passed, N failed, N skipped".
test: $(B)/pipe $(UNIT_BIN)
	@PIPE=$(CURDIR)/$(B)/pipe UNIT_DIR=$(CURDIR)/$(B)/tests bash tests/run.sh

# The Kubernetes tests alone: tests/k8s/run.sh brings the test cluster up
# (tests/k8s/cluster.sh), runs tests/k8s/t*.sh and takes it down.
test-k8s: $(B)/pipe
	@PIPE=$(CURDIR)/$(B)/pipe bash tests/k8s/run.sh

# The long tests of issue #12: 200 SIGKILL trials, and 2,000 random
# steps of five seeds of the no-data-loss property test.
test-long: $(B)/pipe
	@PIPE=$(CURDIR)/$(B)/pipe KILL_TRIALS=$${KILL_TRIALS:-200} \
	  bash tests/e2e/t22-run-signals.sh
	@PIPE=$(CURDIR)/$(B)/pipe NDL_STEPS=$${NDL_STEPS:-2000} \
	  NDL_SEEDS="$${NDL_SEEDS:-1 2 3 4 5}" bash tests/e2e/t29-no-data-loss.sh

# Without the Kubernetes group: the cluster's daemons are Go, not pipe.
asan:
	@K8S=0 $(MAKE) --no-print-directory B=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" test

# The unit tests and the end-to-end tests with every pipe process under
# valgrind's memcheck (tests/valgrind-pipe.sh); any error or leak fails.
valgrind: $(B)/pipe $(UNIT_BIN)
	@command -v valgrind >/dev/null || $(MAKE) --no-print-directory DEBS=valgrind deps
	@K8S=0 PIPE=$(CURDIR)/$(B)/pipe UNIT_DIR=$(CURDIR)/$(B)/tests VALGRIND=1 bash tests/run.sh

# Fuzzing: every tests/fuzz/fuzz_<name>.c is a libFuzzer target over one
# parser of untrusted bytes, with its seed corpus (and the inputs of bugs it
# found) in tests/fuzz/<name>/. Built by clang into build-fuzz/ (the library
# with -fsanitize=fuzzer-no-link, the targets linked with libFuzzer); `make
# test` replays the corpora without clang (tests/unit/test_fuzz_replay.c).
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_PROBE   := int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }

# Installs clang when it cannot link a fuzzer. -Wno-format-nonliteral:
# clang, unlike gcc, flags the format that a vprintf-style wrapper passes on.
fuzz:
	@echo '$(FUZZ_PROBE)' | clang -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null || \
	  $(MAKE) --no-print-directory DEBS="clang libclang-rt-14-dev" deps
	@$(MAKE) --no-print-directory B=build-fuzz CC=clang \
	  WARN="$(WARN) -Wno-format-nonliteral" OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" fuzz-build
	@bash tests/fuzz/run.sh build-fuzz/fuzz $(FUZZ_SECONDS)

fuzz-build: $(FUZZ_BIN)

$(B)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(B)/libpipe.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -fsanitize=fuzzer -o $@ $< $(B)/libpipe.a \
	  $(PKG_LIBS) -ldl -lm

example: pipe
	@bash examples/run-example.sh

bench: pipe
	@bash tests/bench/run.sh

bench-quick: pipe
	@QUICK=1 bash tests/bench/run.sh

format:
	clang-format -i $(LIB_SRC) $(CLI_SRC) $(UNIT_SRC) $(FUZZ_SRC) $(wildcard */*.h) \
	  $(wildcard tests/*/*.h)

format-check:
	@command -v clang-format >/dev/null || $(MAKE) --no-print-directory DEBS=clang-format deps
	@bash tests/format-check.sh

check-layers:
	@bash tests/check-layers.sh

clean:
	rm -rf build build-asan build-fuzz pipe pipe-*.tar.gz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(UNIT_BIN:=.d)
