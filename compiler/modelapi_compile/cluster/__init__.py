"""A real Kubernetes control plane on this machine (`simulate`) and real clusters
(`verify --server`): the API server, its admission and the controllers have the last word on
what the build writes."""
