-- The OpenAPI 3.1 document, generated at load time from the route table and
-- the same schemas that validate requests, so it cannot drift from what the
-- server enforces. Routes add prose with opts.summary/description and, where
-- they know it, response schemas with opts.responses = {[status] = {description,
-- schema}}.
local schema = require "lib.schema"
local json = require "lib.json"

local M = {}

local arr = json.array

local STATUS_TEXT = {
  [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [400] = "Bad request: invalid JSON (`invalid_json`) or query parameter (`invalid_parameter`)",
  [401] = "Missing, malformed, expired or revoked access token (`unauthorized`)",
  [403] = "The caller's role does not allow this (`forbidden`)",
  [404] = "No such resource, or a private one the caller may not see (`not_found`)",
  [409] = "Conflict with the current state (`conflict` and specific codes)",
  [412] = "If-Match does not match the current version (`precondition_failed`)",
  [413] = "Body over the limit (`payload_too_large`)",
  [415] = "Body is not application/json (`unsupported_media_type`)",
  [422] = "Fields missing, of the wrong type, out of range or unknown (`validation_failed`)",
  [429] = "Over the rate limit (`rate_limited`); see Retry-After and RateLimit-* headers",
  [500] = "A bug; the message never leaks internals (`internal`)",
  [503] = "A dependency (the database) is down (`unavailable`)",
}

local ERROR_SCHEMA = {
  type = "object",
  required = arr({ "error" }),
  properties = {
    error = {
      type = "object",
      required = arr({ "code", "message" }),
      properties = {
        code = { type = "string", description = "machine-readable error code (API.md §1)" },
        message = { type = "string", description = "human-readable text" },
        details = {
          type = "array",
          items = {
            type = "object",
            required = arr({ "field", "message" }),
            properties = { field = { type = "string" }, message = { type = "string" } },
          },
        },
      },
    },
  },
}

-- "/api/v1/tasks/:id" -> "/api/v1/tasks/{id}", plus the parameter names.
local function openapi_path(path)
  local names = {}
  local p = path:gsub(":([%w_]+)", function(n)
    names[#names + 1] = n
    return "{" .. n .. "}"
  end)
  return p, names
end

local function operation_id(method, path)
  local parts = { method:lower() }
  for seg in path:gmatch("[^/]+") do
    if seg ~= "api" and seg ~= "v1" then
      local name = seg:gsub("^:", "by-")
      for word in name:gmatch("[%w]+") do
        parts[#parts + 1] = word:sub(1, 1):upper() .. word:sub(2)
      end
    end
  end
  return table.concat(parts)
end

local function tag_of(path)
  local seg = path:match("^/api/v1/([^/]+)") or path:match("^/([^/]+)") or "root"
  return seg == "openapi.json" and "meta" or seg
end

local function error_responses(route, responses, used)
  local codes = { 500 }
  if route.auth == "required" or route.auth == "optional" then
    codes[#codes + 1] = 401
  end
  if route.body then
    for _, c in ipairs({ 400, 413, 415, 422 }) do
      codes[#codes + 1] = c
    end
  end
  if route.query then
    codes[#codes + 1] = 400
  end
  if route.path:find(":") then
    codes[#codes + 1] = 404
  end
  if route.rate and (route.rate.general or route.rate.auth) then
    codes[#codes + 1] = 429
  end
  for _, c in ipairs(route.errors or {}) do -- opts.errors: further statuses the route answers
    codes[#codes + 1] = c
  end
  codes[#codes + 1] = 503
  for _, c in ipairs(codes) do
    responses[tostring(c)] = { ["$ref"] = "#/components/responses/E" .. c }
    used[c] = true
  end
end

local function operation(route, used)
  local path, names = openapi_path(route.path)
  local op = {
    operationId = operation_id(route.method, route.path),
    summary = route.summary or (route.method .. " " .. path),
    tags = arr({ tag_of(route.path) }),
    responses = {},
  }
  if route.description then
    op.description = route.description
  end
  local params = {}
  for _, n in ipairs(names) do
    params[#params + 1] = { name = n, ["in"] = "path", required = true, schema = { type = "string" } }
  end
  if route.query and route.query.properties then
    local required = {}
    for _, r in ipairs(route.query.required or {}) do
      required[r] = true
    end
    local keys = {}
    for k in pairs(route.query.properties) do
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for _, k in ipairs(keys) do
      params[#params + 1] = {
        name = k, ["in"] = "query", required = required[k] or false,
        schema = schema.to_openapi(route.query.properties[k]),
      }
    end
  end
  if route.method == "POST" and route.auth ~= "none" then
    params[#params + 1] = {
      name = "Idempotency-Key", ["in"] = "header", required = false,
      description = "Retries with the same key, user and body within 24 h replay the first answer "
        .. "(header Idempotent-Replayed: true); the same key with another body answers 422.",
      schema = { type = "string", minLength = 1, maxLength = 255 },
    }
  end
  if #params > 0 then
    op.parameters = arr(params)
  end
  if route.body then
    op.requestBody = {
      required = false,
      content = { ["application/json"] = { schema = schema.to_openapi(route.body) } },
    }
  end
  local status = route.status or 200
  local custom = route.responses or {}
  local main = custom[status] or {}
  local ok = { description = main.description or STATUS_TEXT[status] or "OK" }
  if status ~= 204 and main.schema then
    ok.content = { ["application/json"] = { schema = main.schema } }
  elseif status ~= 204 and status ~= 202 then
    ok.content = { ["application/json"] = { schema = { type = "object" } } }
  end
  op.responses[tostring(status)] = ok
  error_responses(route, op.responses, used)
  if route.auth == "required" then
    op.security = arr({ { bearerAuth = arr({}) } })
  elseif route.auth == "optional" then
    op.security = arr({ { bearerAuth = arr({}) }, {} })
  else
    op.security = arr({})
  end
  return path, op
end

--- Builds the document (a Lua table ready for json.encode) from the routes.
function M.build(routes, info)
  local paths = {}
  local used_tags, used_codes = {}, {}
  for _, r in ipairs(routes) do
    local path, op = operation(r, used_codes)
    paths[path] = paths[path] or {}
    paths[path][r.method:lower()] = op
    used_tags[op.tags[1]] = true
  end
  local tags = {}
  for t in pairs(used_tags) do
    tags[#tags + 1] = { name = t, description = "Operations under /" .. t }
  end
  table.sort(tags, function(a, b) return a.name < b.name end)
  local responses = {}
  for code, text in pairs(STATUS_TEXT) do
    if code >= 400 and used_codes[code] then
      responses["E" .. code] = {
        description = text,
        content = { ["application/json"] = { schema = { ["$ref"] = "#/components/schemas/Error" } } },
      }
    end
  end
  return {
    openapi = "3.1.0",
    info = {
      title = info.title or "Task API",
      version = info.version or "1",
      description = info.description,
      license = { name = "Proprietary", identifier = "LicenseRef-Proprietary" },
    },
    servers = arr({ { url = "/", description = "the server that serves this document" } }),
    tags = arr(tags),
    paths = paths,
    components = {
      securitySchemes = {
        bearerAuth = { type = "http", scheme = "bearer", bearerFormat = "JWT" },
      },
      schemas = { Error = ERROR_SCHEMA },
      responses = responses,
    },
  }
end

return M
