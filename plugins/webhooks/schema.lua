-- Schemas of the webhooks plugin, pure data: its settings (PLUGINS_CONFIG
-- "webhooks": {...}) and the bodies and queries of its routes.
local cursor = require "lib.cursor"
local plugins = require "lib.plugins"

local M = {}

local EVENT = { type = "string", enum = plugins.EVENTS }

M.settings = {
  type = "object",
  properties = {
    max_attempts = { type = "integer", minimum = 1, maximum = 50, default = 8,
      description = "delivery attempts per event before it is given up" },
    disable_after = { type = "integer", minimum = 0, maximum = 1000, default = 5,
      description = "consecutive failed deliveries that disable a webhook (0: never)" },
    allow_private_urls = { type = "boolean", default = false,
      description = "allow URLs on loopback and private networks (development, tests)" },
    max_per_project = { type = "integer", minimum = 1, maximum = 1000, default = 20 },
  },
}

local url = { type = "string", format = "url", maxLength = 2048,
  description = "http or https URL that receives the POSTs" }
local secret = { type = "string", minLength = 16, maxLength = 256, pattern = "^[\33-\126]+$",
  description = "HMAC-SHA256 key of X-Taskapi-Signature; generated when absent, shown once" }
local events = { type = "array", nullable = true, minItems = 1, maxItems = #plugins.EVENTS,
  uniqueItems = true, items = EVENT,
  description = "domain events to deliver; null or absent: every event" }
local active = { type = "boolean",
  description = "false pauses deliveries; true re-enables a disabled webhook and resets its "
    .. "failure count" }

M.create = {
  type = "object",
  required = { "url" },
  properties = { url = url, secret = secret, events = events, active = active },
}

M.update = {
  type = "object",
  properties = { url = url, secret = secret, events = events, active = active },
}

M.list = { type = "object", properties = { limit = cursor.LIMIT, cursor = cursor.CURSOR } }

return M
