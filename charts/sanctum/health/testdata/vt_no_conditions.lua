-- A status without conditions (written by something else, or an older operator).
return {
  script = "videotenant.lua",
  want = { status = "Progressing", message = "Waiting for the operator" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 1 },
    status = { namespace = "vt-clinic-a", conditions = {} },
  },
}
