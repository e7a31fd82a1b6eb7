/* Durable background jobs: rows of the `jobs` table claimed one at a time per lane (mail; the
 * rest) with FOR UPDATE SKIP LOCKED in one committed statement that counts the attempt and leases
 * the row (JOB_LEASE_MS), run holding no transaction, then settled; a job whose process died runs
 * again when its lease ends (at-least-once). Email jobs go over SMTP (or into MAIL_DIR without
 * SMTP_URL); every other kind runs the Lua handler registered for it (lib.jobs.handle). Failed
 * jobs are retried with exponential backoff (JOB_BACKOFF_BASE_MS, doubling, at most an hour) up
 * to max_attempts. */
#ifndef TK_JOBS_RUNNER_H
#define TK_JOBS_RUNNER_H

#include "common.h"
#include "config.h"
#include "db/pool.h"
#include "lua/snapshot.h"

/* The worker_id of the job runner's Lua VM (tk_lua_ctx): tk.http.post is
 * allowed there only. */
#define TK_JOBS_LUA_WORKER (-2)

/* Returns a new reference to the current script generation's snapshot (the
 * caller drops it with tk_snapshot_free) and its id in *gen, or NULL. */
typedef tk_snapshot *(*tk_jobs_generation_fn)(void *ud, int *gen);

typedef struct tk_jobs tk_jobs;

/* Starts the runner's two lanes (mail, everything else): two threads, each
 * taking a pool connection only to claim a job and to settle it. The other
 * lane runs Lua kinds in a VM of the generation current() gives, rebuilt
 * when it changes, and claims only the kinds that VM handles (jobs of other
 * kinds are left to other instances, counted in taskapi_jobs_unhandled).
 * Borrows cfg, pool and current_ud until tk_jobs_stop. */
int tk_jobs_start(const tk_config *cfg, tk_db_pool *pool, tk_jobs_generation_fn current,
                  void *current_ud, tk_jobs **out) TK_WUR;

/* Stops the thread after the job in hand (if any) is finished. */
void tk_jobs_stop(tk_jobs *j);

#endif
