# bench: see bench/README.md
.PHONY: bench bench-smoke bench-micro bench-floor

## End-to-end benchmark: Tollgate vs bare nginx proxy_pass vs direct, streams, soak (~12 minutes).
## Results in bench/results/<date>-<commit>.md/.json. BENCH_SOAK_SECONDS=60 for a shorter soak.
bench: deps
	bench/run.sh

## The same in about a minute with no timing assertions: exits non-zero only on errors or budget drift.
bench-smoke: deps
	BENCH_SMOKE=1 bench/run.sh

## The floor of Tollgate's parts (NIO + curl thread, and loops of our own) beside nginx and Tollgate (~12 minutes).
bench-floor: deps
	bench/floor.sh

## Micro-benchmarks of the hot pure functions (ordo-one/benchmark), a package of its own.
bench-micro:
	cd bench/micro && swift package benchmark $(BENCH_MICRO_ARGS)
