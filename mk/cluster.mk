# cluster, demo: see deploy/
