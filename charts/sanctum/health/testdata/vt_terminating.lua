-- Being deleted: the cleanup finalizer is still running; the last Ready=True does not count.
return {
  script = "videotenant.lua",
  want = { status = "Progressing", message = "Terminating: waiting for finalizers sanctum.dev/cleanup" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = {
      name = "clinic-a",
      generation = 3,
      deletionTimestamp = "2026-03-01T10:00:00Z",
      finalizers = { "sanctum.dev/cleanup" },
    },
    status = {
      observedGeneration = 3,
      conditions = {
        { type = "Ready", status = "True", reason = "Reconciled", message = "the tenant is converged" },
      },
    },
  },
}
