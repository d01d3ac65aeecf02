# Entry points for people and CI. `make test` is the whole test suite.

CARGO ?= cargo

.PHONY: build test

build:
	$(CARGO) build --workspace --release --locked

# The end-to-end tests drive the mfa-enroll binary, so the workspace is built
# first; cargo test then builds everything else it needs.
test:
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked
