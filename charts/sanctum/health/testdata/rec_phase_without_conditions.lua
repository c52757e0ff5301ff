-- A phase but no conditions: the phase string alone is never trusted.
return {
  script = "recording.lua",
  want = { status = "Progressing", message = "Waiting for the operator" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "Recording",
    metadata = { name = "rec-1", namespace = "vt-clinic-a", generation = 1 },
    status = { observedGeneration = 1, phase = "Sealed" },
  },
}
