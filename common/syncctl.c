/* syncctl.c - the full sync commands of repld's control socket. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/ctl.h"
#include "common/syncctl.h"

static const char *cmd_name(syncctl_cmd_t c)
{
    return c == SYNCCTL_RESYNC ? "resync" : c == SYNCCTL_CANCEL ? "cancel" : "report";
}

int syncctl_format(const syncctl_req_t *r, char *cmd, size_t cap)
{
    int n = snprintf(cmd, cap, "%s %s%s%s%s%s", cmd_name(r->cmd), r->target, r->bucket[0] ? " " : "", r->bucket,
                     r->dry_run ? " -dry-run" : "", r->delete_extra ? " -delete-extra" : "");
    if (n >= 0 && (size_t)n < cap && r->rate != 0)
        n += snprintf(cmd + n, cap - (size_t)n, " -rate=%" PRIu64, r->rate);
    return n < 0 || (size_t)n >= cap ? CIO_EINVAL : 0;
}

int syncctl_parse(const char *cmd, syncctl_req_t *r, char *err, size_t errlen)
{
    char copy[CTL_CMD_MAX + 1], *save = NULL, *tok;
    memset(r, 0, sizeof(*r));
    if (strncmp(cmd, "resync ", 7) == 0)
        r->cmd = SYNCCTL_RESYNC;
    else if (strncmp(cmd, "cancel ", 7) == 0)
        r->cmd = SYNCCTL_CANCEL;
    else if (strncmp(cmd, "report ", 7) == 0)
        r->cmd = SYNCCTL_REPORT;
    else
        return CIO_ENOTFOUND;
    snprintf(copy, sizeof(copy), "%s", cmd + 7);
    if ((tok = strtok_r(copy, " ", &save)) == NULL || strlen(tok) >= sizeof(r->target)) {
        snprintf(err, errlen, "expected a target name");
        return CIO_EINVAL;
    }
    snprintf(r->target, sizeof(r->target), "%s", tok);
    while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
        if (r->cmd != SYNCCTL_RESYNC) {
            snprintf(err, errlen, "%s takes a target name only", cmd_name(r->cmd));
            return CIO_EINVAL;
        }
        if (strcmp(tok, "-dry-run") == 0) {
            r->dry_run = 1;
        } else if (strcmp(tok, "-delete-extra") == 0) {
            r->delete_extra = 1;
        } else if (strncmp(tok, "-rate=", 6) == 0) {
            char *end;
            unsigned long long v = strtoull(tok + 6, &end, 10);
            if (tok[6] < '0' || tok[6] > '9' || *end != '\0' || v == 0) {
                snprintf(err, errlen, "'%s': expected -rate=BYTES_PER_SECOND (> 0)", tok);
                return CIO_EINVAL;
            }
            r->rate = v;
        } else if (tok[0] == '-') {
            snprintf(err, errlen, "unknown option '%s'", tok);
            return CIO_EINVAL;
        } else if (r->bucket[0] == '\0' && strlen(tok) < sizeof(r->bucket)) {
            snprintf(r->bucket, sizeof(r->bucket), "%s", tok);
        } else {
            snprintf(err, errlen, "'%s' is not a bucket name", tok);
            return CIO_EINVAL;
        }
    }
    return 0;
}

int syncctl_send(const char *socket, const syncctl_req_t *r, buf_t *out, syncctl_answer_t *kind)
{
    char cmd[CTL_CMD_MAX + 1];
    int ret;
    if ((ret = syncctl_format(r, cmd, sizeof(cmd))) != 0)
        return ret;
    if ((ret = ctl_query(socket, cmd, out, 5000)) != 0)
        return ret;
    if (out->len == 0)
        return CIO_EIO; /* an older repld closes without a word on a command it does not know */
    *kind = out->len >= 3 && memcmp(out->data, "ok:", 3) == 0     ? SYNCCTL_OK
            : out->len >= 5 && memcmp(out->data, "busy:", 5) == 0 ? SYNCCTL_BUSY
            : r->cmd == SYNCCTL_REPORT && out->data[0] == '{'     ? SYNCCTL_OK
                                                                  : SYNCCTL_ERROR;
    return 0;
}
