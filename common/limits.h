/* limits.h - the size limits that several modules must agree on: bucket
 * names, keys, site ids, configured URLs, tokens, listing pages, fetch URLs.
 *
 * Each is defined here once; a module that needs its own name for one
 * (LOGREC_KEY_MAX, PATH_KEY_MAX) defines it as the LIMIT_ it stands for.
 * A limit only one module knows stays in that module. Limits that must fit
 * in one another are tied with _Static_assert where both are known: below,
 * in proto/presign.h (a presigned URL fits LIMIT_FETCH_URL_MAX) and
 * proto/logrec.c (a site id fits a record's origin). */
#ifndef COMIO_LIMITS_H
#define COMIO_LIMITS_H

#define LIMIT_BUCKET_MIN 3   /* S3's bucket name rules (common/bucket.h) */
#define LIMIT_BUCKET_MAX 63  /* bytes */
#define LIMIT_KEY_MAX 1024   /* bytes, after percent-decoding */
#define LIMIT_SITE_ID_MAX 64 /* site_id: a record's origin, a batch's "src" */

/* server.public_url and replication.remote_url, in bytes. */
#define LIMIT_URL_MAX 512

/* The longest access or replication token, in bytes (a config value). */
#define LIMIT_TOKEN_MAX 4096

/* The most keys one listing page returns (max-keys), and so the largest page
 * the CLI asks for. */
#define LIMIT_LIST_KEYS_MAX 1000

/* The longest presigned fetch URL a batch carries (NUL not counted). */
#define LIMIT_FETCH_URL_MAX 4096

/* Object metadata (common/objmeta.h): S3 caps user metadata (x-amz-meta-*)
 * at 2 KiB, counted as the bytes of each name after the prefix plus its
 * value; the whole encoded blob, standard headers included, is capped too. */
#define LIMIT_OBJMETA_USER_MAX 2048
#define LIMIT_OBJMETA_MAX 4096 /* bytes of an object's encoded metadata */

/* A limit's value as a string literal, for messages: LIMIT_TEXT(LIMIT_KEY_MAX)
 * is "1024". Only for the limits above, which are plain decimal literals. */
#define LIMIT_TEXT_(x) #x
#define LIMIT_TEXT(x) LIMIT_TEXT_(x)

_Static_assert(LIMIT_BUCKET_MIN >= 1 && LIMIT_BUCKET_MIN <= LIMIT_BUCKET_MAX, "bucket name bounds");
_Static_assert(LIMIT_KEY_MAX <= 65535, "a key's length fits the uint16_t of meta_obj_t.key_len");
_Static_assert(LIMIT_OBJMETA_USER_MAX < LIMIT_OBJMETA_MAX && LIMIT_OBJMETA_MAX <= 65535,
               "user metadata fits the blob, whose length fits a u16");
_Static_assert(LIMIT_URL_MAX < LIMIT_FETCH_URL_MAX, "a fetch URL starts with the configured public URL");

#endif
