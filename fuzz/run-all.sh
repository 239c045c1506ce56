#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) until its fuzzer process has used
# CPU_SECONDS of CPU time, then stops it with SIGINT and keeps what it found.
#
#   nice -n 19 fuzz/run-all.sh [target…]
#
# CPU time is the fuzzer's own user + system time from /proc/<pid>/stat, not wall time,
# so a run at low priority on a busy machine still gets its full share of work.
#
# Environment:
#   CPU_SECONDS    CPU time per target (default 600)
#   PARALLEL       targets fuzzed at once (default 1)
#   FUZZ_DEADLINE  a time `date -d` understands ("13:20 UTC"): at that moment the runs in
#                  progress are stopped (and recorded as stopped early); no new one starts
#   FUZZ_WORK      scratch space for the corpora libFuzzer grows (default /tmp/sotto-fuzz)
#
# After each run the inputs that add coverage are merged into fuzz/corpus/<target>/
# (libFuzzer's -merge=1, what `cargo fuzz cmin` runs, but keeping the named seeds) under
# `valid-<sha1>` when the entry point accepts them and `found-<sha1>` otherwise, the
# naming `cargo test -p sotto-crypto --test fuzz_corpus` checks. Crashes go to
# fuzz/artifacts/<target>/. One Markdown table row per target is printed at the end and
# appended to $FUZZ_WORK/runs.md.
set -euo pipefail

cd "$(dirname "$0")/.."
cpu_seconds=${CPU_SECONDS:-600}
parallel=${PARALLEL:-1}
work=${FUZZ_WORK:-/tmp/sotto-fuzz}
deadline=0
if [[ -n ${FUZZ_DEADLINE:-} ]]; then
    deadline=$(date -d "$FUZZ_DEADLINE" +%s)
fi
ticks=$(getconf CLK_TCK)
triple=x86_64-unknown-linux-gnu
bin_dir=fuzz/target/$triple/release
machine="$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi

echo "building ${#targets[@]} targets and the classifier" >&2
cargo +nightly fuzz build --fuzz-dir fuzz >&2
cargo +nightly build --quiet --release --manifest-path fuzz/Cargo.toml \
    --target-dir fuzz/target/classify --example classify >&2
classify=fuzz/target/classify/release/examples/classify
mkdir -p "$work"

# User + system CPU ticks of process $1 (fields 14 and 15 of its stat line, counted
# after the parenthesised command name, which may itself contain spaces).
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    local -a f
    read -r -a f <<<"${stat##*) }"
    echo $((f[11] + f[12]))
}

fuzz_one() {
    local t=$1
    local dir=$work/$t log=$work/$t/log
    local artifacts=fuzz/artifacts/$t
    mkdir -p "$dir/corpus" "$artifacts"
    local crashes_before
    crashes_before=$(find "$artifacts" -type f | wc -l)

    "$bin_dir/$t" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "$dir/corpus" "fuzz/corpus/$t" >"$log" 2>&1 &
    local pid=$! used=0 note=""
    while kill -0 "$pid" 2>/dev/null; do
        used=$(cpu_ticks "$pid") || break
        if ((used >= cpu_seconds * ticks)); then
            kill -INT "$pid"
            break
        fi
        if ((deadline > 0 && $(date +%s) >= deadline)); then
            kill -INT "$pid"
            note=" (stopped at the deadline)"
            break
        fi
        sleep 1
    done
    wait "$pid" || true

    # Keep what adds coverage, named by what the entry point makes of it.
    local before
    before=$(mktemp)
    find "fuzz/corpus/$t" -maxdepth 1 -type f -printf '%f\n' | sort >"$before"
    "$bin_dir/$t" -merge=1 "fuzz/corpus/$t" "$dir/corpus" >"$dir/merge.log" 2>&1
    local name verdict
    find "fuzz/corpus/$t" -maxdepth 1 -type f -printf '%f\n' | sort | comm -13 "$before" - |
        while read -r name; do
            verdict=$("$classify" "$t" "fuzz/corpus/$t/$name")
            case $verdict in
            accepted) mv "fuzz/corpus/$t/$name" "fuzz/corpus/$t/valid-$name" ;;
            refused) mv "fuzz/corpus/$t/$name" "fuzz/corpus/$t/found-$name" ;;
            *) echo "classify $t/$name: $verdict" >&2 ;;
            esac
        done
    rm -f "$before"

    local execs crashes files size
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    crashes=$(($(find "$artifacts" -type f | wc -l) - crashes_before))
    files=$(find "fuzz/corpus/$t" -maxdepth 1 -type f | wc -l)
    size=$(($(cat "fuzz/corpus/$t"/* | wc -c) / 1024))
    if ((size > 2048)); then
        echo "warning: fuzz/corpus/$t is ${size} KiB" >&2
    fi
    printf '| %s | `%s` | %d.%d%s | %s | %d files, %d KiB | %d | %s |\n' \
        "$(date -u +%F)" "$t" $((used / ticks / 60)) $((used * 10 / ticks / 60 % 10)) \
        "$note" "${execs:-?}" "$files" "$size" "$crashes" "$machine" >"$dir/row"
    echo "done: $t: $((used / ticks)) CPU seconds, ${execs:-?} executions," \
        "corpus $files files ($size KiB), $crashes crashes$note" >&2
}

running=0
for t in "${targets[@]}"; do
    if ((deadline > 0 && $(date +%s) >= deadline)); then
        echo "deadline reached: $t not run" >&2
        continue
    fi
    rm -f "$work/$t/row"
    fuzz_one "$t" &
    running=$((running + 1))
    if ((running >= parallel)); then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

echo "| date | target | CPU-minutes | executions | corpus | crashes | machine |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for t in "${targets[@]}"; do
    if [[ -f $work/$t/row ]]; then
        cat "$work/$t/row"
        cat "$work/$t/row" >>"$work/runs.md"
    fi
done
