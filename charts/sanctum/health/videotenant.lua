-- Argo CD health check for sanctum.dev/v1alpha1 VideoTenant
-- (argocd-cm key resource.customizations.health.sanctum.dev_VideoTenant).
--
-- Reads the kstatus conditions the operator writes (operator/api/src/conditions.rs),
-- never phase strings. The first rule that matches wins:
--   1. metadata.deletionTimestamp is set         -> Progressing "Terminating ..."
--   2. no status, or no conditions               -> Progressing "Waiting for the operator"
--   3. status.observedGeneration < generation    -> Progressing
--   4. Stalled=True                              -> Degraded, with Stalled's message
--   5. Reconciling=True                          -> Progressing, with Reconciling's message
--   6. Ready=True                                -> Healthy
--   7. Ready=False with a failure reason         -> Degraded
--   8. anything else (Ready=False/Unknown)       -> Progressing
-- Reconciling is read before Ready: after a transient error the operator keeps the last
-- known Ready and sets Reconciling=True (reason Retrying), so Ready=True alone would
-- report a tenant healthy while its new generation is still being retried.
--
-- Argo CD runs this in gopher-lua with only the base, table and (safe) os libraries: no
-- string library, so reasons are matched by table lookup, never by pattern.
-- Keep charts/sanctum/health/recording.lua, docs/examples/argocd-application.yaml and
-- the tests in charts/sanctum/health/testdata/ in step with this file.

-- Reasons of a Ready=False condition that need a person, not more time: the operator's
-- permanent and failed-action reasons (Error::reason in operator/src/controller/tenant/mod.rs).
local FAILURE_REASONS = {
  InvalidSpec = true,
  NamespaceConflict = true,
  LegalHold = true,
  ReadFailed = true,
  ApplyFailed = true,
  PruneFailed = true,
  SigningKeyFailed = true,
  ControlTlsFailed = true,
  StatusFailed = true,
  KeyFailed = true,
  BucketFailed = true,
  FinalizerFailed = true,
}

local hs = {}

local function condition(conditions, type_)
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local metadata = obj.metadata or {}
local status = obj.status

if metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  local finalizers = metadata.finalizers or {}
  if #finalizers > 0 then
    hs.message = "Terminating: waiting for finalizers " .. table.concat(finalizers, ", ")
  else
    hs.message = "Terminating"
  end
  return hs
end

if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

if metadata.generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration < metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. metadata.generation
    .. " (status is for generation " .. status.observedGeneration .. ")"
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
local reconciling = condition(conditions, "Reconciling")
local ready = condition(conditions, "Ready")

if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = text(stalled, "Stalled")
  return hs
end

if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = text(reconciling, "Reconciling")
  return hs
end

if is_true(ready) then
  hs.status = "Healthy"
  hs.message = text(ready, "Ready")
  return hs
end

if ready ~= nil and ready.status == "False" and ready.reason ~= nil
    and FAILURE_REASONS[ready.reason] then
  hs.status = "Degraded"
  hs.message = text(ready, "Not ready")
  return hs
end

hs.status = "Progressing"
hs.message = text(ready, "Waiting for the Ready condition")
return hs
