/* log.h - structured log lines on stderr (JSON by default, text for people).
 *
 * Every line carries ts, level, msg, site and component, then the caller's
 * fields. Thread-safe: one write(2) per line. Never pass secrets as fields. */
#ifndef COMIO_LOG_H
#define COMIO_LOG_H

#include <stdarg.h>

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

#endif
