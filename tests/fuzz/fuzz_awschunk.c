/* fuzz_awschunk.c - libFuzzer target for the aws-chunked decoder (proto/awschunk.c with common/sigv4.c).
 *
 * Input: a mode byte, then
 *   mode & 1 == 0 (raw): 1 byte of options (bit 0 signed, bit 1 trailers),
 *     4 bytes of x-amz-decoded-content-length, the rest a body to decode;
 *   mode & 1 == 1 (round trip): 1 byte of options, 2 bytes choosing a byte
 *     of the encoded body to alter, then pieces (a length byte and the bytes)
 *     that become the chunks, encoded and signed here as an SDK would.
 * Signed bodies chain on the request of AWS's chunked upload example.
 * Invariants:
 *  - any body: no read outside it; on success the data is exactly the
 *    decoded length, fits where the body was, and every trailer points
 *    inside the buffer;
 *  - an encoded body decodes to the concatenation of its pieces and its
 *    trailer;
 *  - a signed body with one byte altered (xor 1) is refused. */
#include "fuzz.h"
#include "common/buf.h"
#include "proto/awschunk.h"

#define MAX_TR 4

static sigv4_auth_t auth;

static void init_auth(void)
{
    static int done;
    static const char secret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    sigv4_header_t h[] = {
        {"host", 4, "s3.amazonaws.com", 16},
        {"x-amz-date", 10, "20130524T000000Z", 16},
        {"x-amz-content-sha256", 20, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 34},
        {"authorization", 13,
         "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
         "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
         "Signature=0000000000000000000000000000000000000000000000000000000000000000",
         0},
    };
    sigv4_request_t r = {"PUT", 3, "/b/k", 4, NULL, 0, h, 4};
    sigv4_error_t e;

    if (done)
        return;
    h[3].value_len = strlen(h[3].value);
    FUZZ_CHECK(sigv4_parse(&r, 1369353600, "us-east-1", &auth, &e) == 0);
    (void)sigv4_verify(&r, &auth, secret, sizeof(secret) - 1, &e); /* the signature is wrong; the key is what we need */
    done = 1;
}

static void check_result(const char *buf, size_t len, size_t out, const awschunk_trailer_t *tr, size_t ntr, uint64_t dlen)
{
    FUZZ_CHECK(out == dlen && out <= len && ntr <= MAX_TR);
    for (size_t i = 0; i < ntr; i++) {
        FUZZ_CHECK(tr[i].name >= buf && tr[i].name + tr[i].name_len <= buf + len && tr[i].name_len > 0);
        FUZZ_CHECK(tr[i].value >= buf && tr[i].value + tr[i].value_len <= buf + len);
    }
}

static void raw(fuzz_in_t *in)
{
    unsigned opt = (unsigned)fuzz_uint(in, 1);
    awschunk_opts_t o = {opt & 1 ? &auth : NULL, (opt & 2) != 0, fuzz_uint(in, 4)};
    awschunk_trailer_t tr[MAX_TR];
    sigv4_error_t e;
    size_t out, ntr;
    char *buf = fuzz_strndup(in->p, in->left);

    if (awschunk_decode(buf, in->left, &o, &out, tr, MAX_TR, &ntr, &e) == 0)
        check_result(buf, in->left, out, tr, ntr, o.decoded_len);
    else
        FUZZ_CHECK(e.code != NULL && e.status >= 400);
    free(buf);
}

static void round_trip(fuzz_in_t *in)
{
    unsigned opt = (unsigned)fuzz_uint(in, 1);
    size_t alter = (size_t)fuzz_uint(in, 2), n, dlen = 0;
    int sign = opt & 1, trailer = (opt & 2) != 0;
    awschunk_opts_t o = {sign ? &auth : NULL, trailer, 0};
    awschunk_trailer_t tr[MAX_TR];
    char prev[SIGV4_SIG_HEX + 1], sig[SIGV4_SIG_HEX + 1];
    buf_t body, data;
    sigv4_error_t e;
    size_t out, ntr;

    buf_init(&body, 1 << 20);
    buf_init(&data, 1 << 20);
    memcpy(prev, auth.signature, sizeof(prev));
    for (;;) { /* bounded: every piece but the last consumes input */
        const uint8_t *p = NULL;
        n = 0;
        if (in->left > 0)
            p = fuzz_slice(in, 255, &n);
        if (sign) {
            sigv4_chunk_signature(&auth, prev, p, n, sig);
            memcpy(prev, sig, sizeof(prev));
            buf_printf(&body, "%zx;chunk-signature=%s\r\n", n, sig);
        } else {
            buf_printf(&body, "%zx\r\n", n);
        }
        if (n == 0)
            break;
        buf_append(&body, p, n);
        buf_puts(&body, "\r\n");
        buf_append(&data, p, n);
        dlen += n;
    }
    if (trailer) {
        static const char t[] = "x-amz-checksum-crc32:AAAAAA==\n";
        buf_puts(&body, "x-amz-checksum-crc32:AAAAAA==\r\n");
        if (sign) {
            sigv4_trailer_signature(&auth, prev, t, sizeof(t) - 1, sig);
            buf_printf(&body, "x-amz-trailer-signature:%s\r\n", sig);
        }
    }
    buf_puts(&body, "\r\n");
    FUZZ_CHECK(body.err == 0 && data.err == 0);
    o.decoded_len = dlen;

    char *copy = fuzz_strndup(body.data, body.len);
    FUZZ_CHECK(awschunk_decode(copy, body.len, &o, &out, tr, MAX_TR, &ntr, &e) == 0);
    check_result(copy, body.len, out, tr, ntr, dlen);
    FUZZ_CHECK(out == data.len && (out == 0 || memcmp(copy, data.data, out) == 0));
    FUZZ_CHECK(ntr == (size_t)trailer);
    free(copy);

    if (sign && body.len > 0) {
        copy = fuzz_strndup(body.data, body.len);
        copy[alter % body.len] ^= 1;
        FUZZ_CHECK(awschunk_decode(copy, body.len, &o, &out, tr, MAX_TR, &ntr, &e) != 0);
        free(copy);
    }
    buf_free(&body);
    buf_free(&data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};

    init_auth();
    if (fuzz_uint(&in, 1) & 1)
        round_trip(&in);
    else
        raw(&in);
    return 0;
}
