-- No route builds SQL from anything but constants: the first argument of
-- every db.query / db.one / db.try / db.query_json / db.one_json / tkdb.query call in scripts/ and
-- plugins/ must be made only of string literals and UPPERCASE constants
-- (local or module fields like users.COLUMNS), joined with `..`. A name
-- followed by `and` is allowed as a condition choosing between constants
-- (`lock and " FOR UPDATE" or ""`), and so is a constant table indexed by
-- anything (`SQL_BY_SORT[sort]`). Values always travel as $n parameters.
local lfs = require "lfs"

local function lua_files(dir, out)
  out = out or {}
  if lfs.attributes(dir, "mode") ~= "directory" then
    return out
  end
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then
      local path = dir .. "/" .. name
      local mode = lfs.attributes(path, "mode")
      if mode == "directory" then
        lua_files(path, out)
      elseif name:match("%.lua$") then
        out[#out + 1] = path
      end
    end
  end
  return out
end

-- A small Lua lexer: yields {kind, text, line} for strings, names, numbers
-- and punctuation; skips comments and white space.
local function tokens(src)
  local toks, i, line, n = {}, 1, 1, #src
  local function add(kind, text)
    toks[#toks + 1] = { kind = kind, text = text, line = line }
  end
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      line = line + 1
      i = i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local eq = src:match("^%[(=*)%[", i + 2)
      local close
      if eq then
        close = src:find("]" .. eq .. "]", i, true)
      else
        close = src:find("\n", i, true) or n
        close = close - 1
      end
      local chunk = src:sub(i, close or n)
      local _, nl = chunk:gsub("\n", "")
      line = line + nl
      i = (close or n) + (eq and #eq + 2 or 1)
    elseif c == "[" and src:match("^%[=*%[", i) then
      local eq = src:match("^%[(=*)%[", i)
      local close = assert(src:find("]" .. eq .. "]", i, true), "unclosed long string")
      local text = src:sub(i, close + #eq + 1)
      add("string", text)
      local _, nl = text:gsub("\n", "")
      line = line + nl
      i = close + #eq + 2
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then
          j = j + 2
        elseif d == c then
          break
        else
          j = j + 1
        end
      end
      add("string", src:sub(i, j))
      i = j + 1
    elseif c:match("[%a_]") then
      local name = src:match("^[%w_]+", i)
      add("name", name)
      i = i + #name
    elseif c:match("%d") then
      local num = src:match("^[%w%.]+", i)
      add("number", num)
      i = i + #num
    else
      local three, two = src:sub(i, i + 2), src:sub(i, i + 1)
      if three == "..." then
        add("op", three)
        i = i + 3
      elseif two == ".." or two == "==" or two == "~=" or two == "<=" or two == ">=" or two == "::"
          or two == "//" or two == "<<" or two == ">>" then
        add("op", two)
        i = i + 2
      else
        add("op", c)
        i = i + 1
      end
    end
  end
  return toks
end

local CALLS = { query = true, one = true, try = true, query_json = true, one_json = true }
local RECEIVERS = { db = true, tkdb = true }
local KEYWORDS = { ["and"] = true, ["or"] = true, ["not"] = true }

-- Checks the first argument starting at toks[k] (just after "(").
-- Returns nil or a reason.
local function check_arg(toks, k)
  local depth = 0
  while toks[k] do
    local t = toks[k]
    if t.kind == "op" and t.text == "(" then
      depth = depth + 1
    elseif t.kind == "op" and t.text == ")" then
      if depth == 0 then
        return nil
      end
      depth = depth - 1
    elseif t.kind == "op" and t.text == "," and depth == 0 then
      return nil
    elseif t.kind == "string" or (t.kind == "op" and t.text == "..") then -- luacheck: ignore 542
    elseif t.kind == "name" and KEYWORDS[t.text] then -- luacheck: ignore 542
    elseif t.kind == "name" then
      -- A dotted chain a.b.C: the last part must be an UPPERCASE constant,
      -- unless the whole chain is a condition (followed by `and`).
      local last, j = t.text, k
      while toks[j + 1] and toks[j + 1].text == "." and toks[j + 2] and toks[j + 2].kind == "name" do
        j = j + 2
        last = toks[j].text
      end
      local after = toks[j + 1]
      local condition = after and after.kind == "name" and after.text == "and"
      if after and (after.text == "(" or after.kind == "string" or after.text == "{") then
        return ("line %d: SQL built from a call to '%s'"):format(t.line, last)
      end
      if not condition and not last:match("^[A-Z][A-Z0-9_]*$") then
        return ("line %d: SQL built from '%s', which is not a constant"):format(t.line, last)
      end
      -- CONSTANT[key]: the text still comes from the constant table.
      if after and after.text == "[" and last:match("^[A-Z][A-Z0-9_]*$") then
        local d = 0
        repeat
          j = j + 1
          if toks[j].text == "[" then
            d = d + 1
          elseif toks[j].text == "]" then
            d = d - 1
          end
        until d == 0 or not toks[j + 1]
      end
      k = j
    else
      return ("line %d: SQL built with '%s'"):format(t.line, t.text)
    end
    k = k + 1
  end
  return "unterminated call"
end

local function scan(path)
  local f = assert(io.open(path, "rb"))
  local src = f:read("a")
  f:close()
  local toks = tokens(src)
  local calls, problems = 0, {}
  for k = 1, #toks - 3 do
    local a, dot, b, paren = toks[k], toks[k + 1], toks[k + 2], toks[k + 3]
    if a.kind == "name" and RECEIVERS[a.text] and dot.text == "." and b.kind == "name"
        and CALLS[b.text] and paren.text == "(" then
      calls = calls + 1
      local why = check_arg(toks, k + 4)
      if why then
        problems[#problems + 1] = path .. ": " .. why
      end
    end
  end
  return calls, problems
end

-- lib/db.lua is the wrapper that forwards its caller's (checked) SQL.
local EXEMPT = { ["scripts/lib/db.lua"] = true }

describe("SQL in scripts", function()
  it("is built only from literals and constants in every db call", function()
    local files = lua_files("scripts", lua_files("plugins"))
    local total, problems = 0, {}
    for _, path in ipairs(files) do
      if not EXEMPT[path] then
        local calls, probs = scan(path)
        total = total + calls
        for _, p in ipairs(probs) do
          problems[#problems + 1] = p
        end
      end
    end
    assert.are.same({}, problems)
    assert.is_true(total >= 10, "expected to check at least 10 db calls, checked " .. total)
  end)

  it("catches SQL concatenated with a variable", function()
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "w"))
    f:write('local db = require "lib.db"\n',
      'local function h(req)\n  return db.query("SELECT * FROM t WHERE name = \'" .. req.query.q .. "\'")\nend\n',
      'db.one("SELECT " .. COLS .. " FROM x WHERE id = $1", id)\n',
      'db.try(string.format("SELECT %s", x))\n',
      'db.query(SQL_BY_SORT[req.query.sort] .. LIMIT, n)\n')
    f:close()
    local calls, problems = scan(tmp)
    os.remove(tmp)
    assert.are.equal(4, calls)
    assert.are.equal(2, #problems)
    assert.matches("line 3: SQL built from 'q'", problems[1])
    assert.matches("call to 'format'", problems[2])
  end)
end)
