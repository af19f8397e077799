/* log.c - structured log lines (JSON or text) written to stderr or a log file, one write(2) per line. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "common/clock.h"
#include "common/date.h"
#include "common/err.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/utf8.h"

/* A line never grows past this; long values are cut and end in "...". */
#define LOG_LINE_MAX 8192
/* Room always kept free for the tail: `..."` + `}` + `\n`. */
#define LOG_TAIL_RESERVE 6
#define LOG_IDENT_MAX 128
/* The message is cut well before the line cap so site and fields still fit. */
#define LOG_MSG_MAX 2048

/* Set once by log_init() before threads start; read-only afterwards. */
static char log_site[LOG_IDENT_MAX] = "-";
static char log_component[LOG_IDENT_MAX] = "comio";
static log_level_t log_min_level = LOG_LVL_INFO;
static int log_json = 1;
/* Set by log_open_file() on the main thread before other threads start. */
static char log_path[PATH_MAX];

typedef struct {
    char buf[LOG_LINE_MAX];
    size_t len;
    int full; /* a value was cut: nothing more goes in but the tail */
} log_line_t;

static const char *const log_json_names[] = {"debug", "info", "warn", "error"};
static const char *const log_text_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

static void log_copy_ident(char *dst, const char *src, const char *dflt)
{
    snprintf(dst, LOG_IDENT_MAX, "%s", src != NULL && src[0] != '\0' ? src : dflt);
}

void log_init(const char *site, const char *component, log_level_t min_level, int json)
{
    log_copy_ident(log_site, site, "-");
    log_copy_ident(log_component, component, "comio");
    log_min_level = min_level < LOG_LVL_DEBUG ? LOG_LVL_DEBUG : min_level > LOG_LVL_ERROR ? LOG_LVL_ERROR : min_level;
    log_json = json != 0;
}

static int log_dup_onto_stderr(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0)
        return CIO_EIO;
    /* dup2 swaps fd 2 atomically: a concurrent write lands whole in one file */
    if (fd != STDERR_FILENO && dup2(fd, STDERR_FILENO) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return CIO_EIO;
    }
    if (fd != STDERR_FILENO)
        close(fd);
    return CIO_OK;
}

int log_open_file(const char *path)
{
    int rc;

    if (path == NULL || strlen(path) >= sizeof(log_path)) {
        errno = ENAMETOOLONG;
        return CIO_EIO;
    }
    if ((rc = log_dup_onto_stderr(path)) == CIO_OK)
        snprintf(log_path, sizeof(log_path), "%s", path);
    return rc;
}

int log_reopen(void)
{
    return log_path[0] == '\0' ? CIO_OK : log_dup_onto_stderr(log_path);
}

int log_parse_level(const char *s, log_level_t *out)
{
    static const struct {
        const char *name;
        log_level_t lvl;
    } names[] = {
        {"debug", LOG_LVL_DEBUG},  {"info", LOG_LVL_INFO},   {"warn", LOG_LVL_WARN},
        {"warning", LOG_LVL_WARN}, {"error", LOG_LVL_ERROR},
    };

    if (s == NULL)
        return CIO_EINVAL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].lvl;
            return CIO_OK;
        }
    }
    return CIO_EINVAL;
}

int log_enabled(log_level_t lvl)
{
    return lvl >= log_min_level;
}

/* Appends n raw bytes, all or nothing, keeping the tail reserve free. */
static int log_raw(log_line_t *l, const char *s, size_t n)
{
    if (l->full || l->len + n + LOG_TAIL_RESERVE > sizeof(l->buf)) {
        l->full = 1;
        return -1;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 0;
}

static int log_str(log_line_t *l, const char *s)
{
    return log_raw(l, s, strlen(s));
}

/* Writes the escaped form of the character at p (a NUL-terminated string)
 * into out, sets *used to the bytes of p it stands for, and returns its
 * length. JSON escapes serve the text format too, so one line stays one line
 * there. Valid UTF-8 passes through whole, so text stays readable; a byte
 * that is not part of valid UTF-8 becomes \udcXX, the escape buf_json_str
 * uses (common/utf8.h), so every line is valid UTF-8 and a key's bytes can
 * be recovered from it. */
static size_t log_escape_char(const unsigned char *p, size_t *used, char out[8])
{
    unsigned char c = *p;

    *used = 1;
    switch (c) {
    case '"':
        return (size_t)snprintf(out, 8, "\\\"");
    case '\\':
        return (size_t)snprintf(out, 8, "\\\\");
    case '\n':
        return (size_t)snprintf(out, 8, "\\n");
    case '\r':
        return (size_t)snprintf(out, 8, "\\r");
    case '\t':
        return (size_t)snprintf(out, 8, "\\t");
    }
    if (c < 0x20 || c == 0x7f) {
        memcpy(out, "\\u00", 4);
        out[4] = hex_lower[c >> 4];
        out[5] = hex_lower[c & 0xf];
        return 6;
    }
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    size_t n = utf8_seq_len(p, strnlen((const char *)p, 4));
    if (n == 0) {
        memcpy(out, "\\udc", 4);
        out[4] = hex_lower[c >> 4];
        out[5] = hex_lower[c & 0xf];
        return 6;
    }
    memcpy(out, p, n);
    *used = n;
    return n;
}

/* Appends s escaped, at most `max` output bytes of it. A cut value ends in
 * "..." (characters are written whole, so no UTF-8 sequence is split); when
 * the cut was for lack of room in the line, the line is marked full and -1
 * returned. */
static int log_escaped_max(log_line_t *l, const char *s, size_t max)
{
    size_t start = l->len;
    char esc[8];

    if (l->full)
        return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0';) {
        size_t used;
        size_t n = log_escape_char(p, &used, esc);
        int no_room = l->len + n + LOG_TAIL_RESERVE > sizeof(l->buf);
        if (no_room || l->len - start + n > max) {
            memcpy(l->buf + l->len, "...", 3); /* the tail reserve has room for it */
            l->len += 3;
            if (no_room) {
                l->full = 1;
                return -1;
            }
            return 0;
        }
        memcpy(l->buf + l->len, esc, n);
        l->len += n;
        p += used;
    }
    return 0;
}

static int log_escaped(log_line_t *l, const char *s)
{
    return log_escaped_max(l, s, sizeof(l->buf));
}

/* Text values go bare unless they would be ambiguous: empty, or holding a
 * space, quote, '=', backslash, or a control byte. */
static int log_text_needs_quotes(const char *s)
{
    if (*s == '\0')
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            return 1;
    return 0;
}

static void log_json_field(log_line_t *l, const char *key, const char *value)
{
    size_t mark = l->len;

    /* A key is written whole or not at all, so the object stays well formed. */
    if (log_str(l, ",\"") != 0 || log_escaped(l, key) != 0 || log_str(l, "\":") != 0) {
        l->len = mark;
        l->full = 1;
        return;
    }
    if (value == NULL) {
        if (log_str(l, "null") != 0)
            l->len = mark;
        return;
    }
    if (log_str(l, "\"") != 0) {
        l->len = mark;
        return;
    }
    log_escaped(l, value);
    l->buf[l->len++] = '"'; /* always fits: the reserve keeps room for it */
}

static void log_text_field(log_line_t *l, const char *key, const char *value)
{
    size_t mark = l->len;

    if (log_str(l, " ") != 0 || log_escaped(l, key) != 0 || log_str(l, "=") != 0) {
        l->len = mark;
        l->full = 1;
        return;
    }
    if (value == NULL) {
        if (log_str(l, "null") != 0)
            l->len = mark;
        return;
    }
    if (!log_text_needs_quotes(value)) {
        log_escaped(l, value);
        return;
    }
    if (log_str(l, "\"") != 0) {
        l->len = mark;
        return;
    }
    log_escaped(l, value);
    l->buf[l->len++] = '"';
}

static void log_write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void log_vmsg(log_level_t lvl, const char *msg, va_list ap)
{
    log_line_t l;
    char ts[DATE_ISO8601_MS_LEN + 1];
    const char *key;
    int saved_errno = errno; /* callers log and then still read errno */
    unsigned li;

    if (!log_enabled(lvl))
        return;
    li = lvl < LOG_LVL_DEBUG ? 0 : lvl > LOG_LVL_ERROR ? 3 : (unsigned)lvl;
    if (msg == NULL)
        msg = "";
    l.len = 0;
    l.full = 0;
    date_iso8601_ms(clock_wall_ms(), ts);

    if (log_json) {
        log_str(&l, "{\"ts\":\"");
        log_str(&l, ts);
        log_str(&l, "\",\"level\":\"");
        log_str(&l, log_json_names[li]);
        log_str(&l, "\",\"msg\":\"");
        log_escaped_max(&l, msg, LOG_MSG_MAX);
        l.buf[l.len++] = '"';
        log_json_field(&l, "site", log_site);
        log_json_field(&l, "component", log_component);
    } else {
        log_str(&l, ts);
        log_str(&l, " ");
        log_str(&l, log_text_names[li]);
        log_str(&l, " ");
        log_escaped(&l, log_component);
        log_str(&l, "[");
        log_escaped(&l, log_site);
        log_str(&l, "] ");
        log_escaped_max(&l, msg, LOG_MSG_MAX);
    }
    /* Consume every pair even once the line is full: the NULL key ends the list. */
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        if (l.full)
            continue;
        if (log_json)
            log_json_field(&l, key, value);
        else
            log_text_field(&l, key, value);
    }
    if (log_json)
        l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';
    log_write_all(l.buf, l.len);
    errno = saved_errno;
}

void log_msg(log_level_t lvl, const char *msg, ...)
{
    va_list ap;

    va_start(ap, msg);
    log_vmsg(lvl, msg, ap);
    va_end(ap);
}

int log_ratelimit_take(log_ratelimit_t *rl, int64_t now, unsigned per_second, uint64_t *left_out)
{
    int ok;

    pthread_mutex_lock(&rl->mu);
    if (now != rl->second) {
        rl->second = now;
        rl->lines = 0;
    }
    ok = rl->lines < per_second;
    if (ok) {
        rl->lines++;
        *left_out = rl->skipped;
        rl->skipped = 0;
    } else {
        rl->skipped++;
    }
    pthread_mutex_unlock(&rl->mu);
    return ok;
}
