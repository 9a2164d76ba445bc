#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ for a given time. Not part of `make test`; see
# docs/fuzzing.md.
#
#   scripts/fuzz.sh TARGET SECONDS [LIBFUZZER_ARGS...]   one target
#   scripts/fuzz.sh all SECONDS [LIBFUZZER_ARGS...]      every target, one after the other
#   scripts/fuzz.sh merge TARGET                         fold new coverage into fuzz/corpus/TARGET (not committed)
#   scripts/fuzz.sh list                                 the targets
#
# One libFuzzer process per target (one core); run two targets at once from two shells when
# two cores are free. New inputs go to fuzz/target/work-corpus/TARGET (not committed); the
# corpus fuzz/corpus/TARGET (of which only the seed-* files are committed) is read as seeds.
# Crashes land in fuzz/artifacts/TARGET.
#
# Environment: FUZZ_SANITIZER (default none: the core forbids unsafe code; `address` for ASan),
# FUZZ_MAX_LEN (default 1100000: above the 1 MiB body limit), FUZZ_RSS_LIMIT_MB (2048),
# FUZZ_TIMEOUT (per input, seconds; 30).
#
# Exit status: 0 when no target crashed; 1 when one did (the artifact is named in the output);
# 2 for a usage or setup error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
TARGETS=(payload_to_document request_parser read_api_query)
SANITIZER="${FUZZ_SANITIZER:-none}"
MAX_LEN="${FUZZ_MAX_LEN:-1100000}"
RSS_LIMIT_MB="${FUZZ_RSS_LIMIT_MB:-2048}"
TIMEOUT="${FUZZ_TIMEOUT:-30}"

usage() {
  sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

setup() {
  if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly --profile minimal" >&2
    exit 2
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
  fi
}

known() {
  local t
  for t in "${TARGETS[@]}"; do [[ "$t" == "$1" ]] && return 0; done
  echo "fuzz.sh: unknown target '$1' (known: ${TARGETS[*]})" >&2
  exit 2
}

# run_one TARGET SECONDS [ARGS...]: prints the figures; returns 1 on a crash.
run_one() {
  local target="$1" seconds="$2"
  shift 2
  local work="$FUZZ/target/work-corpus/$target"
  local artifacts="$FUZZ/artifacts/$target"
  local logdir="$FUZZ/target/logs"
  local log
  log="$logdir/$target-$(date -u +%Y%m%dT%H%M%SZ).log"
  mkdir -p "$work" "$artifacts" "$logdir" "$FUZZ/corpus/$target"
  local before
  before="$(find "$artifacts" -type f | sort)"

  echo "== $target for ${seconds}s (sanitizer $SANITIZER, max_len $MAX_LEN); log: ${log#"$ROOT"/}"
  local status=0
  (
    cd "$FUZZ"
    cargo +nightly fuzz run --sanitizer "$SANITIZER" --debug-assertions "$target" \
      "$work" "$FUZZ/corpus/$target" -- \
      -max_total_time="$seconds" -max_len="$MAX_LEN" -rss_limit_mb="$RSS_LIMIT_MB" \
      -timeout="$TIMEOUT" -print_final_stats=1 -artifact_prefix="$artifacts/" "$@"
  ) >"$log" 2>&1 || status=$?

  local after new
  after="$(find "$artifacts" -type f | sort)"
  new="$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')"
  local runs rate added rss corpus
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  added="$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)"
  rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)"
  corpus="$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p')"
  echo "   executions: ${runs:-?}  exec/s: ${rate:-?}  new units: ${added:-?}  corpus: ${corpus:-?}  peak RSS: ${rss:-?} MB"
  echo "   last status line: $(grep -E '^#[0-9]+' "$log" | tail -1)"

  if [[ -n "$new" || $status -ne 0 ]]; then
    echo "   CRASH or failure (exit $status). New artifacts:"
    if [[ -n "$new" ]]; then
      echo "$new" | sed "s|^$ROOT/|     |"
    else
      echo "     (none; see the log)"
    fi
    grep -E "panicked at|^==[0-9]+==|SUMMARY|Test unit written" "$log" | head -10 | sed 's/^/   /' || true
    echo "   reproduce: cd fuzz && cargo +nightly fuzz run -s $SANITIZER -a $target <artifact>"
    echo "   minimise:  cd fuzz && cargo +nightly fuzz tmin -s $SANITIZER -a $target <artifact>"
    return 1
  fi
  echo "   no crash"
}

merge() {
  local target="$1"
  local work="$FUZZ/target/work-corpus/$target"
  mkdir -p "$work"
  local before
  before="$(find "$FUZZ/corpus/$target" -type f | wc -l)"
  (
    cd "$FUZZ"
    cargo +nightly fuzz run --sanitizer "$SANITIZER" --debug-assertions "$target" \
      "$FUZZ/corpus/$target" "$work" -- -merge=1 -max_len="$MAX_LEN" \
      -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT"
  ) >"$FUZZ/target/merge-$target.log" 2>&1
  echo "$target: $(find "$FUZZ/corpus/$target" -type f | wc -l) files (was $before), $(du -sh "$FUZZ/corpus/$target" | cut -f1)"
}

[[ $# -ge 1 ]] || usage
case "$1" in
  list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
  merge)
    [[ $# -eq 2 ]] || usage
    known "$2"
    setup
    merge "$2"
    ;;
  all)
    [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage
    seconds="$2"
    shift 2
    setup
    failed=0
    for t in "${TARGETS[@]}"; do
      run_one "$t" "$seconds" "$@" || failed=1
    done
    exit "$failed"
    ;;
  -h|--help|help)
    usage
    ;;
  *)
    [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage
    known "$1"
    target="$1" seconds="$2"
    shift 2
    setup
    run_one "$target" "$seconds" "$@"
    ;;
esac
