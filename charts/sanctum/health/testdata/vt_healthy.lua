-- A converged tenant, as status::converged writes it.
return {
  script = "videotenant.lua",
  want = { status = "Healthy", message = "the tenant is converged" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 3, finalizers = { "sanctum.dev/cleanup" } },
    status = {
      observedGeneration = 3,
      namespace = "vt-clinic-a",
      mediaNodes = "3/3",
      conditions = {
        { type = "Ready", status = "True", reason = "Reconciled", message = "the tenant is converged" },
        { type = "Reconciling", status = "False", reason = "Reconciled", message = "all changes applied" },
        { type = "Stalled", status = "False", reason = "Reconciled", message = "no blocking problem" },
        { type = "KeyReady", status = "True", reason = "Reconciled", message = "data key v1 wrapped by local" },
        { type = "BucketReady", status = "True", reason = "Reconciled", message = "bucket sanctum-clinic-a-1234abcd is private, encrypted, versioned, with retention" },
        { type = "NetworkIsolated", status = "True", reason = "Applied", message = "default deny and 4 allowances in force" },
        { type = "MediaReady", status = "True", reason = "Reconciled", message = "3/3 media nodes ready in 2 regions" },
        { type = "BackupScheduled", status = "True", reason = "NotConfigured", message = "spec.backup is not set: no backups are taken" },
      },
    },
  },
}
