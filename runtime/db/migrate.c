/* Schema migrations: lists dir/NNNN_name.sql, then, holding a session-level
 * advisory lock, applies each pending file in its own transaction and records
 * it in schema_migrations, under a scope: '' for the core (MIGRATIONS_DIR),
 * the plugin's name for plugins/<name>/migrations/. The SQL itself is left to
 * the server; where the conninfo, the directories and the enabled plugins
 * come from is left to the caller. */
#include "db/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* One fixed key for every taskapi instance: the bytes of "tk_migra". Advisory
 * locks are per database, so instances on other databases never wait. */
#define MIG_LOCK_KEY "8388903654432141921"

/* The tracking table, one row per applied file: `plugin` is '' for the
 * core, else the plugin the file belongs to; a number counts within its
 * scope. A table made before plugins had migrations (PRIMARY KEY (version),
 * no `plugin`) is brought up to date here, under the lock: its rows are the
 * core's, so the column's default says so. `plugin` comes last in both, so
 * the two layouts are the same. */
static const char sql_create[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version bigint NOT NULL, "
    "name text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now(), "
    "plugin text NOT NULL DEFAULT '', "
    "PRIMARY KEY (plugin, version));\n"
    "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS plugin text NOT NULL DEFAULT '';\n"
    "DO $$ DECLARE pk name; BEGIN "
    "SELECT conname INTO pk FROM pg_constraint WHERE conrelid = 'schema_migrations'::regclass "
    "AND contype = 'p' AND array_length(conkey, 1) = 1; "
    "IF pk IS NOT NULL THEN EXECUTE format('ALTER TABLE schema_migrations DROP CONSTRAINT %I, "
    "ADD PRIMARY KEY (plugin, version)', pk); END IF; END $$";
static const char sql_insert[] =
    "INSERT INTO schema_migrations (plugin, version, name) VALUES ($1, $2, $3)";
static const char sql_applied[] =
    "SELECT version FROM schema_migrations WHERE plugin = $1 ORDER BY version";

/* One directory of migrations and the scope it is tracked under. */
struct scope {
    const char *plugin; /* "" for the core */
    char *dir;          /* owned */
    int optional;       /* a missing directory means no migrations */
};

struct mig {
    long long version;
    char *file; /* "0001_users.sql", owned */
};

struct mig_list {
    struct mig *v;
    size_t n, cap;
};

/* ------------------------------------------------------------------------ */
/* Error text                                                                */
/* ------------------------------------------------------------------------ */

/* Appends msg to the text already in err, kept on one line: control
 * characters and runs of blanks become one space, trailing blanks go. Every
 * occurrence of secret (the password, when known) is masked; with
 * hide_quoted, the inside of each "..." is masked too, for libpq parse errors
 * that quote the conninfo. */
static void err_append(char *err, size_t errlen, const char *msg, const char *secret,
                       int hide_quoted)
{
    if (err == NULL || errlen == 0)
        return;
    size_t n = strnlen(err, errlen - 1);
    size_t slen = secret != NULL ? strlen(secret) : 0;
    int quoted = 0;

    for (const char *p = msg; *p != '\0' && n + 1 < errlen;) {
        if (slen > 0 && strncmp(p, secret, slen) == 0) {
            for (const char *m = "***"; *m != '\0' && n + 1 < errlen; m++)
                err[n++] = *m;
            p += slen;
            continue;
        }
        char ch = *p++;
        if (hide_quoted && ch == '"') {
            quoted = !quoted;
            if (quoted)
                for (const char *m = "\"..."; *m != '\0' && n + 1 < errlen; m++)
                    err[n++] = *m;
            else
                err[n++] = ch;
            continue;
        }
        if (quoted)
            continue;
        if ((unsigned char)ch <= ' ') {
            /* libpq's "\n\t" continuations and "FATAL:  " become one space. */
            if (n > 0 && err[n - 1] != ' ')
                err[n++] = ' ';
            continue;
        }
        err[n++] = ch;
    }
    while (n > 0 && err[n - 1] == ' ')
        n--;
    err[n] = '\0';
}

/* The server's primary message for a failed result, else libpq's. */
static const char *db_message(PGconn *c, const PGresult *r)
{
    const char *m = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (m == NULL || m[0] == '\0')
        m = r != NULL ? PQresultErrorMessage(r) : "";
    if (m[0] == '\0')
        m = PQerrorMessage(c);
    if (m[0] == '\0')
        m = "unknown error (connection lost?)";
    return m;
}

/* "<what>: <server message>" into err. */
static void db_err(char *err, size_t errlen, const char *what, PGconn *c, const PGresult *r)
{
    tk_errf(err, errlen, "%s: ", what);
    err_append(err, errlen, db_message(c, r), NULL, 0);
}

/* Line (1-based) of the character the server's error position points at, or
 * 0. The position counts characters, so UTF-8 continuation bytes are skipped. */
static long error_line(const char *sql, const PGresult *r)
{
    const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
    long want = pos != NULL ? strtol(pos, NULL, 10) : 0;
    long ch = 0, line = 1;

    if (want <= 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)sql; *p != '\0'; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        if (++ch == want)
            return line;
        if (*p == '\n')
            line++;
    }
    return 0;
}

/* "NNNN_name.sql: <message> (line N); <detail>" into err. */
static void file_err(char *err, size_t errlen, const char *file, const char *sql, PGconn *c,
                     const PGresult *r)
{
    long line = r != NULL && sql != NULL ? error_line(sql, r) : 0;
    const char *detail = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
    size_t n;

    tk_errf(err, errlen, "%s: ", file);
    err_append(err, errlen, db_message(c, r), NULL, 0);
    if (err == NULL || errlen == 0)
        return;
    n = strlen(err);
    if (line > 0)
        n += (size_t)snprintf(err + n, errlen - n, " (line %ld)", line);
    if (n + 1 < errlen && detail != NULL && detail[0] != '\0') {
        snprintf(err + n, errlen - n, "; ");
        err_append(err, errlen, detail, NULL, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Migration files                                                           */
/* ------------------------------------------------------------------------ */

static void list_free(struct mig_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].file);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* 1 and the number if name is NNNN_name.sql (4+ digits, a non-empty name),
 * 0 for any other file, -1 if the number does not fit in a bigint. */
static int parse_name(const char *name, long long *version)
{
    size_t digits = 0;
    long long v = 0;
    int overflow = 0;

    while (name[digits] >= '0' && name[digits] <= '9') {
        int d = name[digits] - '0';
        if (v > (LLONG_MAX - d) / 10)
            overflow = 1;
        else
            v = v * 10 + d;
        digits++;
    }
    if (digits < 4 || name[digits] != '_')
        return 0;
    const char *rest = name + digits + 1;
    size_t len = strlen(rest);
    if (len <= 4 || strcmp(rest + len - 4, ".sql") != 0)
        return 0;
    if (overflow)
        return -1;
    *version = v;
    return 1;
}

static int mig_cmp(const void *a, const void *b)
{
    const struct mig *x = a, *y = b;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return strcmp(x->file, y->file);
}

/* Fills l with the migration files of dir, sorted by number. With optional,
 * a directory that does not exist is an empty list. On failure l is left
 * empty and err says why. */
static int list_files(const char *dir, int optional, struct mig_list *l, char *err, size_t errlen)
{
    int rc = TK_OK;
    DIR *d = opendir(dir);

    if (d == NULL && optional && errno == ENOENT)
        return TK_OK;
    if (d == NULL) {
        tk_errf(err, errlen, "cannot open migrations directory %s: %s", dir, strerror(errno));
        return TK_EIO;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0) {
                tk_errf(err, errlen, "cannot read migrations directory %s: %s", dir,
                        strerror(errno));
                rc = TK_EIO;
                goto out;
            }
            break;
        }
        long long version = 0;
        int match = parse_name(e->d_name, &version);
        if (match == 0)
            continue;
        if (match < 0) {
            tk_errf(err, errlen, "%s: migration number too large", e->d_name);
            rc = TK_ECONFIG;
            goto out;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap != 0 ? l->cap * 2 : 16;
            struct mig *v = cap <= SIZE_MAX / sizeof *v ? realloc(l->v, cap * sizeof *v) : NULL;
            if (v == NULL) {
                tk_errf(err, errlen, "listing migrations: %s", tk_strerror(TK_ENOMEM));
                rc = TK_ENOMEM;
                goto out;
            }
            l->v = v;
            l->cap = cap;
        }
        char *file = strdup(e->d_name);
        if (file == NULL) {
            tk_errf(err, errlen, "listing migrations: %s", tk_strerror(TK_ENOMEM));
            rc = TK_ENOMEM;
            goto out;
        }
        l->v[l->n].version = version;
        l->v[l->n].file = file;
        l->n++;
    }
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, mig_cmp);
    for (size_t i = 1; i < l->n; i++) {
        if (l->v[i - 1].version == l->v[i].version) {
            tk_errf(err, errlen, "duplicate migration number %lld: %s and %s", l->v[i].version,
                    l->v[i - 1].file, l->v[i].file);
            rc = TK_ECONFIG;
            goto out;
        }
    }
out:
    closedir(d);
    if (rc != TK_OK)
        list_free(l);
    return rc;
}

/* Reads dir/file into *sql (NUL-terminated, caller frees with free()). */
static int read_file(const char *dir, const char *file, char **sql, char *err, size_t errlen)
{
    int rc = TK_OK;
    size_t plen = strlen(dir) + strlen(file) + 2;
    char *path = malloc(plen);
    char *buf = NULL;
    size_t len = 0, cap = 4096;
    FILE *f = NULL;

    *sql = NULL;
    if (path == NULL)
        goto nomem;
    snprintf(path, plen, "%s/%s", dir, file);
    f = fopen(path, "rb");
    if (f == NULL) {
        tk_errf(err, errlen, "%s: %s", file, strerror(errno));
        rc = TK_EIO;
        goto out;
    }
    buf = malloc(cap);
    if (buf == NULL)
        goto nomem;
    for (;;) {
        if (len + 1 == cap) {
            char *grown = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (grown == NULL)
                goto nomem;
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                tk_errf(err, errlen, "%s: %s", file, strerror(errno));
                rc = TK_EIO;
                goto out;
            }
            break;
        }
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        /* PQexec takes a C string: the rest of the file would be ignored. */
        tk_errf(err, errlen, "%s: contains a NUL byte", file);
        rc = TK_ECONFIG;
        goto out;
    }
    *sql = buf;
    buf = NULL;
    goto out;
nomem:
    tk_errf(err, errlen, "%s: %s", file, tk_strerror(TK_ENOMEM));
    rc = TK_ENOMEM;
out:
    if (f != NULL)
        fclose(f);
    free(buf);
    free(path);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Database                                                                  */
/* ------------------------------------------------------------------------ */

/* Opens a connection. The conninfo may hold a password, so it never goes into
 * err, and the password is masked in whatever libpq says. */
static int db_connect(const char *conninfo, PGconn **out, char *err, size_t errlen)
{
    int rc = TK_OK;
    char *perr = NULL;
    const char *password = NULL;
    PGconn *c = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);

    *out = NULL;
    if (opts == NULL) {
        if (perr == NULL) {
            tk_errf(err, errlen, "parsing connection string: %s", tk_strerror(TK_ENOMEM));
            return TK_ENOMEM;
        }
        tk_errf(err, errlen, "invalid connection string: ");
        err_append(err, errlen, perr, NULL, 1);
        PQfreemem(perr);
        return TK_ECONFIG;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
            password = o->val;

    c = PQconnectdb(conninfo);
    if (c == NULL) {
        tk_errf(err, errlen, "connecting to database: %s", tk_strerror(TK_ENOMEM));
        rc = TK_ENOMEM;
    } else if (PQstatus(c) != CONNECTION_OK) {
        tk_errf(err, errlen, "cannot connect to database: ");
        err_append(err, errlen, PQerrorMessage(c), password, 0);
        PQfinish(c);
        c = NULL;
        rc = TK_EUNAVAIL;
    }
    PQconninfoFree(opts);
    *out = c;
    return rc;
}

/* Runs one statement whose rows, if any, are not needed. */
static int exec_cmd(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = TK_OK;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        db_err(err, errlen, what, c, r);
        rc = TK_EDB;
    }
    PQclear(r);
    return rc;
}

/* Connects and quiets NOTICEs (CREATE ... IF NOT EXISTS says "skipping"). */
static int session_open(const char *conninfo, PGconn **c, char *err, size_t errlen)
{
    int rc = db_connect(conninfo, c, err, errlen);
    if (rc != TK_OK)
        return rc;
    rc = exec_cmd(*c, "SET client_min_messages = warning", "configuring session", err, errlen);
    if (rc != TK_OK) {
        PQfinish(*c);
        *c = NULL;
    }
    return rc;
}

/* Applies one file of scope sc: BEGIN, the file's SQL, the schema_migrations
 * row, COMMIT. On any failure the transaction is rolled back. Errors name the
 * file as `shown`. */
static int apply_one(PGconn *c, const struct scope *sc, const struct mig *m, const char *shown,
                     char *err, size_t errlen)
{
    char *sql = NULL;
    PGresult *r = NULL;
    ExecStatusType st;
    char version[32];
    const char *params[3];
    int rc = read_file(sc->dir, m->file, &sql, err, errlen);

    if (rc != TK_OK)
        return rc;
    rc = TK_EDB;
    r = PQexec(c, "BEGIN");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        file_err(err, errlen, shown, NULL, c, r);
        goto out;
    }
    PQclear(r);
    r = NULL;

    /* Simple query protocol: the file may hold several statements; the
     * result is the first failure or the last statement's. */
    r = PQexec(c, sql);
    st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        file_err(err, errlen, shown, sql, c, r);
        goto out;
    }
    PQclear(r);
    r = NULL;
    if (PQtransactionStatus(c) != PQTRANS_INTRANS) {
        /* A COMMIT or ROLLBACK in the file ended our transaction: what it
         * did can no longer be tied atomically to the record. */
        tk_errf(err, errlen,
                "%s: the file ended the migration's transaction itself "
                "(remove BEGIN/COMMIT/ROLLBACK from it); not recorded",
                shown);
        goto out;
    }

    snprintf(version, sizeof version, "%lld", m->version);
    params[0] = sc->plugin;
    params[1] = version;
    params[2] = m->file;
    r = PQexecParams(c, sql_insert, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        file_err(err, errlen, shown, NULL, c, r);
        goto out;
    }
    PQclear(r);
    r = NULL;

    /* COMMIT of a failed transaction "succeeds" with the tag ROLLBACK. */
    r = PQexec(c, "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        file_err(err, errlen, shown, NULL, c, r);
        goto out;
    }
    if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        tk_errf(err, errlen, "%s: the server rolled the transaction back at COMMIT", shown);
        goto out;
    }
    rc = TK_OK;
out:
    PQclear(r);
    if (rc != TK_OK) {
        PGTransactionStatusType ts = PQtransactionStatus(c);
        if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
            PQclear(PQexec(c, "ROLLBACK"));
    }
    free(sql);
    return rc;
}

static long long row_version(const PGresult *r, int row)
{
    return strtoll(PQgetvalue(r, row, 0), NULL, 10);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

/* Applies the pending files of each scope, in order, under the lock on one
 * connection. Every directory is listed first: a bad one fails before the
 * database is touched. Core files are shown by name, a plugin's by path. */
static int migrate_scopes(const char *conninfo, const struct scope *sc, size_t nsc, FILE *out,
                          char *err, size_t errlen)
{
    struct mig_list *files = calloc(nsc > 0 ? nsc : 1, sizeof *files);
    PGconn *c = NULL;
    PGresult *r = NULL;
    int locked = 0, applied = 0;
    int rc = TK_OK;

    if (files == NULL) {
        tk_errf(err, errlen, "migrate: %s", tk_strerror(TK_ENOMEM));
        return TK_ENOMEM;
    }
    for (size_t k = 0; k < nsc && rc == TK_OK; k++)
        rc = list_files(sc[k].dir, sc[k].optional, &files[k], err, errlen);
    if (rc != TK_OK)
        goto out;
    rc = session_open(conninfo, &c, err, errlen);
    if (rc != TK_OK)
        goto out;

    /* Waits while another instance migrates; it is released by unlock or,
     * if this process dies, by the server when the session ends. */
    rc = exec_cmd(c, "SELECT pg_advisory_lock(" MIG_LOCK_KEY ")", "taking the migration lock", err,
                  errlen);
    if (rc != TK_OK)
        goto out;
    locked = 1;
    rc = exec_cmd(c, sql_create, "creating schema_migrations", err, errlen);
    if (rc != TK_OK)
        goto out;

    for (size_t k = 0; k < nsc; k++) {
        const char *p1[1] = {sc[k].plugin};
        int row = 0, nrows;
        PQclear(r);
        r = PQexecParams(c, sql_applied, 1, NULL, p1, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            db_err(err, errlen, "reading schema_migrations", c, r);
            rc = TK_EDB;
            goto out;
        }
        nrows = PQntuples(r);
        for (size_t i = 0; i < files[k].n; i++) {
            const struct mig *m = &files[k].v[i];
            char shown[PATH_MAX];
            /* Both lists are sorted: walk them together. Only numbers count. */
            while (row < nrows && row_version(r, row) < m->version)
                row++;
            if (row < nrows && row_version(r, row) == m->version)
                continue;
            if (sc[k].plugin[0] != '\0')
                snprintf(shown, sizeof shown, "%s/%s", sc[k].dir, m->file);
            else
                snprintf(shown, sizeof shown, "%s", m->file);
            rc = apply_one(c, &sc[k], m, shown, err, errlen);
            if (rc != TK_OK)
                goto out;
            applied++;
            if (out != NULL) {
                fprintf(out, "applied %s\n", shown);
                fflush(out);
            }
        }
    }
    if (applied == 0 && out != NULL)
        fprintf(out, "up to date\n");
out:
    PQclear(r);
    if (locked)
        PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIG_LOCK_KEY ")"));
    if (c != NULL)
        PQfinish(c);
    for (size_t k = 0; k < nsc; k++)
        list_free(&files[k]);
    free(files);
    return rc;
}

int tk_db_migrate_run(const char *conninfo, const char *dir, FILE *out, char *err, size_t errlen)
{
    tk_errf(err, errlen, "%s", "");
    if (conninfo == NULL || dir == NULL) {
        tk_errf(err, errlen, "migrate: conninfo and dir are required");
        return TK_EINVAL;
    }
    struct scope core = {.plugin = "", .dir = (char *)dir, .optional = 0};
    return migrate_scopes(conninfo, &core, 1, out, err, errlen);
}

int tk_db_migrate_plugins(const char *conninfo, const char *plugins_dir, const char *const *names,
                          size_t n, FILE *out, char *err, size_t errlen)
{
    int rc = TK_OK;
    struct scope *sc = NULL;
    size_t made = 0;

    tk_errf(err, errlen, "%s", "");
    if (conninfo == NULL || plugins_dir == NULL || (n > 0 && names == NULL)) {
        tk_errf(err, errlen, "migrate: conninfo, plugins_dir and names are required");
        return TK_EINVAL;
    }
    if (n == 0)
        return TK_OK;
    sc = calloc(n, sizeof *sc);
    if (sc == NULL)
        goto nomem;
    for (; made < n; made++) {
        const char *name = names[made];
        if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL || name[0] == '.') {
            tk_errf(err, errlen, "migrate: '%s' is not a plugin name", name ? name : "(null)");
            rc = TK_EINVAL;
            goto out;
        }
        size_t len = strlen(plugins_dir) + strlen(name) + sizeof "//migrations";
        sc[made].dir = malloc(len);
        if (sc[made].dir == NULL)
            goto nomem;
        snprintf(sc[made].dir, len, "%s/%s/migrations", plugins_dir, name);
        sc[made].plugin = name;
        sc[made].optional = 1;
    }
    rc = migrate_scopes(conninfo, sc, n, out, err, errlen);
    goto out;
nomem:
    tk_errf(err, errlen, "migrate: %s", tk_strerror(TK_ENOMEM));
    rc = TK_ENOMEM;
out:
    for (size_t k = 0; sc != NULL && k < made; k++)
        free(sc[k].dir);
    free(sc);
    return rc;
}

int tk_db_migrate_status(const char *conninfo, const char *dir, FILE *out, char *err, size_t errlen)
{
    struct mig_list files = {0};
    PGconn *c = NULL;
    PGresult *r = NULL;
    int rc, exists, row = 0, nrows = 0;
    size_t i = 0;

    tk_errf(err, errlen, "%s", "");
    if (conninfo == NULL || dir == NULL) {
        tk_errf(err, errlen, "migrate: conninfo and dir are required");
        return TK_EINVAL;
    }
    rc = list_files(dir, 0, &files, err, errlen);
    if (rc != TK_OK)
        goto out;
    rc = session_open(conninfo, &c, err, errlen);
    if (rc != TK_OK)
        goto out;

    /* Read-only: no lock, and no table is created just to look. */
    r = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        db_err(err, errlen, "looking for schema_migrations", c, r);
        rc = TK_EDB;
        goto out;
    }
    exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    r = NULL;
    if (exists) {
        /* The core's rows, in a table from before or after the `plugin`
         * column: read-only, so the table is not upgraded just to look. */
        r = PQexec(c, "SELECT version, name, "
                      "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"+00\"') "
                      "FROM schema_migrations s "
                      "WHERE coalesce(to_jsonb(s) ->> 'plugin', '') = '' ORDER BY version");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            db_err(err, errlen, "reading schema_migrations", c, r);
            rc = TK_EDB;
            goto out;
        }
        nrows = PQntuples(r);
    }
    if (out == NULL)
        goto out;
    while (i < files.n || row < nrows) {
        long long rv = row < nrows ? row_version(r, row) : 0;
        if (row < nrows && (i == files.n || rv < files.v[i].version)) {
            fprintf(out, "warning: version %lld (recorded as %s) is applied but has no file\n", rv,
                    PQgetvalue(r, row, 1));
            row++;
        } else if (row < nrows && rv == files.v[i].version) {
            fprintf(out, "%s  applied %s\n", files.v[i].file, PQgetvalue(r, row, 2));
            row++;
            i++;
        } else {
            fprintf(out, "%s  pending\n", files.v[i].file);
            i++;
        }
    }
out:
    PQclear(r);
    if (c != NULL)
        PQfinish(c);
    list_free(&files);
    return rc;
}
