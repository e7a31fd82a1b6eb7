-- Unit specs for scripts/lib/mail.lua: what a mail job carries. Both bodies
-- hold the link, the HTML one with the user's name escaped; names and
-- subjects lose their line breaks before they reach a header (the runner
-- would refuse them). tk.runtime and lib.jobs are stand-ins: the payloads
-- are captured instead of inserted.
-- luacheck: std lua54+busted

local queued = {}

package.preload["tk.runtime"] = function()
  return { config = function() return { app_base_url = "https://app.example" } end }
end
package.loaded["lib.jobs"] = {
  enqueue = function(kind, payload)
    queued[#queued + 1] = { kind = kind, payload = payload }
    return #queued
  end,
}

local mail = require("lib.mail")

describe("lib.mail", function()
  before_each(function()
    queued = {}
  end)

  it("queues a verification mail with the link in the text and the HTML part", function()
    mail.send("verify_email", { email = "ann@example.com", name = "Ann" }, "tok123")
    assert.are.equal(1, #queued)
    local p = queued[1].payload
    assert.are.equal("email", queued[1].kind)
    assert.are.equal("ann@example.com", p.to)
    assert.are.equal("Ann", p.toName)
    assert.are.equal("verify_email", p.template)
    assert.are.equal("Verify your email address", p.subject)
    local link = "https://app.example/app/#/verify-email?token=tok123"
    assert.are.equal(link, p.link)
    assert.is_truthy(p.text:find(link, 1, true))
    assert.is_truthy(p.html:find('<a href="' .. link .. '">', 1, true))
    assert.is_truthy(p.html:find("^<!DOCTYPE html>"))
  end)

  it("escapes the user's name in HTML and keeps line breaks out of headers", function()
    mail.send("reset_password", { email = "b@example.com", name = "<b>Bob</b>\r\nBcc: v@example.com" }, "t")
    local p = queued[1].payload
    assert.are.equal("<b>Bob</b>  Bcc: v@example.com", p.toName)
    assert.is_falsy(p.toName:find("[\r\n]"))
    assert.is_falsy(p.html:find("<b>Bob", 1, true))
    assert.is_truthy(p.html:find("&lt;b&gt;Bob&lt;/b&gt;", 1, true))
    assert.is_truthy(p.text:find("/reset-password?token=t", 1, true))
  end)

  it("queues notification mails with both parts", function()
    mail.notice({ email = "c@example.com", name = "Cy" }, "task_assigned", "You were assigned a task",
      "Fix <the> bug", "https://app.example/api/v1/tasks/42")
    local p = queued[1].payload
    assert.are.equal("task_assigned", p.template)
    assert.are.equal("You were assigned a task", p.subject)
    assert.is_truthy(p.text:find("Fix <the> bug", 1, true))
    assert.is_truthy(p.html:find("Fix &lt;the&gt; bug", 1, true))
    assert.is_truthy(p.html:find('href="https://app.example/api/v1/tasks/42"', 1, true))
  end)

  it("escapes every HTML special character", function()
    assert.are.equal("&amp;&lt;&gt;&quot;&#39;x", mail.html_escape("&<>\"'x"))
    assert.are.equal("a b", mail.header_text("\t a\nb \r"))
  end)
end)
