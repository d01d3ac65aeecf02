# Entry points for people and CI. `make test` is the whole test suite.

CARGO ?= cargo

.PHONY: build test bench

build:
	$(CARGO) build --workspace --release --locked

# The end-to-end tests drive the mfa-enroll binary, so the workspace is built
# first; cargo test then builds everything else it needs.
test:
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked

# Benchmarks pam_mfa.so against google-authenticator-libpam and pam_oath
# through the real libpam (docs/benchmarks.md). As root; needs
# libpam-google-authenticator, libpam-oath and gnuplot-nox. Writes
# target/bench/{results.json,report.md,latency.png}; BENCH_ARGS passes
# options to `pam-mfa-bench run` (e.g. BENCH_ARGS="--users 100,1000").
BENCH_ARGS ?=

bench:
	$(CARGO) build --release --locked -p pam_mfa -p pam-mfa-bench
	target/release/pam-mfa-bench run --module target/release/libpam_mfa.so --out target/bench $(BENCH_ARGS)
