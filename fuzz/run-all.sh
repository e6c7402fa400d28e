#!/usr/bin/env bash
# Run every fuzz target (or those named as arguments) one after the other, each for
# FUZZ_SECONDS (default 600), at low priority, with the allocation bounds of docs/fuzzing.md.
#
# Per target: new inputs go to fuzz/work/<target> (the committed fuzz/corpus/<target> is only
# read), crashes to fuzz/artifacts/<target>/, the full libFuzzer output to
# fuzz/logs/<stamp>-<target>.log, and one summary line to fuzz/logs/summary.tsv. Afterwards
# the committed corpus and the new inputs are merged (minimised) into fuzz/merged/<target>,
# ready to replace fuzz/corpus/<target>.
#
# Needs cargo-fuzz and, on a stable toolchain, RUSTC_BOOTSTRAP=1 (set here) for the sanitizer
# flags cargo-fuzz passes. The targets are built once at the start (the commit is logged) and
# the binaries run directly, so editing the tree during a run changes nothing until the next.
set -uo pipefail
cd "$(dirname "$0")"

export RUSTC_BOOTSTRAP=1
SECONDS_PER_TARGET="${FUZZ_SECONDS:-600}"
RSS_LIMIT_MB=512
MALLOC_LIMIT_MB=64
ALL="cjson tuf_root tuf_timestamp tuf_snapshot tuf_targets note checkpoint cosignature tile
tlog_proof tlog_policy witness_add_checkpoint transparency release peer_checkpoint openpgp phar
archive_diff"
TARGETS="${*:-$ALL}"

mkdir -p logs
[ -f logs/summary.tsv ] || printf 'date\tcommit\ttarget\tseconds\texecs\texecs_per_sec\tcov\tft\tcorpus\tpeak_rss_mb\texit\tcrash_files\n' > logs/summary.tsv

nice -n 15 cargo fuzz build -a >logs/build.log 2>&1 || { echo "build failed: fuzz/logs/build.log"; exit 1; }
BIN=target/x86_64-unknown-linux-gnu/release
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- .. || echo -dirty)"
# ASan's quarantine would otherwise hold up to 256 MB of freed memory and count against the RSS
# bound; the bound is about what the parsers allocate.
export ASAN_OPTIONS="quarantine_size_mb=16:detect_odr_violation=0"

for t in $TARGETS; do
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  log="logs/$stamp-$t.log"
  mkdir -p "work/$t" "artifacts/$t" "merged/$t"
  start=$(date +%s)
  echo "commit $COMMIT" >"$log"
  nice -n 15 "$BIN/$t" "work/$t" "corpus/$t" \
    -max_total_time="$SECONDS_PER_TARGET" \
    -rss_limit_mb="$RSS_LIMIT_MB" -malloc_limit_mb="$MALLOC_LIMIT_MB" \
    -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >>"$log" 2>&1
  code=$?
  secs=$(( $(date +%s) - start ))
  stat() { grep -o "^stat::$1: *[0-9]*" "$log" | tail -1 | grep -o '[0-9]*$'; }
  last=$(grep -E '#[0-9]+.*(pulse|NEW|REDUCE|DONE|INITED)' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  crashes=$(find "artifacts/$t" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$stamp" "$COMMIT" "$t" "$secs" \
    "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "$cov" "$ft" "$corp" \
    "$(stat peak_rss_mb)" "$code" "$crashes" >> logs/summary.tsv
  # Minimise the committed corpus plus what this run found into merged/<t>.
  rm -rf "merged/$t" && mkdir -p "merged/$t"
  nice -n 15 "$BIN/$t" "merged/$t" "corpus/$t" "work/$t" \
    -merge=1 -rss_limit_mb="$RSS_LIMIT_MB" -malloc_limit_mb="$MALLOC_LIMIT_MB" -timeout=10 \
    >"logs/$stamp-$t-merge.log" 2>&1
done
echo "done: fuzz/logs/summary.tsv"
