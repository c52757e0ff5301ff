-- Just created, nothing has picked it up yet.
return {
  script = "recording.lua",
  want = { status = "Progressing", message = "Waiting for the operator" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "Recording",
    metadata = { name = "rec-1", namespace = "vt-clinic-a", generation = 1 },
    spec = { room = "r-7f3a" },
  },
}
