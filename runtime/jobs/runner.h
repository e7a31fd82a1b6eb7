/* Durable background jobs: rows of the `jobs` table taken one at a time per lane (mail; the rest)
 * with FOR UPDATE SKIP LOCKED inside a transaction, so a job is either done and committed or still
 * pending after a crash (at-least-once). Email jobs go over SMTP (or into MAIL_DIR without
 * SMTP_URL); webhook jobs are signed HTTP POSTs (libcurl), each attempt recorded in
 * webhook_deliveries. Failed jobs are retried with exponential backoff (JOB_BACKOFF_BASE_MS,
 * doubling, at most an hour) up to max_attempts. */
#ifndef TK_JOBS_RUNNER_H
#define TK_JOBS_RUNNER_H

#include "common.h"
#include "config.h"
#include "db/pool.h"

typedef struct tk_jobs tk_jobs;

/* Starts the runner's two lanes (mail, everything else): two threads, each
 * holding a pool connection while it runs a job. Borrows cfg and pool until tk_jobs_stop. */
int tk_jobs_start(const tk_config *cfg, tk_db_pool *pool, tk_jobs **out) TK_WUR;

/* Stops the thread after the job in hand (if any) is finished. */
void tk_jobs_stop(tk_jobs *j);

#endif
