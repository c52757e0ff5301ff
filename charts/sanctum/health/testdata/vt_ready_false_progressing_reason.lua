-- Ready=False with a reason that is not a failure, nothing else set: still Progressing.
return {
  script = "videotenant.lua",
  want = { status = "Progressing", message = "not ready: MediaReady (WaitingForMediaNodes)" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 2 },
    status = {
      observedGeneration = 2,
      conditions = {
        { type = "Ready", status = "False", reason = "PartsNotReady", message = "not ready: MediaReady (WaitingForMediaNodes)" },
      },
    },
  },
}
