-- Just applied: the operator has not written a status yet.
return {
  script = "videotenant.lua",
  want = { status = "Progressing", message = "Waiting for the operator" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 1 },
    spec = { displayName = "Example Clinic A" },
  },
}
