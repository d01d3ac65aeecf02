# Entry points for people and CI. `make test` is the whole test suite.

CARGO ?= cargo

.PHONY: build test fuzz fuzz-short fuzz-tools audit audit-tools timing

build:
	$(CARGO) build --workspace --release --locked

# The end-to-end tests drive the mfa-enroll binary, so the workspace is built
# first; cargo test then builds everything else it needs.
test:
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked

# Fuzzing with cargo fuzz on the stable toolchain (docs/hardening.md).
# fuzz-short is CI's run: 30 s per target. fuzz is the long run; set
# FUZZ_SECONDS for another length per target.
FUZZ_SECONDS ?= 1800

fuzz-tools:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

fuzz-short: fuzz-tools
	fuzz/run.sh 30

fuzz: fuzz-tools
	fuzz/run.sh $(FUZZ_SECONDS)
