/* main.c - repld, the replication log shipper: configuration check only so far.
 *
 * Shipping (tailing storaged's log, batching, sending, retrying) is the next
 * milestone; until then repld validates its configuration and says plainly
 * that it does not ship, so nobody mistakes it for a working replicator. */
#include <stdio.h>
#include "conf.h"
#include "log.h"

int main(int argc, char **argv)
{
    static const char *const extra[] = {"--list-failed", "--retry-failed", NULL};
    conf_t conf;
    char err[1024] = "";

    if (conf_init(&conf) != 0)
        return 1;
    if (conf_from_args(&conf, argc, argv, extra, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (conf.help) {
        conf_usage("repld");
        return 0;
    }
    if (conf_finalize(&conf, 0, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    log_init(conf.site_id, "repld", conf.log_level, conf.log_json);
    log_msg(LOG_LVL_ERROR, "repld does not ship the replication log yet; storaged keeps every record durably until it does",
            NULL);
    conf_free(&conf);
    return 1;
}
