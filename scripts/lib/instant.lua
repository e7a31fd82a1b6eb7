-- Instants for the database: turns an RFC 3339 date-time (any offset RFC
-- 3339 allows, up to +-23:59) or a plain date (00:00 UTC), already checked
-- by the schema's `date`/`date-time` format, into the one form PostgreSQL
-- and the API agree on: "YYYY-MM-DDTHH:MM:SS.mmmZ" in UTC, milliseconds
-- rounded half up. PostgreSQL refuses offsets beyond +-15:59, and the API's
-- four-digit years cannot express instants before 0001-01-01T00:00:00Z or
-- after 9999-12-31T23:59:59.999Z, so those are refused here (nil, message)
-- instead of failing in SQL or coming back unreadable.
local smatch, sformat, tonumber = string.match, string.format, tonumber

local M = {}

M.RANGE_MESSAGE = "must fall between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"

local DAY_MS = 86400000

-- Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years).
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- The inverse: year, month, day of a day count since 1970-01-01.
local function civil_from_days(z)
  z = z + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then
    y = y + 1
  end
  return y, m, d
end

local MIN_MS = days_from_civil(1, 1, 1) * DAY_MS
local MAX_MS = days_from_civil(10000, 1, 1) * DAY_MS - 1

-- Milliseconds from the fraction's digits (without the dot), half up.
local function fraction_ms(digits)
  if digits == "" then
    return 0
  end
  local ms = tonumber((digits .. "00"):sub(1, 3))
  if #digits > 3 and digits:byte(4) >= 53 then -- "5"
    ms = ms + 1
  end
  return ms
end

--- utc(s) -> "YYYY-MM-DDTHH:MM:SS.mmmZ" | nil, message
function M.utc(s)
  local y, mo, d = smatch(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  local h, mi, sec, frac, zone = "0", "0", "0", "", "Z"
  if not y then
    y, mo, d, h, mi, sec, frac, zone =
      smatch(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d):(%d%d)%.?(%d*)(.*)$")
    if not y then
      return nil, "must be a valid date-time"
    end
  end
  local offset_min = 0
  if zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = smatch(zone, "^([+-])(%d%d):(%d%d)$")
    if not sign then
      return nil, "must be a valid date-time"
    end
    offset_min = tonumber(oh) * 60 + tonumber(om)
    if sign == "-" then
      offset_min = -offset_min
    end
  end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * DAY_MS
    + ((tonumber(h) * 60 + tonumber(mi)) * 60 + tonumber(sec)) * 1000
    + fraction_ms(frac) - offset_min * 60000
  if t < MIN_MS or t > MAX_MS then
    return nil, M.RANGE_MESSAGE
  end
  local days, rest = t // DAY_MS, t % DAY_MS
  local cy, cm, cd = civil_from_days(days)
  return sformat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", cy, cm, cd, rest // 3600000,
    rest // 60000 % 60, rest // 1000 % 60, rest % 1000)
end

return M
