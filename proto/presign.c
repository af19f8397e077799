/* presign.c - presigned fetch URLs: HMAC-SHA256 signing (OpenSSL 3 EVP_MAC), URL building, constant-time verification. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include "common/hex.h"
#include "common/percent.h"
#include "proto/presign.h"

#define MAC_LEN 32
_Static_assert(PRESIGN_SIG_HEX == 2 * MAC_LEN, "the signature is the MAC in hex");

/* HMAC-SHA256 of method "\n" bucket "\n" key "\n" version "\n" expires,
 * then "\n" origin when there is one (a URL of the previous release has none),
 * streamed so that no buffer depends on the key's length. 0, CIO_EINVAL
 * (empty secret) or CIO_ENOMEM (OpenSSL failed, which only happens when out of
 * memory). */
static int mac_compute(const char *secret, size_t secret_len, const char *method, const char *bucket, size_t blen, const char *key,
                       size_t klen, uint64_t version, const char *origin, size_t origin_len, int64_t expires, uint8_t mac[MAC_LEN])
{
    /* An empty key would make every URL forgeable by anyone: refuse it. */
    if (secret == NULL || secret_len == 0 || method == NULL || (bucket == NULL && blen > 0) || (key == NULL && klen > 0))
        return CIO_EINVAL;

    char nums[64];
    int nn = snprintf(nums, sizeof(nums), "\n%" PRIu64 "\n%" PRId64, version, expires);
    if (nn < 0 || (size_t)nn >= sizeof(nums))
        return CIO_EINVAL; /* cannot happen: at most 2 + 20 + 20 bytes */

    int err = CIO_ENOMEM;
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg != NULL ? EVP_MAC_CTX_new(alg) : NULL;
    if (ctx == NULL)
        goto done;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t out_len = 0;
    if (EVP_MAC_init(ctx, (const unsigned char *)secret, secret_len, params) != 1)
        goto done;
    if (EVP_MAC_update(ctx, (const unsigned char *)method, strlen(method)) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) != 1 ||
        (blen > 0 && EVP_MAC_update(ctx, (const unsigned char *)bucket, blen) != 1) ||
        EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) != 1 ||
        (klen > 0 && EVP_MAC_update(ctx, (const unsigned char *)key, klen) != 1) ||
        EVP_MAC_update(ctx, (const unsigned char *)nums, (size_t)nn) != 1 ||
        (origin != NULL && (EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) != 1 ||
                            (origin_len > 0 && EVP_MAC_update(ctx, (const unsigned char *)origin, origin_len) != 1))))
        goto done;
    if (EVP_MAC_final(ctx, mac, &out_len, MAC_LEN) != 1 || out_len != MAC_LEN)
        goto done;
    err = 0;

done:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    return err;
}

void presign_sign(const char *secret, size_t secret_len, const char *method, const char *bucket, size_t blen, const char *key,
                  size_t klen, uint64_t version, const char *origin, size_t origin_len, int64_t expires,
                  char sig[PRESIGN_SIG_HEX + 1])
{
    uint8_t mac[MAC_LEN];
    if (sig == NULL)
        return;
    if (mac_compute(secret, secret_len, method, bucket, blen, key, klen, version, origin, origin_len, expires, mac) != 0) {
        sig[0] = '\0';
        return;
    }
    hex_encode(sig, mac, MAC_LEN);
    OPENSSL_cleanse(mac, sizeof(mac));
}

/* ---- the URL ---- */

/* Appends to a fixed buffer; remembers whether anything did not fit. */
typedef struct {
    char *out;
    size_t cap;
    size_t n;
    int full;
} urlbuf_t;

static void put(urlbuf_t *u, const char *s, size_t len)
{
    if (u->full || len >= u->cap - u->n) { /* keep a byte for the NUL */
        u->full = 1;
        return;
    }
    memcpy(u->out + u->n, s, len);
    u->n += len;
}

static void put_encoded(urlbuf_t *u, const char *s, size_t len, unsigned flags)
{
    size_t room = u->full ? 0 : u->cap - u->n - 1; /* keep a byte for the NUL */
    size_t n = percent_encode(u->full ? NULL : u->out + u->n, room, s, len, flags);
    if (n > room)
        u->full = 1;
    else
        u->n += n;
}

int presign_url(const char *secret, size_t secret_len, const char *base, const char *bucket, size_t blen, const char *key,
                size_t klen, uint64_t version, const char *origin, size_t origin_len, int64_t expires, char *out, size_t cap)
{
    if (out == NULL || cap == 0)
        return CIO_ETOOBIG;
    out[0] = '\0';
    if (base == NULL || (origin != NULL && !presign_origin_valid(origin, origin_len)))
        return CIO_EINVAL;

    uint8_t mac[MAC_LEN];
    char sig[PRESIGN_SIG_HEX + 1];
    int err = mac_compute(secret, secret_len, "GET", bucket, blen, key, klen, version, origin, origin_len, expires, mac);
    if (err != 0)
        return err;
    hex_encode(sig, mac, MAC_LEN);
    OPENSSL_cleanse(mac, sizeof(mac));

    char query[PRESIGN_QUERY_MAX + 1];
    int qn = origin != NULL
                 ? snprintf(query, sizeof(query), "?version=%" PRIu64 "&origin=%.*s&expires=%" PRId64 "&sig=%s", version,
                            (int)origin_len, origin, expires, sig)
                 : snprintf(query, sizeof(query), "?version=%" PRIu64 "&expires=%" PRId64 "&sig=%s", version, expires, sig);
    if (qn < 0 || (size_t)qn >= sizeof(query))
        return CIO_EINVAL; /* cannot happen: PRESIGN_QUERY_MAX holds the longest */

    urlbuf_t u = {out, cap, 0, 0};
    size_t base_len = strlen(base);
    if (base_len > 0 && base[base_len - 1] == '/')
        base_len--;
    put(&u, base, base_len);
    put(&u, PRESIGN_FETCH_PATH, sizeof(PRESIGN_FETCH_PATH) - 1);
    put_encoded(&u, bucket, blen, 0);
    put(&u, "/", 1);
    put_encoded(&u, key, klen, PERCENT_KEEP_SLASH);
    put(&u, query, (size_t)qn);
    if (u.full) {
        out[0] = '\0';
        return CIO_ETOOBIG;
    }
    out[u.n] = '\0';
    return 0;
}

/* ---- verification ---- */

int presign_verify(const char *secret, size_t secret_len, const char *method, const char *bucket, size_t blen, const char *key,
                   size_t klen, uint64_t version, const char *origin, size_t origin_len, int64_t expires, const char *sig_hex,
                   size_t sig_len, int64_t now)
{
    uint8_t given[MAC_LEN], want[MAC_LEN];
    if (sig_hex == NULL || sig_len != PRESIGN_SIG_HEX)
        return CIO_EINVAL;
    /* The format check depends only on what the request carried, not on the
     * secret, so it may exit early. */
    if (hex_decode_lower(given, sig_hex, MAC_LEN) != 0)
        return CIO_EINVAL; /* uppercase is refused too: the signer only writes lowercase */
    int err = mac_compute(secret, secret_len, method, bucket, blen, key, klen, version, origin, origin_len, expires, want);
    if (err != 0)
        return err;
    int differ = CRYPTO_memcmp(given, want, MAC_LEN);
    OPENSSL_cleanse(want, sizeof(want));
    if (differ != 0)
        return CIO_EINVAL;
    /* Only a genuine URL is told apart as expired: a forged expiry is a bad signature. */
    if (now > expires)
        return CIO_EAGAIN;
    return 0;
}

int presign_origin_valid(const char *origin, size_t len)
{
    if (origin == NULL || len == 0 || len > LIMIT_SITE_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = origin[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == '-'))
            return 0;
    }
    return 1;
}
