/* Outgoing mail: builds one RFC 5322 message (plain text, or MIME
 * multipart/alternative with a text and an HTML part) and delivers it over
 * SMTP with libcurl, or writes it as one .eml file into a mailbox directory.
 * Knows nothing of jobs, templates or retries: the job runner decides what to
 * send and what a failure means. */
#ifndef TK_JOBS_MAIL_H
#define TK_JOBS_MAIL_H

#include <stddef.h>
#include <time.h>

#include "common.h"
#include "config.h"

/* One message. Every string is borrowed for the duration of the call. */
typedef struct {
    const char *from;    /* a mailbox: "addr@host" or "Display Name <addr@host>" */
    const char *to;      /* an address: "addr@host" */
    const char *to_name; /* the recipient's display name; NULL or "" for none */
    const char *subject; /* UTF-8, one line */
    const char *text;    /* the text/plain body (UTF-8) */
    const char *html;    /* the text/html body; NULL or "" sends text only */
} tk_mail_msg;

/* Checks a mailbox ("addr" or "Name <addr>", as MAIL_FROM holds): 0 when it
 * is usable, TK_EINVAL when not (no address, a line break, ...). */
int tk_mail_mailbox_check(const char *mailbox) TK_WUR;

/* Builds the message with CRLF line ends: Date (from `now`), From, To,
 * Subject (RFC 2047 encoded words when not plain ASCII), Message-ID,
 * MIME-Version, Auto-Submitted and the body parts (7bit when they can be,
 * else quoted-printable). Header values holding CR, LF or another control
 * character are refused, never stripped: TK_EINVAL with the field named in
 * err. On success *out is a malloc'd NUL-terminated string of *len bytes the
 * caller frees with free(); on failure *out is untouched. */
int tk_mail_build(const tk_mail_msg *m, time_t now, char **out, size_t *len, char *err,
                  size_t errlen) TK_WUR;

/* The envelope address of a checked mailbox (the part in <...>, or all of
 * it) into out. Returns 0, or TK_EINVAL when it does not fit or is bad. */
int tk_mail_address(const char *mailbox, char *out, size_t outlen) TK_WUR;

/* Sends a built message to `to` over cfg's SMTP_URL (smtp:// with STARTTLS
 * per SMTP_STARTTLS, or smtps://; credentials from the URL; SMTP_CA_FILE
 * for the server's certificate), envelope sender taken from `from`.
 * Returns 0 once the server accepted it, else TK_EIO (or TK_ETIMEDOUT)
 * with the reason in err; *smtp_code gets the server's last reply code (0
 * when none). The URL, and so its password, never appears in err. */
int tk_mail_send_smtp(const tk_config *cfg, const char *from, const char *to, const char *msg,
                      size_t len, long *smtp_code, char *err, size_t errlen) TK_WUR;

/* Writes a built message as a new file <dir>/<UTC time>-<random>.eml (mode
 * 0600; dir created with mode 0700 when missing), through a temporary name
 * and a rename so that a reader never sees half a mail. The file's path
 * goes into path. Returns 0 or TK_EIO with the reason in err. */
int tk_mail_write_dir(const char *dir, const char *msg, size_t len, char *path, size_t pathlen,
                      char *err, size_t errlen) TK_WUR;

/* "smtp://host:port" of an SMTP URL without user, password or path, for
 * log lines. */
void tk_mail_url_redact(const char *url, char *out, size_t outlen);

#endif
