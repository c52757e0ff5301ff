-- spec.backup is set but backups are not available: never Ready, and it says so.
-- Stalled wins even while media nodes are still rolling out.
return {
  script = "videotenant.lua",
  want = { status = "Degraded", message = "cannot become Ready: BackupScheduled not available in this release" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-b", generation = 1 },
    status = {
      observedGeneration = 1,
      conditions = {
        { type = "Ready", status = "False", reason = "PartsNotReady", message = "not ready: MediaReady (WaitingForMediaNodes), BackupScheduled (NotImplemented)" },
        { type = "Reconciling", status = "True", reason = "WaitingForMediaNodes", message = "waiting for media nodes to become ready" },
        { type = "Stalled", status = "True", reason = "NotImplemented", message = "cannot become Ready: BackupScheduled not available in this release" },
        { type = "BackupScheduled", status = "False", reason = "NotImplemented", message = "scheduled backups are not available in this release" },
      },
    },
  },
}
