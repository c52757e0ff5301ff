-- A permanent error (status::failed): Stalled=True carries the message a person acts on.
return {
  script = "videotenant.lua",
  want = { status = "Degraded", message = "namespace vt-clinic-a already exists and is not managed by tenant clinic-a" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 1 },
    status = {
      observedGeneration = 1,
      conditions = {
        { type = "Ready", status = "False", reason = "NamespaceConflict", message = "namespace vt-clinic-a already exists and is not managed by tenant clinic-a" },
        { type = "Reconciling", status = "False", reason = "NamespaceConflict", message = "waiting for the spec or the cluster to change" },
        { type = "Stalled", status = "True", reason = "NamespaceConflict", message = "namespace vt-clinic-a already exists and is not managed by tenant clinic-a" },
      },
    },
  },
}
