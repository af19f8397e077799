/* failed.h - `repld --list-failed` and `--retry-failed`: the failed events
 * as JSON lines, and putting them back in line.
 *
 * The table itself ("repl_failed") and putting its events back in line
 * (--retry-failed) belong to the log module (common/replog.h). */
#ifndef COMIO_REPLD_FAILED_H
#define COMIO_REPLD_FAILED_H

#include <stdint.h>
#include <stdio.h>
#include "common/conf.h"
#include "common/err.h"
#include "common/meta.h"

/* Prints the failed events of target `target` (NULL: of every target, target
 * by target) on out, one JSON object a line with the target's name, in seq
 * order, in a read transaction of its own. Entries from before targets are
 * the first configured target's. *count tells how many. */
int failed_print(meta_t *m, const conf_t *conf, const char *target, FILE *out, uint64_t *count) CIO_MUST_CHECK;

/* Runs `repld --list-failed` (retry 0) or `--retry-failed` (retry 1), for
 * the target named `target` (`--target NAME`; NULL: every target), on the
 * site of `conf`: opens its environment without creating anything
 * (read-only to list), prints the events, or moves them back in line and
 * wakes a running repld, then prints one line saying how many, on out.
 * Returns 0, or an error with a one-line reason in err (errlen bytes) that
 * names the path when there is no environment there, or that names the
 * target when no configured target has that name (CIO_EINVAL). */
int failed_command(const conf_t *conf, int retry, const char *target, FILE *out, char *err, size_t errlen) CIO_MUST_CHECK;

#endif
