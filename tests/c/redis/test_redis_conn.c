/* REDIS_URL parsing (runtime/redis/conn.c): the accepted forms, defaults,
 * percent-decoded credentials, and a clear refusal for everything else. */
#include "redis/conn.h"
#include "test_util.h"

TEST(plain_host)
{
    tk_redis_url u;
    char err[256];
    ASSERT_EQ_INT(tk_redis_url_parse("redis://127.0.0.1", &u, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(u.host, "127.0.0.1");
    ASSERT_EQ_INT(u.port, 6379);
    ASSERT_EQ_INT(u.db, 0);
    ASSERT_STR_EQ(u.password, "");
    ASSERT_STR_EQ(u.user, "");
    ASSERT_STR_EQ(u.path, "");
    ASSERT_EQ_INT(tk_redis_url_parse("redis://cache.internal:6380/", &u, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(u.host, "cache.internal");
    ASSERT_EQ_INT(u.port, 6380);
    return 0;
}

TEST(credentials_and_db)
{
    tk_redis_url u;
    char err[256];
    ASSERT_EQ_INT(tk_redis_url_parse("redis://:s3cr%40t@h:1234/2", &u, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(u.user, "");
    ASSERT_STR_EQ(u.password, "s3cr@t");
    ASSERT_STR_EQ(u.host, "h");
    ASSERT_EQ_INT(u.port, 1234);
    ASSERT_EQ_INT(u.db, 2);
    ASSERT_EQ_INT(tk_redis_url_parse("redis://app:pw@h", &u, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(u.user, "app");
    ASSERT_STR_EQ(u.password, "pw");
    ASSERT_EQ_INT(tk_redis_url_parse("redis://only-pw@h", &u, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(u.password, "only-pw");
    ASSERT_EQ_INT(tk_redis_url_parse("redis://u:p@ss@h:1", &u, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(u.password, "p@ss"); /* the last @ ends the credentials */
    ASSERT_STR_EQ(u.host, "h");
    return 0;
}

TEST(ipv6_and_unix)
{
    tk_redis_url u;
    char err[256];
    ASSERT_EQ_INT(tk_redis_url_parse("redis://[::1]:7000/1", &u, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(u.host, "::1");
    ASSERT_EQ_INT(u.port, 7000);
    ASSERT_EQ_INT(u.db, 1);
    ASSERT_EQ_INT(tk_redis_url_parse("unix:///run/redis.sock", &u, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(u.path, "/run/redis.sock");
    ASSERT_STR_EQ(u.host, "");
    ASSERT_EQ_INT(tk_redis_url_parse("unix:///run/redis.sock?db=3", &u, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(u.db, 3);
    return 0;
}

TEST(refusals_name_the_variable_and_not_the_password)
{
    static const char *const bad[] = {
        "",
        "localhost:6379",
        "http://h",
        "rediss://h",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:x",
        "redis://h/x",
        "redis://[::1",
        "redis://[::1]x",
        "redis://:%zz@h",
        "redis://:%4@h",
        "unix://",
        "unix://relative",
        "unix:///s?x=1",
        "redis://:a%00b@h",
    };
    for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
        tk_redis_url u;
        char err[256] = "";
        if (tk_redis_url_parse(bad[i], &u, err, sizeof err) != TK_ECONFIG)
            TEST_FAIL_("accepted \"%s\"", bad[i]);
        if (strncmp(err, "REDIS_URL: ", 11) != 0)
            TEST_FAIL_("\"%s\": error does not name REDIS_URL: %s", bad[i], err);
    }
    tk_redis_url u;
    char err[256];
    ASSERT_EQ_INT(tk_redis_url_parse("redis://:hunter2@h:x", &u, err, sizeof err), TK_ECONFIG);
    ASSERT_NULL(strstr(err, "hunter2"));
    ASSERT_EQ_INT(tk_redis_url_parse(NULL, &u, err, sizeof err), TK_ECONFIG);
    return 0;
}

TEST(connect_failure_is_reported)
{
    tk_redis_url u;
    char err[256] = "";
    ASSERT_EQ_INT(tk_redis_url_parse("redis://127.0.0.1:1", &u, err, sizeof err), TK_OK);
    redisContext *c = (redisContext *)1;
    ASSERT_EQ_INT(tk_redis_conn_open(&u, 500, &c, err, sizeof err), TK_EUNAVAIL);
    ASSERT_NULL(c);
    ASSERT(err[0] != '\0');
    return 0;
}

TEST_MAIN(TEST_ENTRY(plain_host), TEST_ENTRY(credentials_and_db), TEST_ENTRY(ipv6_and_unix),
          TEST_ENTRY(refusals_name_the_variable_and_not_the_password),
          TEST_ENTRY(connect_failure_is_reported))
