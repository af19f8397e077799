/* s3xml.h - the XML request bodies of S3 (expat): DeleteObjects' <Delete>,
 * CompleteMultipartUpload's <CompleteMultipartUpload> and CreateBucket's
 * <CreateBucketConfiguration>.
 *
 * Every parser is bounded: the body (S3XML_BODY_MAX), each text value (a key
 * LIMIT_KEY_MAX bytes), the number of entries and of elements, and the
 * nesting depth (S3XML_DEPTH_MAX) are capped. A document with a DOCTYPE is
 * refused whole, so no entity can be declared or expanded (XML bombs,
 * external entities); only the five predefined entities and character
 * references are decoded. The document is read as UTF-8 whatever its
 * declaration says. Elements are in S3's namespace
 * (http://s3.amazonaws.com/doc/2006-03-01/) or in none; an element of
 * another namespace is refused. Unknown elements inside a known one are
 * skipped (S3 adds optional ones over time), and so is text between
 * elements; attributes are ignored. Every element a parser knows appears at
 * most once where it is a value, and text values are taken as they are
 * (never trimmed), except numbers and booleans, around which white space is
 * allowed.
 *
 * Each parser fills *out only on success; the result then owns one
 * allocation (the strings are NUL-terminated and live until the matching
 * _free), which the caller frees. On failure *out is untouched and a
 * one-line reason, for S3's <Message>, is written into err (errlen bytes,
 * NUL-terminated, when errlen > 0). An empty body is not a document: it is
 * refused as malformed, and a caller for which an empty body means "nothing
 * given" (CreateBucket) checks for it first.
 *
 * Return codes of every parser: 0; CIO_EINVAL, the body is not well-formed
 * XML or not the expected document (S3's MalformedXML); CIO_ETOOBIG, a cap
 * above was passed (also MalformedXML, which is what S3 answers to a
 * <Delete> of more than 1,000 keys); CIO_ENOMEM. No I/O here. */
#ifndef COMIO_S3XML_H
#define COMIO_S3XML_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "common/limits.h"

#define S3XML_BODY_MAX (8 * 1024 * 1024) /* bytes of a body: 1,000 keys of 1,024 bytes, each written as &amp;s, fit */
#define S3XML_DEPTH_MAX 8                /* element nesting, the root being 1 */
#define S3XML_ELEMENTS_MAX 200000        /* elements of a document, all counted (10,000 parts of 7 elements fit) */
#define S3XML_DELETE_MAX 1000            /* <Object>s of a <Delete> (S3's limit) */
#define S3XML_PARTS_MAX 10000            /* <Part>s of a <CompleteMultipartUpload> (S3's limit) */
#define S3XML_PART_NUMBER_MAX 10000      /* a <PartNumber> is 1..this */
#define S3XML_VERSION_ID_MAX 1024        /* bytes of a <VersionId> */
#define S3XML_ETAG_MAX 256               /* bytes of a part's <ETag> (quotes included) */
#define S3XML_CHECKSUM_MAX 128           /* bytes of a part's base64 <Checksum*> */
#define S3XML_LOCATION_MAX 64            /* bytes of a <LocationConstraint> */

/* One <Object> of a <Delete>. */
typedef struct {
    const char *key;        /* 1..LIMIT_KEY_MAX bytes, NUL-terminated (a key holds no NUL: XML cannot carry one) */
    size_t key_len;         /*   */
    const char *version_id; /* NULL when absent; else 0..S3XML_VERSION_ID_MAX bytes, NUL-terminated */
    size_t version_id_len;
} s3xml_object_t;

/* <Delete><Quiet>true</Quiet><Object><Key>k</Key><VersionId>v</VersionId></Object>...</Delete>:
 * at least one and at most S3XML_DELETE_MAX objects, each with exactly one
 * <Key>; <Quiet> is "true" or "false" (default false). */
typedef struct {
    s3xml_object_t *objects; /* nobjects entries, in document order; owned (s3xml_delete_free) */
    size_t nobjects;
    int quiet;
    char *mem_; /* the one allocation */
} s3xml_delete_t;

/* The checksums a part may carry, in this order in s3xml_part_t.checksum. */
typedef enum {
    S3XML_CK_CRC32,
    S3XML_CK_CRC32C,
    S3XML_CK_CRC64NVME,
    S3XML_CK_SHA1,
    S3XML_CK_SHA256,
    S3XML_NCHECKSUMS
} s3xml_checksum_t;

/* The element name of each checksum: "ChecksumCRC32", ... (static strings). */
extern const char *const s3xml_checksum_names[S3XML_NCHECKSUMS];

/* One <Part> of a <CompleteMultipartUpload>. */
typedef struct {
    uint32_t number;  /* 1..S3XML_PART_NUMBER_MAX */
    const char *etag; /* 1..S3XML_ETAG_MAX bytes as sent (usually quoted), NUL-terminated */
    size_t etag_len;
    const char *checksum[S3XML_NCHECKSUMS]; /* NULL when absent; else 0..S3XML_CHECKSUM_MAX bytes, NUL-terminated */
    size_t checksum_len[S3XML_NCHECKSUMS];
} s3xml_part_t;

/* <CompleteMultipartUpload><Part><PartNumber>n</PartNumber><ETag>e</ETag>
 * [<ChecksumCRC32>..</ChecksumCRC32> ...]</Part>...</CompleteMultipartUpload>:
 * at least one and at most S3XML_PARTS_MAX parts, each with one PartNumber
 * and one ETag. The parts are in document order: whether they ascend
 * (S3's InvalidPartOrder) and match the uploaded ones (InvalidPart) is the
 * handler's to judge. */
typedef struct {
    s3xml_part_t *parts; /* nparts entries; owned (s3xml_complete_free) */
    size_t nparts;
    char *mem_;
} s3xml_complete_t;

/* <CreateBucketConfiguration><LocationConstraint>r</LocationConstraint></CreateBucketConfiguration>;
 * the constraint may be absent or empty. */
typedef struct {
    const char *location; /* NULL when absent; else 0..S3XML_LOCATION_MAX bytes, NUL-terminated */
    size_t location_len;
    char *mem_;
} s3xml_bucket_conf_t;

/* Parse body[0..len) (borrowed for the call) into *out; see above for the
 * return codes and err. */
int s3xml_delete_parse(const char *body, size_t len, s3xml_delete_t *out, char *err, size_t errlen) CIO_MUST_CHECK;
int s3xml_complete_parse(const char *body, size_t len, s3xml_complete_t *out, char *err, size_t errlen) CIO_MUST_CHECK;
int s3xml_bucket_conf_parse(const char *body, size_t len, s3xml_bucket_conf_t *out, char *err, size_t errlen) CIO_MUST_CHECK;

/* Free what a successful parse allocated; the structure is zeroed, and may
 * be freed again. */
void s3xml_delete_free(s3xml_delete_t *d);
void s3xml_complete_free(s3xml_complete_t *c);
void s3xml_bucket_conf_free(s3xml_bucket_conf_t *b);

#endif
