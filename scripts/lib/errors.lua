-- HTTP errors in the contract's shape (API.md §1). Handlers raise them with
-- errors.raise(...) or the shorthands; the dispatcher turns them into
-- {"error": {"code", "message", "details"}} with the given status. Any other
-- error is a bug: logged with file:line and answered 500 "internal".
local json = require "lib.json"

local setmetatable, getmetatable, error = setmetatable, getmetatable, error

local M = {}

local mt = { __name = "http.error" }
mt.__tostring = function(e)
  return ("%d %s: %s"):format(e.status, e.code, e.message)
end

--- An error answer; headers (optional) go with it (e.g. the ETag of a 412).
function M.new(status, code, message, details, headers)
  return setmetatable({ status = status, code = code, message = message, details = details,
    headers = headers }, mt)
end

function M.is(e)
  return getmetatable(e) == mt
end

--- Raises an HTTP error; never returns.
function M.raise(status, code, message, details, headers)
  error(M.new(status, code, message, details, headers), 0)
end

function M.not_found(message)
  M.raise(404, "not_found", message or "no such resource")
end

function M.unauthorized(message)
  M.raise(401, "unauthorized", message or "authentication required")
end

function M.forbidden(message)
  M.raise(403, "forbidden", message or "not allowed")
end

function M.conflict(message, code)
  M.raise(409, code or "conflict", message or "conflict")
end

--- 422 with one detail per field: details = {{field=, message=}, ...}.
function M.validation(details, message)
  M.raise(422, "validation_failed", message or "request validation failed", details)
end

--- 422 for one field.
function M.field(field, message)
  M.validation({ { field = field, message = message } })
end

function M.unavailable(message)
  M.raise(503, "unavailable", message or "a dependency is unavailable")
end

local ERROR_SHAPE = json.shape({ "code", "message", "details" })

--- The body of an error response.
function M.body(e)
  local err = setmetatable({ code = e.code, message = e.message }, ERROR_SHAPE)
  if e.details ~= nil then
    err.details = e.details -- {field, message} objects: sorted order is the contract's
  end
  return { error = err }
end

return M
