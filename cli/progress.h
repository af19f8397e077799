/* progress.h - what the comio subcommands' progress lines share: byte
 * counts as short text, and the bar. */
#ifndef COMIO_CLI_PROGRESS_H
#define COMIO_CLI_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#define CLI_BAR_WIDTH 20

/* Writes b bytes as "812B", "3.4MB", "1.2TB" (powers of 1000) into out[cap]. */
void cli_size_text(uint64_t b, char *out, size_t cap);

/* Writes a bar of CLI_BAR_WIDTH characters, '#' for the share done/total
 * and '.' for the rest, NUL-terminated, into out (CLI_BAR_WIDTH + 1 bytes).
 * A total of 0 draws an empty bar. */
void cli_bar(uint64_t done, uint64_t total, char out[CLI_BAR_WIDTH + 1]);

#endif
