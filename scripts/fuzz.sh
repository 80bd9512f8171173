#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets in fuzz/ (instrumented with -sanitize=fuzzer,address,
# into .build/fuzz so the normal build never pays for it) and runs each for FUZZ_SECONDS.
# Seeds come from fuzz/corpus/<target>/ (read only); new corpus entries and crash files go to
# FUZZ_OUT (var/fuzz), never into the repository. Exits non-zero when any target crashed.
#   FUZZ_SECONDS=60            time per target
#   FUZZ_TARGETS="config ..."  which targets (default: all four)
#   FUZZ_ARGS="-jobs=2 ..."    extra libFuzzer flags
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-request-estimate sse-stream redis-reply config}
out=${FUZZ_OUT:-var/fuzz}
scratch=.build/fuzz

# The same dependency versions as the main build (both Package.resolved files are gitignored).
[ -f fuzz/Package.resolved ] || [ ! -f Package.resolved ] || cp Package.resolved fuzz/Package.resolved
echo "building fuzz/ (libFuzzer + AddressSanitizer) into $scratch ..."
swift build --package-path fuzz --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address >&2
bin="$scratch/debug/tollgate-fuzz"

# Swift's own crash backtracer trips AddressSanitizer (it reads the stack of the crashed
# thread); libFuzzer's handler reports the crash instead.
export SWIFT_BACKTRACE=enable=no
status=0
summary=()
for target in $targets; do
  mkdir -p "$out/corpus/$target" "$out/crashes/$target"
  log="$out/$target.log"
  dict=(); [ -f "fuzz/dict/$target.dict" ] && dict=(-dict="fuzz/dict/$target.dict")
  echo "fuzzing $target for ${seconds}s (log: $log)"
  set +e
  # The first corpus directory receives new entries: the scratch one, ahead of the seeds.
  "$bin" --target="$target" -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$out/crashes/$target/" ${FUZZ_ARGS:-} "$out/corpus/$target" "fuzz/corpus/$target" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  crash=$(ls -t "$out/crashes/$target" 2>/dev/null | head -1)
  if [ "$rc" -eq 0 ]; then
    verdict="no crash"
  else
    status=1
    verdict="CRASH (exit $rc): ${crash:+$out/crashes/$target/$crash}; replay: $bin --target=$target <file>"
    grep -m3 -E 'Fatal error|ERROR: |SUMMARY' "$log" | sed 's/^/    /' >&2 || true
  fi
  summary+=("$(printf '%-17s %10s runs  %-28s %s' "$target" "${runs:-?}" "${cov:-?}" "$verdict")")
done

echo
echo "fuzz summary (${seconds}s per target; new corpus in $out/corpus, crashes in $out/crashes):"
printf '  %s\n' "${summary[@]}"
exit $status
