-- A sealed recording: complete, checksummed, Ready=True.
return {
  script = "recording.lua",
  want = { status = "Healthy", message = "sealed; sha256 recorded" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "Recording",
    metadata = { name = "rec-1", namespace = "vt-clinic-a", generation = 2 },
    spec = { room = "r-7f3a", stop = true },
    status = {
      observedGeneration = 2,
      phase = "Sealed",
      sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
      conditions = {
        { type = "Ready", status = "True", reason = "Sealed", message = "sealed; sha256 recorded" },
        { type = "Reconciling", status = "False", reason = "Sealed", message = "" },
        { type = "Stalled", status = "False", reason = "Sealed", message = "" },
      },
    },
  },
}
