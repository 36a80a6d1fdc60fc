"""The Kubernetes operator of Floxide (imported as ``floxide_operator``), built on kopf.

It turns ``Workflow`` resources into worker Deployments sized from the Redis backlog, and drives
each ``WorkflowRun`` through Redis: seeded once, steered by its spec, projected into its status.

Layers, each importing only those below it:

* :mod:`.handlers` — the kopf handlers, registered on a given registry; :mod:`.cli` runs them as
  ``floxide operator``;
* :mod:`.workflows`, :mod:`.runs` — the reconciliation of each kind;
* :mod:`.runtime` — what a running operator holds; :mod:`.settings` — its configuration;
* :mod:`.store` (the only module that talks to Redis) and :mod:`.kube` (the operator's own
  Kubernetes API calls, off the event loop);
* :mod:`.deployment`, :mod:`.scaling`, :mod:`.projection` — pure functions: manifests, worker
  counts, status; :mod:`.models` and :mod:`.crds` — the resources and their CRDs;
  :mod:`.metrics` — Prometheus.

The operator never imports a workflow's code: it learns each workflow's graph and name from the
workers, through Redis.
"""
