/* awschunk.c - the aws-chunked body decoder: framing, chunk signature chain, trailers, in-place compaction. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/hex.h"
#include "proto/awschunk.h"

static int fail(sigv4_error_t *e, int rc, int status, const char *code, const char *msg)
{
    e->status = status;
    e->code = code;
    snprintf(e->msg, sizeof(e->msg), "%s", msg);
    return rc;
}

/* The line starting at buf[pos] up to CRLF: its length in *n; -1 when no CRLF within the cap. */
static int line_at(const char *buf, size_t len, size_t pos, size_t *n)
{
    size_t max = len - pos < AWSCHUNK_LINE_MAX + 2 ? len - pos : AWSCHUNK_LINE_MAX + 2;
    for (size_t i = 0; i + 1 < max; i++)
        if (buf[pos + i] == '\r' && buf[pos + i + 1] == '\n') {
            *n = i;
            return 0;
        }
    return -1;
}

int awschunk_decode(char *buf, size_t len, const awschunk_opts_t *o, size_t *out_len, awschunk_trailer_t *tr, size_t max_tr,
                    size_t *ntr, sigv4_error_t *e)
{
    static const char sigext[] = ";chunk-signature=";
    char prev[SIGV4_SIG_HEX + 1], want[SIGV4_SIG_HEX + 1];
    size_t pos = 0, w = 0, n;
    uint64_t total = 0;

    *out_len = 0;
    *ntr = 0;
    if (o->auth != NULL)
        memcpy(prev, o->auth->signature, SIGV4_SIG_HEX + 1);
    for (;;) {
        uint64_t size = 0;
        size_t i = 0, digits;
        const char *line;

        if (pos >= len || line_at(buf, len, pos, &n) != 0)
            return pos >= len || len - pos < AWSCHUNK_LINE_MAX + 2
                       ? fail(e, CIO_EPROTO, 400, "IncompleteBody", "the aws-chunked body ends inside a chunk header")
                       : fail(e, CIO_EINVAL, 400, "InvalidRequest", "an aws-chunked chunk header is too long");
        line = buf + pos;
        while (i < n && i < 16 && hex_value((unsigned char)line[i]) >= 0)
            size = size << 4 | (uint64_t)hex_value((unsigned char)line[i++]);
        digits = i;
        if (digits == 0 || (i < n && hex_value((unsigned char)line[i]) >= 0))
            return fail(e, CIO_EINVAL, 400, "InvalidRequest", "an aws-chunked chunk size is not 1 to 16 hex digits");
        if (o->auth != NULL) {
            if (n - i != sizeof(sigext) - 1 + SIGV4_SIG_HEX || memcmp(line + i, sigext, sizeof(sigext) - 1) != 0 ||
                !sigv4_is_signature(line + i + sizeof(sigext) - 1, SIGV4_SIG_HEX))
                return fail(e, CIO_EINVAL, 400, "InvalidRequest", "an aws-chunked chunk header lacks its chunk-signature");
        } else if (i != n) {
            return fail(e, CIO_EINVAL, 400, "InvalidRequest", "an unsigned aws-chunked chunk header has an extension");
        }
        pos += n + 2;
        /* a chunk of size 0 ends the data: trailers (or the final CRLF) follow its header */
        if (size > 0 && (size > len - pos || len - pos - size < 2))
            return fail(e, CIO_EPROTO, 400, "IncompleteBody", "the aws-chunked body ends inside a chunk");
        if (size > 0 && (buf[pos + size] != '\r' || buf[pos + size + 1] != '\n'))
            return fail(e, CIO_EINVAL, 400, "InvalidRequest", "an aws-chunked chunk is not followed by CRLF");
        if (o->auth != NULL) {
            sigv4_chunk_signature(o->auth, prev, buf + pos, (size_t)size, want);
            if (!sigv4_equal(want, line + i + sizeof(sigext) - 1, SIGV4_SIG_HEX))
                return fail(e, CIO_EINVAL, 403, "SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided (a chunk's signature).");
            memcpy(prev, want, sizeof(prev));
        }
        if (size > o->decoded_len - total)
            return fail(e, CIO_EINVAL, 400, "IncompleteBody", "the aws-chunked data is longer than x-amz-decoded-content-length");
        memmove(buf + w, buf + pos, (size_t)size);
        w += (size_t)size;
        total += size;
        pos += (size_t)size + (size > 0 ? 2 : 0);
        if (size == 0)
            break;
    }
    if (total != o->decoded_len)
        return fail(e, CIO_EINVAL, 400, "IncompleteBody", "the aws-chunked data is shorter than x-amz-decoded-content-length");
    {
        size_t tsig_pos = 0, tsig_len = 0, k = 0;
        int have_tsig = 0;
        char text[AWSCHUNK_LINE_MAX * 4 + 8];
        size_t tl = 0;

        for (;;) {
            if (pos >= len || line_at(buf, len, pos, &n) != 0)
                return fail(e, CIO_EPROTO, 400, "IncompleteBody", "the aws-chunked body ends inside its trailer");
            if (n == 0) {
                pos += 2;
                break;
            }
            char *l = buf + pos;
            char *colon = memchr(l, ':', n);
            if (!o->trailer || colon == NULL || colon == l || have_tsig)
                return fail(e, CIO_EINVAL, 400, "InvalidRequest", "a malformed aws-chunked trailer");
            size_t nl = (size_t)(colon - l);
            for (size_t j = 0; j < nl; j++)
                if (l[j] >= 'A' && l[j] <= 'Z')
                    l[j] = (char)(l[j] + 32);
            const char *v = colon + 1;
            size_t vl = n - nl - 1;
            while (vl > 0 && (*v == ' ' || *v == '\t'))
                v++, vl--;
            if (nl == 23 && memcmp(l, "x-amz-trailer-signature", 23) == 0) {
                if (o->auth == NULL || !sigv4_is_signature(v, vl))
                    return fail(e, CIO_EINVAL, 400, "InvalidRequest", "a malformed x-amz-trailer-signature");
                have_tsig = 1;
                tsig_pos = (size_t)(v - buf);
                tsig_len = vl;
            } else {
                if (k == max_tr)
                    return fail(e, CIO_EINVAL, 400, "InvalidRequest", "too many aws-chunked trailers");
                if (tl + nl + vl + 2 > sizeof(text))
                    return fail(e, CIO_EINVAL, 400, "InvalidRequest", "the aws-chunked trailers are too long");
                memcpy(text + tl, l, nl);
                tl += nl;
                text[tl++] = ':';
                memcpy(text + tl, v, vl);
                tl += vl;
                text[tl++] = '\n';
                tr[k] = (awschunk_trailer_t){l, nl, v, vl};
                k++;
            }
            pos += n + 2;
        }
        if (o->auth != NULL && o->trailer) {
            if (!have_tsig)
                return fail(e, CIO_EINVAL, 400, "InvalidRequest", "signed aws-chunked trailers need x-amz-trailer-signature");
            sigv4_trailer_signature(o->auth, prev, text, tl, want);
            if (tsig_len != SIGV4_SIG_HEX || !sigv4_equal(want, buf + tsig_pos, SIGV4_SIG_HEX))
                return fail(e, CIO_EINVAL, 403, "SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided (the trailer's).");
        }
        if (pos != len)
            return fail(e, CIO_EINVAL, 400, "InvalidRequest", "bytes after the end of the aws-chunked body");
        *ntr = k;
    }
    *out_len = w;
    return 0;
}
