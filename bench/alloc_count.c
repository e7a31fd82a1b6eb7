/* LD_PRELOAD allocation counter for bench/json_ab.sh: counts malloc, calloc,
 * realloc (Lua's allocator is realloc/free) and free calls of the whole
 * process, and every 100 ms writes "malloc calloc realloc free" to the file
 * named by ALLOC_COUNT_FILE. Only for measuring; never in a normal run.
 *   cc -O2 -shared -fPIC -o alloc_count.so bench/alloc_count.c -lpthread */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static atomic_ulong n_malloc, n_calloc, n_realloc, n_free;

void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&n_malloc, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    atomic_fetch_add_explicit(&n_calloc, 1, memory_order_relaxed);
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&n_realloc, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
    __libc_free(p);
}

static void *writer(void *arg)
{
    const char *path = arg;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    for (;;) {
        FILE *f = fopen(tmp, "w");
        if (f != NULL) {
            fprintf(f, "%lu %lu %lu %lu\n", atomic_load(&n_malloc), atomic_load(&n_calloc),
                    atomic_load(&n_realloc), atomic_load(&n_free));
            fclose(f);
            rename(tmp, path);
        }
        usleep(100000);
    }
    return NULL;
}

__attribute__((constructor)) static void start(void)
{
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (path == NULL || *path == '\0')
        return;
    pthread_t t;
    if (pthread_create(&t, NULL, writer, (void *)path) == 0)
        pthread_detach(t);
}
