/* tombgc.c - the collection of a replica's expired tombstones, a small slice per commit round. */
#include <inttypes.h>
#include <stdio.h>
#include "storaged/commit_int.h"

#define GC_INTERVAL_MS 60000 /* a tombstone collection pass starts at most this often */
#define GC_SLICE 256         /* tombstones looked at per round: keeps each transaction short */

int tombgc_due(commit_t *c, int64_t now)
{
    return __atomic_load_n(&c->tomb_ttl_ms, __ATOMIC_RELAXED) != 0 && (c->gc_running || now >= c->gc_next_ms);
}

/* One slice of a pass, in the round's transaction. Removing a tombstone is
 * no promise to anybody, so it needs no sync of its own. */
int tombgc_slice(commit_t *c, MDB_txn *txn, uint64_t *collected)
{
    uint64_t ttl = __atomic_load_n(&c->tomb_ttl_ms, __ATOMIC_RELAXED), removed = 0;
    int64_t now = clock_wall_ms();
    int ret, done = 0;

    *collected = 0;
    if (!tombgc_due(c, now))
        return 0;
    if (!c->gc_running) {
        c->gc_running = 1;
        c->gc_next_ms = now + GC_INTERVAL_MS;
        c->gc_pos_len = 0;
        c->gc_removed = 0;
    }
    if (now < 0 || ttl > (uint64_t)now)
        done = 1; /* nothing can be that old */
    else if ((ret = meta_tomb_gc(c->meta, txn, c->gc_pos, &c->gc_pos_len, now - (int64_t)ttl, GC_SLICE, &removed, &done)) != 0) {
        c->gc_running = 0; /* give this pass up rather than fail every round */
        return ret;
    }
    c->gc_removed += removed;
    *collected = removed;
    if (done) {
        c->gc_running = 0;
        if (c->gc_removed > 0) {
            char n[24];
            snprintf(n, sizeof(n), "%" PRIu64, c->gc_removed);
            log_msg(LOG_LVL_INFO, "expired tombstones collected", "count", n, NULL);
        }
    }
    return 0;
}
