# The two set-up commands: `make run` and `make test`. Both install what is missing first.
.PHONY: deps build release run test mock clean

## The Debian packages Tollgate needs, installed when missing (apt-get update first);
## chromium is for the dashboard's browser test (DashboardTests).
APT_PACKAGES := redis-server redis-tools libhiredis-dev libcurl4-openssl-dev pkg-config wrk nginx-light chromium openssl
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=600 && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 $$missing; \
	fi
	@command -v swift >/dev/null || { echo "swift is not on PATH (Swift 6 toolchain required)"; exit 1; }
	@# The official SDKs, for the test that they parse on_limit: stop answers (PolicyTests).
	@python3 -c "import openai, anthropic" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check openai anthropic

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

# Operations (local cluster, demo), benchmarks and fuzzing live in their own files.
include mk/cluster.mk
include mk/bench.mk
include mk/fuzz.mk
