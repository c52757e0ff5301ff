-- A recording that failed: Stalled=True with the cause.
return {
  script = "recording.lua",
  want = { status = "Degraded", message = "upload refused: AccessDenied" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "Recording",
    metadata = { name = "rec-1", namespace = "vt-clinic-a", generation = 1 },
    status = {
      observedGeneration = 1,
      phase = "Failed",
      conditions = {
        { type = "Ready", status = "False", reason = "UploadFailed", message = "upload refused: AccessDenied" },
        { type = "Reconciling", status = "False", reason = "UploadFailed", message = "" },
        { type = "Stalled", status = "True", reason = "UploadFailed", message = "upload refused: AccessDenied" },
      },
    },
  },
}
