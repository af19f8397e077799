/* vctx.c - a key's causal context (common/vctx.h). */
#include <string.h>
#include "common/be.h"
#include "common/vctx.h"

/* The order of site ids in a context: bytes, then length. */
static int site_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

void vctx_init(vctx_t *c)
{
    c->floor = 0;
    c->n = 0;
}

/* The index of site's entry, or -1 - (where it would go). */
static int find(const vctx_t *c, const char *site, size_t site_len)
{
    for (int i = 0; i < c->n; i++) {
        int cmp = site_cmp(c->e[i].site, c->e[i].site_len, site, site_len);
        if (cmp == 0)
            return i;
        if (cmp > 0)
            return -1 - i;
    }
    return -1 - c->n;
}

uint64_t vctx_get(const vctx_t *c, const char *site, size_t site_len)
{
    int i = find(c, site, site_len);
    uint64_t v = i >= 0 ? c->e[i].hlc : 0;
    return v > c->floor ? v : c->floor;
}

int vctx_seen(const vctx_t *c, const char *site, size_t site_len, uint64_t hlc)
{
    return vctx_get(c, site, site_len) >= hlc;
}

/* Entries at or below the floor say nothing more than it: they go. */
static void drop_covered(vctx_t *c)
{
    uint8_t w = 0;
    for (uint8_t r = 0; r < c->n; r++)
        if (c->e[r].hlc > c->floor)
            c->e[w++] = c->e[r];
    c->n = w;
}

void vctx_add(vctx_t *c, const char *site, size_t site_len, uint64_t hlc)
{
    if (hlc <= c->floor)
        return;
    if (site_len == 0 || site_len > LIMIT_SITE_ID_MAX) {
        c->floor = hlc;
        drop_covered(c);
        return;
    }
    int i = find(c, site, site_len);
    if (i >= 0) {
        if (c->e[i].hlc < hlc)
            c->e[i].hlc = hlc;
        return;
    }
    if (c->n == VCTX_MAX) {
        /* full: the smallest version (the new one included) goes into the floor */
        int min = 0;
        for (int k = 1; k < c->n; k++)
            if (c->e[k].hlc < c->e[min].hlc)
                min = k;
        if (hlc <= c->e[min].hlc) {
            c->floor = hlc;
            drop_covered(c);
            return;
        }
        c->floor = c->e[min].hlc;
        drop_covered(c);
        i = find(c, site, site_len);
    }
    int at = -1 - i;
    memmove(&c->e[at + 1], &c->e[at], (size_t)(c->n - at) * sizeof(c->e[0]));
    c->e[at].hlc = hlc;
    c->e[at].site_len = (uint8_t)site_len;
    memcpy(c->e[at].site, site, site_len);
    c->e[at].site[site_len] = '\0';
    c->n++;
}

void vctx_trim(vctx_t *c, const char *site, size_t site_len, uint64_t hlc)
{
    if (site_len == 0 || site_len > LIMIT_SITE_ID_MAX) {
        if (c->floor <= hlc)
            c->floor = 0;
        return;
    }
    int i = find(c, site, site_len);
    if (i >= 0 && c->e[i].hlc <= hlc) {
        memmove(&c->e[i], &c->e[i + 1], (size_t)(c->n - i - 1) * sizeof(c->e[0]));
        c->n--;
    }
}

void vctx_merge(vctx_t *dst, const vctx_t *src)
{
    if (src->floor > dst->floor) {
        dst->floor = src->floor;
        drop_covered(dst);
    }
    for (uint8_t i = 0; i < src->n; i++)
        vctx_add(dst, src->e[i].site, src->e[i].site_len, src->e[i].hlc);
}

int vctx_equal(const vctx_t *a, const vctx_t *b)
{
    if (a->floor != b->floor || a->n != b->n)
        return 0;
    for (uint8_t i = 0; i < a->n; i++)
        if (a->e[i].hlc != b->e[i].hlc || site_cmp(a->e[i].site, a->e[i].site_len, b->e[i].site, b->e[i].site_len) != 0)
            return 0;
    return 1;
}

size_t vctx_encode(uint8_t *out, const vctx_t *c)
{
    uint8_t *p = out;
    be_put(p, c->floor, 8);
    p += 8;
    *p++ = c->n;
    for (uint8_t i = 0; i < c->n; i++) {
        be_put(p, c->e[i].hlc, 8);
        p += 8;
        *p++ = c->e[i].site_len;
        memcpy(p, c->e[i].site, c->e[i].site_len);
        p += c->e[i].site_len;
    }
    return (size_t)(p - out);
}

int vctx_decode(const uint8_t *p, size_t len, vctx_t *out, size_t *used)
{
    vctx_t c;
    size_t at = 9;
    if (len < 9)
        return CIO_EPROTO;
    c.floor = be_get(p, 8);
    c.n = p[8];
    if (c.n > VCTX_MAX)
        return CIO_EPROTO;
    for (uint8_t i = 0; i < c.n; i++) {
        vctx_entry_t *e = &c.e[i];
        if (len - at < 9)
            return CIO_EPROTO;
        e->hlc = be_get(p + at, 8);
        e->site_len = p[at + 8];
        at += 9;
        if (e->hlc <= c.floor || e->site_len == 0 || e->site_len > LIMIT_SITE_ID_MAX || len - at < e->site_len)
            return CIO_EPROTO;
        memcpy(e->site, p + at, e->site_len);
        e->site[e->site_len] = '\0';
        at += e->site_len;
        if (i > 0 && site_cmp(c.e[i - 1].site, c.e[i - 1].site_len, e->site, e->site_len) >= 0)
            return CIO_EPROTO;
    }
    *out = c;
    *used = at;
    return 0;
}
