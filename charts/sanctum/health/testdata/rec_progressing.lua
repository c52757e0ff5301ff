-- Stopped, upload being completed: Reconciling=True.
return {
  script = "recording.lua",
  want = { status = "Progressing", message = "completing the multipart upload" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "Recording",
    metadata = { name = "rec-1", namespace = "vt-clinic-a", generation = 2 },
    status = {
      observedGeneration = 2,
      phase = "Finalizing",
      conditions = {
        { type = "Ready", status = "False", reason = "Finalizing", message = "stopped; not sealed yet" },
        { type = "Reconciling", status = "True", reason = "Finalizing", message = "completing the multipart upload" },
        { type = "Stalled", status = "False", reason = "Finalizing", message = "" },
      },
    },
  },
}
