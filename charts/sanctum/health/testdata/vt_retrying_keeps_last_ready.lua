-- A transient error on a new generation: the operator keeps the last known Ready=True and
-- sets Reconciling=True (reason Retrying). Reconciling wins over the stale Ready.
return {
  script = "videotenant.lua",
  want = { status = "Progressing", message = "bucket sanctum-clinic-a-1234abcd of tenant clinic-a: HeadBucket failed: SlowDown: Please reduce your request rate." },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 5 },
    status = {
      observedGeneration = 5,
      conditions = {
        { type = "Ready", status = "True", reason = "Reconciled", message = "the tenant is converged" },
        { type = "Reconciling", status = "True", reason = "Retrying", message = "bucket sanctum-clinic-a-1234abcd of tenant clinic-a: HeadBucket failed: SlowDown: Please reduce your request rate." },
        { type = "Stalled", status = "False", reason = "Retrying", message = "retrying a transient error" },
      },
    },
  },
}
