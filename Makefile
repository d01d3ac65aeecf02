# Entry points for people and CI. `make test` is the whole test suite.

CARGO ?= cargo

.PHONY: build test deb lintian install

build:
	$(CARGO) build --workspace --release --locked

# The end-to-end tests drive the mfa-enroll binary, so the workspace is built
# first; cargo test then builds everything else it needs.
test:
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked

# The Debian package pam-mfa, in target/debian/ (see docs/install.md and
# packaging/build-deb): release builds of the module and the CLI, laid out
# with their owners and modes and packed with dpkg-deb.
deb:
	$(CARGO) build --release --locked -p pam_mfa -p mfa-enroll
	packaging/build-deb

# Lintian on the package, failing on a tag of any level; the few tags that
# do not apply are overridden, each with its reason (packaging/lintian-notes.md).
lintian: deb
	lintian --display-info --pedantic --display-experimental \
		--fail-on error,warning,info,pedantic,experimental "$$(packaging/build-deb --path)"

# One command on a fresh Debian 12 machine, as root, without questions:
# installs the build dependencies with apt-get, builds the package and
# installs it with apt-get. Needs cargo (Rust 1.80 or newer, from rustup).
install:
	packaging/install-build-deps
	$(MAKE) deb
	packaging/install-deb
