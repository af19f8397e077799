/* fuzz_zcodec.c - libFuzzer target for the zstd decoder a replica runs on every compressed batch (common/zcodec.c).
 *
 * The first two bytes give the cap (0..65535), the rest is the body. The
 * decoder must stay within the cap (out.len <= cap on success) and keep
 * nothing on failure. What it accepts compresses again (zcodec_stream) to a frame that
 * decodes to the same bytes. */
#include "fuzz.h"
#include "common/zcodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    size_t cap = (size_t)fuzz_uint(&in, 2);
    buf_t out, again, back;
    char err[200];
    int ret;

    buf_init(&out, 0);
    ret = zcodec_decompress(in.p, in.left, cap, &out, err, sizeof(err));
    FUZZ_CHECK(ret == 0 || ret == CIO_EPROTO || ret == CIO_ETOOBIG || ret == CIO_ENOMEM);
    FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
    if (ret != 0) {
        FUZZ_CHECK(out.len == 0 && out.data == NULL); /* a refused frame keeps nothing */
        return 0;
    }
    FUZZ_CHECK(out.len <= cap);

    zcodec_stream_t *z;
    buf_init(&again, SIZE_MAX);
    buf_init(&back, 0);
    FUZZ_CHECK(zcodec_stream_new(&z, 1, out.len) == 0);
    FUZZ_CHECK(zcodec_stream_put(z, out.data != NULL ? out.data : "", out.len, 1, &again) == 0);
    zcodec_stream_free(z);
    FUZZ_CHECK(zcodec_decompress(again.data, again.len, out.len, &back, err, sizeof(err)) == 0);
    FUZZ_CHECK(back.len == out.len && (out.len == 0 || memcmp(back.data, out.data, out.len) == 0));
    buf_free(&out);
    buf_free(&again);
    buf_free(&back);
    return 0;
}
