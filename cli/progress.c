/* progress.c - the comio subcommands' progress line helpers. */
#include <stdio.h>
#include "cli/progress.h"

void cli_size_text(uint64_t b, char *out, size_t cap)
{
    static const char *const u[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1000 && i < 4)
        v /= 1000, i++;
    snprintf(out, cap, i == 0 ? "%.0f%s" : "%.1f%s", v, u[i]);
}

void cli_bar(uint64_t done, uint64_t total, char out[CLI_BAR_WIDTH + 1])
{
    int fill = total > 0 ? (int)(CLI_BAR_WIDTH * (done < total ? done : total) / total) : 0;
    for (int i = 0; i < CLI_BAR_WIDTH; i++)
        out[i] = i < fill ? '#' : '.';
    out[CLI_BAR_WIDTH] = '\0';
}
