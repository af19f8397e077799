/* failed.h - `repld --list-failed`: the failed events as JSON lines.
 *
 * The table itself ("repl_failed") and putting its events back in line
 * (--retry-failed) belong to the log module (common/replog.h). */
#ifndef COMIO_REPLD_FAILED_H
#define COMIO_REPLD_FAILED_H

#include <stdint.h>
#include <stdio.h>
#include "common/err.h"
#include "common/meta.h"

/* Prints the failed events on out, one JSON object a line, in seq order, in
 * a read transaction of its own. *count tells how many. */
int failed_print(meta_t *m, FILE *out, uint64_t *count) CIO_MUST_CHECK;

#endif
