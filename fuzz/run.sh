#!/usr/bin/env bash
# Runs each fuzz target for SECONDS seconds under libFuzzer (cargo fuzz).
#
#   fuzz/run.sh SECONDS [TARGET...]      (default: every target)
#
# cargo fuzz passes -Z flags to rustc. This machine has only a stable
# toolchain, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them; the
# sanitizer runtimes ship with stable's rust-std. Inputs found are kept in
# fuzz/corpus/<target> (not committed); the committed seeds are read from
# fuzz/seeds/<target> and every saved crash from fuzz/regressions/<target>.
# A crash stops the run: its input is in fuzz/artifacts/<target>/; copy it
# to fuzz/regressions/<target>/ so that `cargo test --workspace` replays it.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
export RUSTC_BOOTSTRAP=1
cargo=${CARGO:-cargo}
if [ $# -eq 0 ]; then
    mapfile -t targets < <($cargo fuzz list)
else
    targets=("$@")
fi

$cargo fuzz build
logs=$(mktemp -d)
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t" "regressions/$t"
    start=$(date +%s)
    if $cargo fuzz run "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$logs/$t.log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log")
        cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -n 1)
        echo "fuzz $t: ok, ${execs:-?} executions in $(($(date +%s) - start)) s, $cov"
    else
        status=1
        echo "fuzz $t: FAILED; the end of its log:"
        tail -n 60 "$logs/$t.log"
        echo "Copy the crash input above (fuzz/artifacts/$t/) to fuzz/regressions/$t/."
    fi
done
rm -rf "$logs"
exit $status
