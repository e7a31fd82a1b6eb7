-- Run by tests/c/lua/test_pattern.c: compares the sandbox's pattern
-- functions (the global P: find, match, gmatch, gsub from
-- runtime/lua/pattern.c) with the stock string library on every pattern x
-- subject below, results and errors alike. Returns the number of
-- comparisons; raises with every difference listed.
local P = P -- luacheck: ignore 113

local subjects = {
  "", "a", "aaa", "hello world", "  padded  ", "key=value; other = 2",
  "THE (quick) [brown] {fox}", "f(a(b)c)d(e)", "x = f(1, g(2, 3)) + h()",
  "2026-12-04T17:32:49Z", "tab\there\nnewline", "a.b.c", "%d%%", "aXbXc",
  "\0nul\0inside\0", "élan vital", "THE the ThE", "abcabcabc", "aaa bbb aaa",
  "[[nested]]", "trailing$", "^caret", "1,22,333,4444", "--", "a-b-c",
  "\200\255\1\127", "word1 word2\tword3\nword4", "  ", "]]]", "aab", "a?b*c",
}

local patterns = {
  "", "a", "b", ".", "..", "a*", "a+", "a-", "a?", "^a", "a$", "^$", "^", "$",
  "%a+", "%A+", "%d+", "%D", "%s+", "%S+", "%w+", "%W", "%p", "%P+", "%l+", "%u+",
  "%c", "%C+", "%x+", "%X", "%g+", "%G", "[abc]", "[^abc]+", "[a-c]+", "[%a_][%w_]*",
  "[%]]", "[]]", "[^]]+", "[a-]", "[-a]", "[%-]", "[a%-z]+", "[%d%.]+", "[^%s]+",
  "(%w+)", "(%w+)=(%w+)", "(%w+)%s*=%s*(%w+)", "()", "()a()", "(a)(b)?", "((a)(b))",
  "(a*(.)%w(%s*))", "%((%w+)%)", "%b()", "%b[]", "%b{}", "%bxy", "(%b())", "f%b()",
  "%f[%w]%w+", "%f[%W]", "%f[%a]", "%f[^%z]", "%f[%z]", "%f[%l]%a+", "THE%f[%A]",
  "(a)%1", "(%a)%1", "(.)(.)%2%1", "(%w+) %1", "()%1", "a.-b", "a.*b", ".-", ".*",
  "^(%s*)(.-)(%s*)$", "^%s*(.-)%s*$", "%.", "%%", "%%d", "%$", "%^", "[$^]", "a^",
  "x*$", "%z", "\0", "[\0]", "[%z]+", "[\128-\255]+", "[\1-\31]", "%?", "a?b%*c",
  "(h)(e)(l)(l)(o)", "[^%d,]", "%d+,?", "(%d)(%d?)", "-", "%-+", "[%w%-]+", "(%a+)%-",
  ".-(%d+)", "(.-)%s", "(%s*)$", "^(.)", "(.)$", "[a-z][a-z]?[a-z]?",
}

-- malformed patterns: both must fail, with the same message
local bad = {
  "%", "[a", "[^", "[]", "[%]", "(", "a)", "%b", "%ba", "%f", "%fa", "%1", "(a%2)",
  "(()", "%0", "[a-", "(%1)",
}

local function pack(...)
  return { n = select("#", ...), ... }
end

local function show(r)
  local out = {}
  for i = 1, r.n do
    local v = r[i]
    out[#out + 1] = type(v) == "string" and ("%q"):format(v) or tostring(v)
  end
  return "(" .. table.concat(out, ", ") .. ")"
end

-- the error text without any "file:line:" prefix, and without the function
-- name of an argument error (Lua finds it by searching the loaded modules,
-- where P is not)
local function clean(e)
  return (tostring(e):gsub("^[^:]*:%d+: ", ""):gsub("^(bad argument #%d+ to )'[^']*'", "%1'F'"))
end

local function call(f, ...)
  local r = pack(pcall(f, ...))
  if not r[1] then
    return { n = 2, "error", clean(r[2]) }
  end
  return pack(select(2, table.unpack(r, 1, r.n)))
end

local failures, count = {}, 0

local function same(what, a, b)
  count = count + 1
  local sa, sb = show(a), show(b)
  if sa ~= sb then
    failures[#failures + 1] = ("%s: ours %s, stock %s"):format(what, sa, sb)
  end
end

local function all_gmatch(g, s, p, init)
  local out = {}
  for a, b, c in g(s, p, init) do
    out[#out + 1] = show(pack(a, b, c))
    if #out > 200 then break end
  end
  return table.concat(out, " ")
end

local function compare(s, p)
  local what = ("%q ~ %q"):format(s, p)
  for _, init in ipairs({ 1, 2, -1, -3, 0, 100, -100 }) do
    same(what .. " find@" .. init, call(P.find, s, p, init), call(string.find, s, p, init))
    same(what .. " match@" .. init, call(P.match, s, p, init), call(string.match, s, p, init))
    same(what .. " gmatch@" .. init, call(all_gmatch, P.gmatch, s, p, init),
      call(all_gmatch, string.gmatch, s, p, init))
  end
  same(what .. " find plain", call(P.find, s, p, 1, true), call(string.find, s, p, 1, true))
  same(what .. " gmatch", call(all_gmatch, P.gmatch, s, p), call(all_gmatch, string.gmatch, s, p))
  local repls = {
    "<%0>", "[%1]", "%2%1", "%%", "x", "", "%", "%z", "%1%1", "%9",
    { a = "A", hello = "HI", ["1"] = "one", b = false }, { }, { a = 1, b = 2.5 }, { a = {} },
    function(...) return select("#", ...) .. ":" .. table.concat({ ... }, "|") end,
    function() return nil end, function() return false end, function(x) return x end,
    function() return {} end, 42,
  }
  for ri, r in ipairs(repls) do
    for _, max in ipairs(ri == 1 and { false, 0, 1, 2, -1 } or { false, 1 }) do
      local ours, stock
      if max then
        ours, stock = call(P.gsub, s, p, r, max), call(string.gsub, s, p, r, max)
      else
        ours, stock = call(P.gsub, s, p, r), call(string.gsub, s, p, r)
      end
      -- table/function results print as addresses; compare their text only
      same(what .. " gsub#" .. ri .. "/" .. tostring(max), ours, stock)
    end
  end
end

for _, s in ipairs(subjects) do
  for _, p in ipairs(patterns) do
    compare(s, p)
  end
  for _, p in ipairs(bad) do
    same(("%q ~ bad %q find"):format(s, p), call(P.find, s, p), call(string.find, s, p))
    same(("%q ~ bad %q gsub"):format(s, p), call(P.gsub, s, p, "x"), call(string.gsub, s, p, "x"))
    same(("%q ~ bad %q gmatch"):format(s, p), call(all_gmatch, P.gmatch, s, p),
      call(all_gmatch, string.gmatch, s, p))
  end
end

-- argument errors and coercions
same("find number subject", call(P.find, 12345, "%d%d"), call(string.find, 12345, "%d%d"))
same("gsub number repl", call(P.gsub, "abc", "b", 7), call(string.gsub, "abc", "b", 7))
same("gsub bad repl", call(P.gsub, "abc", "b", true), call(string.gsub, "abc", "b", true))
same("find nil", call(P.find, nil, "a"), call(string.find, nil, "a"))
same("too many captures", call(P.find, ("a"):rep(40), ("(a)"):rep(33)),
  call(string.find, ("a"):rep(40), ("(a)"):rep(33)))
same("32 captures", call(P.match, ("a"):rep(40), ("(a)"):rep(32)),
  call(string.match, ("a"):rep(40), ("(a)"):rep(32)))
same("long subject", call(P.gsub, ("ab"):rep(5000), "(a)(b)", "%2%1"),
  call(string.gsub, ("ab"):rep(5000), "(a)(b)", "%2%1"))
same("gsub position capture", call(P.gsub, "abc", "()", "%1"), call(string.gsub, "abc", "()", "%1"))

-- the gmatch iterator keeps its own state (two at once)
do
  local g1, g2 = P.gmatch("a1b2c3", "%a(%d)"), P.gmatch("x9y8", "%a(%d)")
  local got = table.concat({ g1(), g2(), g1(), g2(), g1(), tostring((g2())), tostring((g1())) }, ",")
  same("interleaved gmatch", pack(got), pack("1,9,2,8,3,nil,nil"))
end

if #failures > 0 then
  error(("%d of %d comparisons differ:\n%s"):format(#failures, count,
    table.concat(failures, "\n", 1, math.min(#failures, 60))), 0)
end
return count
