# Fuzzing: see fuzz/README.md. A second, instrumented build of its own (.build/fuzz).
.PHONY: fuzz

## libFuzzer + AddressSanitizer over the request scanner/estimator, the SSE parser and usage
## tracker, the Redis reply reader and config parsing, FUZZ_SECONDS (60) each; seeds in
## fuzz/corpus/, new entries and crash files in var/fuzz/. FUZZ_TARGETS picks targets.
fuzz: deps
	scripts/fuzz.sh
