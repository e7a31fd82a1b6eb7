/* Outgoing mail: the message builder (RFC 5322 headers, RFC 2047 encoded
 * words, MIME multipart/alternative), SMTP delivery through libcurl and the
 * mailbox directory used when no SMTP server is configured. See mail.h. */
#include "jobs/mail.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"

#define SMTP_CONNECT_TIMEOUT_MS 10000L
#define SMTP_TIMEOUT_MS 60000L

/* ---- addresses ------------------------------------------------------------ */

/* An addr-spec as we accept it: local@domain in printable ASCII without
 * blanks or the characters that delimit addresses in a header. */
static int addr_ok(const char *a, size_t n)
{
    size_t at = 0;
    int ats = 0;
    if (n == 0 || n > 254)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= ' ' || c >= 0x7f || strchr("<>()[],;:\\\"", c) != NULL)
            return 0;
        if (c == '@') {
            ats++;
            at = i;
        }
    }
    return ats == 1 && at > 0 && at < n - 1;
}

/* 1 when s[0..n) holds a control character (CR and LF included). */
static int has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

typedef struct {
    const char *name; /* display name, quotes removed; NULL when none */
    size_t name_len;
    const char *addr;
    size_t addr_len;
} mailbox;

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* "addr" or "Name <addr>" or "\"Name\" <addr>". */
static int mailbox_parse(const char *s, mailbox *mb)
{
    memset(mb, 0, sizeof *mb);
    if (s == NULL || has_ctl(s, strlen(s)))
        return TK_EINVAL;
    const char *lt = strchr(s, '<');
    if (lt == NULL) {
        mb->addr = s;
        mb->addr_len = strlen(s);
        trim(&mb->addr, &mb->addr_len);
    } else {
        const char *gt = strchr(lt, '>');
        if (gt == NULL)
            return TK_EINVAL;
        for (const char *p = gt + 1; *p; p++)
            if (*p != ' ' && *p != '\t')
                return TK_EINVAL;
        mb->addr = lt + 1;
        mb->addr_len = (size_t)(gt - lt - 1);
        mb->name = s;
        mb->name_len = (size_t)(lt - s);
        trim(&mb->name, &mb->name_len);
        if (mb->name_len >= 2 && mb->name[0] == '"' && mb->name[mb->name_len - 1] == '"') {
            mb->name++;
            mb->name_len -= 2;
        }
        if (mb->name_len == 0)
            mb->name = NULL;
    }
    return addr_ok(mb->addr, mb->addr_len) ? TK_OK : TK_EINVAL;
}

int tk_mail_mailbox_check(const char *s)
{
    mailbox mb;
    return mailbox_parse(s, &mb);
}

int tk_mail_address(const char *s, char *out, size_t outlen)
{
    mailbox mb;
    if (mailbox_parse(s, &mb) != TK_OK || mb.addr_len >= outlen)
        return TK_EINVAL;
    memcpy(out, mb.addr, mb.addr_len);
    out[mb.addr_len] = '\0';
    return TK_OK;
}

/* ---- header values -------------------------------------------------------- */

/* Fits in a header as it is: printable ASCII, no "=?" that a reader would
 * take for the start of an encoded word, and short enough for one line. */
static int header_plain(const char *s, size_t n)
{
    if (n > 900)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || (c == '=' && i + 1 < n && s[i + 1] == '?'))
            return 0;
    }
    return 1;
}

/* RFC 2047 "B" encoded words of at most 39 bytes of text each (52 base64
 * characters, a 64-character word), never splitting a UTF-8 sequence,
 * folded onto continuation lines. */
#define WORD_BYTES 39

static void put_encoded_words(FILE *f, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = n - i < WORD_BYTES ? n - i : WORD_BYTES;
        while (i + k < n && k > 1 && ((unsigned char)s[i + k] & 0xc0) == 0x80)
            k--; /* the next byte continues a character: end this word before it */
        unsigned char b64[4 * ((WORD_BYTES + 2) / 3) + 1];
        EVP_EncodeBlock(b64, (const unsigned char *)s + i, (int)k);
        fprintf(f, "%s=?UTF-8?B?%s?=", i == 0 ? "" : "\r\n ", (const char *)b64);
        i += k;
    }
}

/* An unstructured value (Subject). */
static void put_unstructured(FILE *f, const char *s)
{
    size_t n = strlen(s);
    if (header_plain(s, n))
        fwrite(s, 1, n, f);
    else
        put_encoded_words(f, s, n);
}

/* A display name: a quoted string when plain ASCII, else encoded words
 * (which may not stand inside quotes). */
static void put_phrase(FILE *f, const char *s, size_t n)
{
    if (!header_plain(s, n)) {
        put_encoded_words(f, s, n);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            fputc('\\', f);
        fputc(s[i], f);
    }
    fputc('"', f);
}

static void put_mailbox(FILE *f, const char *field, const mailbox *mb)
{
    fprintf(f, "%s: ", field);
    if (mb->name) {
        put_phrase(f, mb->name, mb->name_len);
        fprintf(f, " <%.*s>\r\n", (int)mb->addr_len, mb->addr);
    } else {
        fprintf(f, "%.*s\r\n", (int)mb->addr_len, mb->addr);
    }
}

/* RFC 5322 date in UTC, spelled out without the locale. */
static void put_date(FILE *f, time_t now)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&now, &tm);
    fprintf(f, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday % 7], tm.tm_mday,
            months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    if (nbytes > sizeof b || tk_auth_random_bytes(b, nbytes) != TK_OK)
        return TK_EIO;
    for (size_t i = 0; i < nbytes; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    return TK_OK;
}

/* ---- bodies --------------------------------------------------------------- */

/* 7bit is enough: printable ASCII, tabs and line breaks, lines of at most
 * 998 octets. */
static int body_7bit(const char *s)
{
    size_t col = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n' || *p == '\r')
            col = 0;
        else if ((*p < 0x20 && *p != '\t') || *p >= 0x7f || ++col > 998)
            return 0;
    }
    return 1;
}

/* The text with every line break (CRLF, LF or a lone CR) as CRLF, ending
 * with one. */
static void put_7bit(FILE *f, const char *s)
{
    int at_bol = 1;
    for (; *s; s++) {
        if (*s == '\r' || *s == '\n') {
            if (*s == '\r' && s[1] == '\n')
                s++;
            fputs("\r\n", f);
            at_bol = 1;
        } else {
            fputc(*s, f);
            at_bol = 0;
        }
    }
    if (!at_bol)
        fputs("\r\n", f);
}

/* Quoted-printable (RFC 2045 6.7): lines of at most 76 characters, '=',
 * controls and 8-bit bytes as =XX, blanks before a line break encoded. */
static void put_qp(FILE *f, const char *s)
{
    size_t col = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        if (c == '\r' || c == '\n') {
            if (c == '\r' && p[1] == '\n')
                p++;
            fputs("\r\n", f);
            col = 0;
            continue;
        }
        int at_eol = p[1] == '\0' || p[1] == '\r' || p[1] == '\n';
        int literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
        size_t w = literal ? 1 : 3;
        if (col + w > 75) {
            fputs("=\r\n", f); /* soft break */
            col = 0;
        }
        if (literal)
            fputc((int)c, f);
        else
            fprintf(f, "=%02X", c);
        col += w;
    }
    if (col > 0)
        fputs("\r\n", f);
}

static void put_part_body(FILE *f, const char *type, const char *body)
{
    int seven = body_7bit(body);
    fprintf(f, "Content-Type: %s; charset=UTF-8\r\nContent-Transfer-Encoding: %s\r\n\r\n", type,
            seven ? "7bit" : "quoted-printable");
    if (seven)
        put_7bit(f, body);
    else
        put_qp(f, body);
}

/* ---- the message ---------------------------------------------------------- */

int tk_mail_build(const tk_mail_msg *m, time_t now, char **out, size_t *len, char *err,
                  size_t errlen)
{
    mailbox from, to;
    if (mailbox_parse(m->from, &from) != TK_OK) {
        tk_errf(err, errlen, "bad sender address (MAIL_FROM)");
        return TK_EINVAL;
    }
    if (m->to == NULL || !addr_ok(m->to, strlen(m->to))) {
        tk_errf(err, errlen, "bad recipient address");
        return TK_EINVAL;
    }
    const char *to_name = m->to_name ? m->to_name : "";
    if (has_ctl(to_name, strlen(to_name))) {
        tk_errf(err, errlen, "the recipient's name holds a line break or a control character");
        return TK_EINVAL;
    }
    if (m->subject == NULL || has_ctl(m->subject, strlen(m->subject))) {
        tk_errf(err, errlen, "the subject is missing or holds a line break or a control character");
        return TK_EINVAL;
    }
    if (m->text == NULL) {
        tk_errf(err, errlen, "no text part");
        return TK_EINVAL;
    }
    to = (mailbox){.name = *to_name ? to_name : NULL,
                   .name_len = strlen(to_name),
                   .addr = m->to,
                   .addr_len = strlen(m->to)};
    int multipart = m->html != NULL && *m->html != '\0';

    char id[33], boundary[48];
    if (random_hex(id, 16) != TK_OK) {
        tk_errf(err, errlen, "no random bytes for the Message-ID");
        return TK_EIO;
    }
    /* "=_" never occurs in quoted-printable text; a 7bit part is checked. */
    for (int tries = 0;; tries++) {
        char r[25];
        if (tries == 4 || random_hex(r, 12) != TK_OK) {
            tk_errf(err, errlen, "cannot make a MIME boundary");
            return TK_EIO;
        }
        snprintf(boundary, sizeof boundary, "=_tk_%s", r);
        if (!multipart || (strstr(m->text, boundary) == NULL && strstr(m->html, boundary) == NULL))
            break;
    }

    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f == NULL) {
        tk_errf(err, errlen, "out of memory");
        return TK_ENOMEM;
    }
    put_date(f, now);
    put_mailbox(f, "From", &from);
    put_mailbox(f, "To", &to);
    fputs("Subject: ", f);
    put_unstructured(f, m->subject);
    const char *domain = (const char *)memchr(from.addr, '@', from.addr_len) + 1;
    fprintf(f, "\r\nMessage-ID: <%s@%.*s>\r\n", id, (int)(from.addr + from.addr_len - domain),
            domain);
    fputs("MIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\n", f);
    if (multipart) {
        fprintf(f,
                "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n"
                "This is a message in MIME format.\r\n--%s\r\n",
                boundary, boundary);
        put_part_body(f, "text/plain", m->text);
        fprintf(f, "--%s\r\n", boundary);
        put_part_body(f, "text/html", m->html);
        fprintf(f, "--%s--\r\n", boundary);
    } else {
        put_part_body(f, "text/plain", m->text);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        tk_errf(err, errlen, "out of memory");
        return TK_ENOMEM;
    }
    *out = buf;
    *len = n;
    return TK_OK;
}

/* ---- SMTP ----------------------------------------------------------------- */

typedef struct {
    const char *p;
    size_t left;
} reader;

static size_t read_msg(char *buf, size_t size, size_t nitems, void *ud)
{
    reader *r = ud;
    size_t n = size * nitems;
    if (n > r->left)
        n = r->left;
    memcpy(buf, r->p, n);
    r->p += n;
    r->left -= n;
    return n;
}

int tk_mail_send_smtp(const tk_config *cfg, const char *from, const char *to, const char *msg,
                      size_t len, long *smtp_code, char *err, size_t errlen)
{
    char addr[260], env_from[264], env_to[264], curl_err[CURL_ERROR_SIZE] = "";
    *smtp_code = 0;
    if (cfg->smtp_url == NULL) {
        tk_errf(err, errlen, "SMTP_URL is not set");
        return TK_EINVAL;
    }
    if (tk_mail_address(from, addr, sizeof addr) != TK_OK || !addr_ok(to, strlen(to)) ||
        strlen(to) >= sizeof addr) {
        tk_errf(err, errlen, "bad sender or recipient address");
        return TK_EINVAL;
    }
    snprintf(env_from, sizeof env_from, "<%s>", addr);
    snprintf(env_to, sizeof env_to, "<%s>", to);

    int rc = TK_EIO;
    struct curl_slist *rcpt = curl_slist_append(NULL, env_to);
    CURL *h = curl_easy_init();
    if (rcpt == NULL || h == NULL) {
        tk_errf(err, errlen, "cannot create a curl handle");
        goto out;
    }
    reader r = {msg, len};
    long use_ssl = cfg->smtp_starttls == TK_SMTP_STARTTLS_OFF   ? (long)CURLUSESSL_NONE
                   : cfg->smtp_starttls == TK_SMTP_STARTTLS_TRY ? (long)CURLUSESSL_TRY
                                                                : (long)CURLUSESSL_ALL;
    curl_easy_setopt(h, CURLOPT_URL, cfg->smtp_url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never a proxy from the environment */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, SMTP_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, SMTP_TIMEOUT_MS);
    if (strncasecmp(cfg->smtp_url, "smtps://", 8) != 0)
        curl_easy_setopt(h, CURLOPT_USE_SSL, use_ssl);
    if (cfg->smtp_ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, cfg->smtp_ca_file);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, env_from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_msg);
    curl_easy_setopt(h, CURLOPT_READDATA, &r);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, smtp_code);
    if (cc == CURLE_OK) {
        rc = TK_OK;
    } else {
        rc = cc == CURLE_OPERATION_TIMEDOUT ? TK_ETIMEDOUT : TK_EIO;
        if (*smtp_code > 0)
            tk_errf(err, errlen, "SMTP %ld: %s", *smtp_code,
                    *curl_err ? curl_err : curl_easy_strerror(cc));
        else
            tk_errf(err, errlen, "%s", *curl_err ? curl_err : curl_easy_strerror(cc));
    }
out:
    if (h)
        curl_easy_cleanup(h);
    curl_slist_free_all(rcpt);
    return rc;
}

void tk_mail_url_redact(const char *url, char *out, size_t outlen)
{
    char *scheme = NULL, *host = NULL, *port = NULL;
    CURLU *u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
            snprintf(out, outlen, "%s://%s:%s", scheme, host, port);
        else
            snprintf(out, outlen, "%s://%s", scheme, host);
    } else {
        snprintf(out, outlen, "(unparsable SMTP_URL)");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

/* ---- the mailbox directory ------------------------------------------------ */

/* mkdir -p with `mode` for the directories it creates. */
static int make_dirs(const char *dir, mode_t mode)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p)
        return -1;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST)
            return -1;
        p[i] = c;
    }
    return 0;
}

int tk_mail_write_dir(const char *dir, const char *msg, size_t len, char *path, size_t pathlen,
                      char *err, size_t errlen)
{
    char tmp[4096], rnd[17], stamp[32];
    if (make_dirs(dir, 0700) != 0) {
        tk_errf(err, errlen, "cannot create MAIL_DIR %s: %s", dir, strerror(errno));
        return TK_EIO;
    }
    if (random_hex(rnd, 8) != TK_OK) {
        tk_errf(err, errlen, "no random bytes for a file name");
        return TK_EIO;
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    int w1 = snprintf(path, pathlen, "%s/%s-%s.eml", dir, stamp, rnd);
    int w2 = snprintf(tmp, sizeof tmp, "%s/.%s-%s.tmp", dir, stamp, rnd);
    if (w1 < 0 || (size_t)w1 >= pathlen || w2 < 0 || (size_t)w2 >= sizeof tmp) {
        tk_errf(err, errlen, "MAIL_DIR path too long");
        return TK_EIO;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        tk_errf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return TK_EIO;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t k = write(fd, msg + done, len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    int ok = done == len && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            saved = errno;
        unlink(tmp);
        tk_errf(err, errlen, "cannot write %s: %s", path, strerror(saved));
        return TK_EIO;
    }
    return TK_OK;
}
