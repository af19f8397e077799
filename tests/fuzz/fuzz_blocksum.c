/* fuzz_blocksum.c - libFuzzer target for the block checksum record (common/blocksum.c).
 *
 * The input is one record. Beyond "no crash, no read outside the input": an
 * accepted record's CRCs lie inside it, and re-encoding it gives the same
 * bytes (one spelling per record); verifying the input's own bytes against
 * it never reads outside them. */
#include <stdlib.h>
#include "fuzz.h"
#include "common/be.h"
#include "common/blocksum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    blocksum_rec_t r;
    uint32_t *crcs;
    uint8_t *out;
    uint64_t bad = 0;

    if (blocksum_decode(data, size, &r) != 0)
        return 0;
    FUZZ_CHECK(r.crcs >= data && r.crcs + 4 * r.nblocks == data + size);
    FUZZ_CHECK(r.nblocks == blocksum_nblocks(r.size, r.shift));
    crcs = malloc(r.nblocks * 4 + 1);
    out = malloc(size);
    FUZZ_CHECK(crcs != NULL && out != NULL);
    for (uint64_t i = 0; i < r.nblocks; i++)
        crcs[i] = (uint32_t)be_get(r.crcs + 4 * i, 4);
    FUZZ_CHECK(blocksum_encoded_len(r.size, r.shift, r.origin_len) == size);
    FUZZ_CHECK(blocksum_encode(out, r.shift, r.version, r.origin, r.origin_len, r.off, r.size, crcs) == size);
    FUZZ_CHECK(memcmp(out, data, size) == 0);
    /* the record's own bytes as an object's first bytes: a verification stays inside them */
    if (r.size > 0) {
        uint64_t len = r.size < size ? r.size : size, roff, rlen;
        blocksum_view_t v = blocksum_view(&r, 0, len);
        blocksum_widen(r.shift, r.size, 0, len, &roff, &rlen);
        FUZZ_CHECK(roff == 0 && rlen >= len);
        if (rlen == len) {
            int ret = blocksum_verify(&v, 0, data, (size_t)len, &bad);
            FUZZ_CHECK(ret == 0 || (ret == CIO_EIO && bad < r.nblocks));
        }
    }
    free(crcs);
    free(out);
    return 0;
}
