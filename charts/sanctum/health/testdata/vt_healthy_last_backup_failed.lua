-- The last backup run failed: alerted on by the BackupFailed Event and the
-- sanctum_backups_total{outcome="Failed"} metric, not by calling the tenant down.
return {
  script = "videotenant.lua",
  want = { status = "Healthy", message = "the tenant is converged" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-b", generation = 2 },
    status = {
      observedGeneration = 2,
      lastBackupOutcome = "Failed",
      conditions = {
        { type = "Ready", status = "True", reason = "Reconciled", message = "the tenant is converged" },
        { type = "Reconciling", status = "False", reason = "Reconciled", message = "all changes applied" },
        { type = "Stalled", status = "False", reason = "Reconciled", message = "no blocking problem" },
        { type = "BackupScheduled", status = "True", reason = "LastBackupFailed", message = "backups to dr-backups run on schedule `@daily`; the last one (backup-29400000) failed at 2026-11-25T03:00:41Z" },
      },
    },
  },
}
