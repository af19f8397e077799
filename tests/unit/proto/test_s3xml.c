/* test_s3xml.c - unit tests of the S3 request body parsers (proto/s3xml.c). */
#include "common/buf.h"
#include "proto/s3xml.h"
#include "testutil.h"

#define NS " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

/* Parses s as a <Delete> from an exact-size copy. */
static int delete_parse(const char *s, s3xml_delete_t *d, char *err, size_t errlen)
{
    size_t len = strlen(s);
    char *copy = test_dup_exact(s, len);
    int ret = s3xml_delete_parse(copy, len, d, err, errlen);
    free(copy);
    return ret;
}

static void test_delete(void)
{
    s3xml_delete_t d;
    char err[256];

    CHECK_EQ_INT(delete_parse("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete" NS ">\n"
                              "  <Object><Key>a/b c.txt</Key></Object>\n"
                              "  <Object><Key>x&amp;y&lt;&#x4E2D;</Key><VersionId>v1</VersionId><ETag>\"e\"</ETag></Object>\n"
                              "  <Quiet> true </Quiet>\n"
                              "</Delete>",
                              &d, err, sizeof(err)),
                 0);
    CHECK_EQ_INT(d.nobjects, 2);
    CHECK(d.quiet == 1);
    CHECK_EQ_STR(d.objects[0].key, "a/b c.txt");
    CHECK_EQ_INT(d.objects[0].key_len, 9);
    CHECK(d.objects[0].version_id == NULL);
    CHECK_EQ_STR(d.objects[1].key, "x&y<\xe4\xb8\xad");
    CHECK_EQ_INT(d.objects[1].key_len, 7);
    CHECK_EQ_STR(d.objects[1].version_id, "v1");
    s3xml_delete_free(&d);
    CHECK(d.objects == NULL && d.nobjects == 0);
    s3xml_delete_free(&d); /* again: harmless */

    /* no namespace, Quiet false, key white space kept as is, CDATA */
    CHECK_EQ_INT(delete_parse("<Delete><Quiet>FALSE</Quiet><Object><Key> sp </Key></Object>"
                              "<Object><Key><![CDATA[<raw>&]]></Key></Object></Delete>",
                              &d, err, sizeof(err)),
                 0);
    CHECK(d.quiet == 0 && d.nobjects == 2);
    CHECK_EQ_STR(d.objects[0].key, " sp ");
    CHECK_EQ_STR(d.objects[1].key, "<raw>&");
    s3xml_delete_free(&d);

    /* a namespace prefix bound to S3's namespace is S3's namespace */
    CHECK_EQ_INT(delete_parse("<s:Delete xmlns:s=\"http://s3.amazonaws.com/doc/2006-03-01/\"><s:Object><s:Key>k</s:Key>"
                              "</s:Object></s:Delete>",
                              &d, err, sizeof(err)),
                 0);
    CHECK(d.nobjects == 1 && strcmp(d.objects[0].key, "k") == 0);
    s3xml_delete_free(&d);

    /* unknown elements are skipped, with whatever they hold */
    CHECK_EQ_INT(delete_parse("<Delete><Future><Key>no</Key></Future><Object><Size>3</Size><Key>k</Key>"
                              "<LastModifiedTime>x</LastModifiedTime></Object></Delete>",
                              &d, err, sizeof(err)),
                 0);
    CHECK(d.nobjects == 1 && strcmp(d.objects[0].key, "k") == 0);
    s3xml_delete_free(&d);
}

/* Each malformed <Delete> is refused with CIO_EINVAL (or ETOOBIG), leaving *out as it was. */
static void test_delete_malformed(void)
{
    static const struct {
        const char *xml;
        int want;
    } bad[] = {
        {"", CIO_EINVAL},
        {"   ", CIO_EINVAL},
        {"<Delete>", CIO_EINVAL},
        {"<Delete></Delete>", CIO_EINVAL},
        {"<Delete><Object></Object></Delete>", CIO_EINVAL},
        {"<Delete><Object><Key></Key></Object></Delete>", CIO_EINVAL},
        {"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>", CIO_EINVAL},
        {"<Delete><Object><Key>a<b/></Key></Object></Delete>", CIO_EINVAL},
        {"<Delete><Quiet>yes</Quiet><Object><Key>a</Key></Object></Delete>", CIO_EINVAL},
        {"<Delete><Quiet>true</Quiet><Quiet>true</Quiet><Object><Key>a</Key></Object></Delete>", CIO_EINVAL},
        {"<Remove><Object><Key>a</Key></Object></Remove>", CIO_EINVAL},
        {"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>", CIO_EINVAL},
        {"<Delete xmlns=\"urn:other\"><Object><Key>a</Key></Object></Delete>", CIO_EINVAL},
        {"<Delete><o:Object xmlns:o=\"urn:other\"><Key>a</Key></o:Object></Delete>", CIO_EINVAL},
        {"<Delete><Object><Key>a</Key></Object></Delete><Delete/>", CIO_EINVAL},
        {"<Delete><Object><Key>a&bogus;</Key></Object></Delete>", CIO_EINVAL},
        {"<Delete><Object><Key>a&#0;</Key></Object></Delete>", CIO_EINVAL},
        {"<Delete><Object><Key>a&#1;</Key></Object></Delete>", CIO_EINVAL},
        {"<Delete><Object><Key>\xff\xfe</Key></Object></Delete>", CIO_EINVAL},
        /* XML bombs and external entities: any DOCTYPE is refused */
        {"<!DOCTYPE Delete [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
         "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><Delete><Object><Key>&c;</Key></Object></Delete>",
         CIO_EINVAL},
        {"<!DOCTYPE Delete SYSTEM \"file:///etc/passwd\"><Delete><Object><Key>a</Key></Object></Delete>", CIO_EINVAL},
        {"<!DOCTYPE Delete><Delete><Object><Key>a</Key></Object></Delete>", CIO_EINVAL},
        {"<Delete><a><b><c><d><e><f><g><h>deep</h></g></f></e></d></c></b></a><Object><Key>a</Key></Object></Delete>", CIO_ETOOBIG},
    };
    s3xml_delete_t d, sentinel;
    char err[256];

    memset(&sentinel, 0x5a, sizeof(sentinel));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = sentinel;
        err[0] = '\0';
        int ret = delete_parse(bad[i].xml, &d, err, sizeof(err));
        if (ret != bad[i].want)
            fprintf(stderr, "case %zu: %d (%s)\n", i, ret, err);
        CHECK_EQ_INT(ret, bad[i].want);
        CHECK(memcmp(&d, &sentinel, sizeof(d)) == 0);
        CHECK(err[0] != '\0');
    }
    /* seven levels of unknown elements are still within the depth cap */
    CHECK_EQ_INT(delete_parse("<Delete><a><b><c><d><e><f><g>x</g></f></e></d></c></b></a><Object><Key>a</Key></Object></Delete>",
                              &d, err, sizeof(err)),
                 0);
    s3xml_delete_free(&d);
    /* a NULL err of size 0 is allowed */
    d = sentinel;
    CHECK_EQ_INT(delete_parse("<Delete/>", &d, NULL, 0), CIO_EINVAL);
}

/* Builds a <Delete> of n keys of klen bytes each (key i starts with its number). */
static char *delete_doc(size_t n, size_t klen, const char *entity)
{
    buf_t b;
    buf_init(&b, SIZE_MAX);
    buf_puts(&b, "<Delete>");
    for (size_t i = 0; i < n; i++) {
        char num[32];
        int nl = snprintf(num, sizeof(num), "%zu-", i);
        buf_puts(&b, "<Object><Key>");
        buf_puts(&b, num);
        for (size_t j = (size_t)nl; j < klen; j++)
            buf_puts(&b, entity);
        buf_puts(&b, "</Key></Object>");
    }
    buf_puts(&b, "</Delete>");
    buf_append(&b, "", 1);
    return b.data;
}

static void test_delete_caps(void)
{
    s3xml_delete_t d;
    char err[256], *doc;

    /* 1,000 keys of the longest length, each byte written as an entity: accepted */
    doc = delete_doc(S3XML_DELETE_MAX, LIMIT_KEY_MAX, "&amp;");
    CHECK(strlen(doc) <= S3XML_BODY_MAX);
    CHECK_EQ_INT(delete_parse(doc, &d, err, sizeof(err)), 0);
    CHECK_EQ_INT(d.nobjects, S3XML_DELETE_MAX);
    CHECK_EQ_INT(d.objects[999].key_len, LIMIT_KEY_MAX);
    CHECK(memcmp(d.objects[999].key, "999-&&&", 7) == 0);
    s3xml_delete_free(&d);
    free(doc);
    /* 1,001 keys: refused */
    doc = delete_doc(S3XML_DELETE_MAX + 1, 4, "k");
    CHECK_EQ_INT(delete_parse(doc, &d, err, sizeof(err)), CIO_ETOOBIG);
    free(doc);
    /* a key one byte too long: refused */
    doc = delete_doc(1, LIMIT_KEY_MAX + 1, "k");
    CHECK_EQ_INT(delete_parse(doc, &d, err, sizeof(err)), CIO_ETOOBIG);
    free(doc);
    /* a multi-byte character counts its bytes */
    doc = delete_doc(1, LIMIT_KEY_MAX / 3 + 2, "\xe4\xb8\xad"); /* "0-" and 342 * 3 bytes */
    CHECK_EQ_INT(delete_parse(doc, &d, err, sizeof(err)), CIO_ETOOBIG);
    free(doc);
    /* a body over the cap is refused before it is read */
    size_t big = S3XML_BODY_MAX + 1;
    char *body = malloc(big);
    memset(body, ' ', big);
    CHECK_EQ_INT(s3xml_delete_parse(body, big, &d, err, sizeof(err)), CIO_ETOOBIG);
    free(body);
    /* a flood of unknown elements: refused at the element cap */
    buf_t b;
    buf_init(&b, SIZE_MAX);
    buf_puts(&b, "<Delete><Object><Key>a</Key></Object>");
    for (size_t i = 0; i < S3XML_ELEMENTS_MAX; i++)
        buf_puts(&b, "<x/>");
    buf_puts(&b, "</Delete>");
    CHECK_EQ_INT(s3xml_delete_parse(b.data, b.len, &d, err, sizeof(err)), CIO_ETOOBIG);
    buf_free(&b);
}

static void test_complete(void)
{
    s3xml_complete_t c, sentinel;
    char err[256];
    const char *doc = "<CompleteMultipartUpload" NS ">"
                      "<Part><PartNumber> 1 </PartNumber><ETag>\"0cc175b9c0f1b6a831c399e269772661\"</ETag></Part>"
                      "<Part><ETag>&quot;e2&quot;</ETag><PartNumber>10000</PartNumber>"
                      "<ChecksumCRC32>AAAAAA==</ChecksumCRC32><ChecksumSHA256>abc</ChecksumSHA256></Part>"
                      "</CompleteMultipartUpload>";

    CHECK_EQ_INT(s3xml_complete_parse(doc, strlen(doc), &c, err, sizeof(err)), 0);
    CHECK_EQ_INT(c.nparts, 2);
    CHECK_EQ_INT(c.parts[0].number, 1);
    CHECK_EQ_STR(c.parts[0].etag, "\"0cc175b9c0f1b6a831c399e269772661\"");
    CHECK(c.parts[0].checksum[S3XML_CK_CRC32] == NULL);
    CHECK_EQ_INT(c.parts[1].number, 10000);
    CHECK_EQ_STR(c.parts[1].etag, "\"e2\"");
    CHECK_EQ_STR(c.parts[1].checksum[S3XML_CK_CRC32], "AAAAAA==");
    CHECK_EQ_INT(c.parts[1].checksum_len[S3XML_CK_CRC32], 8);
    CHECK_EQ_STR(c.parts[1].checksum[S3XML_CK_SHA256], "abc");
    CHECK(c.parts[1].checksum[S3XML_CK_CRC32C] == NULL && c.parts[1].checksum[S3XML_CK_SHA1] == NULL);
    s3xml_complete_free(&c);

    static const char *const bad[] = {
        "<CompleteMultipartUpload></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1 2</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>e</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag></ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag><ChecksumCRC32>a</ChecksumCRC32>"
        "<ChecksumCRC32>b</ChecksumCRC32></Part></CompleteMultipartUpload>",
        "<Delete><Object><Key>a</Key></Object></Delete>",
    };
    memset(&sentinel, 0x5a, sizeof(sentinel));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = sentinel;
        CHECK_EQ_INT(s3xml_complete_parse(bad[i], strlen(bad[i]), &c, err, sizeof(err)), CIO_EINVAL);
        CHECK(memcmp(&c, &sentinel, sizeof(c)) == 0);
    }

    /* 10,000 parts fit; 10,001 do not */
    buf_t b;
    buf_init(&b, SIZE_MAX);
    buf_puts(&b, "<CompleteMultipartUpload>");
    for (int i = 1; i <= S3XML_PARTS_MAX; i++)
        buf_printf(&b, "<Part><PartNumber>%d</PartNumber><ETag>\"0cc175b9c0f1b6a831c399e269772661\"</ETag></Part>", i);
    size_t mark = b.len;
    buf_puts(&b, "</CompleteMultipartUpload>");
    CHECK_EQ_INT(s3xml_complete_parse(b.data, b.len, &c, err, sizeof(err)), 0);
    CHECK_EQ_INT(c.nparts, S3XML_PARTS_MAX);
    CHECK_EQ_INT(c.parts[S3XML_PARTS_MAX - 1].number, S3XML_PARTS_MAX);
    s3xml_complete_free(&c);
    b.len = mark;
    buf_puts(&b, "<Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>");
    CHECK_EQ_INT(s3xml_complete_parse(b.data, b.len, &c, err, sizeof(err)), CIO_ETOOBIG);
    buf_free(&b);
}

static void test_bucket_conf(void)
{
    s3xml_bucket_conf_t bc;
    char err[256];
    const char *doc = "<CreateBucketConfiguration" NS "><LocationConstraint>eu-west-1</LocationConstraint>"
                      "</CreateBucketConfiguration>";

    CHECK_EQ_INT(s3xml_bucket_conf_parse(doc, strlen(doc), &bc, err, sizeof(err)), 0);
    CHECK_EQ_STR(bc.location, "eu-west-1");
    CHECK_EQ_INT(bc.location_len, 9);
    s3xml_bucket_conf_free(&bc);
    doc = "<CreateBucketConfiguration/>";
    CHECK_EQ_INT(s3xml_bucket_conf_parse(doc, strlen(doc), &bc, err, sizeof(err)), 0);
    CHECK(bc.location == NULL);
    s3xml_bucket_conf_free(&bc);
    doc = "<CreateBucketConfiguration><LocationConstraint></LocationConstraint></CreateBucketConfiguration>";
    CHECK_EQ_INT(s3xml_bucket_conf_parse(doc, strlen(doc), &bc, err, sizeof(err)), 0);
    CHECK(bc.location != NULL && bc.location_len == 0);
    s3xml_bucket_conf_free(&bc);
    doc = "<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint><LocationConstraint>b</LocationConstraint>"
          "</CreateBucketConfiguration>";
    CHECK_EQ_INT(s3xml_bucket_conf_parse(doc, strlen(doc), &bc, err, sizeof(err)), CIO_EINVAL);
    doc = "<CreateBucketConfiguration><LocationConstraint>"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</LocationConstraint></CreateBucketConfiguration>";
    CHECK_EQ_INT(s3xml_bucket_conf_parse(doc, strlen(doc), &bc, err, sizeof(err)), CIO_ETOOBIG);
}

int main(void)
{
    RUN(test_delete);
    RUN(test_delete_malformed);
    RUN(test_delete_caps);
    RUN(test_complete);
    RUN(test_bucket_conf);
    return TEST_SUMMARY();
}
