/* log.h - structured log lines on stderr (JSON by default, text for people).
 *
 * Every line carries ts, level, msg, site and component, then the caller's
 * fields. Thread-safe: one write(2) per line. Never pass secrets as fields. */
#ifndef COMIO_LOG_H
#define COMIO_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include "common/err.h"

typedef enum {
    LOG_LVL_DEBUG = 0,
    LOG_LVL_INFO = 1,
    LOG_LVL_WARN = 2,
    LOG_LVL_ERROR = 3,
} log_level_t;

/* Sets the identity stamped on every line and the filter. `site` and
 * `component` are copied. `json` = 1 for JSON lines, 0 for text. Lines logged
 * before log_init() use site "-" and component "comio" at level info, JSON. */
void log_init(const char *site, const char *component, log_level_t min_level, int json);

/* Sends every later line (and anything else written to stderr, such as a
 * sanitizer report) to the file at `path`, opened for appending (created
 * 0640): the file is dup2'ed onto stderr, so a line is never split between
 * two files. The path is copied for log_reopen(). Returns 0, or CIO_EIO with
 * errno set when the file cannot be opened (stderr is then unchanged). */
int log_open_file(const char *path) CIO_MUST_CHECK;

/* Opens the file given to log_open_file() again, for log rotation (SIGHUP):
 * lines written before go to the old file, lines after to the new one.
 * Returns 0 when there is no log file; CIO_EIO when it cannot be opened, and
 * then lines keep going to the old file. Safe while other threads log. */
int log_reopen(void) CIO_MUST_CHECK;

/* Parses "debug", "info", "warn"/"warning", "error". 0 or CIO_EINVAL. */
int log_parse_level(const char *s, log_level_t *out);

/* Emits one line if `lvl` passes the filter. The variadic part is pairs of
 * (const char *key, const char *value), terminated by a single NULL key.
 * Values are written as JSON strings (escaped); a NULL value is written as
 * null. Example:
 *   log_msg(LOG_LVL_ERROR, "Failed to replicate event", "event_id", id, "error", e, NULL); */
void log_msg(log_level_t lvl, const char *msg, ...);
void log_vmsg(log_level_t lvl, const char *msg, va_list ap);

/* Returns 1 when a line at `lvl` would be written. */
int log_enabled(log_level_t lvl);

/* A cap on the lines a second of one message that a flood of requests could
 * repeat (a full store fails every PUT). Static, LOG_RATELIMIT_INIT. */
typedef struct {
    pthread_mutex_t mu;
    int64_t second;
    unsigned lines;
    uint64_t skipped;
} log_ratelimit_t;
#define LOG_RATELIMIT_INIT                                                                                                         \
    {                                                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, 0, 0, 0                                                                                         \
    }

/* Returns 1 when a line may be written in second `now` (at most `per_second`
 * lines a second), with *left_out the ones not written since the last line
 * (for the line to say); 0 when not, counting it. Safe from any thread. */
int log_ratelimit_take(log_ratelimit_t *rl, int64_t now, unsigned per_second, uint64_t *left_out);

#endif
