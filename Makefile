# The two commands users need: `make run` and `make test`. Each does all set-up first.
#   make run                  build and start jrpcd on 127.0.0.1:8000 with jrpcd.ini
#   make test                 build and run every test (unit + integration)
#   make test SANITIZE=1      the same under AddressSanitizer + UBSan (build-asan/)
#   make test SANITIZE=thread the same under ThreadSanitizer (build-tsan/)
#   make bench                benchmarks against nginx (bench/)
#   make fuzz                 libFuzzer targets (FUZZ_SECONDS per target, default 60)

JOBS ?= $(shell nproc)
SANITIZE ?=
FUZZ_SECONDS ?= 60

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

.PHONY: all setup build run test bench fuzz clean format

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/jrpcd --config jrpcd.ini

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
