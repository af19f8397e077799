/* merge.c - the merge-join of two key-ordered sequences of objects (comio diff). */
#include <string.h>
#include "cli/merge.h"

int merge_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

merge_kind_t merge_compare(const merge_entry_t *s, const merge_entry_t *t)
{
    if (s->size != t->size || strcmp(s->etag, t->etag) != 0)
        return MERGE_DIFFERENT;
    if (s->has_digest && t->has_digest && strcmp(s->digest, t->digest) != 0)
        return MERGE_CONTENT; /* the same ETag over other bytes: written differently, not damaged since */
    if (s->has_meta && t->has_meta && strcmp(s->meta, t->meta) != 0)
        return MERGE_METADATA;
    if (s->has_version && t->has_version && (s->version != t->version || strcmp(s->origin, t->origin) != 0))
        return MERGE_VERSION;
    return MERGE_SAME;
}

unsigned merge_damaged(const merge_entry_t *s, const merge_entry_t *t)
{
    return (s != NULL && s->damaged ? MERGE_DAMAGED_SOURCE : 0u) | (t != NULL && t->damaged ? MERGE_DAMAGED_TARGET : 0u);
}

int merge_join(merge_next_fn next, void *src, void *tgt, merge_visit_fn visit, void *arg)
{
    const merge_entry_t *s = NULL, *t = NULL;
    int hs, ht;

    if ((hs = next(src, &s)) < 0)
        return hs;
    if ((ht = next(tgt, &t)) < 0)
        return ht;
    while (hs || ht) {
        int c = !hs ? 1 : !ht ? -1 : merge_key_cmp(s->key, s->key_len, t->key, t->key_len);
        if (c < 0)
            visit(arg, MERGE_MISSING, s, NULL);
        else if (c > 0)
            visit(arg, MERGE_EXTRA, NULL, t);
        else
            visit(arg, merge_compare(s, t), s, t);
        if (c <= 0 && (hs = next(src, &s)) < 0)
            return hs;
        if (c >= 0 && (ht = next(tgt, &t)) < 0)
            return ht;
    }
    return 0;
}
