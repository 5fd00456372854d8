# SPDX-License-Identifier: MIT
# The two commands users need: `make run` and `make test`. Each does its own set-up first:
# `make run` only what the daemon needs, `make test` the test tools too (scripts/setup.sh).
#   make run                  build and start jrpcd on 127.0.0.1:8000 with jrpcd.ini
#   make test                 build and run every test (unit + integration)
#   make install              install into PREFIX (/usr/local), under DESTDIR when given
#   make test SANITIZE=1      the same under AddressSanitizer + UBSan (build-asan/)
#   make test SANITIZE=thread the same under ThreadSanitizer (build-tsan/)
#   make bench                benchmarks against nginx (bench/)
#   make fuzz                 libFuzzer targets (FUZZ_SECONDS per target, default 60)

JOBS ?= $(shell nproc)
SANITIZE ?=
FUZZ_SECONDS ?= 60
PREFIX ?= /usr/local
DESTDIR ?=
# What `make run` and `make install` build: the daemon, the CLI, the gateway library, the modules.
RUN_TARGETS := jrpcd jrpc_cli jrpc_upstream jrpc_static tennis spec ledger

ifeq ($(SANITIZE),)
BUILD := build
CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo
else ifeq ($(SANITIZE),thread)
BUILD := build-tsan
CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=Debug -DJRPC_SANITIZE=thread
else
BUILD := build-asan
CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=Debug -DJRPC_SANITIZE=address,undefined
endif

.PHONY: all setup setup-run build build-run run install test bench fuzz clean format

all: build

setup-run:
	@scripts/setup.sh run

setup:
	@scripts/setup.sh test

# The daemon alone: a first configure leaves the tests out (they need cmocka and Node, which
# `make run` does not install); a build directory that has them keeps them.
build-run: setup-run
	@echo "build: cmake --build $(BUILD) (jrpcd, jrpc, libjrpc, modules)"
	@[ -f $(BUILD)/CMakeCache.txt ] || cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DJRPC_TESTS=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target $(RUN_TARGETS) >/dev/null

build: setup
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DJRPC_TESTS=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build-run
	$(BUILD)/jrpcd --config jrpcd.ini

# Everything `cmake --install` puts (README.md "Install"); the man pages when scdoc is there.
install: build-run
	@cmake --build $(BUILD) -j $(JOBS) >/dev/null
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 600

bench: setup
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DJRPC_TESTS=ON >/dev/null
	@cmake --build build-bench -j $(JOBS)
	bench/run.sh build-bench

fuzz: setup
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DJRPC_FUZZ=ON -DJRPC_TESTS=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files -- '*.c' '*.h' ':!:fuzz/corpus/**')

clean:
	rm -rf build build-asan build-tsan build-bench build-fuzz
