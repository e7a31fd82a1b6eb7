/* An immutable in-memory copy of the script trees (SCRIPTS_DIR and
 * PLUGINS_DIR). A reload reads the files once into a snapshot and every VM of
 * that generation (lua/gen.h: the HTTP workers' and the realtime join
 * policy's) loads from it, so a file edited after the load can never reach
 * a VM and HTTP and realtime never run different versions. Reference
 * counted: each VM holds a reference for as long as it may `require` from
 * it. */
#ifndef TK_LUA_SNAPSHOT_H
#define TK_LUA_SNAPSHOT_H

#include <stddef.h>

#include "common.h"

typedef struct tk_snapshot tk_snapshot;

/* Reads every *.lua file under scripts_dir (names relative to it, e.g.
 * "routes/auth.lua") and under plugins_dir (names "plugins/<rel>"; the
 * directory may be missing or NULL). Copies the directory names. Returns 0,
 * or TK_EIO with the unreadable path in err, or TK_ENOMEM. The caller holds
 * the one reference; drop it with tk_snapshot_free. */
int tk_snapshot_load(const char *scripts_dir, const char *plugins_dir, tk_snapshot **out, char *err,
                     size_t errlen) TK_WUR;

/* Takes another reference to s (NULL gives NULL) and returns s. Safe from
 * any thread. */
tk_snapshot *tk_snapshot_ref(tk_snapshot *s);

/* Drops one reference; the last one frees the snapshot. NULL is a no-op. */
void tk_snapshot_free(tk_snapshot *s);

/* The text of file `rel`, or NULL. Borrowed until the snapshot is freed. */
const char *tk_snapshot_get(const tk_snapshot *s, const char *rel, size_t *len);

/* The path to show in error messages for `rel` (scripts_dir/rel or
 * plugins_dir/rest) into buf. */
void tk_snapshot_display(const tk_snapshot *s, const char *rel, char *buf, size_t len);

/* Calls fn(name, ud) in name order for each direct child of directory
 * `dir` ("" for the top): *.lua files when dirs == 0, subdirectories when
 * dirs == 1. */
void tk_snapshot_list(const tk_snapshot *s, const char *dir, int dirs,
                      void (*fn)(const char *name, void *ud), void *ud);

/* Number of files (for logs). */
int tk_snapshot_count(const tk_snapshot *s);

/* sha256 (hex) over every file's name, length and text, in name order: two
 * snapshots of the same files have the same digest. "" if OpenSSL fails. */
void tk_snapshot_digest(const tk_snapshot *s, char out[65]);

/* The name of file i (0 <= i < count, in name order), or NULL. Borrowed
 * until the snapshot is freed. */
const char *tk_snapshot_name(const tk_snapshot *s, int i);

/* The plugin settings file `path` (PLUGINS_CONFIG) as this snapshot's
 * generation sees it: read by the first call (the generation's first VM, as
 * it loads), then the same text for every later call and every VM of the
 * generation, whatever happens to the file meanwhile; a reload reads it
 * afresh with its new snapshot. Returns the text (borrowed until the
 * snapshot is freed, *len its length) or NULL with "PLUGINS_CONFIG: cannot
 * read <path>: <reason>" in err. Safe from any thread. Once read, it is
 * part of tk_snapshot_digest. */
const char *tk_snapshot_settings(const tk_snapshot *s, const char *path, size_t *len, char *err,
                                 size_t errlen);

#endif
