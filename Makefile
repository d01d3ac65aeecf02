# Entry points for people and CI. `make test` is the whole test suite.

CARGO ?= cargo

.PHONY: build test deb lintian install fuzz fuzz-short fuzz-tools audit audit-advisories audit-tools timing bench

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
# installs it with apt-get. Needs cargo (Rust 1.85 or newer, from rustup).
install:
	packaging/install-build-deps
	$(MAKE) deb
	packaging/install-deb

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

# Dependency policy (deny.toml) with cargo-deny: licences, banned crates and
# sources, offline. Advisories need the RustSec database from GitHub:
# audit-advisories, where GitHub is reachable.
audit-tools:
	command -v cargo-deny >/dev/null || $(CARGO) install cargo-deny --locked

audit: audit-tools
	$(CARGO) fetch --locked
	$(CARGO) deny --offline check licenses bans sources

audit-advisories: audit-tools
	$(CARGO) deny check advisories

# Times the failure paths (unknown user, unenrolled, wrong code, right code)
# through pam-converse and in-process; prints the table docs/hardening.md
# quotes. Measures, asserts nothing about speed. TIMING_RUNS=N per path.
timing:
	$(CARGO) build --workspace --locked
	$(CARGO) test -p pam-mfa-e2e --locked --test timing -- --ignored --nocapture measure_the_failure_paths

# Benchmarks pam_mfa.so against google-authenticator-libpam and pam_oath
# through the real libpam, and the PostgreSQL store against a libpq floor
# (docs/benchmarks.md). As root; needs libpam-google-authenticator,
# libpam-oath, gnuplot-nox, postgresql and libpq-dev. Writes
# target/bench/{results.json,report.md,latency.png,postgres.json,postgres.md};
# BENCH_ARGS passes options to `pam-mfa-bench run` (e.g.
# BENCH_ARGS="--users 100,1000", or --no-postgres to leave the store out).
BENCH_ARGS ?=

bench:
	$(CARGO) build --release --locked -p pam_mfa -p pam-mfa-bench
	target/release/pam-mfa-bench run --module target/release/libpam_mfa.so --out target/bench $(BENCH_ARGS)
