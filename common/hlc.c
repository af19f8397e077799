/* hlc.c - the hybrid logical clock: versions that every site orders the same way. */
#include <string.h>
#include "common/clock.h"
#include "common/hlc.h"

void hlc_init(hlc_t *c, uint64_t last, hlc_wall_fn wall_ms, int64_t max_skew_ms)
{
    atomic_init(&c->last, last);
    atomic_init(&c->skew_events, 0);
    c->wall_ms = wall_ms != NULL ? wall_ms : clock_wall_ms;
    c->max_skew_ms = max_skew_ms > 0 ? max_skew_ms : HLC_MAX_CLOCK_SKEW_MS_DEFAULT;
}

void hlc_destroy(hlc_t *c)
{
    (void)c;
}

/* The physical clock, clamped into what a version can hold. */
static uint64_t physical_ms(const hlc_t *c)
{
    int64_t ms = c->wall_ms();
    if (ms < 0)
        return 0;
    return (uint64_t)ms > HLC_MS_MAX ? HLC_MS_MAX : (uint64_t)ms;
}

int hlc_now(hlc_t *c, uint64_t *out)
{
    uint64_t floor = hlc_make(physical_ms(c), 0);
    uint64_t last = atomic_load(&c->last), next;

    /* last + 1 carries a full counter into the next millisecond: the borrow
     * the header promises. A compare-and-swap, so that concurrent callers
     * never take the same version. */
    do {
        if (last == UINT64_MAX)
            return CIO_ETOOBIG;
        next = last + 1 > floor ? last + 1 : floor;
    } while (!atomic_compare_exchange_weak(&c->last, &last, next));
    *out = next;
    return 0;
}

int hlc_update(hlc_t *c, uint64_t remote)
{
    uint64_t pt = physical_ms(c), last = atomic_load(&c->last);
    int skewed = hlc_ms(remote) > pt && hlc_ms(remote) - pt > (uint64_t)c->max_skew_ms;

    while (remote > last && !atomic_compare_exchange_weak(&c->last, &last, remote))
        ;
    if (skewed)
        atomic_fetch_add(&c->skew_events, 1);
    return skewed;
}

uint64_t hlc_last(hlc_t *c)
{
    return atomic_load(&c->last);
}

uint64_t hlc_skew_events(hlc_t *c)
{
    return atomic_load(&c->skew_events);
}

int hlc_version_cmp(uint64_t a_hlc, const char *a_site, size_t a_site_len, uint64_t b_hlc, const char *b_site, size_t b_site_len)
{
    if (a_hlc != b_hlc)
        return a_hlc < b_hlc ? -1 : 1;
    size_t n = a_site_len < b_site_len ? a_site_len : b_site_len;
    int c = n > 0 ? memcmp(a_site, b_site, n) : 0;
    if (c != 0)
        return c < 0 ? -1 : 1;
    return (a_site_len > b_site_len) - (a_site_len < b_site_len);
}
