-- Ready=False with a failure reason and neither Reconciling nor Stalled set: Degraded.
return {
  script = "videotenant.lua",
  want = { status = "Degraded", message = "KMS key of tenant clinic-a: CreateKey failed: AccessDeniedException: not authorized" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 1 },
    status = {
      observedGeneration = 1,
      conditions = {
        { type = "Ready", status = "False", reason = "KeyFailed", message = "KMS key of tenant clinic-a: CreateKey failed: AccessDeniedException: not authorized" },
        { type = "Reconciling", status = "False", reason = "KeyFailed", message = "" },
        { type = "Stalled", status = "False", reason = "KeyFailed", message = "" },
      },
    },
  },
}
