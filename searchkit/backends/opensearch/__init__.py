"""OpenSearch: export an index as bulk files, push them, and search the cluster."""
