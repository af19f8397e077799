/* objmeta.c - an object's metadata blob: canonical encoding, bounded copy-free decoding. */
#include <string.h>
#include <openssl/sha.h>
#include "common/hex.h"
#include "common/objmeta.h"

_Static_assert(OBJMETA_NAME_MAX <= UINT8_MAX, "a name's length fits its byte");
_Static_assert(OBJMETA_MAX <= UINT16_MAX, "a value's length fits its u16");

/* RFC 9110 tchar. */
static int tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* 1 when name starts with the user prefix (any case). */
static int is_user(const char *name, size_t len)
{
    if (len < OBJMETA_USER_PREFIX_LEN)
        return 0;
    for (size_t i = 0; i < OBJMETA_USER_PREFIX_LEN; i++)
        if (lower((unsigned char)name[i]) != (unsigned char)OBJMETA_USER_PREFIX[i])
            return 0;
    return 1;
}

int objmeta_name_ok(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > OBJMETA_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!tchar((unsigned char)name[i]))
            return 0;
    return !(is_user(name, len) && len == OBJMETA_USER_PREFIX_LEN);
}

int objmeta_value_ok(const char *v, size_t len)
{
    if (v == NULL && len != 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Case-insensitive byte order of two names, a shorter one first when it starts the other. */
static int name_cmp(const objmeta_pair_t *a, const objmeta_pair_t *b)
{
    size_t m = a->name_len < b->name_len ? a->name_len : b->name_len;
    for (size_t i = 0; i < m; i++) {
        unsigned char x = lower((unsigned char)a->name[i]), y = lower((unsigned char)b->name[i]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len ? 1 : 0;
}

int objmeta_encode(const objmeta_pair_t *pairs, size_t n, uint8_t *out, size_t *len, size_t *bad)
{
    uint16_t order[OBJMETA_PAIRS_MAX];
    size_t total = 0, user = 0, at = 0;
    int ret;

    *len = 0;
    if (n > OBJMETA_PAIRS_MAX) {
        at = OBJMETA_PAIRS_MAX;
        ret = CIO_ETOOBIG;
        goto fail;
    }
    /* Check each pair, then sort the indexes (insertion: n is small and bounded). */
    for (size_t i = 0; i < n; i++) {
        const objmeta_pair_t *p = &pairs[i];
        at = i;
        if (!objmeta_name_ok(p->name, p->name_len) || !objmeta_value_ok(p->value, p->value_len)) {
            ret = CIO_EINVAL;
            goto fail;
        }
        if (is_user(p->name, p->name_len))
            user += p->name_len - OBJMETA_USER_PREFIX_LEN + p->value_len;
        total += 1 + p->name_len + 2 + p->value_len;
        if (user > OBJMETA_USER_MAX || total > OBJMETA_MAX) {
            ret = CIO_ETOOBIG;
            goto fail;
        }
        size_t j = i;
        while (j > 0 && name_cmp(&pairs[order[j - 1]], p) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (uint16_t)i;
    }
    for (size_t i = 1; i < n; i++) {
        if (name_cmp(&pairs[order[i - 1]], &pairs[order[i]]) == 0) {
            at = order[i - 1] > order[i] ? order[i - 1] : order[i];
            ret = CIO_EINVAL;
            goto fail;
        }
    }
    uint8_t *w = out;
    for (size_t i = 0; i < n; i++) {
        const objmeta_pair_t *p = &pairs[order[i]];
        *w++ = (uint8_t)p->name_len;
        for (size_t c = 0; c < p->name_len; c++)
            *w++ = lower((unsigned char)p->name[c]);
        *w++ = (uint8_t)(p->value_len >> 8);
        *w++ = (uint8_t)p->value_len;
        if (p->value_len > 0)
            memcpy(w, p->value, p->value_len);
        w += p->value_len;
    }
    *len = (size_t)(w - out);
    return 0;

fail:
    if (bad != NULL)
        *bad = at;
    return ret;
}

int objmeta_validate(const uint8_t *blob, size_t len)
{
    const uint8_t *p = blob, *end = blob + len;
    const uint8_t *prev = NULL;
    size_t prev_len = 0, user = 0;

    if (len > OBJMETA_MAX || (blob == NULL && len != 0))
        return CIO_EPROTO;
    while (p < end) {
        size_t nlen = p[0];
        if ((size_t)(end - p) < 1 + nlen + 2)
            return CIO_EPROTO;
        const uint8_t *name = p + 1;
        size_t vlen = (size_t)name[nlen] << 8 | name[nlen + 1];
        const uint8_t *value = name + nlen + 2;
        if ((size_t)(end - value) < vlen || !objmeta_name_ok((const char *)name, nlen) ||
            !objmeta_value_ok((const char *)value, vlen))
            return CIO_EPROTO;
        for (size_t i = 0; i < nlen; i++)
            if (name[i] >= 'A' && name[i] <= 'Z')
                return CIO_EPROTO;
        if (prev != NULL) {
            size_t m = prev_len < nlen ? prev_len : nlen;
            int c = memcmp(prev, name, m);
            if (c > 0 || (c == 0 && prev_len >= nlen))
                return CIO_EPROTO; /* out of order, or a name twice */
        }
        if (is_user((const char *)name, nlen)) {
            user += nlen - OBJMETA_USER_PREFIX_LEN + vlen;
            if (user > OBJMETA_USER_MAX)
                return CIO_EPROTO;
        }
        prev = name;
        prev_len = nlen;
        p = value + vlen;
    }
    return 0;
}

void objmeta_iter_init(objmeta_iter_t *it, const uint8_t *blob, size_t len)
{
    it->p = blob;
    it->end = blob + len;
}

int objmeta_next(objmeta_iter_t *it, objmeta_pair_t *pair)
{
    if (it->p == NULL || it->p >= it->end)
        return 0;
    size_t nlen = it->p[0];
    const uint8_t *name = it->p + 1;
    pair->name = (const char *)name;
    pair->name_len = nlen;
    pair->value_len = (size_t)name[nlen] << 8 | name[nlen + 1];
    pair->value = (const char *)name + nlen + 2;
    it->p = name + nlen + 2 + pair->value_len;
    return 1;
}

int objmeta_get(const uint8_t *blob, size_t len, const char *name, const char **value, size_t *value_len)
{
    objmeta_iter_t it;
    objmeta_pair_t p;
    size_t nlen = strlen(name);

    objmeta_iter_init(&it, blob, len);
    while (objmeta_next(&it, &p)) {
        if (p.name_len == nlen && memcmp(p.name, name, nlen) == 0) {
            *value = p.value;
            *value_len = p.value_len;
            return 1;
        }
    }
    return 0;
}

int objmeta_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

void objmeta_digest(const uint8_t *blob, size_t len, uint8_t out[OBJMETA_DIGEST_LEN])
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(len > 0 ? blob : (const uint8_t *)"", len, md);
    memcpy(out, md, OBJMETA_DIGEST_LEN);
}

void objmeta_digest_hex(const uint8_t *blob, size_t len, char out[2 * OBJMETA_DIGEST_LEN + 1])
{
    uint8_t d[OBJMETA_DIGEST_LEN];
    if (len == 0) {
        memset(out, 0, 2 * OBJMETA_DIGEST_LEN + 1);
        return;
    }
    objmeta_digest(blob, len, d);
    hex_encode(out, d, sizeof(d));
}
