# Operations: a local multi-replica cluster and the budget demo (deploy/README.md explains both).
.PHONY: cluster cluster-stop demo chaos

## Redis + mock provider + 3 Tollgate replicas + nginx on 127.0.0.1:8090, in the background
## (state and logs in var/cluster/). Knobs: CLUSTER_REPLICAS, CLUSTER_PORT, CLUSTER_UPSTREAM, ...
cluster: deps
	@scripts/cluster-up.sh

## Stops what `make cluster` started (and nothing else).
cluster-stop:
	@scripts/cluster-down.sh

## A narrated walk through a budget running out, on a cluster it starts and stops itself.
demo: deps
	@scripts/demo.sh

## Kills Redis, a replica and the provider in turn under load; prints the overshoot and lost settlements.
chaos: deps
	@scripts/chaos.sh
