/* s3xml.c - the XML request bodies of S3, parsed with expat under hard caps.
 *
 * One small schema (the table `elems`) drives the three parsers: expat's
 * callbacks keep a stack of the elements open, collect the text of the
 * known leaves into one arena, and record each leaf into the entry (object
 * or part) being read. The result is built in one allocation at the end, so
 * a refused document leaves the caller's structure untouched. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <expat.h>
#include "common/buf.h"
#include "proto/s3xml.h"

#define S3XML_NS "http://s3.amazonaws.com/doc/2006-03-01/"
#define NS_SEP '\x01' /* expat's separator between a namespace URI and a local name */

const char *const s3xml_checksum_names[S3XML_NCHECKSUMS] = {"ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1",
                                                            "ChecksumSHA256"};

typedef enum {
    EL_NONE, /* the parent of a root */
    EL_UNKNOWN,
    EL_DELETE,
    EL_QUIET,
    EL_OBJECT,
    EL_KEY,
    EL_VERSION_ID,
    EL_COMPLETE,
    EL_PART,
    EL_PART_NUMBER,
    EL_ETAG,
    EL_CHECKSUM, /* EL_CHECKSUM + s3xml_checksum_t */
    EL_BUCKET_CONF = EL_CHECKSUM + S3XML_NCHECKSUMS,
    EL_LOCATION,
} el_t;

/* Where a leaf's text goes: a slot of the current entry, or a document value. */
enum { SLOT_NAME, SLOT_VERSION, SLOT_CHECKSUM, NSLOTS = SLOT_CHECKSUM + S3XML_NCHECKSUMS };

static const struct {
    el_t parent;
    const char *name;
    el_t id;
    size_t cap; /* a leaf's text cap in bytes; 0: not a leaf */
} elems[] = {
    {EL_NONE, "Delete", EL_DELETE, 0},
    {EL_DELETE, "Quiet", EL_QUIET, 16},
    {EL_DELETE, "Object", EL_OBJECT, 0},
    {EL_OBJECT, "Key", EL_KEY, LIMIT_KEY_MAX},
    {EL_OBJECT, "VersionId", EL_VERSION_ID, S3XML_VERSION_ID_MAX},
    {EL_NONE, "CompleteMultipartUpload", EL_COMPLETE, 0},
    {EL_COMPLETE, "Part", EL_PART, 0},
    {EL_PART, "PartNumber", EL_PART_NUMBER, 16},
    {EL_PART, "ETag", EL_ETAG, S3XML_ETAG_MAX},
    {EL_PART, "ChecksumCRC32", EL_CHECKSUM + S3XML_CK_CRC32, S3XML_CHECKSUM_MAX},
    {EL_PART, "ChecksumCRC32C", EL_CHECKSUM + S3XML_CK_CRC32C, S3XML_CHECKSUM_MAX},
    {EL_PART, "ChecksumCRC64NVME", EL_CHECKSUM + S3XML_CK_CRC64NVME, S3XML_CHECKSUM_MAX},
    {EL_PART, "ChecksumSHA1", EL_CHECKSUM + S3XML_CK_SHA1, S3XML_CHECKSUM_MAX},
    {EL_PART, "ChecksumSHA256", EL_CHECKSUM + S3XML_CK_SHA256, S3XML_CHECKSUM_MAX},
    {EL_NONE, "CreateBucketConfiguration", EL_BUCKET_CONF, 0},
    {EL_BUCKET_CONF, "LocationConstraint", EL_LOCATION, S3XML_LOCATION_MAX},
};

/* An object or a part while parsing: its strings as offsets into the arena. */
typedef struct {
    size_t off[NSLOTS], len[NSLOTS];
    unsigned has; /* bit per slot */
    uint32_t number;
    int has_number;
} entry_t;

typedef struct {
    XML_Parser xp;
    el_t root;      /* the document expected */
    size_t max_ent; /* entries allowed */
    el_t stack[S3XML_DEPTH_MAX];
    size_t depth, elements;
    size_t text_cap;   /* the open leaf's cap; 0 when text is not collected */
    size_t text_start; /* the open leaf's first byte in `arena` */
    buf_t arena;       /* every collected text, each followed by a NUL */
    entry_t *ent;
    size_t nent, ent_cap;
    int quiet, has_quiet;
    size_t loc_off, loc_len;
    int has_loc;
    int err;
    char *msg;
    size_t msglen;
} parse_t;

static void fail(parse_t *p, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records the first failure and stops expat. */
static void fail(parse_t *p, int err, const char *fmt, ...)
{
    va_list ap;

    if (p->err != 0)
        return;
    p->err = err;
    if (p->msglen > 0) {
        va_start(ap, fmt);
        vsnprintf(p->msg, p->msglen, fmt, ap);
        va_end(ap);
    }
    if (p->xp != NULL)
        XML_StopParser(p->xp, XML_FALSE);
}

/* The local name of an expat name, or NULL when its namespace is neither S3's nor none. */
static const char *local_name(const XML_Char *name)
{
    const char *sep = strchr(name, NS_SEP);
    if (sep == NULL)
        return name;
    if ((size_t)(sep - name) != sizeof(S3XML_NS) - 1 || memcmp(name, S3XML_NS, sizeof(S3XML_NS) - 1) != 0)
        return NULL;
    return sep + 1;
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    parse_t *p = ud;
    const char *local = local_name(name);
    el_t parent = p->depth == 0 ? EL_NONE : p->stack[p->depth - 1], id = EL_UNKNOWN;
    size_t cap = 0;

    if (p->err != 0)
        return;
    if (local == NULL) {
        fail(p, CIO_EINVAL, "an element is in a namespace other than S3's");
        return;
    }
    if (p->depth == S3XML_DEPTH_MAX) {
        fail(p, CIO_ETOOBIG, "elements nest deeper than %d", S3XML_DEPTH_MAX);
        return;
    }
    if (p->text_cap > 0) {
        fail(p, CIO_EINVAL, "an element inside the value of another");
        return;
    }
    if (++p->elements > S3XML_ELEMENTS_MAX) {
        fail(p, CIO_ETOOBIG, "more than %d elements", S3XML_ELEMENTS_MAX);
        return;
    }
    if (parent != EL_UNKNOWN) {
        for (size_t i = 0; i < sizeof(elems) / sizeof(elems[0]); i++) {
            if (elems[i].parent == parent && strcmp(elems[i].name, local) == 0) {
                id = elems[i].id;
                cap = elems[i].cap;
                break;
            }
        }
    }
    if (p->depth == 0 && id != p->root) {
        fail(p, CIO_EINVAL, "the root element is not the one this request takes");
        return;
    }
    if (id == EL_OBJECT || id == EL_PART) {
        if (p->nent == p->max_ent) {
            fail(p, CIO_ETOOBIG, "more than %zu %s elements", p->max_ent, local);
            return;
        }
        if (p->nent == p->ent_cap) {
            size_t ncap = p->ent_cap == 0 ? 64 : p->ent_cap * 2;
            entry_t *n = realloc(p->ent, ncap * sizeof(*n));
            if (n == NULL) {
                fail(p, CIO_ENOMEM, "out of memory");
                return;
            }
            p->ent = n;
            p->ent_cap = ncap;
        }
        memset(&p->ent[p->nent++], 0, sizeof(entry_t));
    }
    p->stack[p->depth++] = id;
    if (cap > 0) {
        p->text_cap = cap;
        p->text_start = p->arena.len;
    }
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    parse_t *p = ud;

    if (p->err != 0 || p->text_cap == 0)
        return; /* text outside a known leaf (white space between elements, an unknown element's) */
    if (p->arena.len - p->text_start + (size_t)len > p->text_cap) {
        fail(p, CIO_ETOOBIG, "a value is longer than %zu bytes", p->text_cap);
        return;
    }
    if (buf_append(&p->arena, s, (size_t)len) != 0)
        fail(p, CIO_ENOMEM, "out of memory");
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* s[0..n) without the XML white space around it. */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s))
        (*s)++, (*n)--;
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

/* The text just closed is kept in the arena for `slot` of the current entry. */
static void keep_text(parse_t *p, entry_t *e, int slot, const char *what, size_t len)
{
    if (e->has & (1u << slot)) {
        fail(p, CIO_EINVAL, "more than one %s in an entry", what);
        return;
    }
    e->has |= 1u << slot;
    e->off[slot] = p->text_start;
    e->len[slot] = len;
    if (buf_append(&p->arena, "", 1) != 0)
        fail(p, CIO_ENOMEM, "out of memory");
}

static void end_leaf(parse_t *p, el_t id)
{
    const char *text = p->arena.data == NULL ? "" : p->arena.data + p->text_start;
    size_t len = p->arena.len - p->text_start, n = len;
    entry_t *e = p->nent > 0 ? &p->ent[p->nent - 1] : NULL;

    p->text_cap = 0;
    switch (id) {
    case EL_KEY:
        if (len == 0) {
            fail(p, CIO_EINVAL, "a Key is empty");
            return;
        }
        keep_text(p, e, SLOT_NAME, "Key", len);
        return;
    case EL_VERSION_ID:
        keep_text(p, e, SLOT_VERSION, "VersionId", len);
        return;
    case EL_ETAG:
        if (len == 0) {
            fail(p, CIO_EINVAL, "an ETag is empty");
            return;
        }
        keep_text(p, e, SLOT_NAME, "ETag", len);
        return;
    case EL_LOCATION:
        if (p->has_loc) {
            fail(p, CIO_EINVAL, "more than one LocationConstraint");
            return;
        }
        p->has_loc = 1;
        p->loc_off = p->text_start;
        p->loc_len = len;
        if (buf_append(&p->arena, "", 1) != 0)
            fail(p, CIO_ENOMEM, "out of memory");
        return;
    case EL_QUIET:
        trim(&text, &n);
        if (p->has_quiet || !((n == 4 && strncasecmp(text, "true", 4) == 0) || (n == 5 && strncasecmp(text, "false", 5) == 0))) {
            fail(p, CIO_EINVAL, "Quiet is not one true or false");
            return;
        }
        p->has_quiet = 1;
        p->quiet = n == 4;
        break;
    case EL_PART_NUMBER: {
        uint32_t v = 0;
        trim(&text, &n);
        if (e->has_number || n == 0 || n > 5) {
            fail(p, CIO_EINVAL, "a PartNumber is not one number from 1 to %d", S3XML_PART_NUMBER_MAX);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (text[i] < '0' || text[i] > '9') {
                fail(p, CIO_EINVAL, "a PartNumber is not one number from 1 to %d", S3XML_PART_NUMBER_MAX);
                return;
            }
            v = v * 10 + (uint32_t)(text[i] - '0');
        }
        if (v < 1 || v > S3XML_PART_NUMBER_MAX) {
            fail(p, CIO_EINVAL, "a PartNumber is not one number from 1 to %d", S3XML_PART_NUMBER_MAX);
            return;
        }
        e->number = v;
        e->has_number = 1;
        break;
    }
    default:
        if (id >= EL_CHECKSUM && id < EL_CHECKSUM + S3XML_NCHECKSUMS) {
            keep_text(p, e, SLOT_CHECKSUM + (int)(id - EL_CHECKSUM), s3xml_checksum_names[id - EL_CHECKSUM], len);
            return;
        }
        break;
    }
    p->arena.len = p->text_start; /* a number or a boolean: nothing kept */
}

static void on_end(void *ud, const XML_Char *name)
{
    parse_t *p = ud;
    el_t id;

    if (p->err != 0 || p->depth == 0)
        return;
    id = p->stack[--p->depth];
    if (p->text_cap > 0) { /* a leaf: nothing nests in one */
        end_leaf(p, id);
        return;
    }
    switch (id) {
    case EL_OBJECT:
        if (!(p->ent[p->nent - 1].has & (1u << SLOT_NAME)))
            fail(p, CIO_EINVAL, "an Object has no Key");
        break;
    case EL_PART:
        if (!(p->ent[p->nent - 1].has & (1u << SLOT_NAME)) || !p->ent[p->nent - 1].has_number)
            fail(p, CIO_EINVAL, "a Part lacks its PartNumber or its ETag");
        break;
    case EL_DELETE:
        if (p->nent == 0)
            fail(p, CIO_EINVAL, "a Delete names no Object");
        break;
    case EL_COMPLETE:
        if (p->nent == 0)
            fail(p, CIO_EINVAL, "a CompleteMultipartUpload names no Part");
        break;
    default:
        break;
    }
}

static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid, int has_internal_subset)
{
    fail(ud, CIO_EINVAL, "a document type declaration is not allowed");
}

static void on_entity_decl(void *ud, const XML_Char *name, int is_param, const XML_Char *value, int value_len, const XML_Char *base,
                           const XML_Char *sysid, const XML_Char *pubid, const XML_Char *notation)
{
    fail(ud, CIO_EINVAL, "an entity declaration is not allowed");
}

/* Parses body as a document with root `root` and at most max_ent entries;
 * on success the caller owns p->arena and p->ent (parse_done frees them). */
static int parse(parse_t *p, el_t root, size_t max_ent, const char *body, size_t len, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->root = root;
    p->max_ent = max_ent;
    p->msg = err;
    p->msglen = errlen;
    if (errlen > 0)
        err[0] = '\0';
    if (len == 0) {
        fail(p, CIO_EINVAL, "the body is empty");
        return p->err;
    }
    if (len > S3XML_BODY_MAX) {
        fail(p, CIO_ETOOBIG, "the body is larger than %d bytes", S3XML_BODY_MAX);
        return p->err;
    }
    /* decoded text is never longer than its source: the arena's cap is only a guard */
    buf_init(&p->arena, len + 1);
    if ((p->xp = XML_ParserCreateNS("UTF-8", NS_SEP)) == NULL) {
        fail(p, CIO_ENOMEM, "out of memory");
        return p->err;
    }
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    XML_SetCharacterDataHandler(p->xp, on_text);
    XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
    XML_SetEntityDeclHandler(p->xp, on_entity_decl);
    XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
    if (XML_Parse(p->xp, body, (int)len, XML_TRUE) != XML_STATUS_OK && p->err == 0) {
        enum XML_Error code = XML_GetErrorCode(p->xp);
        fail(p, code == XML_ERROR_NO_MEMORY ? CIO_ENOMEM : CIO_EINVAL, "not well-formed XML: %s at line %lu, column %lu",
             XML_ErrorString(code), (unsigned long)XML_GetCurrentLineNumber(p->xp),
             (unsigned long)XML_GetCurrentColumnNumber(p->xp));
    }
    XML_ParserFree(p->xp);
    p->xp = NULL;
    if (p->err == 0 && p->arena.err != 0)
        p->err = p->arena.err;
    if (p->err != 0) {
        buf_free(&p->arena);
        free(p->ent);
        p->ent = NULL;
    }
    return p->err;
}

static void parse_done(parse_t *p)
{
    buf_free(&p->arena);
    free(p->ent);
}

/* One block: `head` bytes for the entries, then a copy of the arena. */
static char *one_block(parse_t *p, size_t head, const char **texts)
{
    char *mem = malloc(head + p->arena.len + 1);
    if (mem == NULL)
        return NULL;
    if (p->arena.len > 0)
        memcpy(mem + head, p->arena.data, p->arena.len);
    mem[head + p->arena.len] = '\0';
    *texts = mem + head;
    return mem;
}

int s3xml_delete_parse(const char *body, size_t len, s3xml_delete_t *out, char *err, size_t errlen)
{
    parse_t p;
    const char *texts;
    char *mem;
    int ret;

    if ((ret = parse(&p, EL_DELETE, S3XML_DELETE_MAX, body, len, err, errlen)) != 0)
        return ret;
    if ((mem = one_block(&p, p.nent * sizeof(s3xml_object_t), &texts)) == NULL) {
        parse_done(&p);
        if (errlen > 0)
            snprintf(err, errlen, "out of memory");
        return CIO_ENOMEM;
    }
    s3xml_object_t *objs = (s3xml_object_t *)(void *)mem;
    for (size_t i = 0; i < p.nent; i++) {
        const entry_t *e = &p.ent[i];
        objs[i].key = texts + e->off[SLOT_NAME];
        objs[i].key_len = e->len[SLOT_NAME];
        objs[i].version_id = (e->has & (1u << SLOT_VERSION)) ? texts + e->off[SLOT_VERSION] : NULL;
        objs[i].version_id_len = e->len[SLOT_VERSION];
    }
    out->objects = objs;
    out->nobjects = p.nent;
    out->quiet = p.quiet;
    out->mem_ = mem;
    parse_done(&p);
    return 0;
}

int s3xml_complete_parse(const char *body, size_t len, s3xml_complete_t *out, char *err, size_t errlen)
{
    parse_t p;
    const char *texts;
    char *mem;
    int ret;

    if ((ret = parse(&p, EL_COMPLETE, S3XML_PARTS_MAX, body, len, err, errlen)) != 0)
        return ret;
    if ((mem = one_block(&p, p.nent * sizeof(s3xml_part_t), &texts)) == NULL) {
        parse_done(&p);
        if (errlen > 0)
            snprintf(err, errlen, "out of memory");
        return CIO_ENOMEM;
    }
    s3xml_part_t *parts = (s3xml_part_t *)(void *)mem;
    for (size_t i = 0; i < p.nent; i++) {
        const entry_t *e = &p.ent[i];
        parts[i].number = e->number;
        parts[i].etag = texts + e->off[SLOT_NAME];
        parts[i].etag_len = e->len[SLOT_NAME];
        for (int c = 0; c < S3XML_NCHECKSUMS; c++) {
            int slot = SLOT_CHECKSUM + c;
            parts[i].checksum[c] = (e->has & (1u << slot)) ? texts + e->off[slot] : NULL;
            parts[i].checksum_len[c] = e->len[slot];
        }
    }
    out->parts = parts;
    out->nparts = p.nent;
    out->mem_ = mem;
    parse_done(&p);
    return 0;
}

int s3xml_bucket_conf_parse(const char *body, size_t len, s3xml_bucket_conf_t *out, char *err, size_t errlen)
{
    parse_t p;
    const char *texts;
    char *mem;
    int ret;

    if ((ret = parse(&p, EL_BUCKET_CONF, 0, body, len, err, errlen)) != 0)
        return ret;
    if ((mem = one_block(&p, 0, &texts)) == NULL) {
        parse_done(&p);
        if (errlen > 0)
            snprintf(err, errlen, "out of memory");
        return CIO_ENOMEM;
    }
    out->location = p.has_loc ? texts + p.loc_off : NULL;
    out->location_len = p.loc_len;
    out->mem_ = mem;
    parse_done(&p);
    return 0;
}

void s3xml_delete_free(s3xml_delete_t *d)
{
    free(d->mem_);
    memset(d, 0, sizeof(*d));
}

void s3xml_complete_free(s3xml_complete_t *c)
{
    free(c->mem_);
    memset(c, 0, sizeof(*c));
}

void s3xml_bucket_conf_free(s3xml_bucket_conf_t *b)
{
    free(b->mem_);
    memset(b, 0, sizeof(*b));
}
