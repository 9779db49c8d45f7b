# pipe: make for data. One GNU Makefile; see README.md.
#
#   make            build ./pipe (installs missing Debian packages first)
#   make example    build and run examples/sentiment
#   make test       unit tests (cmocka) + end-to-end tests; last line
#                   "N passed, N failed, N skipped"
#   make valgrind   the same with pipe under memcheck
#   make asan       the same tests under -fsanitize=address,undefined
#   make bench      pipe against make, ninja, Snakemake, DVC, git, cp, docker;
#                   writes bench/results/ (bench-quick: smaller, < 2 min; not in test)
#
# On a machine without make: ./do GOAL (installs make, then make deps).

CC      ?= cc
B       ?= build
PKGS    := yaml-0.1 libgit2 libxxhash libcurl libpcre2-8 jansson
# Linked at start-up. libgit2 and libcurl (with the dozens of libraries they
# pull in) are loaded with dlopen when first needed: store/git.c and
# executors/http.c, by the sonames found here.
LINK_PKGS := yaml-0.1 libxxhash jansson
# Everything the build and the tests need on a minimal Debian 12 (make
# itself comes from ./do): compiler, binutils (objdump), pkg-config, the
# libraries' -dev packages, git and xxhsum for the tests.
DEBS    := make gcc libc6-dev binutils pkg-config libyaml-dev libgit2-dev \
           libxxhash-dev libcurl4-openssl-dev libpcre2-dev libjansson-dev \
           libcmocka-dev xxhash git
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Werror
OPT     ?= -O2 -g
SAN     ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SAN) -I. -MMD -MP
LDFLAGS += $(SAN)

# The layers, lowest first (see README "Design"). Each folder may include
# only itself and the folders named after it in LAYER_<dir>.
LIB_DIRS := util pipefile store executors engine
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
CLI_SRC  := $(wildcard cli/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

NO_CONFIG_GOALS := clean deps format format-check check-layers help
ifeq ($(filter-out $(NO_CONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
else
-include $(B)/config.mk
endif

.PHONY: FORCE all deps test unit e2e asan valgrind example bench bench-quick \
        format format-check check-layers clean
all: pipe

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

$(B)/tests/%: tests/unit/%.c $(B)/libpipe.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(CMOCKA_CFLAGS) -o $@ $< $(B)/libpipe.a \
	  $(PKG_LIBS) $(CMOCKA_LIBS) -ldl -lm

# One summary line at the end: "N passed, N failed, N skipped".
test: $(B)/pipe $(UNIT_BIN)
	@PIPE=$(CURDIR)/$(B)/pipe UNIT_DIR=$(CURDIR)/$(B)/tests bash tests/run.sh

asan:
	@$(MAKE) --no-print-directory B=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" test

# The unit tests and the end-to-end tests with every pipe process under
# valgrind's memcheck (tests/valgrind-pipe.sh); any error or leak fails.
valgrind: $(B)/pipe $(UNIT_BIN)
	@command -v valgrind >/dev/null || $(MAKE) --no-print-directory DEBS=valgrind deps
	@PIPE=$(CURDIR)/$(B)/pipe UNIT_DIR=$(CURDIR)/$(B)/tests VALGRIND=1 bash tests/run.sh

example: pipe
	@bash examples/run-example.sh

bench: pipe
	@bash tests/bench/run.sh

bench-quick: pipe
	@QUICK=1 bash tests/bench/run.sh

format:
	clang-format -i $(LIB_SRC) $(CLI_SRC) $(UNIT_SRC) $(wildcard */*.h)

format-check:
	@command -v clang-format >/dev/null || $(MAKE) --no-print-directory DEBS=clang-format deps
	@bash tests/format-check.sh

check-layers:
	@bash tests/check-layers.sh

clean:
	rm -rf build build-asan pipe

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
