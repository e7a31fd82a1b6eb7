/* Watches the script trees with inotify and calls back once per burst of
 * changes (debounced: an editor's write-rename-chmod sequence is one
 * reload). New subdirectories are picked up after each burst. */
#ifndef TK_LUA_WATCH_H
#define TK_LUA_WATCH_H

#include "common.h"

typedef struct tk_watch tk_watch;

/* Starts a thread watching `dirs` (NULL-terminated; missing ones skipped)
 * recursively; calls fn(ud) from that thread after `debounce_ms` of quiet
 * following a change. Returns 0 or TK_EIO. Stop with tk_watch_stop. */
int tk_watch_start(const char *const *dirs, int debounce_ms, void (*fn)(void *ud), void *ud,
                   tk_watch **out) TK_WUR;
void tk_watch_stop(tk_watch *w);

#endif
