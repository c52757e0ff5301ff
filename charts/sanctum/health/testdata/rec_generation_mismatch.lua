-- spec.stop was set (generation 2); the status still describes generation 1.
return {
  script = "recording.lua",
  want = { status = "Progressing", message = "Waiting for the operator to observe generation 2 (status is for generation 1)" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "Recording",
    metadata = { name = "rec-1", namespace = "vt-clinic-a", generation = 2 },
    spec = { room = "r-7f3a", stop = true },
    status = {
      observedGeneration = 1,
      phase = "Recording",
      conditions = {
        { type = "Ready", status = "True", reason = "Recording", message = "recording room r-7f3a" },
      },
    },
  },
}
