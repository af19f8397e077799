/* fuzz_s3xml.c - libFuzzer target for the S3 request body parsers (proto/s3xml.c).
 *
 * Input: a mode byte (mod 3: 0 <Delete>, 1 <CompleteMultipartUpload>, 2
 * <CreateBucketConfiguration>), then the body. Invariants: a refused body
 * leaves the output untouched and says why; an accepted one keeps every
 * documented bound (counts, lengths, NUL-terminated strings without a NUL
 * inside); and writing the result back as XML and parsing that gives the
 * same values. */
#include "common/buf.h"
#include "proto/s3xml.h"
#include "fuzz.h"

/* A value that was parsed is a C string of exactly its length. */
static int is_cstr(const char *s, size_t len, size_t cap)
{
    return s != NULL && len <= cap && strlen(s) == len;
}

/* Appends <name>text</name> with text escaped so that expat gives it back as is. */
static void put_elem(buf_t *b, const char *name, const char *s, size_t len)
{
    buf_printf(b, "<%s>", name);
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '&':
            buf_puts(b, "&amp;");
            break;
        case '<':
            buf_puts(b, "&lt;");
            break;
        case '>':
            buf_puts(b, "&gt;");
            break;
        case '\r':
            buf_puts(b, "&#13;"); /* a raw CR would be read as a line end */
            break;
        default:
            buf_append(b, &s[i], 1);
        }
    }
    buf_printf(b, "</%s>", name);
}

static int same(const char *a, size_t alen, const char *b, size_t blen)
{
    return (a == NULL) == (b == NULL) && alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void fuzz_delete(const char *body, size_t len)
{
    s3xml_delete_t d, d2, sentinel;
    char err[256];
    buf_t b;

    memset(&sentinel, 0x5a, sizeof(sentinel));
    d = sentinel;
    err[0] = '\0';
    if (s3xml_delete_parse(body, len, &d, err, sizeof(err)) != 0) {
        FUZZ_CHECK(memcmp(&d, &sentinel, sizeof(d)) == 0 && err[0] != '\0');
        return;
    }
    FUZZ_CHECK(d.nobjects >= 1 && d.nobjects <= S3XML_DELETE_MAX && (d.quiet == 0 || d.quiet == 1));
    buf_init(&b, SIZE_MAX);
    buf_puts(&b, "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    if (d.quiet)
        buf_puts(&b, "<Quiet>true</Quiet>");
    for (size_t i = 0; i < d.nobjects; i++) {
        const s3xml_object_t *o = &d.objects[i];
        FUZZ_CHECK(o->key_len >= 1 && is_cstr(o->key, o->key_len, LIMIT_KEY_MAX));
        FUZZ_CHECK(o->version_id == NULL || is_cstr(o->version_id, o->version_id_len, S3XML_VERSION_ID_MAX));
        buf_puts(&b, "<Object>");
        put_elem(&b, "Key", o->key, o->key_len);
        if (o->version_id != NULL)
            put_elem(&b, "VersionId", o->version_id, o->version_id_len);
        buf_puts(&b, "</Object>");
    }
    buf_puts(&b, "</Delete>");
    FUZZ_CHECK(b.err == 0);
    FUZZ_CHECK(s3xml_delete_parse(b.data, b.len, &d2, err, sizeof(err)) == 0);
    FUZZ_CHECK(d2.nobjects == d.nobjects && d2.quiet == d.quiet);
    for (size_t i = 0; i < d.nobjects; i++) {
        FUZZ_CHECK(same(d.objects[i].key, d.objects[i].key_len, d2.objects[i].key, d2.objects[i].key_len));
        FUZZ_CHECK(
            same(d.objects[i].version_id, d.objects[i].version_id_len, d2.objects[i].version_id, d2.objects[i].version_id_len));
    }
    buf_free(&b);
    s3xml_delete_free(&d2);
    s3xml_delete_free(&d);
}

static void fuzz_complete(const char *body, size_t len)
{
    s3xml_complete_t c, c2, sentinel;
    char err[256];
    buf_t b;

    memset(&sentinel, 0x5a, sizeof(sentinel));
    c = sentinel;
    err[0] = '\0';
    if (s3xml_complete_parse(body, len, &c, err, sizeof(err)) != 0) {
        FUZZ_CHECK(memcmp(&c, &sentinel, sizeof(c)) == 0 && err[0] != '\0');
        return;
    }
    FUZZ_CHECK(c.nparts >= 1 && c.nparts <= S3XML_PARTS_MAX);
    buf_init(&b, SIZE_MAX);
    buf_puts(&b, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < c.nparts; i++) {
        const s3xml_part_t *p = &c.parts[i];
        FUZZ_CHECK(p->number >= 1 && p->number <= S3XML_PART_NUMBER_MAX);
        FUZZ_CHECK(p->etag_len >= 1 && is_cstr(p->etag, p->etag_len, S3XML_ETAG_MAX));
        buf_printf(&b, "<Part><PartNumber>%u</PartNumber>", (unsigned)p->number);
        put_elem(&b, "ETag", p->etag, p->etag_len);
        for (int k = 0; k < S3XML_NCHECKSUMS; k++) {
            FUZZ_CHECK(p->checksum[k] == NULL || is_cstr(p->checksum[k], p->checksum_len[k], S3XML_CHECKSUM_MAX));
            if (p->checksum[k] != NULL)
                put_elem(&b, s3xml_checksum_names[k], p->checksum[k], p->checksum_len[k]);
        }
        buf_puts(&b, "</Part>");
    }
    buf_puts(&b, "</CompleteMultipartUpload>");
    FUZZ_CHECK(b.err == 0);
    FUZZ_CHECK(s3xml_complete_parse(b.data, b.len, &c2, err, sizeof(err)) == 0);
    FUZZ_CHECK(c2.nparts == c.nparts);
    for (size_t i = 0; i < c.nparts; i++) {
        FUZZ_CHECK(c.parts[i].number == c2.parts[i].number);
        FUZZ_CHECK(same(c.parts[i].etag, c.parts[i].etag_len, c2.parts[i].etag, c2.parts[i].etag_len));
        for (int k = 0; k < S3XML_NCHECKSUMS; k++)
            FUZZ_CHECK(
                same(c.parts[i].checksum[k], c.parts[i].checksum_len[k], c2.parts[i].checksum[k], c2.parts[i].checksum_len[k]));
    }
    buf_free(&b);
    s3xml_complete_free(&c2);
    s3xml_complete_free(&c);
}

static void fuzz_bucket_conf(const char *body, size_t len)
{
    s3xml_bucket_conf_t bc, bc2, sentinel;
    char err[256];
    buf_t b;

    memset(&sentinel, 0x5a, sizeof(sentinel));
    bc = sentinel;
    err[0] = '\0';
    if (s3xml_bucket_conf_parse(body, len, &bc, err, sizeof(err)) != 0) {
        FUZZ_CHECK(memcmp(&bc, &sentinel, sizeof(bc)) == 0 && err[0] != '\0');
        return;
    }
    FUZZ_CHECK(bc.location == NULL || is_cstr(bc.location, bc.location_len, S3XML_LOCATION_MAX));
    buf_init(&b, SIZE_MAX);
    buf_puts(&b, "<CreateBucketConfiguration>");
    if (bc.location != NULL)
        put_elem(&b, "LocationConstraint", bc.location, bc.location_len);
    buf_puts(&b, "</CreateBucketConfiguration>");
    FUZZ_CHECK(s3xml_bucket_conf_parse(b.data, b.len, &bc2, err, sizeof(err)) == 0);
    FUZZ_CHECK(same(bc.location, bc.location_len, bc2.location, bc2.location_len));
    buf_free(&b);
    s3xml_bucket_conf_free(&bc2);
    s3xml_bucket_conf_free(&bc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* an exact-size copy: a read past the body's end is caught */
    size_t len = size - 1;
    char *body = malloc(len > 0 ? len : 1);
    if (body == NULL)
        abort();
    if (len > 0)
        memcpy(body, data + 1, len);
    switch (data[0] % 3) {
    case 0:
        fuzz_delete(body, len);
        break;
    case 1:
        fuzz_complete(body, len);
        break;
    default:
        fuzz_bucket_conf(body, len);
    }
    free(body);
    return 0;
}
