-- Runs the Argo CD health checks against every fixture in testdata/ and exits non-zero on
-- any mismatch. Usage (Lua 5.1, the dialect of Argo CD's gopher-lua):
--
--   lua5.1 charts/sanctum/health/run_tests.lua
--
-- Each fixture returns { script = "<check>.lua", want = { status, message }, obj = {...} }.
-- A check runs as Argo CD runs it: `obj` is a global, only the base and table libraries
-- (and a safe os) are loaded, and any use of a string method fails the test, because
-- Argo CD does not load the string library.
--
-- It also derives cases from the operator's source: every reason that
-- Error::reason() in operator/src/controller/tenant/mod.rs can write to status must read as
-- Degraded when it is the reason of Ready=False on its own.

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local root = here .. "/../../.."

local VALID = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }

local function copy(value)
  if type(value) ~= "table" then
    return value
  end
  local out = {}
  for k, v in pairs(value) do
    out[k] = copy(v)
  end
  return out
end

-- The environment Argo CD gives a health script: base, table and a reduced os.
local function argo_env(obj)
  local env = {
    obj = obj,
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = pcall, print = print, rawequal = rawequal, rawget = rawget, rawset = rawset,
    select = select, setmetatable = setmetatable, getmetatable = getmetatable,
    tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
    _VERSION = _VERSION,
    table = { concat = table.concat, insert = table.insert, remove = table.remove, sort = table.sort },
    os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime },
  }
  env._G = env
  return env
end

local string_mt = getmetatable("")
local string_index = string_mt.__index

-- Runs one health script on `obj`; returns hs or nil and an error.
local function run_check(script, obj)
  local chunk, err = loadfile(here .. "/" .. script)
  if not chunk then
    return nil, "cannot load " .. script .. ": " .. tostring(err)
  end
  setfenv(chunk, argo_env(copy(obj)))
  string_mt.__index = function(_, key)
    error("string method '" .. tostring(key) .. "' used: Argo CD loads no string library", 2)
  end
  local ok, hs = pcall(chunk)
  string_mt.__index = string_index
  if not ok then
    return nil, tostring(hs)
  end
  if type(hs) ~= "table" then
    return nil, "the script returned " .. type(hs) .. ", not a table"
  end
  return hs
end

local function load_fixture(path)
  local chunk, err = loadfile(path)
  if not chunk then
    error("cannot load fixture " .. path .. ": " .. tostring(err))
  end
  setfenv(chunk, {})
  return chunk()
end

local function list_fixtures()
  local pipe = assert(io.popen('ls "' .. here .. '/testdata"'))
  local files = {}
  for name in pipe:lines() do
    if name:match("%.lua$") then
      files[#files + 1] = name
    end
  end
  pipe:close()
  table.sort(files)
  return files
end

-- Reasons the tenant reconciler can write to status: the string literals of
-- Error::reason(), minus those of errors that are expected waits (is_waiting) and never
-- reach status.
local WAITS = { NamespaceTerminating = true, StaleRead = true }
local function operator_failure_reasons()
  local path = root .. "/operator/src/controller/tenant/mod.rs"
  local file = io.open(path)
  if not file then
    error("cannot read " .. path .. " to derive the failure reasons")
  end
  local source = file:read("*a")
  file:close()
  local body = source:match("pub fn reason%(&self%) %-> &'static str {(.-)\n    }\n")
  if not body then
    error("Error::reason() not found in " .. path .. "; update run_tests.lua")
  end
  local reasons = {}
  for reason in body:gmatch('=> "(%u%a+)"') do
    if not WAITS[reason] then
      reasons[#reasons + 1] = reason
    end
  end
  -- Reasons named by a constant of operator/api/src/conditions.rs (`reasons::INVALID_SPEC`).
  local constants = body:gmatch("=> reasons::([%u_]+)")
  local names = {}
  for name in constants do
    names[#names + 1] = name
  end
  if #names > 0 then
    local cpath = root .. "/operator/api/src/conditions.rs"
    local cfile = io.open(cpath)
    if not cfile then
      error("cannot read " .. cpath .. " to resolve reasons::" .. names[1])
    end
    local csource = cfile:read("*a")
    cfile:close()
    for _, name in ipairs(names) do
      local value = csource:match("pub const " .. name .. ': &str = "(%u%a+)";')
      if not value then
        error("reasons::" .. name .. " not found in " .. cpath)
      end
      reasons[#reasons + 1] = value
    end
  end
  if #reasons < 5 then
    error("found only " .. #reasons .. " reasons in Error::reason(); update run_tests.lua")
  end
  return reasons
end

local cases = {}
for _, name in ipairs(list_fixtures()) do
  local fixture = load_fixture(here .. "/testdata/" .. name)
  cases[#cases + 1] = {
    name = name:gsub("%.lua$", ""),
    script = fixture.script,
    want = fixture.want,
    obj = fixture.obj,
  }
end
if #cases == 0 then
  error("no fixtures in " .. here .. "/testdata")
end
for _, reason in ipairs(operator_failure_reasons()) do
  for _, script in ipairs({ "videotenant.lua", "recording.lua" }) do
    local message = "failed: " .. reason
    cases[#cases + 1] = {
      name = "derived_ready_false_" .. reason .. " (" .. script .. ")",
      script = script,
      want = { status = "Degraded", message = message },
      obj = {
        metadata = { name = "t", generation = 1 },
        status = {
          observedGeneration = 1,
          conditions = { { type = "Ready", status = "False", reason = reason, message = message } },
        },
      },
    }
  end
end

local failures = 0
for _, case in ipairs(cases) do
  local hs, err = run_check(case.script, case.obj)
  local problem
  if not hs then
    problem = err
  elseif not VALID[hs.status] then
    problem = "invalid status " .. tostring(hs.status)
  elseif hs.status ~= case.want.status or hs.message ~= case.want.message then
    problem = string.format("got %s %q, want %s %q", tostring(hs.status), tostring(hs.message),
      case.want.status, case.want.message)
  end
  if problem then
    failures = failures + 1
    print(string.format("FAIL %-55s %s", case.name, problem))
  else
    print(string.format("ok   %-55s %-11s %s", case.name, hs.status, hs.message))
  end
end

print(string.format("\n%d cases, %d failed", #cases, failures))
if failures > 0 then
  os.exit(1)
end
