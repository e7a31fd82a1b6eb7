-- The request dispatcher the C runtime calls for every matched route:
-- parse the JSON body, validate body and query against the route's schemas,
-- run the handler, and encode its answer (or its error) in the contract's
-- shape. A handler returns status, body table [, headers table].
local json = require "lib.json"
local schema = require "lib.schema"
local errors = require "lib.errors"
local idempotency = require "lib.idempotency"
local plugins = require "lib.plugins"
local log = require "tk.log"
local runtime = require "tk.runtime"

local xpcall, pcall, type, tostring, ipairs, error = xpcall, pcall, type, tostring, ipairs, error

local M = {}

local BODY_METHODS = { POST = true, PUT = true, PATCH = true, DELETE = true }
local EMPTY_OBJECT = { type = "object", properties = {} }

local function respond_error(e)
  return e.status, json.encode(errors.body(e)), e.headers
end

-- Message handler for xpcall: HTTP errors pass through; anything else is a
-- bug and gets a traceback for the log.
local function on_error(e)
  if errors.is(e) then
    return e
  end
  return runtime.traceback(tostring(e), 2)
end

-- The route's validators, compiled once per script generation (dispatch.new)
-- by schema.compile: { body = fn, query = fn or nil }.
local function parse_body(v, req)
  local raw = req.body_raw
  local body
  if raw == nil or not raw:find("%S") then
    body = {}
  else
    if not raw:find("^%s*{") then
      errors.raise(400, "invalid_json", "request body must be a JSON object")
    end
    local err
    body, err = json.decode(raw)
    if body == nil then
      errors.raise(400, "invalid_json", "request body is not valid JSON: " .. err)
    end
  end
  local cleaned, details = v.body(body)
  if not cleaned then
    errors.validation(details)
  end
  return cleaned
end

local function parse_query(v, req)
  if not v.query then
    return req.query
  end
  local cleaned, details = v.query(req.query)
  if not cleaned then
    errors.raise(400, "invalid_parameter", "invalid query parameter", details)
  end
  return cleaned
end

local function run(route, req, v)
  if BODY_METHODS[req.method] then
    req.body = parse_body(v, req)
  end
  req.query = parse_query(v, req)
  req.body_raw = nil
  plugins.before(req, route) -- may answer for the route by raising an HTTP error
  return route.handler(req)
end

local INTERNAL = json.encode({ error = { code = "internal", message = "internal server error" } })

-- Runs the route and encodes its answer: status, body text, headers.
local function answer(route, req, v)
  local ok, status, body, headers = xpcall(run, on_error, route, req, v)
  if not ok then
    if errors.is(status) then
      plugins.after(req, status.status, errors.body(status))
      return respond_error(status)
    end
    log.error("%s %s: %s", req.method, route.path, status)
    plugins.after(req, 500, json.decode(INTERNAL))
    return 500, INTERNAL
  end
  if type(status) ~= "number" then
    log.error("%s %s: handler returned no status (%s)", req.method, route.path, route.where)
    plugins.after(req, 500, json.decode(INTERNAL))
    return 500, INTERNAL
  end
  plugins.after(req, status, status ~= 204 and body or nil)
  if body == nil or status == 204 then
    return status, "", headers
  end
  local enc_ok, text = pcall(json.encode, body)
  if not enc_ok then
    log.error("%s %s: cannot encode the answer: %s", req.method, route.path, text)
    return 500, INTERNAL
  end
  return status, text, headers
end

-- POST with Idempotency-Key: replay a stored answer or record this one.
local function answer_idempotent(route, req, v, key)
  local raw = req.body_raw
  local ok, status, body, headers = xpcall(function()
    idempotency.check_key(key)
    return idempotency.begin(req, key, raw)
  end, on_error)
  if not ok then
    if errors.is(status) then
      return respond_error(status)
    end
    log.error("%s %s: idempotency: %s", req.method, route.path, status)
    return 500, INTERNAL
  end
  if status ~= nil then
    return status, body, headers
  end
  status, body, headers = answer(route, req, v)
  local stored, err = pcall(idempotency.finish, req, key, status, body, headers)
  if not stored then
    log.error("%s %s: cannot store the idempotent answer: %s", req.method, route.path, tostring(err))
  end
  return status, body, headers
end

--- Runs each `constant = true` route's handler once, through the same
--- answer() as a request (so the bytes are the ones the normal path would
--- send), and leaves the answer on the route for the C runtime:
--- constant_status (integer) and constant_body (string). Skipped for a
--- route with rate-limit buckets, and for every route when a plugin has
--- before/after hooks: those requests must reach Lua. A constant answer
--- that is not a 2xx without headers is a load error (it would hide a bug
--- behind a cache).
function M.cache_constants(routes, validators)
  local hooks = plugins.has_request_hooks()
  for i, r in ipairs(routes) do
    r.constant_status, r.constant_body = nil, nil
    if r.constant and not hooks and not (type(r.rate) == "table" and #r.rate > 0) then
      local req = { method = "GET", path = r.path, pattern = r.path, id = "constant", worker = 0,
        params = {}, query = {}, headers = {} }
      local status, text, headers = answer(r, req, validators[i])
      if type(status) ~= "number" or status < 200 or status > 299 or headers ~= nil then
        error(("%s: constant route %s %s must answer a 2xx without headers (got %s)"):format(
          r.where, r.method, r.path, tostring(status)), 0)
      end
      r.constant_status, r.constant_body = status, text
    end
  end
end

--- Builds the dispatch function over a list of routes, compiling every
--- route's schemas into validators here, once per script generation.
function M.new(routes)
  local validators = {}
  for i, r in ipairs(routes) do
    validators[i] = {
      body = schema.compile(r.body or EMPTY_OBJECT),
      query = r.query and schema.compile(r.query, { coerce = true }) or nil,
    }
  end
  M.cache_constants(routes, validators)
  return function(index, req)
    local route = routes[index]
    plugins.begin(req)
    local key = req.method == "POST" and req.user and req.headers["idempotency-key"]
    if key then
      return answer_idempotent(route, req, validators[index], key)
    end
    return answer(route, req, validators[index])
  end
end

--- Checks every route's schemas; raises one error listing every problem
--- ("file:line: body schema of POST /x: schema.properties.a: ...", joined
--- with "; "), in route order, then keyword and property name order.
function M.check(routes)
  local problems = {}
  for _, r in ipairs(routes) do
    for _, key in ipairs({ "body", "query" }) do
      if r[key] ~= nil then
        local ok, _, errs = schema.check(r[key])
        if not ok then
          for _, e in ipairs(errs) do
            problems[#problems + 1] = ("%s: %s schema of %s %s: %s"):format(r.where, key, r.method,
              r.path, e)
          end
        end
      end
    end
  end
  if #problems > 0 then
    error(table.concat(problems, "; "), 0)
  end
end

return M
