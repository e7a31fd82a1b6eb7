/* The mail builder and transports (runtime/jobs/mail.c): header injection
 * refused in every header field, RFC 2047 encoded words for non-ASCII
 * subjects and names (split on character boundaries, folded), the
 * multipart/alternative structure, quoted-printable bodies that decode back
 * to the text, the mailbox directory, and an SMTP failure that reports
 * without the URL's password. */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobs/mail.h"
#include "test_util.h"

#define ASSERT_HAS(hay, needle)                                                                    \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            TEST_FAIL_("\"%s\" not found in:\n%s", (needle), (hay));                               \
    } while (0)

static const time_t T0 = 1796400000; /* 2026-12-04 16:00:00 UTC, a Friday */

static int build(const tk_mail_msg *m, char **out)
{
    size_t len = 0;
    char err[256] = "";
    *out = NULL;
    int rc = tk_mail_build(m, T0, out, &len, err, sizeof err);
    if (rc == TK_OK && strlen(*out) != len) {
        fprintf(stderr, "length mismatch\n");
        return TK_EIO;
    }
    return rc;
}

/* Every line break is CRLF, no line is longer than 998 octets. */
static int crlf_only(const char *s)
{
    size_t col = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '\n' && (p == s || p[-1] != '\r'))
            return 0;
        if (*p == '\r' && p[1] != '\n')
            return 0;
        col = *p == '\n' ? 0 : col + 1;
        if (col > 999)
            return 0;
    }
    return 1;
}

/* The value of header `name` (unfolded: CRLF SP removed) into out. */
static int header(const char *msg, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *end_of_headers = strstr(msg, "\r\n\r\n");
    for (const char *p = msg; p && p < end_of_headers; p = strstr(p, "\r\n") + 2) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ':' && p[nl + 1] == ' ') {
            const char *v = p + nl + 2;
            size_t n = 0;
            while (*v && !(v[0] == '\r' && v[1] == '\n' && v[2] != ' ')) {
                if (v[0] == '\r' && v[1] == '\n' && v[2] == ' ')
                    v += 3; /* unfold */
                else if (n + 1 < outlen)
                    out[n++] = *v++;
                else
                    return -1;
            }
            out[n] = '\0';
            return 0;
        }
    }
    return -1;
}

/* Decodes a run of "=?UTF-8?B?...?=" words separated by blanks into out;
 * fails on anything else, and when a word does not end on a character
 * boundary. */
static int decode_words(const char *v, char *out, size_t outlen)
{
    size_t n = 0;
    while (*v) {
        while (*v == ' ')
            v++;
        if (strncmp(v, "=?UTF-8?B?", 10) != 0)
            return -1;
        v += 10;
        const char *end = strstr(v, "?=");
        if (end == NULL || end - v > 64 || (end - v) % 4 != 0)
            return -1;
        unsigned char buf[64];
        int k = EVP_DecodeBlock(buf, (const unsigned char *)v, (int)(end - v));
        if (k < 0)
            return -1;
        int pad = (end[-1] == '=') + (end[-2] == '=');
        k -= pad;
        if (k > 0 && (buf[0] & 0xc0) == 0x80)
            return -2; /* a word starting inside a character */
        if (n + (size_t)k >= outlen)
            return -1;
        memcpy(out + n, buf, (size_t)k);
        n += (size_t)k;
        v = end + 2;
    }
    out[n] = '\0';
    return 0;
}

/* Decodes a quoted-printable body (CRLF lines) into out, line breaks as LF. */
static int qp_decode(const char *s, const char *end, char *out, size_t outlen)
{
    size_t n = 0;
    size_t col = 0;
    for (const char *p = s; p < end; p++) {
        if (p[0] == '\r' && p[1] == '\n') {
            out[n++] = '\n';
            p++;
            col = 0;
        } else if (p[0] == '=' && p[1] == '\r' && p[2] == '\n') {
            p += 2; /* soft break */
            col = 0;
        } else if (p[0] == '=') {
            unsigned v;
            if (sscanf(p + 1, "%2X", &v) != 1)
                return -1;
            out[n++] = (char)v;
            p += 2;
            col += 3;
        } else {
            out[n++] = *p;
            col++;
        }
        if (col > 76 || n + 4 >= outlen)
            return -1;
    }
    out[n] = '\0';
    return 0;
}

/* ---- tests ---------------------------------------------------------------- */

TEST(plain_text_message)
{
    tk_mail_msg m = {.from = "taskapi <no-reply@example.com>",
                     .to = "ann@example.com",
                     .to_name = "Ann",
                     .subject = "Verify your email address",
                     .text = "Hello Ann,\nopen http://x/verify?token=abc\n"};
    char *msg, v[512];
    ASSERT_EQ_INT(build(&m, &msg), TK_OK);
    ASSERT(crlf_only(msg));
    ASSERT_EQ_INT(header(msg, "Date", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "Fri, 04 Dec 2026 16:00:00 +0000");
    ASSERT_EQ_INT(header(msg, "From", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "\"taskapi\" <no-reply@example.com>");
    ASSERT_EQ_INT(header(msg, "To", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "\"Ann\" <ann@example.com>");
    ASSERT_EQ_INT(header(msg, "Subject", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "Verify your email address");
    ASSERT_EQ_INT(header(msg, "Message-ID", v, sizeof v), 0);
    ASSERT_EQ_INT(strlen(v), 1 + 32 + 1 + strlen("example.com") + 1);
    ASSERT(v[0] == '<' && strstr(v, "@example.com>") == v + 33);
    ASSERT_EQ_INT(header(msg, "MIME-Version", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "1.0");
    ASSERT_EQ_INT(header(msg, "Content-Type", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "text/plain; charset=UTF-8");
    ASSERT_EQ_INT(header(msg, "Content-Transfer-Encoding", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "7bit");
    /* the body as given, line ends as CRLF */
    const char *body = strstr(msg, "\r\n\r\n") + 4;
    ASSERT_STR_EQ(body, "Hello Ann,\r\nopen http://x/verify?token=abc\r\n");
    /* two builds: different Message-IDs */
    char *again, v2[512];
    ASSERT_EQ_INT(build(&m, &again), TK_OK);
    ASSERT_EQ_INT(header(again, "Message-ID", v2, sizeof v2), 0);
    ASSERT_EQ_INT(header(msg, "Message-ID", v, sizeof v), 0);
    ASSERT_STR_NE(v, v2);
    free(again);
    free(msg);
    return 0;
}

TEST(multipart_alternative_structure)
{
    tk_mail_msg m = {.from = "no-reply@example.com",
                     .to = "bob@example.com",
                     .subject = "Reset your password",
                     .text = "Open http://x/reset?token=t1\n",
                     .html = "<p>Open <a href=\"http://x/reset?token=t1\">this link</a></p>\n"};
    char *msg, v[512];
    ASSERT_EQ_INT(build(&m, &msg), TK_OK);
    ASSERT(crlf_only(msg));
    ASSERT_EQ_INT(header(msg, "From", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "no-reply@example.com");
    ASSERT_EQ_INT(header(msg, "To", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "bob@example.com");
    ASSERT_EQ_INT(header(msg, "Content-Type", v, sizeof v), 0);
    const char *prefix = "multipart/alternative; boundary=\"";
    ASSERT(strncmp(v, prefix, strlen(prefix)) == 0);
    char boundary[512];
    snprintf(boundary, sizeof boundary, "%s", v + strlen(prefix));
    ASSERT(strlen(boundary) > 10 && boundary[strlen(boundary) - 1] == '"');
    boundary[strlen(boundary) - 1] = '\0';

    char open_line[600], close_line[600];
    snprintf(open_line, sizeof open_line, "\r\n--%s\r\n", boundary);
    snprintf(close_line, sizeof close_line, "\r\n--%s--\r\n", boundary);
    const char *p1 = strstr(msg, open_line);
    ASSERT_NOT_NULL(p1);
    const char *p2 = strstr(p1 + 1, open_line);
    ASSERT_NOT_NULL(p2);
    ASSERT_NULL(strstr(p2 + 1, open_line)); /* exactly two parts */
    const char *end = strstr(p2, close_line);
    ASSERT_NOT_NULL(end);
    ASSERT_STR_EQ(end + strlen(close_line), ""); /* nothing after the closing line */
    /* text first, then HTML (the preferred one last) */
    p1 += strlen(open_line);
    ASSERT(strncmp(p1, "Content-Type: text/plain; charset=UTF-8\r\n", 41) == 0);
    ASSERT_HAS(p1, "Open http://x/reset?token=t1\r\n");
    p2 += strlen(open_line);
    ASSERT(strncmp(p2, "Content-Type: text/html; charset=UTF-8\r\n", 40) == 0);
    ASSERT_HAS(p2, "<a href=\"http://x/reset?token=t1\">");
    free(msg);
    return 0;
}

TEST(header_injection_refused)
{
    static const char *const bad_subjects[] = {"Hi\r\nBcc: victim@example.com", "Hi\nBcc: x@y",
                                               "Hi\rBcc: x@y", "tab\there", "nul-ish\x7f"};
    static const char *const bad_names[] = {"Ann\r\nBcc: victim@example.com", "Ann\n", "\rAnn"};
    static const char *const bad_to[] = {"ann@example.com\r\nBcc: v@example.com",
                                         "ann@example.com, v@example.com",
                                         "Ann <ann@example.com>",
                                         "ann example@example.com",
                                         "no-at-sign",
                                         "@example.com",
                                         "ann@",
                                         "a@b@c",
                                         "",
                                         "ann\"@example.com",
                                         "anné@example.com"};
    static const char *const bad_from[] = {
        "x <a@b>\r\nBcc: v@example.com", "x\n<a@b>", "<a@b> trailing", "name only", "x <a@b", ""};
    tk_mail_msg ok = {.from = "no-reply@example.com",
                      .to = "ann@example.com",
                      .to_name = "Ann",
                      .subject = "Hello",
                      .text = "text"};
    char *msg = (char *)"untouched";
    size_t len = 0;
    char err[256];
    for (size_t i = 0; i < TK_ARRAY_LEN(bad_subjects); i++) {
        tk_mail_msg m = ok;
        m.subject = bad_subjects[i];
        ASSERT_EQ_INT(tk_mail_build(&m, T0, &msg, &len, err, sizeof err), TK_EINVAL);
        ASSERT_HAS(err, "subject");
    }
    for (size_t i = 0; i < TK_ARRAY_LEN(bad_names); i++) {
        tk_mail_msg m = ok;
        m.to_name = bad_names[i];
        ASSERT_EQ_INT(tk_mail_build(&m, T0, &msg, &len, err, sizeof err), TK_EINVAL);
        ASSERT_HAS(err, "name");
    }
    for (size_t i = 0; i < TK_ARRAY_LEN(bad_to); i++) {
        tk_mail_msg m = ok;
        m.to = bad_to[i];
        ASSERT_EQ_INT(tk_mail_build(&m, T0, &msg, &len, err, sizeof err), TK_EINVAL);
        ASSERT_HAS(err, "recipient");
    }
    for (size_t i = 0; i < TK_ARRAY_LEN(bad_from); i++) {
        tk_mail_msg m = ok;
        m.from = bad_from[i];
        ASSERT_EQ_INT(tk_mail_build(&m, T0, &msg, &len, err, sizeof err), TK_EINVAL);
        ASSERT_HAS(err, "sender");
        ASSERT_EQ_INT(tk_mail_mailbox_check(bad_from[i]), TK_EINVAL);
    }
    tk_mail_msg m = ok;
    m.text = NULL;
    ASSERT_EQ_INT(tk_mail_build(&m, T0, &msg, &len, err, sizeof err), TK_EINVAL);
    ASSERT_STR_EQ(msg, "untouched"); /* never set on failure */
    return 0;
}

TEST(mailbox_forms)
{
    char a[64];
    ASSERT_EQ_INT(tk_mail_mailbox_check("a@b.example"), TK_OK);
    ASSERT_EQ_INT(tk_mail_mailbox_check("Task API <a@b.example>"), TK_OK);
    ASSERT_EQ_INT(tk_mail_mailbox_check("\"Task, API\" <a@b.example>"), TK_OK);
    ASSERT_EQ_INT(tk_mail_mailbox_check("<a@b.example>"), TK_OK);
    ASSERT_EQ_INT(tk_mail_address("Task API <a@b.example>", a, sizeof a), TK_OK);
    ASSERT_STR_EQ(a, "a@b.example");
    ASSERT_EQ_INT(tk_mail_address("  a@b.example ", a, sizeof a), TK_OK);
    ASSERT_STR_EQ(a, "a@b.example");
    ASSERT_EQ_INT(tk_mail_address("a@b.example", a, 5), TK_EINVAL);

    /* a quoted name keeps its comma inside quotes; quotes and backslashes escaped */
    tk_mail_msg m = {.from = "\"Task, API\" <a@b.example>",
                     .to = "ann@example.com",
                     .to_name = "Ann \"The Boss\" O\\Neil",
                     .subject = "s",
                     .text = "t"};
    char *msg, v[256];
    ASSERT_EQ_INT(build(&m, &msg), TK_OK);
    ASSERT_EQ_INT(header(msg, "From", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "\"Task, API\" <a@b.example>");
    ASSERT_EQ_INT(header(msg, "To", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "\"Ann \\\"The Boss\\\" O\\\\Neil\" <ann@example.com>");
    free(msg);
    return 0;
}

TEST(rfc2047_subject_and_names)
{
    /* 60 two-byte characters and a 4-byte one: several words, each ending on
     * a character boundary, folded onto continuation lines */
    char subject[256] = "V\xc3\xa9rifiez ";
    for (int i = 0; i < 60; i++)
        strcat(subject, "\xc3\xa9");
    strcat(subject, " \xf0\x9f\x93\xa7 fin");
    tk_mail_msg m = {.from = "J\xc3\xb6rg <no-reply@example.com>",
                     .to = "ann@example.com",
                     .to_name = "Jos\xc3\xa9",
                     .subject = subject,
                     .text = "t"};
    char *msg, v[1024], d[512];
    ASSERT_EQ_INT(build(&m, &msg), TK_OK);
    ASSERT(crlf_only(msg));
    /* raw: the Subject spans several lines, none over 78 characters */
    const char *s = strstr(msg, "\r\nSubject: ") + 2;
    int lines = 0;
    for (const char *p = s;; lines++) {
        const char *e = strstr(p, "\r\n");
        ASSERT_LE_INT(e - p, 78);
        p = e + 2;
        if (*p != ' ')
            break;
    }
    ASSERT_GE_INT(lines, 2);
    ASSERT_EQ_INT(header(msg, "Subject", v, sizeof v), 0);
    ASSERT_EQ_INT(decode_words(v, d, sizeof d), 0);
    ASSERT_STR_EQ(d, subject);
    ASSERT_EQ_INT(header(msg, "To", v, sizeof v), 0);
    ASSERT(strncmp(v, "=?UTF-8?B?", 10) == 0);
    char *lt = strstr(v, " <ann@example.com>");
    ASSERT_NOT_NULL(lt);
    *lt = '\0';
    ASSERT_EQ_INT(decode_words(v, d, sizeof d), 0);
    ASSERT_STR_EQ(d, "Jos\xc3\xa9");
    ASSERT_EQ_INT(header(msg, "From", v, sizeof v), 0);
    lt = strstr(v, " <no-reply@example.com>");
    ASSERT_NOT_NULL(lt);
    *lt = '\0';
    ASSERT_EQ_INT(decode_words(v, d, sizeof d), 0);
    ASSERT_STR_EQ(d, "J\xc3\xb6rg");
    free(msg);

    /* ASCII that a reader would decode ("=?") is encoded too */
    m.subject = "=?UTF-8?B?SGk=?= trick";
    m.from = "no-reply@example.com";
    ASSERT_EQ_INT(build(&m, &msg), TK_OK);
    ASSERT_EQ_INT(header(msg, "Subject", v, sizeof v), 0);
    ASSERT_EQ_INT(decode_words(v, d, sizeof d), 0);
    ASSERT_STR_EQ(d, "=?UTF-8?B?SGk=?= trick");
    free(msg);
    return 0;
}

TEST(quoted_printable_bodies)
{
    char text[4096] = "Bonjour Jos\xc3\xa9,\nouvrez http://x/verify?token=abc=def\n"
                      "trailing blank \nend";
    strcat(text, "\n");
    for (int i = 0; i < 1200; i++)
        strcat(text, i % 10 == 9 ? " " : "x"); /* a line over 998 octets */
    tk_mail_msg m = {.from = "no-reply@example.com",
                     .to = "ann@example.com",
                     .subject = "s",
                     .text = text,
                     .html = "<p>caf\xc3\xa9</p>"};
    char *msg, d[8192];
    ASSERT_EQ_INT(build(&m, &msg), TK_OK);
    ASSERT(crlf_only(msg));
    const char *t = strstr(msg, "Content-Type: text/plain; charset=UTF-8\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    ASSERT_NOT_NULL(t);
    t = strstr(t, "\r\n\r\n") + 4;
    const char *end = strstr(t, "\r\n--=_tk_");
    ASSERT_NOT_NULL(end);
    ASSERT_EQ_INT(qp_decode(t, end + 2, d, sizeof d), 0);
    char want[4200];
    snprintf(want, sizeof want, "%s\n", text);
    ASSERT_STR_EQ(d, want);
    ASSERT_HAS(t, "token=3Dabc=3Ddef");
    ASSERT_HAS(t, "trailing blank=20\r\n");
    const char *h = strstr(msg, "Content-Type: text/html; charset=UTF-8\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    ASSERT_NOT_NULL(h);
    ASSERT_HAS(h, "<p>caf=C3=A9</p>\r\n");
    free(msg);
    return 0;
}

TEST(mailbox_directory)
{
    char root[] = "/tmp/tk-mail-XXXXXX";
    ASSERT_NOT_NULL(mkdtemp(root));
    char dir[128], path[512], err[256];
    snprintf(dir, sizeof dir, "%s/a/b", root);
    const char *msg = "Subject: x\r\n\r\nbody\r\n";
    ASSERT_EQ_INT(tk_mail_write_dir(dir, msg, strlen(msg), path, sizeof path, err, sizeof err),
                  TK_OK);
    ASSERT(strncmp(path, dir, strlen(dir)) == 0);
    ASSERT(strlen(path) > 4 && strcmp(path + strlen(path) - 4, ".eml") == 0);
    struct stat st;
    ASSERT_EQ_INT(stat(path, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0600);
    ASSERT_EQ_INT(st.st_size, strlen(msg));
    ASSERT_EQ_INT(stat(dir, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0700);
    FILE *f = fopen(path, "rb");
    ASSERT_NOT_NULL(f);
    char back[64] = "";
    size_t n = fread(back, 1, sizeof back - 1, f);
    fclose(f);
    back[n] = '\0';
    ASSERT_STR_EQ(back, msg);
    /* a second mail is a second file */
    char path2[512];
    ASSERT_EQ_INT(tk_mail_write_dir(dir, msg, strlen(msg), path2, sizeof path2, err, sizeof err),
                  TK_OK);
    ASSERT_STR_NE(path, path2);
    /* a directory that cannot be made: an error naming it */
    char blocked[600];
    snprintf(blocked, sizeof blocked, "%s/sub", path); /* under a file */
    ASSERT_EQ_INT(
        tk_mail_write_dir(blocked, msg, strlen(msg), path2, sizeof path2, err, sizeof err), TK_EIO);
    ASSERT_HAS(err, "MAIL_DIR");
    unlink(path);
    unlink(path2);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ASSERT_EQ_INT(system(cmd), 0);
    return 0;
}

TEST(smtp_failure_hides_the_password)
{
    ASSERT_EQ_INT(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    tk_config cfg;
    memset(&cfg, 0, sizeof cfg);
    char url[] = "smtp://mailer:s3cret-pw@127.0.0.1:1"; /* nothing listens on port 1 */
    cfg.smtp_url = url;
    cfg.smtp_starttls = TK_SMTP_STARTTLS_OFF;
    const char *msg = "Subject: x\r\n\r\nbody\r\n";
    long code = -1;
    char err[512] = "";
    int rc = tk_mail_send_smtp(&cfg, "no-reply@example.com", "ann@example.com", msg, strlen(msg),
                               &code, err, sizeof err);
    ASSERT_EQ_INT(rc, TK_EIO);
    ASSERT_EQ_INT(code, 0);
    ASSERT(err[0] != '\0');
    ASSERT_NULL(strstr(err, "s3cret-pw"));
    /* bad envelope addresses never reach curl */
    ASSERT_EQ_INT(tk_mail_send_smtp(&cfg, "no-reply@example.com", "a@b\r\nRCPT TO:<v@x>", msg,
                                    strlen(msg), &code, err, sizeof err),
                  TK_EINVAL);
    char shown[128];
    tk_mail_url_redact(url, shown, sizeof shown);
    ASSERT_STR_EQ(shown, "smtp://127.0.0.1:1");
    tk_mail_url_redact("smtps://u:p@mail.example.com", shown, sizeof shown);
    ASSERT_STR_EQ(shown, "smtps://mail.example.com");
    curl_global_cleanup();
    return 0;
}

TEST_MAIN(TEST_ENTRY(plain_text_message), TEST_ENTRY(multipart_alternative_structure),
          TEST_ENTRY(header_injection_refused), TEST_ENTRY(mailbox_forms),
          TEST_ENTRY(rfc2047_subject_and_names), TEST_ENTRY(quoted_printable_bodies),
          TEST_ENTRY(mailbox_directory), TEST_ENTRY(smtp_failure_hides_the_password))
