-- The spec changed (generation 4) and the status still describes generation 3:
-- the old Ready=True must not count.
return {
  script = "videotenant.lua",
  want = { status = "Progressing", message = "Waiting for the operator to observe generation 4 (status is for generation 3)" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 4 },
    status = {
      observedGeneration = 3,
      conditions = {
        { type = "Ready", status = "True", reason = "Reconciled", message = "the tenant is converged" },
        { type = "Reconciling", status = "False", reason = "Reconciled", message = "all changes applied" },
        { type = "Stalled", status = "False", reason = "Reconciled", message = "no blocking problem" },
      },
    },
  },
}
