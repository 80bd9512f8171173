# The two set-up commands: `make run` and `make test`. Both install what is missing first.
.PHONY: deps build release run test mock clean

deps:
	@scripts/install-deps.sh

build: deps
	swift build

release: deps
	swift build -c release --product tollgate

## Tollgate on :8080 with a local Redis (unless TOLLGATE_REDIS_URL is set), in the foreground.
run: release
	scripts/run-local.sh

## All tests against a throw-away redis-server.
test: deps
	scripts/test.sh

## The mock provider on :9090 (point providers.*.base_url at http://127.0.0.1:9090 to try Tollgate offline).
mock: deps
	swift build -c release --product tollgate-mock-provider
	.build/release/tollgate-mock-provider --port 9090

clean:
	rm -rf .build var

# Operations (local cluster, demo) and benchmarks live in their own files.
include mk/cluster.mk
include mk/bench.mk
