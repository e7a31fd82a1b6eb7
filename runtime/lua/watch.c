/* inotify watcher for hot reload. One thread: poll the inotify fd and a
 * self-pipe (for stop), collect events until the tree has been quiet for the
 * debounce time, then call back and refresh the watch set. */
#include "lua/watch.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "obs/log.h"

#define MAX_DIRS 8
#define MAX_DEPTH 8

struct tk_watch {
    int fd;
    int stop_pipe[2];
    int debounce_ms;
    char *dirs[MAX_DIRS];
    int ndirs;
    void (*fn)(void *ud);
    void *ud;
    pthread_t thread;
};

static const uint32_t MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                             IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;

/* Adds watches for dir and its subdirectories (duplicates are harmless:
 * inotify returns the same descriptor). */
static void add_tree(tk_watch *w, const char *dir, int depth)
{
    if (inotify_add_watch(w->fd, dir, MASK) < 0)
        return;
    if (depth >= MAX_DEPTH)
        return;
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            add_tree(w, path, depth + 1);
    }
    closedir(d);
}

static void add_all(tk_watch *w)
{
    for (int i = 0; i < w->ndirs; i++)
        add_tree(w, w->dirs[i], 0);
}

/* Reads and discards pending events; returns 1 if any was read. */
static int drain(int fd)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int any = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return any;
        any = 1;
    }
}

static void *watch_main(void *arg)
{
    tk_watch *w = arg;
    struct pollfd pfds[2] = {{.fd = w->fd, .events = POLLIN},
                             {.fd = w->stop_pipe[0], .events = POLLIN}};
    int pending = 0;
    for (;;) {
        int n = poll(pfds, 2, pending ? w->debounce_ms : -1);
        if (n < 0 && errno != EINTR)
            break;
        if (pfds[1].revents)
            break;
        if (n > 0 && (pfds[0].revents & POLLIN)) {
            pending |= drain(w->fd);
            continue; /* wait for quiet */
        }
        if (n == 0 && pending) {
            pending = 0;
            tk_log_info("scripts changed on disk; reloading");
            w->fn(w->ud);
            add_all(w);
        }
    }
    return NULL;
}

int tk_watch_start(const char *const *dirs, int debounce_ms, void (*fn)(void *ud), void *ud,
                   tk_watch **out)
{
    tk_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return TK_ENOMEM;
    w->fd = -1;
    w->stop_pipe[0] = w->stop_pipe[1] = -1;
    w->debounce_ms = debounce_ms;
    w->fn = fn;
    w->ud = ud;
    for (int i = 0; dirs[i] && w->ndirs < MAX_DIRS; i++) {
        w->dirs[w->ndirs] = strdup(dirs[i]);
        if (w->dirs[w->ndirs] == NULL)
            goto fail;
        w->ndirs++;
    }
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0 || pipe(w->stop_pipe) != 0)
        goto fail;
    add_all(w);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0)
        goto fail;
    *out = w;
    return TK_OK;
fail:
    if (w->fd >= 0)
        close(w->fd);
    if (w->stop_pipe[0] >= 0) {
        close(w->stop_pipe[0]);
        close(w->stop_pipe[1]);
    }
    for (int i = 0; i < w->ndirs; i++)
        free(w->dirs[i]);
    free(w);
    return TK_EIO;
}

void tk_watch_stop(tk_watch *w)
{
    if (w == NULL)
        return;
    ssize_t n = write(w->stop_pipe[1], "x", 1);
    (void)n;
    pthread_join(w->thread, NULL);
    close(w->fd);
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    for (int i = 0; i < w->ndirs; i++)
        free(w->dirs[i]);
    free(w);
}
