-- Deleted while on legal hold: the finalizer stays, Stalled says why; Argo CD shows the
-- deletion as in progress and names the finalizer holding it.
return {
  script = "recording.lua",
  want = { status = "Progressing", message = "Terminating: waiting for finalizers sanctum.dev/cleanup" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "Recording",
    metadata = {
      name = "rec-1",
      namespace = "vt-clinic-a",
      generation = 2,
      deletionTimestamp = "2026-03-01T10:00:00Z",
      finalizers = { "sanctum.dev/cleanup" },
    },
    spec = { room = "r-7f3a", legalHold = true },
    status = {
      observedGeneration = 2,
      phase = "Sealed",
      conditions = {
        { type = "Ready", status = "True", reason = "Sealed", message = "sealed; sha256 recorded" },
        { type = "Stalled", status = "True", reason = "LegalHold", message = "deletion refused: the recording is under legal hold" },
      },
    },
  },
}
