# ngx_http_llmcache_module — build, test, demo, bench.
#
#   make                 the nginx module (build/ngx_http_llmcache_module.so)
#                        and llmcache-worker (build/llmcache-worker)
#   make test            C unit tests + Test::Nginx suites (prove -r t/)
#   make demo            a running gateway in front of mock providers
#   make bench           the benchmarks in bench/
#   make fuzz            a short libFuzzer pass over every parser
#
# NGINX_SRC=/path/to/nginx-1.x builds the module against that source tree
# instead of Debian's nginx-dev (/usr/share/nginx/src).

NGINX_SRC   ?= /usr/share/nginx/src
NGINX_BIN   ?= /usr/sbin/nginx
BUILD       := build
CC          ?= cc
OPT         ?= -O2
CFLAGS_BASE := -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -fPIC \
               -D_GNU_SOURCE -Isrc/core -Isrc/engine
PKGS        := jansson icu-uc icu-i18n hiredis libcurl
PKG_CFLAGS   = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS      += $(CFLAGS_BASE) $(PKG_CFLAGS) $(SANITIZE)
LDFLAGS     += $(SANITIZE)
LDLIBS      += $(PKG_LIBS) -lm -lpthread

CORE_SRC    := $(wildcard src/core/*.c)
CORE_OBJ    := $(CORE_SRC:src/%.c=$(BUILD)/%.o)
ENGINE_SRC  := $(filter-out src/engine/main.c,$(wildcard src/engine/*.c))
ENGINE_OBJ  := $(ENGINE_SRC:src/%.c=$(BUILD)/%.o)
NGX_SRC     := $(wildcard src/ngx/*.c src/ngx/*.h)
UNIT_SRC    := $(wildcard t/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:t/unit/%.c=$(BUILD)/unit/%)
UNIT_HELPER := $(filter-out $(UNIT_SRC),$(wildcard t/unit/*.c))
TOOLS_SRC   := $(wildcard tools/*.c)
TOOLS_BIN   := $(TOOLS_SRC:tools/%.c=$(BUILD)/%)
BENCH_SRC   := $(wildcard bench/*/*.c)
BENCH_BIN   := $(foreach f,$(BENCH_SRC),$(BUILD)/bench/$(notdir $(basename $(f))))
MODULE      := $(BUILD)/ngx_http_llmcache_module.so
WORKER      := $(BUILD)/llmcache-worker

.PHONY: all deps module worker tools unit test test-unit test-nginx demo bench \
        fuzz clean test-asan test-valgrind

all: deps module worker tools

deps:
	@scripts/deps

# --- shared C (src/core) and the engine (src/engine) -----------------------

$(BUILD)/%.o: src/%.c $(wildcard src/core/*.h src/engine/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libllmcore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libllmengine.a: $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

worker: $(WORKER)

tools: $(TOOLS_BIN) $(BENCH_BIN)

# tools/NAME.c -> build/NAME; bench/AREA/NAME.c -> build/bench/NAME
$(BUILD)/%: tools/%.c $(BUILD)/libllmengine.a $(BUILD)/libllmcore.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libllmengine.a $(BUILD)/libllmcore.a \
	    $(LDLIBS)

define bench_rule
$(BUILD)/bench/$(notdir $(basename $(1))): $(1) bench/bench_util.h \
        $(BUILD)/libllmengine.a $(BUILD)/libllmcore.a
	@mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) -o $$@ $$< $(BUILD)/libllmengine.a \
	    $(BUILD)/libllmcore.a $(LDLIBS)
endef
$(foreach f,$(BENCH_SRC),$(eval $(call bench_rule,$(f))))

$(WORKER): $(BUILD)/engine/main.o $(BUILD)/libllmengine.a $(BUILD)/libllmcore.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# --- the nginx module ------------------------------------------------------
# nginx's configure writes into the tree it runs in, so it runs in a copy.
# It is re-run when the list of sources or the config script changes.

module: $(MODULE)

$(BUILD)/nginx/.sources: FORCE
	@mkdir -p $(BUILD)/nginx
	@echo "$(NGINX_SRC) $(CORE_SRC) $(NGX_SRC)" | cmp -s - $@ \
	    || echo "$(NGINX_SRC) $(CORE_SRC) $(NGX_SRC)" > $@

$(BUILD)/nginx/src/objs/Makefile: config $(BUILD)/nginx/.sources
	scripts/nginx-configure "$(NGINX_SRC)" "$(BUILD)/nginx/src" "$(CURDIR)"

$(MODULE): $(BUILD)/nginx/src/objs/Makefile $(CORE_SRC) $(NGX_SRC) \
           $(wildcard src/core/*.h)
	$(MAKE) -C $(BUILD)/nginx/src -f objs/Makefile modules
	@# a new inode: nginx processes running the old object keep it
	cp $(BUILD)/nginx/src/objs/ngx_http_llmcache_module.so $@.tmp
	mv -f $@.tmp $@

# --- tests -----------------------------------------------------------------

unit: $(UNIT_BIN)

$(BUILD)/unit/%: t/unit/%.c $(UNIT_HELPER) $(BUILD)/libllmengine.a \
                 $(BUILD)/libllmcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -It/unit -o $@ $< $(UNIT_HELPER) \
	    $(BUILD)/libllmengine.a $(BUILD)/libllmcore.a $(LDLIBS)

test: all unit
	@scripts/run-tests

test-unit: unit
	@scripts/run-tests unit

test-nginx: all
	@scripts/run-tests nginx

# the C unit tests built with ASan + UBSan (own build tree)
test-asan: deps
	$(MAKE) BUILD=build/asan OPT=-O1 \
	    SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	    build/asan/llmcache-worker $(UNIT_SRC:t/unit/%.c=build/asan/unit/%)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    prove --exec '' build/asan/unit/test_*

# the Test::Nginx suites with nginx under valgrind (slow)
test-valgrind: all
	TEST_NGINX_USE_VALGRIND=1 PROVE_FLAGS=-j1 scripts/run-tests nginx

demo: all
	@scripts/demo

bench: all
	@scripts/bench

fuzz: deps
	@scripts/fuzz

clean:
	rm -rf $(BUILD) t/servroot*

FORCE:
