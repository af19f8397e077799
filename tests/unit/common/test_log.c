/* test_log.c - unit tests for common/log.c: JSON and text lines, escaping, the level filter, truncation, threads. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include "common/err.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/utf8.h"
#include "testutil.h"

#define CAP_MAX (4 << 20)

static int cap_saved_fd = -1;
static int cap_fd = -1;
static char cap_path[] = "/tmp/comio-test-log-XXXXXX";
static char cap_buf[CAP_MAX + 1];

/* Points fd 2 at a temp file until cap_end(). */
static void cap_begin(void)
{
    strcpy(cap_path, "/tmp/comio-test-log-XXXXXX");
    cap_fd = mkstemp(cap_path);
    if (cap_fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    unlink(cap_path);
    fflush(stderr);
    cap_saved_fd = dup(STDERR_FILENO);
    dup2(cap_fd, STDERR_FILENO);
}

/* Restores fd 2 and returns what was written (NUL-terminated, static). */
static const char *cap_end(void)
{
    ssize_t n;
    size_t len = 0;

    dup2(cap_saved_fd, STDERR_FILENO);
    close(cap_saved_fd);
    lseek(cap_fd, 0, SEEK_SET);
    while (len < CAP_MAX && (n = read(cap_fd, cap_buf + len, CAP_MAX - len)) > 0)
        len += (size_t)n;
    cap_buf[len] = '\0';
    close(cap_fd);
    return cap_buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        if (*s == '\n')
            n++;
    return n;
}

/* ---- a small strict parser for the flat JSON objects log.c writes ---- */

#define JF_MAX 32
#define JV_MAX 16384

typedef struct {
    int n;
    char key[JF_MAX][64];
    char val[JF_MAX][JV_MAX];
    int is_null[JF_MAX];
} jobj_t;

/* Parses a JSON string at *p into out (bytes, \u00XX only as one byte). */
static int json_string(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    size_t n = 0;

    if (*s++ != '"')
        return -1;
    while (*s != '"') {
        char c = *s++;
        if (c == '\0' || (unsigned char)c < 0x20)
            return -1; /* raw control bytes are invalid JSON */
        if (c == '\\') {
            c = *s++;
            switch (c) {
            case '"':
            case '\\':
            case '/':
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'u': {
                int h[4];
                for (int i = 0; i < 4; i++)
                    if ((h[i] = hex_value((unsigned char)s[i])) < 0)
                        return -1;
                if (h[0] == 0xd && h[1] == 0xc && h[2] >= 8)
                    c = (char)(h[2] * 16 + h[3]); /* \udcXX: the byte XX, not UTF-8 (common/utf8.h) */
                else if (h[0] != 0 || h[1] != 0)
                    return -1; /* log.c writes only \u00XX and \udcXX */
                else
                    c = (char)(h[2] * 16 + h[3]);
                s += 4;
                break;
            }
            default:
                return -1;
            }
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    *p = s + 1;
    return 0;
}

/* Parses one line "{...}\n" of string/null values. 0 on success. */
static int json_parse_line(const char *line, jobj_t *o)
{
    const char *p = line;

    o->n = 0;
    if (*p++ != '{')
        return -1;
    for (;;) {
        if (o->n >= JF_MAX)
            return -1;
        if (json_string(&p, o->key[o->n], sizeof(o->key[0])) != 0)
            return -1;
        if (*p++ != ':')
            return -1;
        if (strncmp(p, "null", 4) == 0) {
            o->is_null[o->n] = 1;
            o->val[o->n][0] = '\0';
            p += 4;
        } else {
            o->is_null[o->n] = 0;
            if (json_string(&p, o->val[o->n], sizeof(o->val[0])) != 0)
                return -1;
        }
        o->n++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ != '}')
            return -1;
        break;
    }
    return *p == '\n' && p[1] == '\0' ? 0 : -1;
}

static const char *jget(const jobj_t *o, const char *key)
{
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->key[i], key) == 0)
            return o->val[i];
    return NULL;
}

static int looks_like_ts(const char *ts)
{
    /* 2026-11-26T09:00:00.123Z */
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (ts == NULL || strlen(ts) != strlen(shape))
        return 0;
    for (size_t i = 0; shape[i] != '\0'; i++) {
        if (shape[i] == 'd' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != shape[i])
            return 0;
    }
    return 1;
}

static jobj_t jo; /* large: keep it off the stack */

/* Must run first: nothing has called log_init() yet. */
static void test_before_init(void)
{
    const char *out;

    CHECK(!log_enabled(LOG_LVL_DEBUG));
    CHECK(log_enabled(LOG_LVL_INFO));
    cap_begin();
    log_msg(LOG_LVL_DEBUG, "hidden", NULL);
    log_msg(LOG_LVL_INFO, "early", "k", "v", NULL);
    out = cap_end();
    CHECK_EQ_INT(count_lines(out), 1);
    CHECK_EQ_INT(json_parse_line(out, &jo), 0);
    CHECK_EQ_STR(jget(&jo, "site"), "-");
    CHECK_EQ_STR(jget(&jo, "component"), "comio");
    CHECK_EQ_STR(jget(&jo, "level"), "info");
    CHECK_EQ_STR(jget(&jo, "msg"), "early");
    CHECK_EQ_STR(jget(&jo, "k"), "v");
}

static void test_json_basic(void)
{
    const char *out;

    log_init("site-a", "storaged", LOG_LVL_DEBUG, 1);
    cap_begin();
    log_msg(LOG_LVL_ERROR, "Failed to replicate event", "event_id", "1701234567890-mybucket-myfile", "error",
            "remote returned 500: out of space", NULL);
    out = cap_end();
    CHECK_EQ_INT(count_lines(out), 1);
    CHECK_EQ_INT(json_parse_line(out, &jo), 0);
    CHECK_EQ_STR(jo.key[0], "ts");
    CHECK_EQ_STR(jo.key[1], "level");
    CHECK_EQ_STR(jo.key[2], "msg");
    CHECK(looks_like_ts(jget(&jo, "ts")));
    CHECK_EQ_STR(jget(&jo, "level"), "error");
    CHECK_EQ_STR(jget(&jo, "msg"), "Failed to replicate event");
    CHECK_EQ_STR(jget(&jo, "site"), "site-a");
    CHECK_EQ_STR(jget(&jo, "component"), "storaged");
    CHECK_EQ_STR(jget(&jo, "event_id"), "1701234567890-mybucket-myfile");
    CHECK_EQ_STR(jget(&jo, "error"), "remote returned 500: out of space");
    CHECK(strstr(out, "\"level\":\"error\",\"msg\":\"Failed to replicate event\"") != NULL);
}

static void test_json_levels(void)
{
    const char *names[] = {"debug", "info", "warn", "error"};
    const char *out, *line;

    log_init("s", "c", LOG_LVL_DEBUG, 1);
    cap_begin();
    for (int l = LOG_LVL_DEBUG; l <= LOG_LVL_ERROR; l++)
        log_msg((log_level_t)l, "m", NULL);
    out = cap_end();
    CHECK_EQ_INT(count_lines(out), 4);
    line = out;
    for (int l = 0; l < 4 && line != NULL && *line != '\0'; l++) {
        char one[512];
        const char *nl = strchr(line, '\n');
        size_t len = (size_t)(nl - line) + 1;
        CHECK(len < sizeof(one));
        memcpy(one, line, len);
        one[len] = '\0';
        CHECK_EQ_INT(json_parse_line(one, &jo), 0);
        CHECK_EQ_STR(jget(&jo, "level"), names[l]);
        line = nl + 1;
    }
}

static void test_json_escaping(void)
{
    const char *out;
    const char *nasty = "quote\" back\\slash\nnew\ttab\rcr\x01\x1f\x7f end";
    const char *utf8 = "caf\xc3\xa9 \xe2\x82\xac";

    log_init("site \"x\"", "comp\\y", LOG_LVL_INFO, 1);
    cap_begin();
    log_msg(LOG_LVL_WARN, "line1\nline2 \"q\"", "k", nasty, "utf8", utf8, "nil", (const char *)NULL, "empty", "", NULL);
    out = cap_end();
    CHECK_EQ_INT(count_lines(out), 1); /* the embedded newlines are escaped */
    CHECK_EQ_INT(json_parse_line(out, &jo), 0);
    CHECK_EQ_STR(jget(&jo, "msg"), "line1\nline2 \"q\"");
    CHECK_EQ_STR(jget(&jo, "site"), "site \"x\"");
    CHECK_EQ_STR(jget(&jo, "component"), "comp\\y");
    CHECK_EQ_STR(jget(&jo, "k"), nasty);
    CHECK_EQ_STR(jget(&jo, "utf8"), utf8);
    CHECK_EQ_STR(jget(&jo, "empty"), "");
    CHECK(strstr(out, "\"nil\":null") != NULL);
    CHECK(strstr(out, "\\u0001") != NULL);
    CHECK(strstr(out, "\\u001f") != NULL);
    CHECK(strstr(out, "\\u007f") != NULL);
    CHECK(strstr(out, "\\n") != NULL);
    CHECK(strstr(out, "\\\"") != NULL);
    CHECK(strstr(out, "\\\\") != NULL);
    CHECK(strstr(out, "caf\xc3\xa9") != NULL); /* UTF-8 passes through raw */
    CHECK(strstr(out, "\"level\":\"warn\"") != NULL);
}

/* A line is valid UTF-8 whatever the values hold: a byte that is not part of
 * valid UTF-8 is written as \udcXX, which the JSON reader turns back into the
 * byte, so a key's bytes can be recovered from the log. */
static void test_not_utf8(void)
{
    const char *out;
    const char *raw = "a\xff b\xc3( c\xed\xa0\x80 d\xe2\x82 \xc3\xa9";

    log_init("s", "c", LOG_LVL_INFO, 1);
    cap_begin();
    log_msg(LOG_LVL_WARN, "odd key", "key", raw, NULL);
    out = cap_end();
    for (const unsigned char *p = (const unsigned char *)out; *p != '\0';) {
        size_t n = utf8_seq_len(p, strnlen((const char *)p, 4));
        CHECK(n > 0);
        p += n > 0 ? n : 1;
    }
    CHECK(strstr(out, "a\\udcff b\\udcc3(") != NULL);
    CHECK(strstr(out, "\xc3\xa9") != NULL); /* valid UTF-8 stays readable */
    CHECK_EQ_INT(json_parse_line(out, &jo), 0);
    CHECK_EQ_STR(jget(&jo, "key"), raw);

    log_init("s", "c", LOG_LVL_INFO, 0); /* the text format escapes alike */
    cap_begin();
    log_msg(LOG_LVL_WARN, "odd key", "key", raw, NULL);
    out = cap_end();
    CHECK(strstr(out, "\\udcff") != NULL);
}

static void test_filter(void)
{
    const char *out;

    log_init("s", "c", LOG_LVL_WARN, 1);
    CHECK(!log_enabled(LOG_LVL_DEBUG));
    CHECK(!log_enabled(LOG_LVL_INFO));
    CHECK(log_enabled(LOG_LVL_WARN));
    CHECK(log_enabled(LOG_LVL_ERROR));
    cap_begin();
    log_msg(LOG_LVL_DEBUG, "hidden-debug", NULL);
    log_msg(LOG_LVL_INFO, "hidden-info", NULL);
    log_msg(LOG_LVL_WARN, "shown-warn", NULL);
    log_msg(LOG_LVL_ERROR, "shown-error", NULL);
    out = cap_end();
    CHECK_EQ_INT(count_lines(out), 2);
    CHECK(strstr(out, "hidden") == NULL);
    CHECK(strstr(out, "shown-warn") != NULL);
    CHECK(strstr(out, "shown-error") != NULL);

    log_init("s", "c", LOG_LVL_ERROR, 1);
    cap_begin();
    log_msg(LOG_LVL_WARN, "hidden", NULL);
    out = cap_end();
    CHECK_EQ_INT(strlen(out), 0);
}

static void test_parse_level(void)
{
    log_level_t l = LOG_LVL_ERROR;

    CHECK(log_parse_level("debug", &l) == CIO_OK && l == LOG_LVL_DEBUG);
    CHECK(log_parse_level("info", &l) == CIO_OK && l == LOG_LVL_INFO);
    CHECK(log_parse_level("warn", &l) == CIO_OK && l == LOG_LVL_WARN);
    CHECK(log_parse_level("warning", &l) == CIO_OK && l == LOG_LVL_WARN);
    CHECK(log_parse_level("error", &l) == CIO_OK && l == LOG_LVL_ERROR);
    CHECK(log_parse_level("INFO", &l) == CIO_OK && l == LOG_LVL_INFO);
    l = LOG_LVL_WARN;
    CHECK_EQ_INT(log_parse_level("loud", &l), CIO_EINVAL);
    CHECK_EQ_INT(log_parse_level("", &l), CIO_EINVAL);
    CHECK_EQ_INT(log_parse_level(NULL, &l), CIO_EINVAL);
    CHECK_EQ_INT(log_parse_level("info ", &l), CIO_EINVAL);
    CHECK_EQ_INT(l, LOG_LVL_WARN);
}

static void test_text(void)
{
    const char *out;

    log_init("site-a", "storaged", LOG_LVL_DEBUG, 0);
    cap_begin();
    log_msg(LOG_LVL_INFO, "listening", "port", "8080", "path", "/var/lib/my data", "q", "say \"hi\"", "eq", "a=b", "empty", "",
            "nil", (const char *)NULL, NULL);
    log_msg(LOG_LVL_ERROR, "two\nlines", NULL);
    log_msg(LOG_LVL_WARN, "w", NULL);
    log_msg(LOG_LVL_DEBUG, "d", NULL);
    out = cap_end();
    CHECK_EQ_INT(count_lines(out), 4);
    {
        char ts[25];
        memcpy(ts, out, 24);
        ts[24] = '\0';
        CHECK(looks_like_ts(ts));
    }
    CHECK(strstr(out, "Z INFO  storaged[site-a] listening port=8080 path=\"/var/lib/my data\" q=\"say \\\"hi\\\"\" eq=\"a=b\" "
                      "empty=\"\" nil=null\n") != NULL);
    CHECK(strstr(out, "Z ERROR storaged[site-a] two\\nlines\n") != NULL);
    CHECK(strstr(out, "Z WARN  storaged[site-a] w\n") != NULL);
    CHECK(strstr(out, "Z DEBUG storaged[site-a] d\n") != NULL);
}

static void test_init_fallbacks(void)
{
    const char *out;

    /* log_init with NULL/empty identity falls back to the pre-init defaults. */
    log_init(NULL, "", LOG_LVL_INFO, 1);
    cap_begin();
    log_msg(LOG_LVL_INFO, NULL, NULL);
    out = cap_end();
    CHECK_EQ_INT(json_parse_line(out, &jo), 0);
    CHECK_EQ_STR(jget(&jo, "site"), "-");
    CHECK_EQ_STR(jget(&jo, "component"), "comio");
    CHECK_EQ_STR(jget(&jo, "msg"), "");
}

static void test_truncation(void)
{
    static char big[20000];
    const char *out;
    size_t len;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_init("s", "c", LOG_LVL_INFO, 1);

    /* One huge value: cut with "...", later fields dropped, still valid JSON. */
    cap_begin();
    log_msg(LOG_LVL_INFO, "big", "v", big, "after", "gone", NULL);
    out = cap_end();
    len = strlen(out);
    CHECK(len <= 8192);
    CHECK_EQ_INT(count_lines(out), 1);
    CHECK_EQ_INT(json_parse_line(out, &jo), 0);
    CHECK(jget(&jo, "v") != NULL && strlen(jget(&jo, "v")) > 7000);
    CHECK(jget(&jo, "v") != NULL && strcmp(jget(&jo, "v") + strlen(jget(&jo, "v")) - 4, "x...") == 0);
    CHECK(jget(&jo, "after") == NULL);

    /* A huge message is cut early; site and fields survive. */
    cap_begin();
    log_msg(LOG_LVL_INFO, big, "k", "v", NULL);
    out = cap_end();
    CHECK(strlen(out) <= 8192);
    CHECK_EQ_INT(json_parse_line(out, &jo), 0);
    CHECK_EQ_STR(jget(&jo, "site"), "s");
    CHECK_EQ_STR(jget(&jo, "k"), "v");
    CHECK(jget(&jo, "msg") != NULL && strlen(jget(&jo, "msg")) < 3000);

    /* Values that escape 6x: the cut never splits an escape. */
    {
        static char ctl[5000];
        memset(ctl, '\x01', sizeof(ctl) - 1);
        ctl[sizeof(ctl) - 1] = '\0';
        cap_begin();
        log_msg(LOG_LVL_INFO, "ctl", "a", ctl, "b", ctl, NULL);
        out = cap_end();
        CHECK(strlen(out) <= 8192);
        CHECK_EQ_INT(json_parse_line(out, &jo), 0);
    }

    /* Many fields: the line ends before the cap, keys are never half-written. */
    cap_begin();
    {
        static char mid[3000];
        memset(mid, 'y', sizeof(mid) - 1);
        mid[sizeof(mid) - 1] = '\0';
        log_msg(LOG_LVL_INFO, "many", "a", mid, "b", mid, "c", mid, "d", mid, "e", mid, NULL);
    }
    out = cap_end();
    CHECK(strlen(out) <= 8192);
    CHECK_EQ_INT(json_parse_line(out, &jo), 0);
    CHECK(jget(&jo, "e") == NULL);

    /* UTF-8: a cut never leaves half a character. */
    {
        static char u[12001];
        for (size_t i = 0; i + 3 <= 12000; i += 3)
            memcpy(u + i, "\xe2\x82\xac", 3);
        u[12000] = '\0';
        cap_begin();
        log_msg(LOG_LVL_INFO, "utf8", "u", u, NULL);
        out = cap_end();
        CHECK_EQ_INT(json_parse_line(out, &jo), 0);
        len = jget(&jo, "u") ? strlen(jget(&jo, "u")) : 0;
        CHECK(len > 3 && (len - 3) % 3 == 0); /* whole euro signs, then "..." */
    }

    /* Text format truncates too and keeps one line. */
    log_init("s", "c", LOG_LVL_INFO, 0);
    cap_begin();
    log_msg(LOG_LVL_INFO, "big", "v", big, "w", "with space", NULL);
    out = cap_end();
    CHECK(strlen(out) <= 8192);
    CHECK_EQ_INT(count_lines(out), 1);
    CHECK(strlen(out) > 4 && strcmp(out + strlen(out) - 4, "...\n") == 0);
}

static void test_errno_kept(void)
{
    log_init("s", "c", LOG_LVL_INFO, 1);
    cap_begin();
    errno = ENOENT;
    log_msg(LOG_LVL_ERROR, "open failed", "error", strerror(errno), NULL);
    CHECK_EQ_INT(errno, ENOENT);
    cap_end();
}

#define THREADS 8
#define PER_THREAD 300

static void *log_thread(void *arg)
{
    char id[16], payload[600];

    snprintf(id, sizeof(id), "%d", (int)(long)arg);
    memset(payload, 'a' + (int)(long)arg, sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    for (int i = 0; i < PER_THREAD; i++)
        log_msg(LOG_LVL_INFO, "concurrent", "thread", id, "payload", payload, NULL);
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[THREADS];
    const char *out, *line;
    int bad = 0, lines = 0;

    log_init("s", "c", LOG_LVL_INFO, 1);
    cap_begin();
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, log_thread, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    out = cap_end();
    for (line = out; *line != '\0';) {
        char one[2048];
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (len >= sizeof(one)) {
            bad++;
        } else {
            memcpy(one, line, len);
            one[len] = '\0';
            if (json_parse_line(one, &jo) != 0 || jget(&jo, "payload") == NULL || strlen(jget(&jo, "payload")) != 599)
                bad++;
        }
        lines++;
        line += len;
    }
    CHECK_EQ_INT(lines, THREADS * PER_THREAD);
    CHECK_EQ_INT(bad, 0); /* no interleaved lines */
}

static void test_ratelimit(void)
{
    static log_ratelimit_t rl = LOG_RATELIMIT_INIT;
    uint64_t left = 99;
    int taken = 0;

    for (int i = 0; i < 25; i++)
        taken += log_ratelimit_take(&rl, 1000, 10, &left);
    CHECK(taken == 10);
    CHECK(left == 0); /* the tenth line: none left out before it */
    CHECK(log_ratelimit_take(&rl, 1001, 10, &left) == 1);
    CHECK(left == 15); /* the next second's first line tells of the 15 */
    CHECK(log_ratelimit_take(&rl, 1001, 10, &left) == 1 && left == 0);
    CHECK(log_ratelimit_take(&rl, 1000, 0, &left) == 0); /* a cap of 0 writes nothing */
}

int main(void)
{
    RUN(test_before_init);
    RUN(test_ratelimit);
    RUN(test_json_basic);
    RUN(test_json_levels);
    RUN(test_json_escaping);
    RUN(test_not_utf8);
    RUN(test_filter);
    RUN(test_parse_level);
    RUN(test_text);
    RUN(test_init_fallbacks);
    RUN(test_truncation);
    RUN(test_errno_kept);
    RUN(test_threads);
    return TEST_SUMMARY();
}
