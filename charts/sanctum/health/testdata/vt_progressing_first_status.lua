-- The first status the operator writes, before anything exists (status::initial).
return {
  script = "videotenant.lua",
  want = { status = "Progressing", message = "creating the tenant's resources" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 1 },
    status = {
      observedGeneration = 1,
      namespace = "vt-clinic-a",
      conditions = {
        { type = "Ready", status = "False", reason = "Progressing", message = "reconcile started" },
        { type = "Reconciling", status = "True", reason = "Progressing", message = "creating the tenant's resources" },
        { type = "Stalled", status = "False", reason = "Progressing", message = "reconcile started" },
        { type = "KeyReady", status = "Unknown", reason = "Progressing", message = "not reconciled yet" },
      },
    },
  },
}
