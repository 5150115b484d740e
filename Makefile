# A thin driver over CMake.  `make help` lists the targets.
#
#   build/        make, make demo, make install: plain library
#                 make test (first pass), make soak: CGC_DEBUG_CHECKS=ON
#                 (switching between the two recompiles the library)
#   build-asan/   make test, second pass: CGC_SANITIZE=ON CGC_DEBUG_CHECKS=ON
#   build-bench/  make bench: plain library and benchmarks
#   build-clang/  make check-clang: compiled with clang -Werror, not run

CMAKE      ?= cmake
CTEST      ?= ctest
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= 2
PREFIX     ?= /usr/local
CMAKE_ARGS ?=

CTEST_ARGS = --output-on-failure -j$(JOBS) --timeout 600

TEST_DEPS  = cmake gcc make pkg-config
BENCH_DEPS = $(TEST_DEPS) libgc-dev libmimalloc-dev libjemalloc-dev golang-go \
             valgrind hyperfine time linux-perf python3

ASAN_ENV = ASAN_OPTIONS=detect_stack_use_after_return=0:detect_leaks=0:abort_on_error=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

PLAIN_OPTS  = -DCGC_SANITIZE=OFF -DCGC_DEBUG_CHECKS=OFF
CHECKS_OPTS = -DCGC_SANITIZE=OFF -DCGC_DEBUG_CHECKS=ON -DCGC_BUILD_TESTS=ON
ASAN_OPTS   = -DCGC_SANITIZE=ON -DCGC_DEBUG_CHECKS=ON -DCGC_BUILD_TESTS=ON

# $(call configure,DIR,OPTIONS) / $(call compile,DIR[,TARGETS])
configure = $(CMAKE) -S . -B $(1) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(2) $(CMAKE_ARGS)
compile   = $(CMAKE) --build $(1) -j $(JOBS) $(if $(2),--target $(2))

.PHONY: all build test test-build test-asan check-clang demo bench soak chaos install \
        clean deps-test deps-bench help

all: build

build:
	@$(MAKE) --no-print-directory -s deps-test
	$(call configure,build,$(PLAIN_OPTS))
	$(call compile,build)

# Both passes always run and print ctest's summary; the target fails if
# either failed.
test:
	@$(MAKE) --no-print-directory -s deps-test
	@status=0; \
	if $(MAKE) --no-print-directory test-build; then plain=passed; \
	else plain=FAILED; status=1; fi; \
	if $(MAKE) --no-print-directory test-asan; then asan=passed; \
	else asan=FAILED; status=1; fi; \
	echo; \
	echo "make test: build/ (debug checks) $$plain; build-asan/ (ASan+UBSan, debug checks) $$asan"; \
	exit $$status

test-build:
	$(call configure,build,$(CHECKS_OPTS))
	$(call compile,build)
	cd build && $(CTEST) $(CTEST_ARGS) -LE soak

test-asan:
	$(call configure,build-asan,$(ASAN_OPTS))
	$(call compile,build-asan)
	cd build-asan && $(ASAN_ENV) $(CTEST) $(CTEST_ARGS) -LE soak

# Compiles the library and the tests with clang, warnings as errors, and
# runs nothing: clang refuses some things GCC accepts (C11 atomic operations
# on an object not declared _Atomic once broke the clang build unseen).
# CI runs it after `make test`.
check-clang:
	@$(MAKE) --no-print-directory -s deps-test
	$(call ensure_packages,clang)
	$(CMAKE) -S . -B build-clang -DCMAKE_C_COMPILER=clang -DCMAKE_C_FLAGS=-Werror \
	    -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CHECKS_OPTS) $(CMAKE_ARGS)
	$(call compile,build-clang)

demo:
	@$(MAKE) --no-print-directory -s deps-test
	$(call configure,build,$(PLAIN_OPTS))
	$(call compile,build,cgc-demo)
	CGC_DEBUG=gctrace=1 ./build/demo/cgc-demo

bench:
	@$(MAKE) --no-print-directory -s deps-bench
	$(CMAKE) -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo $(PLAIN_OPTS) \
	    -DCGC_BUILD_BENCH=ON -DCGC_BUILD_TESTS=OFF $(CMAKE_ARGS)
	$(call compile,build-bench)
	if [ -x bench/run.sh ]; then ./bench/run.sh build-bench; else bash bench/run.sh build-bench; fi

soak:
	@$(MAKE) --no-print-directory -s deps-test
	$(call configure,build,$(CHECKS_OPTS))
	$(call compile,build)
	cd build && CGC_SOAK=1 $(CTEST) --output-on-failure -L soak

# The concurrent torture tests on a machine made busy on purpose
# (tests/loaded.sh); ROUNDS=n to change the length (default 40, about
# half an hour on 2 CPUs).
ROUNDS ?= 40
chaos:
	@$(MAKE) --no-print-directory -s deps-test
	$(call configure,build,$(CHECKS_OPTS))
	$(call compile,build)
	bash tests/loaded.sh build $(ROUNDS)

install:
	@$(MAKE) --no-print-directory -s deps-test
	$(call configure,build,$(PLAIN_OPTS))
	$(call compile,build,cgc_shared cgc_static)
	$(CMAKE) --install build --prefix "$(PREFIX)"

clean:
	rm -rf build build-asan build-bench build-clang

# Installs the missing Debian packages (as root), or names them and fails.
define ensure_packages
@missing=""; \
if ! command -v dpkg-query >/dev/null 2>&1; then \
    echo "note: not a Debian system; make sure these are installed: $(1)"; exit 0; \
fi; \
for p in $(1); do \
    dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q ' ok installed$$' \
        || missing="$$missing $$p"; \
done; \
[ -z "$$missing" ] && exit 0; \
if [ "$$(id -u)" -eq 0 ]; then \
    echo "installing:$$missing"; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
else \
    echo "missing packages:$$missing" >&2; \
    echo "run as root:  apt-get install -y$$missing" >&2; \
    exit 1; \
fi
endef

deps-test:
	$(call ensure_packages,$(TEST_DEPS))

deps-bench:
	$(call ensure_packages,$(BENCH_DEPS))

help:
	@echo "make [all]            configure and build in build/"
	@echo "make test             tests in build/ (CGC_DEBUG_CHECKS=ON), then build-asan/ (ASan+UBSan)"
	@echo "make check-clang      compile the library and tests with clang -Werror (build-clang/)"
	@echo "make demo             build and run the demo with CGC_DEBUG=gctrace=1"
	@echo "make bench            benchmarks (build-bench/, bench/run.sh)"
	@echo "make soak             long-running tests (ctest -L soak, CGC_SOAK=1) in build/"
	@echo "make chaos [ROUNDS=n] the concurrent torture tests under CPU theft (tests/loaded.sh)"
	@echo "make install PREFIX=  install (default /usr/local)"
	@echo "make clean            remove the build directories"
	@echo "make deps-test        install the packages the tests need (as root)"
	@echo "make deps-bench       install the packages the benchmarks need (as root)"
	@echo "variables: BUILD_TYPE=$(BUILD_TYPE) JOBS=$(JOBS) CMAKE_ARGS=..."
