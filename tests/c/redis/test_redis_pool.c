/* The shared Redis connection pool (runtime/redis/conn.c), against a real
 * redis-server: connections are reused; while Redis is down the pool
 * answers NULL at once and tries one connect per back-off period, the
 * outage is logged once and the recovery once; a connection that breaks
 * (Redis killed) starts an outage too. The outage tests start a private
 * redis-server on a free port (and skip, saying so, when there is no
 * redis-server on PATH); the others use TEST_REDIS_URL (bin/test sets it)
 * or that private server. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "obs/log.h"
#include "redis/conn.h"
#include "test_util.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A port nothing listens on (just now). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int answers_ping(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c != NULL && c->err == 0) {
        redisReply *r = redisCommand(c, "PING");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

/* Every server started, killed at exit even when an assertion returned
 * early. */
static pid_t started[8];
static int nstarted;

static void kill_started(void)
{
    for (int i = 0; i < nstarted; i++)
        if (started[i] > 0) {
            kill(started[i], SIGKILL);
            waitpid(started[i], NULL, 0);
        }
}

/* Starts a private, non-persistent redis-server on 127.0.0.1:port; returns
 * its pid once it answers, 0 when redis-server is not installed, -1 when
 * it did not come up. */
static pid_t redis_start(int port)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("redis-server", "redis-server", "--port", portarg, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
        _exit(errno == ENOENT ? 126 : 127);
    }
    for (double end = now_s() + 10; now_s() < end; usleep(20000)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 126 ? 0 : -1;
        if (answers_ping(port)) {
            if (nstarted == 0)
                atexit(kill_started);
            if (nstarted < (int)TK_ARRAY_LEN(started))
                started[nstarted++] = pid;
            return pid;
        }
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void redis_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < nstarted; i++)
        if (started[i] == pid)
            started[i] = 0;
}

/* Log records go to a file of this test's, so it can count them. */
static char log_path[64];

static void log_to_file(void)
{
    char err[256];
    snprintf(log_path, sizeof log_path, "/tmp/test_redis_pool.%ld.log", (long)getpid());
    unlink(log_path);
    tk_log_init(TK_LOG_INFO, 0);
    if (tk_log_open_file(log_path, err, sizeof err) != TK_OK)
        fprintf(stderr, "cannot log to %s: %s\n", log_path, err);
}

static int log_count(const char *needle)
{
    FILE *f = fopen(log_path, "r");
    if (f == NULL)
        return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle) != NULL)
            n++;
    fclose(f);
    return n;
}

static void log_done(void)
{
    tk_log_close_file();
    unlink(log_path);
}

static int ping(redisContext *c)
{
    redisReply *r = redisCommand(c, "PING");
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok;
}

TEST(bad_url_is_a_config_error)
{
    tk_redis_pool *p = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(tk_redis_pool_new("http://x", 100, 1000, "nothing", &p, err, sizeof err),
                  TK_ECONFIG);
    ASSERT_NULL(p);
    ASSERT(strstr(err, "REDIS_URL") != NULL);
    tk_redis_pool_free(NULL);
    return 0;
}

typedef struct {
    tk_redis_pool *p;
    int ok;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 200; i++) {
        redisContext *c = tk_redis_pool_acquire(w->p);
        if (c == NULL)
            continue;
        int ok = ping(c);
        w->ok += ok;
        tk_redis_pool_release(w->p, c, !ok);
    }
    return NULL;
}

TEST(connections_are_reused)
{
    const char *env = getenv("TEST_REDIS_URL");
    char url[64];
    pid_t pid = 0;
    if (env == NULL || *env == '\0') {
        int port = free_port();
        pid = redis_start(port);
        if (pid == 0)
            TEST_SKIP("neither TEST_REDIS_URL nor redis-server on PATH");
        ASSERT_GT_INT(pid, 0);
        snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
        env = url;
    }
    tk_redis_pool *p = NULL;
    char err[256];
    ASSERT_EQ_INT(tk_redis_pool_new(env, 1000, 1000, "nothing", &p, err, sizeof err), TK_OK);
    redisContext *c = tk_redis_pool_acquire(p);
    ASSERT_NOT_NULL(c);
    ASSERT(ping(c));
    tk_redis_pool_release(p, c, 0);
    redisContext *again = tk_redis_pool_acquire(p);
    ASSERT(again == c); /* the idle one, no second connect */
    tk_redis_pool_release(p, again, 0);
    tk_redis_pool_stats st;
    tk_redis_pool_get_stats(p, &st);
    ASSERT_EQ_INT(st.connects, 1);
    ASSERT_EQ_INT(st.idle, 1);

    /* four threads at once: every command succeeds, at most one connection
     * each is ever made */
    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){p, 0};
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ_INT(w[i].ok, 200);
    }
    tk_redis_pool_get_stats(p, &st);
    ASSERT_LE_INT(st.connects, 4);
    ASSERT_EQ_INT(st.failures, 0);
    ASSERT_EQ_INT(st.up, 1);
    tk_redis_pool_free(p);
    redis_kill(pid);
    return 0;
}

TEST(an_outage_costs_one_connect_per_backoff_and_is_logged_once)
{
    int port = free_port();
    ASSERT_GT_INT(port, 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    log_to_file();
    tk_redis_pool *p = NULL;
    char err[256];
    /* a back-off far longer than the test: only the first acquire connects */
    ASSERT_EQ_INT(tk_redis_pool_new(url, 100, 600000, "tests do without", &p, err, sizeof err),
                  TK_OK);
    for (int i = 0; i < 1000; i++)
        ASSERT_NULL(tk_redis_pool_acquire(p));
    tk_redis_pool_stats st;
    tk_redis_pool_get_stats(p, &st);
    ASSERT_EQ_INT(st.connects, 1);
    ASSERT_EQ_INT(st.failures, 1);
    ASSERT_EQ_INT(st.up, 0);
    ASSERT_EQ_INT(log_count("Redis unavailable"), 1);
    ASSERT_EQ_INT(log_count("tests do without"), 1);
    tk_redis_pool_free(p);
    log_done();
    return 0;
}

TEST(recovery_is_logged_once_and_a_broken_connection_starts_an_outage)
{
    int port = free_port();
    ASSERT_GT_INT(port, 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    log_to_file();
    tk_redis_pool *p = NULL;
    char err[256];
    ASSERT_EQ_INT(tk_redis_pool_new(url, 100, 50, "tests do without", &p, err, sizeof err), TK_OK);
    ASSERT_NULL(tk_redis_pool_acquire(p)); /* nothing listens yet */
    pid_t pid = redis_start(port);
    if (pid == 0) {
        tk_redis_pool_free(p);
        log_done();
        TEST_SKIP("redis-server is not on PATH");
    }
    ASSERT_GT_INT(pid, 0);
    redisContext *c = NULL;
    for (double end = now_s() + 10; c == NULL && now_s() < end; usleep(10000))
        c = tk_redis_pool_acquire(p);
    ASSERT_NOT_NULL(c);
    ASSERT(ping(c));
    tk_redis_pool_release(p, c, 0);
    tk_redis_pool_stats st;
    tk_redis_pool_get_stats(p, &st);
    ASSERT_EQ_INT(st.up, 1);
    ASSERT_EQ_INT(st.idle, 1);
    ASSERT_EQ_INT(log_count("Redis unavailable"), 1);
    ASSERT_EQ_INT(log_count("Redis is back"), 1);

    /* Redis goes away under an idle connection: the command fails, the
     * connection is given back broken, a second outage begins */
    redis_kill(pid);
    c = tk_redis_pool_acquire(p);
    ASSERT_NOT_NULL(c); /* the idle one: the pool cannot know yet */
    ASSERT(!ping(c));
    tk_redis_pool_release(p, c, 1);
    tk_redis_pool_get_stats(p, &st);
    ASSERT_EQ_INT(st.up, 0);
    ASSERT_EQ_INT(st.idle, 0);
    ASSERT_EQ_INT(log_count("Redis unavailable"), 2);
    ASSERT_EQ_INT(log_count("Redis is back"), 1);
    tk_redis_pool_free(p);
    log_done();
    return 0;
}

TEST_MAIN(TEST_ENTRY(bad_url_is_a_config_error), TEST_ENTRY(connections_are_reused),
          TEST_ENTRY(an_outage_costs_one_connect_per_backoff_and_is_logged_once),
          TEST_ENTRY(recovery_is_logged_once_and_a_broken_connection_starts_an_outage))
