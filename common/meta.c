/* meta.c - the site's LMDB environment: opening it, object records, state counters. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/sha.h>
#include "common/be.h"
#include "common/clock.h"
#include "common/hex.h"
#include "common/hlc.h"
#include "common/log.h"
#include "common/meta.h"
#include "common/buf.h"
#include "common/replog.h"
#include "common/vctx.h"

#define OBJ_FORMAT_V1_LOCAL 1   /* metadata format 1: an object written on this site, its version a seq of this site */
#define OBJ_FORMAT_V1_REPLICA 2 /* metadata format 1: the same layout, applied from a primary: its version the primary's seq */
#define OBJ_FORMAT 3            /* a version (hybrid logical clock) and its origin site id */
#define OBJ_FORMAT_CTX 4        /* the same, and a causal context after the key */
#define OBJ_FORMAT_META 5       /* the same, the context always (maybe empty), then the object's metadata */
#define OBJ_FORMAT_MPU 6        /* format 5 with the metadata's length always (maybe 0), then a multipart ETag */
/* Or'ed into any format from 3 on: the record ends with the object's inline CRC32C (u32 BE; common/blocksum.h,
 * BLOCKSUM_INLINE_MAX), after whatever that format holds */
#define OBJ_CRC_FLAG 0x80
#define HASH_LEN 16

int meta_err(int rc, const char *what)
{
    if (rc == 0)
        return 0;
    if (rc == MDB_NOTFOUND)
        return CIO_ENOTFOUND;
    /* the one remedy for a full map is the operator's: name the setting */
    log_msg(LOG_LVL_ERROR, "LMDB call failed", "call", what, "error", mdb_strerror(rc), rc == MDB_MAP_FULL ? "hint" : NULL,
            "the metadata map is full: raise server.meta_map_size", NULL);
    return rc == MDB_MAP_FULL ? CIO_EMAPFULL : CIO_EDB;
}

static int mkdir_p(const char *dir)
{
    char buf[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, dir, len + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* ---- the metadata format ---- */

static int open_env_at(meta_t *m, const char *dir, uint64_t map_size, unsigned flags, char *err, size_t errlen);

static int migrate_objects_v2(meta_t *m, MDB_txn *txn);
static int migrate_blocksums(meta_t *m, MDB_txn *txn);

const meta_migration_t meta_migrations[META_FORMAT_CURRENT] = {
    /* 0 -> 1: a store from before the format was recorded has the layout of format 1 */
    {"record the format of a store written before formats were recorded", NULL},
    /* 1 -> 2: object records gain the origin of their version */
    {"give every object record the site its version comes from", migrate_objects_v2},
    /* 2 -> 3: object and conflict records may carry the object's metadata; the older ones read as none */
    {"let object records carry the object's metadata (Content-Encoding, x-amz-meta-*, ...)", NULL},
    /* 3 -> 4: object records may carry a multipart upload's ETag; the older ones read as none */
    {"let object records carry the ETag of an S3 multipart upload", NULL},
    /* 4 -> 5: the objects' block checksums get their table; the objects written before have none */
    {"add the blocksums, scrub and damaged tables (objects written before this have no block checksums: served unverified "
     "until a scrub pass fills them in)",
     migrate_blocksums},
};

static int migrate_blocksums(meta_t *m, MDB_txn *txn)
{
    int ret;
    if ((ret = meta_err(mdb_dbi_open(txn, "blocksums", MDB_CREATE, &m->blocksums), "mdb_dbi_open(blocksums)")) != 0 ||
        (ret = meta_err(mdb_dbi_open(txn, "damaged", MDB_CREATE, &m->damaged), "mdb_dbi_open(damaged)")) != 0 ||
        (ret = meta_err(mdb_dbi_open(txn, "scrub", MDB_CREATE, &m->scrub), "mdb_dbi_open(scrub)")) != 0)
        return ret;
    /* the scrub's first scheduled pass over the old objects waits one interval from now (storaged/scrub.h) */
    return meta_u64_put(txn, m->scrub, META_SCRUB_UPGRADED_MS, strlen(META_SCRUB_UPGRADED_MS), "scrub", (uint64_t)clock_wall_ms());
}

int meta_format_migrate(meta_t *m, const meta_migration_t *steps, uint64_t from, uint64_t to, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    uint64_t v;
    int ret = 0;

    for (v = from; v < to; v++) {
        if ((ret = meta_err(mdb_txn_begin(m->env, NULL, 0, &txn), "mdb_txn_begin")) != 0)
            goto fail;
        if ((steps[v].run != NULL && (ret = steps[v].run(m, txn)) != 0) ||
            (ret = meta_state_put(m, txn, META_FORMAT_VERSION, v + 1)) != 0)
            goto fail;
        ret = meta_err(mdb_txn_commit(txn), "mdb_txn_commit");
        txn = NULL;
        if (ret != 0)
            goto fail;
        char f[24], t[24];
        snprintf(f, sizeof(f), "%llu", (unsigned long long)v);
        snprintf(t, sizeof(t), "%llu", (unsigned long long)(v + 1));
        log_msg(LOG_LVL_INFO, "upgraded the metadata format", "from", f, "to", t, "step", steps[v].what, NULL);
    }
    return 0;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    snprintf(err, errlen, "upgrading the metadata format from %llu to %llu (%s) failed: %s; it stays at format %llu",
             (unsigned long long)v, (unsigned long long)(v + 1), steps[v].what, cio_strerror(ret), (unsigned long long)v);
    return ret;
}

/* Reads the format in txn into *format and refuses what this binary cannot
 * open: a newer format always, an older one when it may not upgrade it
 * (without create: repld, which never writes the layout). Returns 0 or
 * CIO_EPROTO / CIO_EDB with a reason in err. */
static int format_check(meta_t *m, MDB_txn *txn, const char *dir, int create, uint64_t *format, char *err, size_t errlen)
{
    const char *who = create ? "storaged" : "repld"; /* only storaged creates */
    int ret;

    if ((ret = meta_state_get(m, txn, META_FORMAT_VERSION, format)) != 0) {
        snprintf(err, errlen, "%s: cannot read the metadata format: %s", dir, cio_strerror(ret));
        return ret;
    }
    if (*format > META_FORMAT_CURRENT) {
        snprintf(
            err, errlen,
            "%s: metadata format %llu is newer than this %s understands (%d): run a newer ComIO, or restore the metadata of this "
            "release",
            dir, (unsigned long long)*format, who, META_FORMAT_CURRENT);
        return CIO_EPROTO;
    }
    if (*format < META_FORMAT_CURRENT && !create) {
        snprintf(err, errlen,
                 "%s: metadata format %llu is older than this %s understands (%d): start storaged first, which upgrades it", dir,
                 (unsigned long long)*format, who, META_FORMAT_CURRENT);
        return CIO_EPROTO;
    }
    return 0;
}

/* Opens the environment in dir and its databases. With `create`, what is
 * missing is created (storaged); without, the environment must be there with
 * every database, and `rdonly` opens it read-only (repld's commands). */
static int open_env(meta_t *m, const char *dir, uint64_t map_size, int create, int rdonly, char *err, size_t errlen)
{
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {/* "state" first: it holds the format, checked before anything else */
               {"state", &m->state},           {"buckets", &m->buckets},
               {"objects", &m->objects},       {"replog", &m->replog},
               {"pending", &m->pending},       {"tombstones", &m->tombstones},
               {"purges", &m->purges},         {"repl_failed", &m->repl_failed},
               {"repl_retry", &m->repl_retry}, {"repl_targets", &m->repl_targets},
               {"conflicts", &m->conflicts},   {"repl_sync", &m->repl_sync},
               {"blocksums", &m->blocksums},   {"scrub", &m->scrub},
               {"damaged", &m->damaged}};
    MDB_txn *txn = NULL;
    uint64_t format = 0;
    int rc, ret;
    const char *what = "";

    if ((rc = mdb_env_create(&m->env)) != 0) {
        what = "mdb_env_create";
        goto fail;
    }
    mdb_env_set_maxdbs(m->env, 32);
    mdb_env_set_maxreaders(m->env, 1024);
    if ((rc = mdb_env_set_mapsize(m->env, rdonly ? 0 : (size_t)map_size)) != 0) {
        what = "mdb_env_set_mapsize";
        goto fail;
    }
    /* NOTLS: read transactions are reset and renewed by whichever thread. */
    if ((rc = mdb_env_open(m->env, dir, MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0600)) != 0) {
        what = "mdb_env_open";
        goto fail;
    }
    if ((rc = mdb_txn_begin(m->env, NULL, rdonly ? MDB_RDONLY : 0, &txn)) != 0) {
        what = "mdb_txn_begin";
        goto fail;
    }
    what = "mdb_dbi_open";
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++)
        if ((rc = mdb_dbi_open(txn, dbs[i].name, create ? MDB_CREATE : 0, dbs[i].dbi)) != 0) {
            if (rc == MDB_NOTFOUND && !create) {
                if (strcmp(dbs[i].name, "repl_sync") == 0) /* added without a format change: storaged creates it */
                    snprintf(err, errlen, "%s: no \"repl_sync\" table yet: start storaged of this release first, which adds it",
                             dir);
                else
                    snprintf(err, errlen, "%s: not a ComIO metadata directory (no \"%s\" table): check server.meta_path", dir,
                             dbs[i].name);
                mdb_txn_abort(txn);
                mdb_env_close(m->env);
                m->env = NULL;
                return CIO_ENOTFOUND;
            }
            goto fail;
        } else if (i == 0 && (ret = format_check(m, txn, dir, create, &format, err, errlen)) != 0) {
            goto refuse;
        }
    if (create && format == 0) {
        /* no format recorded: a new environment (every table empty) is born at the current format, in the
         * transaction that creates its tables; one with data predates formats and is upgraded below */
        int fresh = 1;
        MDB_stat st;
        what = "mdb_stat";
        for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]) && fresh; i++) {
            if ((rc = mdb_stat(txn, *dbs[i].dbi, &st)) != 0)
                goto fail;
            fresh = st.ms_entries == 0;
        }
        if (fresh && (ret = meta_state_put(m, txn, META_FORMAT_VERSION, META_FORMAT_CURRENT)) != 0) {
            snprintf(err, errlen, "%s: cannot record the metadata format: %s", dir, cio_strerror(ret));
            goto refuse;
        }
        if (fresh)
            format = META_FORMAT_CURRENT;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        what = "mdb_txn_commit";
        goto fail;
    }
    txn = NULL;
    if (format < META_FORMAT_CURRENT) { /* only with create: format_check refused it otherwise */
        char why[512];
        if ((ret = meta_format_migrate(m, meta_migrations, format, META_FORMAT_CURRENT, why, sizeof(why))) != 0) {
            snprintf(err, errlen, "%s: %s", dir, why);
            goto refuse;
        }
    }
    if (!rdonly) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", dir, REPLOG_WAKE_FILE);
        if ((m->wake_fd = open(path, O_WRONLY | (create ? O_CREAT : 0) | O_CLOEXEC, 0600)) < 0 && (create || errno != ENOENT))
            log_msg(LOG_LVL_WARN, "cannot open the wake-up file: repld will notice new events within a second", "path", path,
                    "error", strerror(errno), NULL);
    }
    return 0;
fail:
    snprintf(err, errlen, "%s: %s: %s%s", dir, what, mdb_strerror(rc), rc == MDB_MAP_FULL ? " (raise server.meta_map_size)" : "");
    ret = rc == MDB_MAP_FULL ? CIO_EMAPFULL : CIO_EDB;
refuse:
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (m->env != NULL)
        mdb_env_close(m->env);
    m->env = NULL;
    return ret;
}

/* What one of data.mdb's two meta pages holds, as far as a creation cut short goes. */
enum { META_PAGE_ZERO, META_PAGE_INIT, META_PAGE_OTHER };

static int meta_page_kind(const uint8_t *page, size_t psize)
{
    uint16_t pflags;
    uint32_t magic;
    uint64_t txnid;
    size_t i;

    for (i = 0; i < psize && page[i] == 0; i++)
        ;
    if (i == psize)
        return META_PAGE_ZERO;
    /* in the host's byte order: the page header (uint16 flags at byte 10, P_META = 0x08), then MDB_meta: the
     * uint32 MDB_MAGIC first, the uint64 txnid at byte 128 (after the version, address, map size, the two
     * 48-byte database records and the last page) */
    memcpy(&pflags, page + 10, sizeof(pflags));
    memcpy(&magic, page + 16, sizeof(magic));
    memcpy(&txnid, page + 16 + 128, sizeof(txnid));
    return (pflags & 0x08) && magic == 0xBEEFC0DEu && txnid == 0 ? META_PAGE_INIT : META_PAGE_OTHER;
}

/* LMDB writes a new environment's two meta pages (transaction 0, both) in one
 * unsynced write, and the first commit's meta page only after its data is
 * synced. A power cut before that can keep one initial meta page and not the
 * other, and mdb_env_open then refuses the file for good (MDB_INVALID). When
 * each meta page is either all zero or an initial one, and not both are
 * initial ones, no commit was ever durable: the file is removed and created
 * again. Anything else is left to LMDB. Returns 0, or -1 with errno. */
static int drop_unfinished_env(const char *dir)
{
    char path[4200];
    long psize = sysconf(_SC_PAGESIZE);
    uint8_t *page = NULL;
    int fd, kind[2], ret = -1;

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : -1;
    if (psize <= 0 || psize > (1 << 16) || (page = malloc((size_t)psize)) == NULL)
        goto done;
    for (int i = 0; i < 2; i++) {
        ssize_t n = pread(fd, page, (size_t)psize, (off_t)i * psize);
        if (n < 0)
            goto done;
        memset(page + n, 0, (size_t)(psize - n)); /* past the end: never written */
        kind[i] = meta_page_kind(page, (size_t)psize);
    }
    ret = 0;
    if (kind[0] == META_PAGE_OTHER || kind[1] == META_PAGE_OTHER || (kind[0] == META_PAGE_INIT && kind[1] == META_PAGE_INIT) ||
        (kind[0] == META_PAGE_ZERO && kind[1] == META_PAGE_ZERO && lseek(fd, 0, SEEK_END) == 0))
        goto done;
    if ((ret = unlink(path)) == 0)
        log_msg(LOG_LVL_WARN, "removed a metadata environment whose creation a crash cut short (it held no commit)", "path", path,
                NULL);
done:
    free(page);
    close(fd);
    return ret;
}

int meta_open_env(meta_t *m, const char *dir, uint64_t map_size, unsigned flags, char *err, size_t errlen)
{
    return meta_open_site(m, dir, map_size, flags, NULL, err, errlen);
}

int meta_open_site(meta_t *m, const char *dir, uint64_t map_size, unsigned flags, const char *site_id, char *err, size_t errlen)
{
    int ret;

    memset(m, 0, sizeof(*m));
    m->site_id = site_id;
    ret = open_env_at(m, dir, map_size, flags, err, errlen);
    m->site_id = NULL; /* borrowed for the migration only */
    return ret;
}

static int open_env_at(meta_t *m, const char *dir, uint64_t map_size, unsigned flags, char *err, size_t errlen)
{
    char path[4200];
    struct stat st;

    m->wake_fd = -1;
    if (flags & META_OPEN_CREATE) {
        if (mkdir_p(dir) != 0) {
            snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
            return CIO_ESYS;
        }
        if (drop_unfinished_env(dir) != 0) {
            snprintf(err, errlen, "%s/data.mdb: %s", dir, strerror(errno));
            return CIO_ESYS;
        }
        return open_env(m, dir, map_size, 1, 0, err, errlen);
    }
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: no metadata there (%s): check server.meta_path; storaged creates it when it first starts", dir,
                 strerror(errno));
        return CIO_ENOTFOUND;
    }
    return open_env(m, dir, map_size, 0, (flags & META_OPEN_RDONLY) != 0, err, errlen);
}

void meta_close(meta_t *m)
{
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    m->wake_fd = -1;
    if (m->env != NULL)
        mdb_env_close(m->env);
    m->env = NULL;
}

/* ---- objects ---- */

/* LMDB keys are at most 511 bytes but object keys up to 1024. Short keys are
 * stored as bucket NUL key. A key longer than the room left (`room`) is stored
 * as bucket NUL key[0..room) NUL hash16(key): keys sharing those `room` bytes
 * form one contiguous run (sorted by hash, re-sorted by meta_obj_list), and
 * every short key still sorts correctly against them, because a short key is
 * never longer than `room`. */
static size_t objkey_room(size_t blen)
{
    return META_OBJKEY_MAX - blen - 1 - 1 - HASH_LEN;
}

size_t meta_objkey(uint8_t *out, const char *b, size_t blen, const char *k, size_t klen)
{
    size_t room = objkey_room(blen);
    memcpy(out, b, blen);
    out[blen] = 0;
    if (klen <= room) {
        memcpy(out + blen + 1, k, klen);
        return blen + 1 + klen;
    }
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)k, klen, md);
    memcpy(out + blen + 1, k, room);
    out[blen + 1 + room] = 0;
    memcpy(out + blen + 2 + room, md, HASH_LEN);
    return blen + 2 + room + HASH_LEN;
}

/* Record format 3: format byte, version, offset, allocated length, size
 * (u64 BE each), ETag (16), mtime (i64 BE), content type (u16 BE length,
 * bytes), origin (u8 length, bytes), key (u16 BE length, bytes). Format 4:
 * the same followed by the object's causal context (vctx_encode), written
 * when the context is not empty. Format 5: format 4 with the context always
 * there (maybe empty), followed by the object's metadata (u16 BE length,
 * the blob of common/objmeta.h), written when there is metadata; formats 3
 * and 4 read as no metadata. Format 6: format 5 with the metadata always
 * there (maybe of length 0), followed by the part count (u32 BE, 1..10000)
 * and the MD5 of the parts' MD5s (16) of an object made by an S3 multipart
 * upload; the others read as none. Formats 1 and 2 (metadata format 1) are
 * format 3 without the origin. Any format from 3 with OBJ_CRC_FLAG set in
 * its byte is followed by the object's inline CRC32C (u32 BE): an object of
 * at most BLOCKSUM_INLINE_MAX bytes whose block checksum is thus in its
 * record, not in "blocksums"; without the flag, none. */
#define OBJ_FIXED_V1 (1 + 8 * 4 + 16 + 8 + 2 + 2)
#define OBJ_FIXED (OBJ_FIXED_V1 + 1)
#define OBJ_MAX                                                                                                                    \
    (OBJ_FIXED + LOGREC_CTYPE_MAX + LOGREC_ORIGIN_MAX + LOGREC_KEY_MAX + VCTX_ENCODED_MAX + 2 + OBJMETA_MAX + 4 + 16 + 4)
_Static_assert(LOGREC_ORIGIN_MAX <= UINT8_MAX, "an origin's length fits its byte");

/* Encodes o as the record of key k[0..klen), with the inline CRC *crc (NULL: none). */
static size_t obj_encode(uint8_t *out, const meta_obj_t *o, const char *k, size_t klen, const uint32_t *crc)
{
    uint8_t *p = out;
    int with_mpu = o->mpu_parts > 0;
    int with_meta = with_mpu || o->meta_len > 0;
    int with_ctx = with_meta || o->ctx.n > 0 || o->ctx.floor != 0;
    *p++ = with_mpu ? OBJ_FORMAT_MPU : with_meta ? OBJ_FORMAT_META : with_ctx ? OBJ_FORMAT_CTX : OBJ_FORMAT;
    be_put(p, o->version, 8);
    be_put(p + 8, o->off, 8);
    be_put(p + 16, o->alen, 8);
    be_put(p + 24, o->size, 8);
    p += 32;
    memcpy(p, o->etag, 16);
    p += 16;
    be_put(p, (uint64_t)o->mtime_ms, 8);
    p += 8;
    *p++ = (uint8_t)(o->ctype_len >> 8);
    *p++ = (uint8_t)o->ctype_len;
    memcpy(p, o->ctype, o->ctype_len);
    p += o->ctype_len;
    *p++ = (uint8_t)o->origin_len;
    memcpy(p, o->origin, o->origin_len);
    p += o->origin_len;
    *p++ = (uint8_t)(klen >> 8);
    *p++ = (uint8_t)klen;
    memcpy(p, k, klen);
    p += klen;
    if (with_ctx)
        p += vctx_encode(p, &o->ctx);
    if (with_meta) {
        *p++ = (uint8_t)(o->meta_len >> 8);
        *p++ = (uint8_t)o->meta_len;
        memcpy(p, o->meta, o->meta_len);
        p += o->meta_len;
    }
    if (with_mpu) {
        be_put(p, o->mpu_parts, 4);
        memcpy(p + 4, o->mpu_md5, 16);
        p += 20;
    }
    if (crc != NULL) {
        out[0] |= OBJ_CRC_FLAG;
        be_put(p, *crc, 4);
        p += 4;
    }
    return (size_t)(p - out);
}

/* Decodes a record of format `format` (OBJ_FORMAT, OBJ_FORMAT_CTX or OBJ_FORMAT_META, or a format-1 one for the
 * migration). */
static int obj_decode_as(const MDB_val *v, meta_obj_t *o, int format)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    int v1 = format == OBJ_FORMAT_V1_LOCAL || format == OBJ_FORMAT_V1_REPLICA;
    size_t used;
    if (v->mv_size < (v1 ? OBJ_FIXED_V1 : OBJ_FIXED) || (v1 ? p[0] : p[0] & ~OBJ_CRC_FLAG) != format)
        return CIO_EPROTO;
    p++;
    o->version = be_get(p, 8);
    o->off = be_get(p + 8, 8);
    o->alen = be_get(p + 16, 8);
    o->size = be_get(p + 24, 8);
    p += 32;
    memcpy(o->etag, p, 16);
    p += 16;
    o->mtime_ms = (int64_t)be_get(p, 8);
    p += 8;
    o->ctype_len = (uint16_t)(p[0] << 8 | p[1]);
    p += 2;
    if (o->ctype_len > LOGREC_CTYPE_MAX || (size_t)(end - p) < (size_t)o->ctype_len + 2)
        return CIO_EPROTO;
    memcpy(o->ctype, p, o->ctype_len);
    o->ctype[o->ctype_len] = '\0';
    p += o->ctype_len;
    o->origin_len = 0;
    if (!v1) {
        o->origin_len = p[0];
        p++;
        if ((size_t)(end - p) < (size_t)o->origin_len + 2)
            return CIO_EPROTO;
        memcpy(o->origin, p, o->origin_len);
        p += o->origin_len;
    }
    o->origin[o->origin_len] = '\0';
    o->key_len = (uint16_t)(p[0] << 8 | p[1]);
    p += 2;
    if (o->key_len > LOGREC_KEY_MAX || (size_t)(end - p) < o->key_len ||
        (format < OBJ_FORMAT_CTX && (size_t)(end - p) != o->key_len))
        return CIO_EPROTO;
    memcpy(o->key, p, o->key_len);
    o->key[o->key_len] = '\0';
    p += o->key_len;
    vctx_init(&o->ctx);
    o->meta_len = 0;
    o->mpu_parts = 0;
    memset(o->mpu_md5, 0, 16);
    if (format == OBJ_FORMAT_CTX && (vctx_decode(p, (size_t)(end - p), &o->ctx, &used) != 0 || used != (size_t)(end - p)))
        return CIO_EPROTO;
    if (format == OBJ_FORMAT_META || format == OBJ_FORMAT_MPU) {
        size_t tail = format == OBJ_FORMAT_MPU ? 20 : 0;
        if (vctx_decode(p, (size_t)(end - p), &o->ctx, &used) != 0)
            return CIO_EPROTO;
        p += used;
        if (end - p < 2)
            return CIO_EPROTO;
        size_t mlen = (size_t)p[0] << 8 | p[1];
        p += 2;
        if ((mlen == 0 && tail == 0) || mlen > OBJMETA_MAX || (size_t)(end - p) != mlen + tail ||
            (mlen > 0 && objmeta_validate(p, mlen) != 0))
            return CIO_EPROTO;
        memcpy(o->meta, p, mlen);
        o->meta_len = (uint16_t)mlen;
        p += mlen;
        if (tail > 0) {
            o->mpu_parts = (uint32_t)be_get(p, 4);
            if (o->mpu_parts == 0 || o->mpu_parts > LOGREC_MPU_PARTS_MAX)
                return CIO_EPROTO;
            memcpy(o->mpu_md5, p + 4, 16);
        }
    }
    return 0;
}

int meta_obj_decode(const MDB_val *v, meta_obj_t *o)
{
    const uint8_t *p = v->mv_data;
    MDB_val body = *v;
    int format, ret;

    if (v->mv_size == 0)
        return CIO_EPROTO;
    format = p[0] & ~OBJ_CRC_FLAG;
    if ((p[0] & OBJ_CRC_FLAG) != 0) {
        if (v->mv_size < OBJ_FIXED + 4 || format < OBJ_FORMAT)
            return CIO_EPROTO;
        body.mv_size -= 4;
    }
    if (format != OBJ_FORMAT_CTX && format != OBJ_FORMAT_META && format != OBJ_FORMAT_MPU)
        format = OBJ_FORMAT;
    if ((ret = obj_decode_as(&body, o, format)) != 0)
        return ret;
    o->crc_inline = (p[0] & OBJ_CRC_FLAG) != 0;
    o->crc32c = o->crc_inline ? (uint32_t)be_get(p + body.mv_size, 4) : 0;
    if (o->crc_inline && o->size > BLOCKSUM_INLINE_MAX)
        return CIO_EPROTO;
    return 0;
}

/* Format 1 -> 2: every object record is rewritten in record format 3. A
 * legacy version was a seq; it stays the version's value: as a hybrid
 * logical clock value a seq is a few milliseconds after 1970, so every
 * write made after the upgrade orders after it. Its origin: an object
 * written here (record format 1) gets this site's id, so that a format-1
 * log record still pending (which decodes as version = seq, origin = this
 * site) still names it and ships; one a replica applied from its primary
 * (format 2) gets "", since the primary's id is not recorded: "" sorts
 * before every site id, so at an equal legacy version the primary's
 * pending event applies once more (the same object, harmlessly) rather
 * than being lost. */
static int migrate_objects_v2(meta_t *m, MDB_txn *txn)
{
    const char *site = m->site_id != NULL ? m->site_id : "";
    uint8_t vb[OBJ_MAX];
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    meta_obj_t o;
    int rc, ret = 0;

    if (strlen(site) > LOGREC_ORIGIN_MAX)
        return CIO_EINVAL;
    if ((rc = mdb_cursor_open(txn, m->objects, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(objects)");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *p = v.mv_data;
        uint8_t at[META_OBJKEY_MAX];
        size_t atlen = k.mv_size;
        if (v.mv_size > 0 && p[0] == OBJ_FORMAT)
            continue; /* already converted */
        if (v.mv_size == 0 || (p[0] != OBJ_FORMAT_V1_LOCAL && p[0] != OBJ_FORMAT_V1_REPLICA) || atlen > sizeof(at) ||
            (ret = obj_decode_as(&v, &o, p[0])) != 0) {
            ret = CIO_EPROTO;
            break;
        }
        if (p[0] == OBJ_FORMAT_V1_LOCAL) {
            o.origin_len = (uint16_t)strlen(site);
            memcpy(o.origin, site, o.origin_len + 1);
        }
        /* the record grows: put it anew, then find the cursor's place again (a put may move it) */
        memcpy(at, k.mv_data, atlen);
        MDB_val nk = {atlen, at}, nv = {obj_encode(vb, &o, o.key, o.key_len, NULL), vb};
        if ((rc = mdb_put(txn, m->objects, &nk, &nv, 0)) != 0 || (rc = mdb_cursor_get(cur, &nk, &v, MDB_SET)) != 0)
            break;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "convert objects");
    mdb_cursor_close(cur);
    return ret;
}

int meta_obj_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, meta_obj_t *out)
{
    uint8_t kb[META_OBJKEY_MAX];
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb}, v;
    int rc = mdb_get(txn, m->objects, &key, &v);
    if (rc != 0)
        return meta_err(rc, "mdb_get(objects)");
    if ((rc = meta_obj_decode(&v, out)) != 0)
        return rc;
    /* a hashed key must still be the same key */
    if (out->key_len != klen || memcmp(out->key, k, klen) != 0)
        return CIO_ENOTFOUND;
    return 0;
}

/* Whether `sums` (finished, for o->size bytes) go into o's record: an object of one block at most. */
static int sums_inline(const meta_obj_t *o, const blocksum_calc_t *sums)
{
    return sums != NULL && o->size <= BLOCKSUM_INLINE_MAX && sums->nblocks <= 1;
}

/* Writes or removes key kb[0..klen)'s "blocksums" record: that of `sums` for
 * object o, or none (sums NULL, or sums that o's record holds inline). */
static int sums_put(meta_t *m, MDB_txn *txn, MDB_val *key, const meta_obj_t *o, const blocksum_calc_t *sums)
{
    MDB_val v;
    int rc;

    /* the key's bytes change or go: a damage found in the old ones no longer applies */
    rc = mdb_del(txn, m->damaged, key, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return meta_err(rc, "mdb_del(damaged)");
    if (sums == NULL || sums_inline(o, sums)) {
        rc = mdb_del(txn, m->blocksums, key, NULL);
        return rc == MDB_NOTFOUND ? 0 : meta_err(rc, "mdb_del(blocksums)");
    }
    v.mv_size = blocksum_encoded_len(o->size, sums->shift, o->origin_len);
    /* reserved in place: the CRCs are encoded straight into the map, with no buffer of their size */
    if ((rc = mdb_put(txn, m->blocksums, key, &v, MDB_RESERVE)) != 0)
        return meta_err(rc, "mdb_put(blocksums)");
    if (blocksum_encode(v.mv_data, sums->shift, o->version, o->origin, o->origin_len, o->off, o->size, sums->crcs) != v.mv_size)
        return CIO_EINVAL;
    return 0;
}

/* Whether the "objects" value at `key` holds an inline CRC: 1, 0 (or no such
 * record), or a meta_err code. One read, of the page the put that follows
 * writes anyway. */
static int obj_has_inline(meta_t *m, MDB_txn *txn, MDB_val *key)
{
    MDB_val v;
    int rc = mdb_get(txn, m->objects, key, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return meta_err(rc, "mdb_get(objects)");
    return v.mv_size > 0 && (((const uint8_t *)v.mv_data)[0] & OBJ_CRC_FLAG) != 0;
}

/* Writes object record o at `key` (key k of a bucket) with the inline CRC
 * *crc (NULL: none), keeping META_SUMS_INLINE the count of such records. */
static int obj_write(meta_t *m, MDB_txn *txn, MDB_val *key, const char *k, size_t klen, const meta_obj_t *o, const uint32_t *crc)
{
    uint8_t vb[OBJ_MAX];
    MDB_val v = {obj_encode(vb, o, k, klen, crc), vb};
    int had = obj_has_inline(m, txn, key), ret;

    if (had < 0)
        return had;
    if ((ret = meta_err(mdb_put(txn, m->objects, key, &v, 0), "mdb_put(objects)")) != 0)
        return ret;
    return had == (crc != NULL) ? 0 : meta_state_add(m, txn, META_SUMS_INLINE, crc != NULL ? 1 : -1);
}

/* The inline CRC of sums for object o (sums_inline): that of its one block, 0 for no bytes. */
static uint32_t sums_one(const blocksum_calc_t *sums)
{
    return sums->nblocks > 0 ? sums->crcs[0] : 0;
}

int meta_obj_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_obj_t *o,
                 const blocksum_calc_t *sums)
{
    uint8_t kb[META_OBJKEY_MAX];
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb};
    uint32_t crc;
    int ret;

    if (sums != NULL && (sums->size != o->size || blocksum_calc_done(sums) != 0))
        return CIO_EINVAL;
    if (sums_inline(o, sums))
        crc = sums_one(sums);
    if ((ret = obj_write(m, txn, &key, k, klen, o, sums_inline(o, sums) ? &crc : NULL)) != 0)
        return ret;
    return sums_put(m, txn, &key, o, sums);
}

int meta_sums_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_obj_t *o,
                  const blocksum_calc_t *sums)
{
    uint8_t kb[META_OBJKEY_MAX];
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb};
    int ret;

    if (sums == NULL || sums->size != o->size || blocksum_calc_done(sums) != 0)
        return CIO_EINVAL;
    if (sums_inline(o, sums)) {
        uint32_t crc = sums_one(sums);
        if ((ret = obj_write(m, txn, &key, k, klen, o, &crc)) != 0)
            return ret;
    }
    return sums_put(m, txn, &key, o, sums);
}

int meta_obj_update(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_obj_t *o)
{
    uint8_t kb[META_OBJKEY_MAX];
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb};
    return obj_write(m, txn, &key, k, klen, o, o->crc_inline ? &o->crc32c : NULL);
}

int meta_obj_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen)
{
    int ret;
    if ((ret = meta_sums_del(m, txn, b, blen, k, klen)) != 0)
        return ret;
    uint8_t kb[META_OBJKEY_MAX];
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb};
    return meta_err(mdb_del(txn, m->objects, &key, NULL), "mdb_del(objects)");
}

int meta_sums_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen)
{
    uint8_t kb[META_OBJKEY_MAX];
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb};
    int had = obj_has_inline(m, txn, &key), ret;

    /* the record goes next (its caller's promise): so does the count of its inline CRC */
    if (had < 0 || (had == 1 && (ret = meta_state_add(m, txn, META_SUMS_INLINE, -1)) != 0))
        return had < 0 ? had : ret;
    return sums_put(m, txn, &key, NULL, NULL);
}

/* Removes every key of `dbi` that starts with bucket b's prefix (b and a NUL);
 * *inline_crcs (if not NULL) counts the values removed that hold an inline
 * CRC (an "objects" record's format byte). */
static int del_bucket_range(MDB_txn *txn, MDB_dbi dbi, const char *what, const char *b, size_t blen, uint64_t *inline_crcs)
{
    uint8_t seek[LOGREC_BUCKET_MAX + 1];
    MDB_cursor *cur = NULL;
    int rc;

    if (blen > LOGREC_BUCKET_MAX)
        return CIO_EINVAL;
    memcpy(seek, b, blen);
    seek[blen] = 0;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        return meta_err(rc, what);
    for (;;) {
        MDB_val k = {blen + 1, seek}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size < blen + 1 || memcmp(k.mv_data, seek, blen + 1) != 0))) {
            rc = 0;
            break;
        }
        if (rc == 0 && inline_crcs != NULL && v.mv_size > 0 && (((const uint8_t *)v.mv_data)[0] & OBJ_CRC_FLAG) != 0)
            (*inline_crcs)++;
        if (rc != 0 || (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return meta_err(rc, what);
}

int meta_obj_del_bucket(meta_t *m, MDB_txn *txn, const char *b, size_t blen)
{
    uint64_t inline_crcs = 0;
    int ret = del_bucket_range(txn, m->objects, "purge objects", b, blen, &inline_crcs);
    if (ret == 0 && inline_crcs > 0)
        ret = meta_state_add(m, txn, META_SUMS_INLINE, -(int64_t)inline_crcs);
    if (ret == 0)
        ret = del_bucket_range(txn, m->blocksums, "purge blocksums", b, blen, NULL);
    return ret != 0 ? ret : del_bucket_range(txn, m->damaged, "purge damaged", b, blen, NULL);
}

int meta_sums_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, blocksum_rec_t *out)
{
    uint8_t kb[META_OBJKEY_MAX];
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb}, v;
    int rc = mdb_get(txn, m->blocksums, &key, &v);
    if (rc == MDB_NOTFOUND)
        return CIO_ENOTFOUND;
    if (rc != 0)
        return meta_err(rc, "mdb_get(blocksums)");
    if (blocksum_decode(v.mv_data, v.mv_size, out) != 0) {
        log_msg(LOG_LVL_ERROR, "a block checksum record does not decode: the object is served unverified", NULL);
        return CIO_EPROTO;
    }
    return 0;
}

int meta_sums_view(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_obj_t *o,
                   uint64_t off, uint64_t len, blocksum_view_t *v)
{
    blocksum_rec_t r;
    int ret;

    if (o->crc_inline) {
        *v = blocksum_view_one(o->size, o->crc32c);
        return 0;
    }
    if ((ret = meta_sums_get(m, txn, b, blen, k, klen, &r)) != 0)
        return ret;
    if (!blocksum_matches(&r, o->version, o->origin, o->origin_len, o->off, o->size))
        return CIO_ENOTFOUND; /* another object's: stale */
    *v = blocksum_view(&r, off, len);
    return 0;
}

int meta_sums_count(meta_t *m, MDB_txn *txn, uint64_t *n)
{
    MDB_stat st;
    uint64_t inl;
    int ret, rc = mdb_stat(txn, m->blocksums, &st);
    if (rc != 0)
        return meta_err(rc, "mdb_stat(blocksums)");
    if ((ret = meta_state_get(m, txn, META_SUMS_INLINE, &inl)) != 0)
        return ret;
    *n = st.ms_entries + inl;
    return 0;
}

int meta_obj_current(const meta_obj_t *o, uint64_t version, const char *origin, size_t origin_len)
{
    return o->version == version && o->origin_len == origin_len && memcmp(o->origin, origin, origin_len) == 0;
}

int meta_obj_version_cmp(const meta_obj_t *o, uint64_t version, const char *origin, size_t origin_len)
{
    return hlc_version_cmp(o->version, o->origin, o->origin_len, version, origin, origin_len);
}

static int cmp_key(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int cmp_obj(const void *x, const void *y)
{
    const meta_obj_t *a = x, *b = y;
    return cmp_key(a->key, a->key_len, b->key, b->key_len);
}

/* What listing does with one object in key order: 0 go on, 1 stop (done), <0 error. */
static int list_visit(const meta_obj_t *o, const char *prefix, size_t plen, const char *after, size_t alen, meta_list_cb cb,
                      void *ctx)
{
    if (alen > 0 && cmp_key(o->key, o->key_len, after, alen) <= 0)
        return 0;
    if (o->key_len < plen || memcmp(o->key, prefix, plen) != 0)
        return cmp_key(o->key, o->key_len, prefix, plen) > 0 ? 1 : 0;
    return cb(ctx, o) != 0 ? 1 : 0;
}

/* The `cap` smallest keys of a run of long keys, as a max-heap of indexes
 * into `obj` (the largest kept key on top): memory stays O(cap) however long
 * the run. */
typedef struct {
    meta_obj_t *obj;
    size_t *heap;
    size_t n, cap;
} run_keep_t;

static int run_less(const run_keep_t *r, size_t a, size_t b)
{
    return cmp_obj(&r->obj[r->heap[a]], &r->obj[r->heap[b]]) < 0;
}

static void run_swap(run_keep_t *r, size_t a, size_t b)
{
    size_t t = r->heap[a];
    r->heap[a] = r->heap[b];
    r->heap[b] = t;
}

static void run_sift_down(run_keep_t *r, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, big = i;
        if (l < r->n && run_less(r, big, l))
            big = l;
        if (l + 1 < r->n && run_less(r, big, l + 1))
            big = l + 1;
        if (big == i)
            return;
        run_swap(r, i, big);
        i = big;
    }
}

/* Offers one object; keeps it if it is among the `cap` smallest so far. */
static int run_offer(run_keep_t *r, const meta_obj_t *o)
{
    if (r->n < r->cap) {
        if (r->obj == NULL || r->n % 64 == 0) { /* grow in steps: cap may be large, runs are usually short */
            size_t want = r->n + 64 < r->cap ? r->n + 64 : r->cap;
            meta_obj_t *no = realloc(r->obj, want * sizeof(*no));
            size_t *nh = no == NULL ? NULL : realloc(r->heap, want * sizeof(*nh));
            if (no != NULL)
                r->obj = no;
            if (nh == NULL)
                return CIO_ENOMEM;
            r->heap = nh;
        }
        size_t i = r->n++;
        r->obj[i] = *o;
        r->heap[i] = i;
        while (i > 0 && run_less(r, (i - 1) / 2, i)) { /* sift up */
            run_swap(r, i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
        return 0;
    }
    if (r->cap == 0 || cmp_obj(o, &r->obj[r->heap[0]]) >= 0)
        return 0;
    r->obj[r->heap[0]] = *o; /* replaces the largest kept */
    run_sift_down(r, 0);
    return 0;
}

static int cmp_index(const void *x, const void *y, void *arg)
{
    const meta_obj_t *obj = arg;
    return cmp_obj(&obj[*(const size_t *)x], &obj[*(const size_t *)y]);
}

int meta_obj_list(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *prefix, size_t plen, const char *after,
                  size_t alen, size_t limit, meta_list_cb cb, void *ctx)
{
    size_t room = objkey_room(blen);
    uint8_t seek[META_OBJKEY_MAX];
    const char *from = prefix;
    size_t fromlen = plen;
    MDB_cursor *cur = NULL;
    run_keep_t run = {NULL, NULL, 0, 0};
    meta_obj_t one;
    int rc, ret = 0;

    if (cmp_key(after, alen, prefix, plen) > 0)
        from = after, fromlen = alen;
    if (fromlen > room)
        fromlen = room;
    memcpy(seek, b, blen);
    seek[blen] = 0;
    memcpy(seek + blen + 1, from, fromlen);
    MDB_val k = {blen + 1 + fromlen, seek}, v;
    if ((rc = mdb_cursor_open(txn, m->objects, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(objects)");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size <= blen || memcmp(kp, b, blen) != 0 || kp[blen] != 0)
            break; /* left the bucket */
        if (k.mv_size != blen + 2 + room + HASH_LEN || kp[blen + 1 + room] != 0) {
            if ((ret = meta_obj_decode(&v, &one)) != 0 || (ret = list_visit(&one, prefix, plen, after, alen, cb, ctx)) != 0)
                break;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        /* A run of long keys sharing their stored prefix, in hash order: keep
         * the `limit` smallest of those the listing wants, then visit them in
         * key order. A key past the prefix means the listing ends with the run
         * (every later LMDB key sorts after the whole run). */
        uint8_t runkey[META_OBJKEY_MAX];
        size_t runlen = blen + 2 + room;
        int beyond = 0;
        memcpy(runkey, kp, runlen);
        run.n = 0;
        run.cap = limit;
        while (rc == 0 && k.mv_size == runlen + HASH_LEN && memcmp(k.mv_data, runkey, runlen) == 0) {
            if ((ret = meta_obj_decode(&v, &one)) != 0)
                goto done;
            if (alen == 0 || cmp_key(one.key, one.key_len, after, alen) > 0) {
                if (one.key_len >= plen && memcmp(one.key, prefix, plen) == 0) {
                    if ((ret = run_offer(&run, &one)) != 0)
                        goto done;
                } else if (cmp_key(one.key, one.key_len, prefix, plen) > 0) {
                    beyond = 1;
                }
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (run.n > 1)
            qsort_r(run.heap, run.n, sizeof(*run.heap), cmp_index, run.obj);
        for (size_t i = 0; i < run.n; i++)
            if ((ret = list_visit(&run.obj[run.heap[i]], prefix, plen, after, alen, cb, ctx)) != 0)
                goto done;
        if (beyond) {
            ret = 1;
            goto done;
        }
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(objects)");
done:
    mdb_cursor_close(cur);
    free(run.obj);
    free(run.heap);
    return ret < 0 ? ret : 0;
}

/* ---- counters ---- */

#define META_COUNTER_NAME(e, name, doc) [e] = name,
static const char *const counter_names[] = {META_COUNTERS(META_COUNTER_NAME)};
#undef META_COUNTER_NAME
_Static_assert(sizeof(counter_names) / sizeof(counter_names[0]) == META_NCOUNTERS, "one stored name per counter");

int meta_u64_get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const char *what, uint64_t *out)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rc != 0)
        return meta_err(rc, what);
    if (v.mv_size != 8)
        return CIO_EPROTO;
    *out = be_get(v.mv_data, 8);
    return 0;
}

int meta_u64_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const char *what, uint64_t val)
{
    uint8_t buf[8];
    be_put(buf, val, 8);
    MDB_val k = {klen, (void *)key}, v = {8, buf};
    return meta_err(mdb_put(txn, dbi, &k, &v, 0), what);
}

int meta_state_get(meta_t *m, MDB_txn *txn, meta_counter_t c, uint64_t *out)
{
    return meta_u64_get(txn, m->state, counter_names[c], strlen(counter_names[c]), "mdb_get(state)", out);
}

int meta_state_put(meta_t *m, MDB_txn *txn, meta_counter_t c, uint64_t val)
{
    return meta_u64_put(txn, m->state, counter_names[c], strlen(counter_names[c]), "mdb_put(state)", val);
}

int meta_state_add(meta_t *m, MDB_txn *txn, meta_counter_t c, int64_t delta)
{
    uint64_t v;
    int ret;
    if ((ret = meta_state_get(m, txn, c, &v)) != 0)
        return ret;
    return meta_state_put(m, txn, c, v + (uint64_t)delta);
}

/* ---- buckets (records of storaged/meta.h's "buckets") ---- */

#define BUCKET_FORMAT_V1 1
#define BUCKET_FORMAT 2
#define BUCKET_FIXED_V1 25
#define BUCKET_FIXED (BUCKET_FIXED_V1 + 8 + 1 + 1)

int meta_bucket_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_bucket_t *out)
{
    MDB_val k = {blen, (void *)b}, v;
    int rc = mdb_get(txn, m->buckets, &k, &v);
    if (rc != 0)
        return meta_err(rc, "mdb_get(buckets)");
    const uint8_t *p = v.mv_data;
    if (v.mv_size == BUCKET_FIXED_V1 && p[0] == BUCKET_FORMAT_V1) {
        out->version = meta_ver_make(0, "", 0);
        out->deleted = 0;
    } else if (v.mv_size >= BUCKET_FIXED && p[0] == BUCKET_FORMAT && v.mv_size == BUCKET_FIXED + (size_t)p[34] &&
               (p[33] & ~1u) == 0) {
        out->version = meta_ver_make(be_get(p + 25, 8), (const char *)p + BUCKET_FIXED, p[34]);
        out->deleted = p[33] & 1;
    } else {
        return CIO_EPROTO;
    }
    out->ctime_ms = (int64_t)be_get(p + 1, 8);
    out->objects = be_get(p + 9, 8);
    out->bytes = be_get(p + 17, 8);
    return 0;
}

int meta_bucket_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_bucket_t *bk)
{
    uint8_t buf[BUCKET_FIXED + LOGREC_ORIGIN_MAX];
    size_t olen = bk->version.origin_len;
    if (olen > LOGREC_ORIGIN_MAX)
        return CIO_EINVAL;
    buf[0] = BUCKET_FORMAT;
    be_put(buf + 1, (uint64_t)bk->ctime_ms, 8);
    be_put(buf + 9, bk->objects, 8);
    be_put(buf + 17, bk->bytes, 8);
    be_put(buf + 25, bk->version.hlc, 8);
    buf[33] = bk->deleted ? 1 : 0;
    buf[34] = (uint8_t)olen;
    memcpy(buf + BUCKET_FIXED, bk->version.origin, olen);
    MDB_val k = {blen, (void *)b}, v = {BUCKET_FIXED + olen, buf};
    return meta_err(mdb_put(txn, m->buckets, &k, &v, 0), "mdb_put(buckets)");
}

int meta_bucket_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen)
{
    MDB_val k = {blen, (void *)b};
    return meta_err(mdb_del(txn, m->buckets, &k, NULL), "mdb_del(buckets)");
}

/* ---- tombstones and purge versions ---- */

/* Format 2: format byte, version (u64 BE), time (i64 BE), origin (u8
 * length, bytes), key (u16 BE length, bytes). Format 3: the same followed
 * by the causal context (vctx_encode), written when it is not empty. Format
 * 1 (metadata format 1, still read, never written) has no origin: it reads
 * as origin "". */
#define TOMB_FORMAT_V1 1
#define TOMB_FORMAT 2
#define TOMB_FORMAT_CTX 3
#define TOMB_FIXED_V1 (1 + 8 + 8 + 2)
#define TOMB_FIXED (TOMB_FIXED_V1 + 1)

int meta_tomb_decode(const MDB_val *v, meta_tomb_t *t, const uint8_t **key, size_t *klen)
{
    const uint8_t *p = v->mv_data;
    size_t olen = 0, fixed, used;
    if (v->mv_size < TOMB_FIXED_V1 || (p[0] != TOMB_FORMAT && p[0] != TOMB_FORMAT_CTX && p[0] != TOMB_FORMAT_V1))
        return CIO_EPROTO;
    vctx_init(&t->ctx);
    if (p[0] != TOMB_FORMAT_V1) {
        if (v->mv_size < TOMB_FIXED || (olen = p[17]) > LOGREC_ORIGIN_MAX || v->mv_size < TOMB_FIXED + olen)
            return CIO_EPROTO;
        fixed = TOMB_FIXED + olen;
        t->version = meta_ver_make(be_get(p + 1, 8), (const char *)p + 18, olen);
    } else {
        fixed = TOMB_FIXED_V1;
        t->version = meta_ver_make(be_get(p + 1, 8), "", 0);
    }
    t->time_ms = (int64_t)be_get(p + 9, 8);
    *klen = (size_t)(p[fixed - 2] << 8 | p[fixed - 1]);
    if (*klen > LOGREC_KEY_MAX || v->mv_size < fixed + *klen || (p[0] != TOMB_FORMAT_CTX && v->mv_size != fixed + *klen))
        return CIO_EPROTO;
    *key = p + fixed;
    if (p[0] == TOMB_FORMAT_CTX &&
        (vctx_decode(p + fixed + *klen, v->mv_size - fixed - *klen, &t->ctx, &used) != 0 || used != v->mv_size - fixed - *klen))
        return CIO_EPROTO;
    return 0;
}

int meta_tomb_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, meta_tomb_t *out)
{
    uint8_t kb[META_OBJKEY_MAX];
    const uint8_t *full;
    size_t flen;
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb}, v;
    int rc = mdb_get(txn, m->tombstones, &key, &v);
    if (rc != 0)
        return meta_err(rc, "mdb_get(tombstones)");
    if ((rc = meta_tomb_decode(&v, out, &full, &flen)) != 0)
        return rc;
    /* a hashed key must still be the same key */
    if (flen != klen || memcmp(full, k, klen) != 0)
        return CIO_ENOTFOUND;
    return 0;
}

int meta_tomb_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_tomb_t *t)
{
    uint8_t kb[META_OBJKEY_MAX], vb[TOMB_FIXED + LOGREC_ORIGIN_MAX + LOGREC_KEY_MAX + VCTX_ENCODED_MAX];
    size_t olen = t->version.origin_len, clen = 0;
    int with_ctx = t->ctx.n > 0 || t->ctx.floor != 0;
    if (klen > LOGREC_KEY_MAX || olen > LOGREC_ORIGIN_MAX)
        return CIO_EINVAL;
    vb[0] = with_ctx ? TOMB_FORMAT_CTX : TOMB_FORMAT;
    be_put(vb + 1, t->version.hlc, 8);
    be_put(vb + 9, (uint64_t)t->time_ms, 8);
    vb[17] = (uint8_t)olen;
    memcpy(vb + 18, t->version.origin, olen);
    vb[18 + olen] = (uint8_t)(klen >> 8);
    vb[19 + olen] = (uint8_t)klen;
    memcpy(vb + TOMB_FIXED + olen, k, klen);
    if (with_ctx)
        clen = vctx_encode(vb + TOMB_FIXED + olen + klen, &t->ctx);
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb}, v = {TOMB_FIXED + olen + klen + clen, vb};
    return meta_err(mdb_put(txn, m->tombstones, &key, &v, 0), "mdb_put(tombstones)");
}

int meta_tomb_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen)
{
    uint8_t kb[META_OBJKEY_MAX];
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb};
    int rc = mdb_del(txn, m->tombstones, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : meta_err(rc, "mdb_del(tombstones)");
}

int meta_purge_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_ver_t *version)
{
    MDB_val k = {blen, (void *)b}, v;
    int rc = mdb_get(txn, m->purges, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *version = meta_ver_make(0, "", 0);
        return 0;
    }
    if (rc != 0)
        return meta_err(rc, "mdb_get(purges)");
    if (v.mv_size < 8 || v.mv_size > 8 + LOGREC_ORIGIN_MAX)
        return CIO_EPROTO;
    *version = meta_ver_make(be_get(v.mv_data, 8), (const char *)v.mv_data + 8, v.mv_size - 8);
    return 0;
}

int meta_purge_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_ver_t *version)
{
    uint8_t buf[8 + LOGREC_ORIGIN_MAX];
    if (version->origin_len > LOGREC_ORIGIN_MAX)
        return CIO_EINVAL;
    be_put(buf, version->hlc, 8);
    memcpy(buf + 8, version->origin, version->origin_len);
    MDB_val k = {blen, (void *)b}, v = {8 + (size_t)version->origin_len, buf};
    return meta_err(mdb_put(txn, m->purges, &k, &v, 0), "mdb_put(purges)");
}

/* ---- the store's identity ---- */

int meta_store_id(meta_t *m, MDB_txn *txn, char out[META_STORE_ID_HEX + 1])
{
    uint64_t hi, lo;
    uint8_t id[16];
    int ret;
    out[0] = '\0';
    if ((ret = meta_state_get(m, txn, META_STORE_ID_HI, &hi)) != 0 || (ret = meta_state_get(m, txn, META_STORE_ID_LO, &lo)) != 0)
        return ret;
    if (hi == 0 && lo == 0)
        return CIO_ENOTFOUND;
    be_put(id, hi, 8);
    be_put(id + 8, lo, 8);
    hex_encode(out, id, 16);
    out[META_STORE_ID_HEX] = '\0';
    return 0;
}

/* ---- a bucket's keys, objects and tombstones together (full sync) ---- */

typedef struct {
    meta_entry_t *v;
    size_t n, cap, max;
    int truncated;
} entries_t;

static int entries_push(entries_t *e, meta_entry_t **out)
{
    meta_entry_t *n = buf_grow_array(e->v, &e->cap, e->n, sizeof(*n), 64);
    if (n == NULL)
        return CIO_ENOMEM;
    e->v = n;
    *out = &e->v[e->n++];
    return 0;
}

static int take_obj(void *ctx, const meta_obj_t *o)
{
    entries_t *e = ctx;
    meta_entry_t *x;
    if (e->n >= e->max) {
        e->truncated = 1;
        return 1;
    }
    if (entries_push(e, &x) != 0)
        return CIO_ENOMEM;
    x->deleted = 0;
    x->obj = *o;
    return 0;
}

static int cmp_entry(const void *x, const void *y)
{
    const meta_entry_t *a = x, *b = y;
    return cmp_key(a->obj.key, a->obj.key_len, b->obj.key, b->obj.key_len);
}

/* The tombstones of bucket b after `after`, at least `max` of them unless the
 * bucket ends first. Long keys are stored as a prefix and a hash, so a run
 * of them sharing their prefix is in hash order: the walk never stops inside
 * such a run, and the page is sorted, so every key it leaves out sorts after
 * every key it holds. */
static int tomb_page(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *after, size_t alen, entries_t *e)
{
    size_t room = objkey_room(blen), fromlen = alen > room ? room : alen;
    uint8_t seek[META_OBJKEY_MAX], run[META_OBJKEY_MAX];
    size_t runlen = 0;
    MDB_cursor *cur;
    int rc, ret = 0;

    memcpy(seek, b, blen);
    seek[blen] = 0;
    memcpy(seek + blen + 1, after, fromlen);
    MDB_val k = {blen + 1 + fromlen, seek}, v;
    if ((rc = mdb_cursor_open(txn, m->tombstones, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(tombstones)");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data, *key;
        size_t klen;
        meta_tomb_t t;
        meta_entry_t *x;
        int hashed;
        if (k.mv_size <= blen || memcmp(kp, b, blen) != 0 || kp[blen] != 0)
            break; /* left the bucket */
        hashed = k.mv_size == blen + 2 + room + HASH_LEN && kp[blen + 1 + room] == 0;
        if (e->n >= e->max && !(hashed && runlen > 0 && memcmp(kp, run, runlen) == 0)) {
            e->truncated = 1;
            break;
        }
        runlen = 0;
        if (hashed) {
            runlen = blen + 2 + room;
            memcpy(run, kp, runlen);
        }
        if ((ret = meta_tomb_decode(&v, &t, &key, &klen)) != 0)
            break;
        if (klen == 0 || cmp_key((const char *)key, klen, after, alen) <= 0)
            continue; /* the bucket's own tombstone, or not after `after` */
        if ((ret = entries_push(e, &x)) != 0)
            break;
        memset(&x->obj, 0, sizeof(x->obj));
        x->deleted = 1;
        x->obj.version = t.version.hlc;
        x->obj.origin_len = t.version.origin_len;
        memcpy(x->obj.origin, t.version.origin, t.version.origin_len + 1);
        x->obj.key_len = (uint16_t)klen;
        memcpy(x->obj.key, key, klen);
        x->obj.key[klen] = '\0';
        x->obj.ctx = t.ctx;
        x->obj.mtime_ms = t.time_ms;
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(tombstones)");
    mdb_cursor_close(cur);
    if (ret == 0 && e->n > 1)
        qsort(e->v, e->n, sizeof(*e->v), cmp_entry);
    return ret;
}

int meta_key_page(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *after, size_t alen, size_t max,
                  meta_entry_t **out, size_t *n, int *more)
{
    entries_t objs = {NULL, 0, 0, max, 0}, tombs = {NULL, 0, 0, max, 0};
    meta_entry_t *page = NULL;
    size_t i = 0, j = 0, np = 0;
    int ret;

    *out = NULL;
    *n = 0;
    *more = 0;
    if (max == 0)
        return CIO_EINVAL;
    if ((ret = meta_obj_list(m, txn, b, blen, "", 0, after, alen, max + 1, take_obj, &objs)) != 0 ||
        (ret = tomb_page(m, txn, b, blen, after, alen, &tombs)) != 0)
        goto done;
    if (objs.n + tombs.n > 0 && (page = malloc((objs.n + tombs.n) * sizeof(*page))) == NULL) {
        ret = CIO_ENOMEM;
        goto done;
    }
    /* a side cut short bounds the page: beyond its last key, the other side may miss keys of it */
    const meta_obj_t *bound = NULL;
    if (objs.truncated && objs.n > 0)
        bound = &objs.v[objs.n - 1].obj;
    if (tombs.truncated && tombs.n > 0 &&
        (bound == NULL || cmp_key(tombs.v[tombs.n - 1].obj.key, tombs.v[tombs.n - 1].obj.key_len, bound->key, bound->key_len) < 0))
        bound = &tombs.v[tombs.n - 1].obj;
    while (i < objs.n || j < tombs.n) {
        meta_entry_t *x;
        int c = i >= objs.n ? 1 : j >= tombs.n ? -1 : cmp_entry(&objs.v[i], &tombs.v[j]);
        x = c <= 0 ? &objs.v[i] : &tombs.v[j];
        if (bound != NULL && cmp_key(x->obj.key, x->obj.key_len, bound->key, bound->key_len) > 0)
            break;
        if (c == 0) {
            /* an object and a tombstone of one key: the later version is the key's state */
            if (hlc_version_cmp(tombs.v[j].obj.version, tombs.v[j].obj.origin, tombs.v[j].obj.origin_len, objs.v[i].obj.version,
                                objs.v[i].obj.origin, objs.v[i].obj.origin_len) > 0)
                x = &tombs.v[j];
            i++, j++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
        page[np++] = *x;
    }
    *more = objs.truncated || tombs.truncated;
    *out = page;
    *n = np;
    page = NULL;
done:
    free(page);
    free(objs.v);
    free(tombs.v);
    return ret;
}
