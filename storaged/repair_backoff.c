/* repair_backoff.c - the back-off of objects whose repair failed: a small table, scanned under the repairer's lock. */
#include <string.h>
#include "common/err.h"
#include "storaged/repair_backoff.h"

void repair_backoff_init(repair_backoff_t *b, uint64_t cap_ms)
{
    memset(b, 0, sizeof(*b));
    b->cap_ms = cap_ms;
}

int repair_backoff_is_failure(int result)
{
    return result == CIO_EAGAIN || result == CIO_ENOTFOUND || result == CIO_ECORRUPT;
}

static repair_backoff_slot_t *find(repair_backoff_t *b, const repair_what_t *w)
{
    /* a scan of REPAIR_BACKOFF_SLOTS on a path taken only when damage was found; the version is compared first */
    for (size_t i = 0; i < REPAIR_BACKOFF_SLOTS; i++)
        if (b->slots[i].used && repair_what_same(&b->slots[i].what, w))
            return &b->slots[i];
    return NULL;
}

/* A free slot, else the one that failed longest ago. */
static repair_backoff_slot_t *take(repair_backoff_t *b)
{
    repair_backoff_slot_t *oldest = &b->slots[0];
    for (size_t i = 0; i < REPAIR_BACKOFF_SLOTS; i++) {
        if (!b->slots[i].used)
            return &b->slots[i];
        if (b->slots[i].failed_ms < oldest->failed_ms)
            oldest = &b->slots[i];
    }
    return oldest;
}

void repair_backoff_done(repair_backoff_t *b, const repair_what_t *w, int result, int64_t now_ms)
{
    repair_backoff_slot_t *s = find(b, w);

    if (b->cap_ms == 0)
        return;
    if (!repair_backoff_is_failure(result)) {
        if (s != NULL)
            s->used = 0;
        return;
    }
    if (s == NULL) {
        s = take(b);
        memset(s, 0, sizeof(*s));
        s->what = *w;
        s->used = 1;
    }
    uint64_t interval = REPAIR_BACKOFF_FIRST_MS < b->cap_ms ? REPAIR_BACKOFF_FIRST_MS : b->cap_ms;
    for (uint32_t i = 0; i < s->failures && interval < b->cap_ms; i++)
        interval = interval * 2 < b->cap_ms ? interval * 2 : b->cap_ms;
    s->failures++;
    s->result = result;
    s->failed_ms = now_ms;
    s->until_ms = now_ms + (int64_t)interval;
    s->said = 0;
}

int repair_backoff_check(repair_backoff_t *b, const repair_what_t *w, int client, int64_t asked_ms, int *first, int64_t *retry_ms)
{
    repair_backoff_slot_t *s = b->cap_ms > 0 ? find(b, w) : NULL;

    *first = 0;
    *retry_ms = 0;
    if (s == NULL)
        return 0;
    *retry_ms = s->until_ms;
    /* a client waits for an answer: it shares only a failure that is as good as its own attempt would be */
    if (client ? s->failed_ms + REPAIR_BACKOFF_RECENT_MS <= asked_ms : asked_ms >= s->until_ms)
        return 0;
    *first = !s->said;
    s->said = 1;
    return s->result;
}
