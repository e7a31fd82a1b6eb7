-- Outgoing mail, through the jobs table. Templates live here so operators
-- can change wording without touching C.
local jobs = require "lib.jobs"
local runtime = require "tk.runtime"

local M = {}

local templates = {
  verify_email = {
    subject = "Verify your email address",
    text = "Welcome to taskapi, %s.\n\nConfirm your email address by opening this link:\n%s\n",
    path = "/app/#/verify-email?token=", -- the web client's landing page
  },
  reset_password = {
    subject = "Reset your password",
    text = "Hello %s,\n\nSomeone asked to reset your password. If it was you, open this link "
      .. "within an hour:\n%s\n\nIf not, ignore this mail.\n",
    path = "/app/#/reset-password?token=",
  },
}

--- Queues the mail `template` to `user` ({email, name}) carrying `token`.
function M.send(template, user, token)
  local t = assert(templates[template], "unknown mail template")
  local link = runtime.config().app_base_url .. t.path .. token
  return jobs.enqueue("email", {
    to = user.email,
    template = template,
    subject = t.subject,
    text = t.text:format(user.name or "", link),
    link = link,
  })
end

return M
