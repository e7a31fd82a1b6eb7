-- The database for handlers: tk.db with failures turned into raised errors,
-- so a handler reads straight through. A lost database is a 503; a failed
-- statement is a bug (500, logged with its message, never sent). Use
-- db.try where a failure is expected (unique violations and the like).
local tkdb = require "tk.db"
local errors = require "lib.errors"

local error, select, tostring = error, select, tostring

local M = {}

local COMMITTED = {} -- first result of a transaction body that ran to the end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- tk.db answers rows, affected on success and nil, message, sqlstate on failure.
local function check(rows, n_or_msg, state)
  if rows then
    return rows, n_or_msg
  end
  if state and state:sub(1, 2) == "08" then
    errors.unavailable("database unavailable")
  end
  error(("database error %s: %s"):format(tostring(state), tostring(n_or_msg)), 3)
end

--- rows, affected; raises on failure.
function M.query(sql, ...)
  return check(tkdb.query(sql, ...))
end

--- The first row or nil; raises on failure.
function M.one(sql, ...)
  local rows = check(tkdb.query(sql, ...))
  return rows[1]
end

--- rows, affected | nil, message, sqlstate, constraint. Still raises 503
--- when the database is unreachable.
function M.try(sql, ...)
  local rows, n, state, constraint = tkdb.query(sql, ...)
  if not rows and state and state:sub(1, 2) == "08" then
    errors.unavailable("database unavailable")
  end
  return rows, n, state, constraint
end

--- Runs fn(...) in a transaction and returns its results. An error raised
--- inside rolls back and propagates; a failed commit raises 503/500.
function M.tx(fn, ...)
  local r = pack(tkdb.tx(function(...)
    return COMMITTED, fn(...)
  end, ...))
  if r[1] ~= COMMITTED then
    check(nil, r[2], r[3])
  end
  return table.unpack(r, 2, r.n)
end

--- A compiled projection for query_json / one_json: a list of
--- { column, field, type [, nullable = true] } in the object's key order;
--- types string, integer, boolean, timestamp, strings (text[]), json.
--- `row` (optional): the columns the caller reads of the rows it gets back
--- (a list of column names; any column of the result): those rows then hold
--- only these, which spares converting the others to Lua.
--- Compiled by tk.db on first use, so a module declaring one loads anywhere.
function M.projection(fields, row)
  return { fields = fields, row = row }
end

local function compiled(projection)
  local c = projection.compiled
  if c == nil then
    c = tkdb.projection(projection.fields, projection.row)
    projection.compiled = c
  end
  return c
end

--- fragment, nrows, last, first: the first `limit` rows (all for nil) as a
--- JSON array written by C in the projection's order (a fragment
--- json.encode splices in), the count of rows the statement returned, and
--- the last row written and the first row as db.query gives them (nil for
--- none; the projection's row columns only when it names them). Raises on
--- failure.
function M.query_json(sql, projection, limit, ...)
  local fragment, n, last, first = tkdb.query_json(sql, compiled(projection), limit, ...)
  if fragment == nil then
    check(nil, n, last)
  end
  return fragment, n, last, first
end

--- fragment, row: the first row as a JSON object (projection order) and as
--- db.query gives it (the projection's row columns only when it names
--- them); nil when there is none. Raises on failure.
function M.one_json(sql, projection, ...)
  local fragment, row, state = tkdb.one_json(sql, compiled(projection), ...)
  if fragment == false then
    return nil
  end
  if fragment == nil then
    check(nil, row, state)
  end
  return fragment, row
end

M.after_commit = tkdb.after_commit
M.in_tx = tkdb.in_tx
M.query_count = tkdb.query_count

M.UNIQUE_VIOLATION = "23505"
M.FOREIGN_KEY_VIOLATION = "23503"

return M
