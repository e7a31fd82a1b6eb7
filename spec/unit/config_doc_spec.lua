-- The configuration table (runtime/config_vars.h) and README.md agree: every
-- variable the server reads is documented, and every variable README.md's
-- tables list is one the server reads (or one of the CLI's own).
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function table_names()
  local names, secrets = {}, {}
  for kind, args in read("runtime/config_vars.h"):gmatch("\n%s*(%u+)%(([^\n]*)") do
    local name = args:match('"([A-Z][A-Z0-9_]*)"')
    if name and (kind == "INT" or kind == "STR" or kind == "BOOL" or kind == "CUSTOM") then
      names[#names + 1] = name
      if kind == "STR" and args:match(",%s*1%)%s*\\?%s*$") then
        secrets[#secrets + 1] = name
      end
    end
  end
  return names, secrets
end

describe("configuration table", function()
  local readme = read("README.md")
  local names, secrets = table_names()

  it("has the variables", function()
    assert.is_true(#names >= 60, "only " .. #names .. " variables found in config_vars.h")
    assert.is_true(#secrets >= 5, "only " .. #secrets .. " secrets found in config_vars.h")
  end)

  it("is documented in README.md, every variable", function()
    local missing = {}
    for _, name in ipairs(names) do
      if not readme:find("`" .. name .. "`", 1, true) then
        missing[#missing + 1] = name
      end
    end
    assert.are.same({}, missing)
  end)

  it("lists in README.md's tables only variables the server reads", function()
    local known = {}
    for _, name in ipairs(names) do
      known[name] = true
    end
    -- read by the `taskapi status` command, not the server
    known.TASKAPI_TOKEN, known.TASKAPI_URL = true, true
    local unknown = {}
    for name in readme:gmatch("\n| `([A-Z][A-Z0-9_]+)` |") do
      if not known[name] and not known[name:gsub("_FILE$", "")] then
        unknown[#unknown + 1] = name
      end
    end
    assert.are.same({}, unknown)
  end)

  it("names the _FILE form of each secret in README.md", function()
    for _, name in ipairs(secrets) do
      assert.is_truthy(readme:find(name .. "_FILE", 1, true), name .. "_FILE is not in README.md")
    end
  end)
end)
