/* failed.c - `repld --list-failed` and `--retry-failed`, for every target or one. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/date.h"
#include "common/replog.h"
#include "proto/logrec.h"
#include "repld/failed.h"

typedef struct {
    FILE *out;
    const char *target; /* NULL: every target */
    const char *legacy; /* the target an entry from before targets belongs to (the first); "" when none is configured */
    uint64_t count;
} print_ctx_t;

static int print_one(void *ctx, const replog_failed_t *e)
{
    print_ctx_t *pc = ctx;
    logrec_t r;
    char id[LOGREC_EVENT_ID_MAX], ts[DATE_ISO8601_LEN + 1];
    const char *tname = e->target_len > 0 ? e->target : pc->legacy;
    size_t tlen = e->target_len > 0 ? e->target_len : strlen(pc->legacy);
    buf_t b;

    if (pc->target != NULL && (strlen(pc->target) != tlen || memcmp(pc->target, tname, tlen) != 0))
        return 0;
    date_iso8601(e->failed_at_ms, ts);
    buf_init(&b, 64 * 1024);
    buf_printf(&b, "{\"seq\":%" PRIu64 ",\"target\":", e->seq);
    buf_json_str(&b, tname, tlen);
    if (logrec_decode(e->rec, e->rec_len, &r) == 0) {
        logrec_event_id(&r, id, sizeof(id));
        buf_puts(&b, ",\"event_id\":");
        buf_json_str(&b, id, strlen(id));
        buf_printf(&b, ",\"op\":\"%s\",\"bucket\":", logrec_op_name(r.op));
        buf_json_str(&b, r.bucket, r.bucket_len);
        buf_puts(&b, ",\"key\":");
        buf_json_str(&b, r.key, r.key_len);
    }
    buf_puts(&b, ",\"error\":");
    buf_json_str(&b, e->error, e->error_len);
    buf_printf(&b, ",\"attempts\":%u,\"failed_at\":\"%s\"}\n", e->attempts, ts);
    if (b.err == 0)
        fwrite(b.data, 1, b.len, pc->out);
    buf_free(&b);
    pc->count++;
    return 0;
}

int failed_print(meta_t *m, const conf_t *conf, const char *target, FILE *out, uint64_t *count)
{
    print_ctx_t pc = {out, target, conf->ntargets > 0 ? conf->targets[0].name : "", 0};
    MDB_txn *txn;
    int rc, ret;

    if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin");
    ret = replog_failed_foreach(m, txn, NULL, print_one, &pc);
    mdb_txn_abort(txn);
    *count = pc.count;
    return ret;
}

/* Puts the failed events of `target` (NULL: all) back in line, in txn. The
 * per-target state is first brought in line with the configuration, as
 * repld does when it starts, so that entries from before targets are the
 * first target's. */
static int requeue(meta_t *m, MDB_txn *txn, const conf_t *conf, const char *target, uint64_t *n)
{
    const char **names = NULL;
    int ret = 0;

    if (conf->ntargets > 0) {
        if ((names = calloc(conf->ntargets, sizeof(*names))) == NULL)
            return CIO_ENOMEM;
        for (size_t i = 0; i < conf->ntargets; i++)
            names[i] = conf->targets[i].name;
        ret = replog_targets_open(m, txn, names, conf->ntargets, NULL);
        free(names);
    }
    return ret != 0 ? ret : replog_requeue_failed(m, txn, target, n);
}

int failed_command(const conf_t *conf, int retry, const char *target, FILE *out, char *err, size_t errlen)
{
    meta_t meta;
    MDB_txn *txn;
    char why[1024];
    uint64_t n = 0;
    int rc, ret;

    if (target != NULL) {
        size_t i = 0;
        while (i < conf->ntargets && strcmp(conf->targets[i].name, target) != 0)
            i++;
        if (i == conf->ntargets) {
            snprintf(err, errlen, "--target: no target named '%s' in the configuration", target);
            return CIO_EINVAL;
        }
    }
    /* a command creates nothing: a wrong path must fail, not show an empty site */
    if ((ret = meta_open_env(&meta, conf->meta_path, conf->meta_map_size, retry ? 0 : META_OPEN_RDONLY, why, sizeof(why))) != 0) {
        snprintf(err, errlen, "cannot open the metadata: %s", why);
        return ret;
    }
    if (!retry) {
        ret = failed_print(&meta, conf, target, out, &n);
    } else if ((rc = mdb_txn_begin(meta.env, NULL, 0, &txn)) != 0) {
        ret = meta_err(rc, "mdb_txn_begin");
    } else if ((ret = requeue(&meta, txn, conf, target, &n)) != 0) {
        mdb_txn_abort(txn);
    } else if ((ret = meta_err(mdb_txn_commit(txn), "mdb_txn_commit")) == 0) {
        replog_wake(&meta); /* a running repld takes them at once */
        fprintf(out, "%llu failed event(s) put back in line%s\n", (unsigned long long)n,
                n ? "; a running repld sends them now, a stopped one when it starts" : "");
    }
    meta_close(&meta);
    if (ret != 0)
        snprintf(err, errlen, "%s", cio_strerror(ret));
    return ret;
}
