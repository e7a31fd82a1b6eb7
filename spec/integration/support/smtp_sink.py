#!/usr/bin/python3
"""A real SMTP server for spec/integration/mail_spec.lua (Debian's
python3-aiosmtpd). Every message it accepts is parsed with Python's email
package and written as DIR/NNNN.json: envelope, decoded headers, the MIME
structure with each leaf part decoded, the parser's defects, and the raw
text. DIR/ready appears once it listens; it runs until SIGTERM.

  smtp_sink.py --port P --dir DIR [--starttls CERT KEY | --smtps CERT KEY]
               [--auth USER:PASSWORD]

--starttls offers STARTTLS and refuses mail without it; --smtps speaks TLS
from the first byte; --auth refuses mail without AUTH as USER:PASSWORD
(after TLS when TLS is on).
"""
import argparse
import email
import email.policy
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.dir = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts, defects = [], [str(d) for d in msg.defects]
        for part in msg.walk():
            defects += [str(d) for d in part.defects]
            if part.is_multipart():
                continue
            parts.append({
                "type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "encoding": part.get("Content-Transfer-Encoding"),
                "body": part.get_content(),
            })
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "date": str(msg["Date"]),
            "content_type": msg.get_content_type(),
            "parts": parts,
            "defects": defects,
            "raw": raw.decode("utf-8", "replace"),
        }
        with self.lock:
            self.count += 1
            name = "%04d.json" % self.count
        tmp = os.path.join(self.dir, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.dir, name))
        return "250 OK"


class Authenticator:
    def __init__(self, user, password):
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.user
              and auth_data.password == self.password)
        return AuthResult(success=ok, handled=False)


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--smtps", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth", metavar="USER:PASSWORD")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    smtp_kwargs = {}
    controller_kwargs = {}
    if args.starttls:
        smtp_kwargs.update(tls_context=tls_context(*args.starttls), require_starttls=True)
    if args.smtps:
        controller_kwargs.update(ssl_context=tls_context(*args.smtps), server_hostname="127.0.0.1")
    if args.auth:
        user, _, password = args.auth.partition(":")
        smtp_kwargs.update(authenticator=Authenticator(user, password), auth_required=True,
                           auth_require_tls=bool(args.starttls))
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port,
                            **controller_kwargs, **smtp_kwargs)
    controller.start()
    with open(os.path.join(args.dir, "ready"), "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
