-- Media is being written: the recording does what was asked, Ready=True.
return {
  script = "recording.lua",
  want = { status = "Healthy", message = "recording room r-7f3a" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "Recording",
    metadata = { name = "rec-1", namespace = "vt-clinic-a", generation = 1 },
    status = {
      observedGeneration = 1,
      phase = "Recording",
      conditions = {
        { type = "Ready", status = "True", reason = "Recording", message = "recording room r-7f3a" },
        { type = "Reconciling", status = "False", reason = "Recording", message = "" },
        { type = "Stalled", status = "False", reason = "Recording", message = "" },
      },
    },
  },
}
