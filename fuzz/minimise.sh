#!/usr/bin/env bash
# Replace the committed corpus of each named target by a small one: the seed-* files plus the
# fewest inputs of fuzz/merged/<target> (run-all.sh output) and the current corpus that still
# reach every coverage edge they reach together (libFuzzer -set_cover_merge=1 on edges only,
# -use_counters=0). Keeps the replay in ./scripts/test to seconds; the full feature-minimised
# set stays in fuzz/merged/ for the next fuzzing run.
set -euo pipefail
cd "$(dirname "$0")"
BIN=target/x86_64-unknown-linux-gnu/release
export ASAN_OPTIONS="quarantine_size_mb=16:detect_odr_violation=0"
for t in "$@"; do
  tmp="$(mktemp -d)"
  mkdir -p "merged/$t"
  nice -n 15 "$BIN/$t" "$tmp" "corpus/$t" "merged/$t" -set_cover_merge=1 -use_counters=0 \
    -rss_limit_mb=512 -malloc_limit_mb=64 -timeout=10 >"$tmp.log" 2>&1 \
    || { echo "$t: merge failed, see $tmp.log"; exit 1; }
  seeds="$(mktemp -d)"
  cp corpus/"$t"/seed-* "$seeds"/
  rm -rf "corpus/$t" && mkdir -p "corpus/$t"
  cp "$seeds"/seed-* "corpus/$t"/
  # Inputs equal to a seed are already there under the seed's name.
  for f in "$tmp"/*; do
    [ -e "$f" ] || continue
    h="$(sha1sum "$f" | cut -c1-40)"
    if ! sha1sum "corpus/$t"/seed-* | grep -q "^$h "; then cp "$f" "corpus/$t/$h"; fi
  done
  echo "$t: $(ls "corpus/$t" | wc -l) files, $(cat "corpus/$t"/* | wc -c) bytes"
  rm -rf "$tmp" "$tmp.log" "$seeds"
done
