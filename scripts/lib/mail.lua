-- Outgoing mail, through the jobs table. Each mail has a subject, a
-- plain-text body and an HTML body; the C job runner (runtime/jobs/mail.c)
-- builds the MIME message and delivers it (SMTP_URL, or one .eml file in
-- MAIL_DIR). Templates live here so operators can change wording without
-- touching C. Values from users are escaped for HTML here and kept out of
-- header fields' line structure (the runner refuses a header with a line
-- break rather than send it).
local jobs = require "lib.jobs"
local runtime = require "tk.runtime"

local M = {}

local HTML_ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- `s` with &, <, >, " and ' escaped for HTML text and attribute values.
function M.html_escape(s)
  return (tostring(s):gsub("[&<>\"']", HTML_ESCAPES))
end

--- `s` fit for a header field: control characters (line breaks included)
--- become blanks, blanks at the ends trimmed.
function M.header_text(s)
  return (tostring(s or ""):gsub("%c", " "):gsub("^%s+", ""):gsub("%s+$", ""))
end

local function html_page(title, paragraphs)
  local out = { '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>', M.html_escape(title),
    '</title></head>\n<body style="font-family: sans-serif; line-height: 1.5">\n' }
  for _, p in ipairs(paragraphs) do
    out[#out + 1] = "<p>" .. p .. "</p>\n"
  end
  out[#out + 1] = "</body></html>\n"
  return table.concat(out)
end

local function html_link(link, label)
  return ('<a href="%s">%s</a>'):format(M.html_escape(link), M.html_escape(label or link))
end

-- name and link are raw; text() gets them as they are, html() escaped.
local templates = {
  verify_email = {
    subject = "Verify your email address",
    path = "/app/#/verify-email?token=", -- the web client's landing page
    text = function(name, link)
      return ("Welcome to taskapi, %s.\n\nConfirm your email address by opening this link:\n%s\n"):format(name, link)
    end,
    html = function(name, link)
      return html_page("Verify your email address", {
        ("Welcome to taskapi, %s."):format(M.html_escape(name)),
        "Confirm your email address by opening this link:<br>\n" .. html_link(link),
      })
    end,
  },
  reset_password = {
    subject = "Reset your password",
    path = "/app/#/reset-password?token=",
    text = function(name, link)
      return ("Hello %s,\n\nSomeone asked to reset your password. If it was you, open this link "
        .. "within an hour:\n%s\n\nIf not, ignore this mail.\n"):format(name, link)
    end,
    html = function(name, link)
      return html_page("Reset your password", {
        ("Hello %s,"):format(M.html_escape(name)),
        "Someone asked to reset your password. If it was you, open this link within an hour:<br>\n"
          .. html_link(link),
        "If not, ignore this mail.",
      })
    end,
  },
}

local function enqueue(user, template, subject, text, html, link)
  return jobs.enqueue("email", {
    to = user.email,
    toName = M.header_text(user.name),
    template = template,
    subject = M.header_text(subject),
    text = text,
    html = html,
    link = link,
  })
end

--- Queues the mail `template` to `user` ({email, name}) carrying `token`.
function M.send(template, user, token)
  local t = assert(templates[template], "unknown mail template")
  local link = runtime.config().app_base_url .. t.path .. token
  local name = M.header_text(user.name)
  return enqueue(user, template, t.subject, t.text(name, link), t.html(name, link), link)
end

--- Queues a notification mail of `kind` (a notification type) to `user`
--- ({email, name}): "<subject>: <detail>" and a link to the task.
function M.notice(user, kind, subject, detail, link)
  local name = M.header_text(user.name)
  local text = ("Hello %s,\n\n%s: %s\n%s\n"):format(name, subject, detail, link)
  local html = html_page(subject, {
    ("Hello %s,"):format(M.html_escape(name)),
    ("%s: <strong>%s</strong>"):format(M.html_escape(subject), M.html_escape(detail)),
    html_link(link, "Open the task"),
  })
  return enqueue(user, kind, subject, text, html, link)
end

return M
