# pipe: make for data. One GNU Makefile; see README.md.
#
#   make            build ./pipe (installs missing Debian packages first)
#   make example    build and run examples/sentiment
#   make test       unit tests (cmocka) + end-to-end tests; last line "N passed, N failed"
#   make asan       the same tests under -fsanitize=address,undefined
#   make bench      pipe against make, ninja, Snakemake, DVC, git, cp, docker;
#                   writes bench/results/ (bench-quick: smaller, < 2 min; not in test)

CC      ?= cc
B       ?= build
PKGS    := yaml-0.1 libgit2 libxxhash libcurl jansson
# Linked at start-up. libgit2 and libcurl (with the dozens of libraries they
# pull in) are loaded with dlopen when first needed: store/git.c and
# executors/http.c, by the sonames found here.
LINK_PKGS := yaml-0.1 libxxhash jansson
DEBS    := pkg-config libyaml-dev libgit2-dev libxxhash-dev \
           libcurl4-openssl-dev libjansson-dev libcmocka-dev \
           xxhash git python3
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

.PHONY: all deps test test-long unit e2e asan valgrind example bench bench-quick \
        format format-check check-layers clean
all: pipe

# Library flags come from pkg-config once, into $(B)/config.mk; when a
# package is missing, `make deps` installs it first (a fresh machine needs
# nothing by hand).
$(B)/config.mk: Makefile
	@mkdir -p $(B)
	@pkg-config --exists $(PKGS) cmocka 2>/dev/null || $(MAKE) --no-print-directory deps
	@{ echo "PKG_CFLAGS := $$(pkg-config --cflags $(PKGS))"; \
	   echo "PKG_LIBS := $$(pkg-config --libs $(LINK_PKGS))"; \
	   echo "GIT2_SONAME := $$(objdump -p $$($(CC) -print-file-name=libgit2.so) | awk '/SONAME/ {print $$2}')"; \
	   echo "CURL_SONAME := $$(objdump -p $$($(CC) -print-file-name=libcurl.so) | awk '/SONAME/ {print $$2}')"; \
	   echo "CMOCKA_CFLAGS := $$(pkg-config --cflags cmocka)"; \
	   echo "CMOCKA_LIBS := $$(pkg-config --libs cmocka)"; } > $@.tmp
	@mv $@.tmp $@

SONAMES = $(if $(GIT2_SONAME),-DPIPE_LIBGIT2='"$(GIT2_SONAME)"') \
          $(if $(CURL_SONAME),-DPIPE_LIBCURL='"$(CURL_SONAME)"')

deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
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

# One summary line at the end: "N passed, N failed".
test: $(B)/pipe $(UNIT_BIN)
	@PIPE=$(CURDIR)/$(B)/pipe UNIT_DIR=$(CURDIR)/$(B)/tests bash tests/run.sh

# The long property test of issue #12: 2,000 random steps of five seeds.
test-long: $(B)/pipe
	@PIPE=$(CURDIR)/$(B)/pipe NDL_STEPS=$${NDL_STEPS:-2000} \
	  NDL_SEEDS="$${NDL_SEEDS:-1 2 3 4 5}" bash tests/e2e/t29-no-data-loss.sh

asan:
	@$(MAKE) --no-print-directory B=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" test

valgrind: $(B)/pipe $(UNIT_BIN)
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
