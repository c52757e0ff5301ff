-- Ready=Unknown without a message: Progressing, named by its reason.
return {
  script = "videotenant.lua",
  want = { status = "Progressing", message = "Progressing" },
  obj = {
    apiVersion = "sanctum.dev/v1alpha1",
    kind = "VideoTenant",
    metadata = { name = "clinic-a", generation = 1 },
    status = {
      observedGeneration = 1,
      conditions = {
        { type = "Ready", status = "Unknown", reason = "Progressing", message = "" },
      },
    },
  },
}
