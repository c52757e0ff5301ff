-- Media nodes are rolling out: Ready=False, Reconciling=True.
return {
  script = "videotenant.lua",
  want = { status = "Progressing", message = "waiting for media nodes to become ready" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 2 },
    status = {
      observedGeneration = 2,
      conditions = {
        { type = "Ready", status = "False", reason = "PartsNotReady", message = "not ready: MediaReady (WaitingForMediaNodes)" },
        { type = "Reconciling", status = "True", reason = "WaitingForMediaNodes", message = "waiting for media nodes to become ready" },
        { type = "Stalled", status = "False", reason = "Reconciled", message = "no blocking problem" },
        { type = "MediaReady", status = "False", reason = "WaitingForMediaNodes", message = "2/3 media nodes ready; waiting for us-east" },
      },
    },
  },
}
