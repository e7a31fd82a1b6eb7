/* Schema migrations: numbered SQL files in a directory (NNNN_name.sql),
 * applied in order, each in its own transaction, recorded in
 * schema_migrations, under a PostgreSQL advisory lock so concurrent runs
 * (several instances starting at once) apply each file exactly once. The
 * core's files (MIGRATIONS_DIR) and each plugin's (plugins/<name>/migrations/)
 * are numbered and tracked apart: schema_migrations.plugin says whose. */
#ifndef TK_DB_MIGRATE_H
#define TK_DB_MIGRATE_H

#include <stdio.h>

#include "common.h"

/* Applies every pending migration in `dir` to the database at `conninfo`.
 * Writes one line per applied file to `out` (may be NULL). Returns 0 or a
 * TK_E* code with a one-line reason (file name and the server's message) in
 * err. Opens and closes its own connection. */
int tk_db_migrate_run(const char *conninfo, const char *dir, FILE *out, char *err,
                      size_t errlen) TK_WUR;

/* Applies every pending migration of the plugins `names` (n of them): the
 * files of plugins_dir/<name>/migrations/ (none when the folder does not
 * exist), plugin by plugin in the order given, under the same lock as the
 * core's. Writes "applied <dir>/<file>" per applied file to `out` (may be
 * NULL; "up to date" when none). Borrows everything. Returns 0 or a TK_E*
 * code with the file's path and the server's message in err. */
int tk_db_migrate_plugins(const char *conninfo, const char *plugins_dir, const char *const *names,
                          size_t n, FILE *out, char *err, size_t errlen) TK_WUR;

/* Prints each (core) migration file with "applied <timestamp>" or "pending" to out.
 * Returns 0 or a TK_E* code with the reason in err. */
int tk_db_migrate_status(const char *conninfo, const char *dir, FILE *out, char *err,
                         size_t errlen) TK_WUR;

#endif
