-- luacheck configuration (bin/test runs `luacheck scripts spec`).
-- Lua 5.4 everywhere; no globals of our own, so an accidental global is an
-- error. Specs get busted's globals (describe, it, assert.are, ...).
std = "lua54"
max_line_length = 120
codes = true

exclude_files = {
  "spec/node/**",
  "**/node_modules/**",
}

files["spec/unit/**/*.lua"] = { std = "+busted" }
files["spec/integration/**/*.lua"] = { std = "+busted" }
files["spec/helpers/**/*.lua"] = { std = "+busted" }
files["spec/*.lua"] = { std = "+busted" }
