/* Schema migrations: numbered SQL files in a directory (NNNN_name.sql),
 * applied in order, each in its own transaction, recorded in
 * schema_migrations, under a PostgreSQL advisory lock so concurrent runs
 * (several instances starting at once) apply each file exactly once. */
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

/* Prints each migration file with "applied <timestamp>" or "pending" to out.
 * Returns 0 or a TK_E* code with the reason in err. */
int tk_db_migrate_status(const char *conninfo, const char *dir, FILE *out, char *err,
                         size_t errlen) TK_WUR;

#endif
