/* test_cksum.c - unit tests for common/cksum.c: published check values of each
 * CRC and digest, pieces against one call, CRC32C through ISA-L against our
 * tables and a bitwise reference (every length and alignment), strict base64;
 * prints each CRC's throughput on 1 MiB and 64 KiB. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "testutil.h"
#include "common/cksum.h"
#include "common/hex.h"
#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* Bit at a time, straight from the definitions: shares nothing with the tables. */
static uint32_t ref_crc32(uint32_t poly, const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? c >> 1 ^ poly : c >> 1;
    }
    return ~c;
}

static uint64_t ref_crc64nvme(const uint8_t *p, size_t n)
{
    uint64_t c = ~0ull;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? c >> 1 ^ 0x9a6c9329ac4bc9b5ull : c >> 1;
    }
    return ~c;
}

/* xorshift64*: reproducible data */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng() >> 56);
}

static const char check_input[] = "123456789";

static void test_check_values(void)
{
    CHECK(cksum_crc32(0, check_input, 9) == 0xCBF43926u);
    CHECK(cksum_crc32c(0, check_input, 9) == 0xE3069283u);
    CHECK(cksum_crc32c_sw(0, check_input, 9) == 0xE3069283u);
    CHECK(cksum_crc64nvme(0, check_input, 9) == 0xAE8B14860A799888ull);
    /* the empty input: init and xorout cancel */
    CHECK(cksum_crc32(0, NULL, 0) == 0);
    CHECK(cksum_crc32c(0, NULL, 0) == 0);
    CHECK(cksum_crc64nvme(0, NULL, 0) == 0);
    /* zlib's crc32 of the pangram */
    const char *fox = "The quick brown fox jumps over the lazy dog";
    CHECK(cksum_crc32(0, fox, strlen(fox)) == 0x414FA339u);
}

/* CRC32C: RFC 3720 (iSCSI) appendix B.4 */
static void test_crc32c_rfc3720(void)
{
    uint8_t b[32];
    memset(b, 0, sizeof(b));
    CHECK(cksum_crc32c(0, b, 32) == 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    CHECK(cksum_crc32c(0, b, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    CHECK(cksum_crc32c(0, b, 32) == 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    CHECK(cksum_crc32c(0, b, 32) == 0x113FDB5Cu);
}

/* CRC64NVME: the AWS checksums library's vector, the NVM Command Set
 * specification's 4 KiB test cases, and a value the Rust crc64fast-nvme shows */
static void test_crc64nvme_published(void)
{
    static uint8_t b[4096];
    memset(b, 0, 32);
    CHECK(cksum_crc64nvme(0, b, 32) == 0xCF3473434D4ECF3Bull);
    memset(b, 0, sizeof(b));
    CHECK(cksum_crc64nvme(0, b, sizeof(b)) == 0x6482D367EB22B64Eull);
    memset(b, 0xff, sizeof(b));
    CHECK(cksum_crc64nvme(0, b, sizeof(b)) == 0xC0DDBA7302ECA3ACull);
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)i;
    CHECK(cksum_crc64nvme(0, b, sizeof(b)) == 0x3E729F5F6750449Cull);
    uint64_t c = cksum_crc64nvme(0, "hello ", 6);
    CHECK(cksum_crc64nvme(c, "world!", 6) == 0xd9160d1fa8e418e3ull);

    /* and as S3 shows it: base64 of the big-endian value */
    uint8_t out[CKSUM_SIZE_MAX];
    char text[CKSUM_BASE64_LEN(8) + 1];
    CHECK_EQ_INT(cksum_compute(CKSUM_CRC64NVME, "Hello, World!\n", 14, out), 0);
    cksum_base64_encode(text, out, 8);
    CHECK_EQ_STR(text, "SoXXbx67KpE=");
}

static void test_digests(void)
{
    uint8_t out[CKSUM_SIZE_MAX];
    char hex[2 * CKSUM_SIZE_MAX + 1];

    CHECK_EQ_INT(cksum_compute(CKSUM_SHA1, "abc", 3, out), 0);
    hex_encode(hex, out, cksum_size(CKSUM_SHA1));
    CHECK_EQ_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK_EQ_INT(cksum_compute(CKSUM_SHA256, "abc", 3, out), 0);
    hex_encode(hex, out, cksum_size(CKSUM_SHA256));
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_EQ_INT(cksum_compute(CKSUM_MD5, "", 0, out), 0);
    hex_encode(hex, out, cksum_size(CKSUM_MD5));
    CHECK_EQ_STR(hex, "d41d8cd98f00b204e9800998ecf8427e");
    CHECK_EQ_INT(cksum_compute(CKSUM_CRC32, check_input, 9, out), 0);
    hex_encode(hex, out, 4);
    CHECK_EQ_STR(hex, "cbf43926"); /* big-endian */

    cksum_t c;
    CHECK_EQ_INT(cksum_init(&c, CKSUM_NALGS), CIO_EINVAL);
    CHECK_EQ_INT(cksum_init(&c, CKSUM_SHA256), 0);
    cksum_free(&c);
    cksum_free(&c); /* twice is harmless */
}

static void test_names(void)
{
    cksum_alg_t a = CKSUM_NALGS;
    CHECK_EQ_INT(cksum_lookup("CRC64NVME", 9, &a), 0);
    CHECK_EQ_INT(a, CKSUM_CRC64NVME);
    CHECK_EQ_INT(cksum_lookup("crc32c", 6, &a), 0);
    CHECK_EQ_INT(a, CKSUM_CRC32C);
    CHECK_EQ_INT(cksum_lookup("crc32c", 5, &a), 0); /* a prefix is another name */
    CHECK_EQ_INT(a, CKSUM_CRC32);
    CHECK_EQ_INT(cksum_lookup("crc", 3, &a), CIO_ENOTFOUND);
    CHECK_EQ_INT(cksum_lookup("", 0, &a), CIO_ENOTFOUND);
    for (int i = 0; i < CKSUM_NALGS; i++) {
        CHECK(cksum_size((cksum_alg_t)i) > 0 && cksum_size((cksum_alg_t)i) <= CKSUM_SIZE_MAX);
        CHECK_EQ_INT(cksum_lookup(cksum_name((cksum_alg_t)i), strlen(cksum_name((cksum_alg_t)i)), &a), 0);
        CHECK_EQ_INT(a, i);
    }
    CHECK_EQ_INT(cksum_size(CKSUM_NALGS), 0);
}

/* Every length 0..300 at every alignment 0..15, and a few long ones: ISA-L,
 * the tables and the bitwise reference agree. */
static void test_crc_paths_agree(void)
{
    static uint8_t buf[70000 + 16];
    static const size_t longs[] = {1023, 4096, 4099, 65536, 70000};
    int bad = 0;

    fill(buf, sizeof(buf));
    for (size_t off = 0; off < 16; off++) {
        for (size_t n = 0; n <= 300 + sizeof(longs) / sizeof(longs[0]); n++) {
            size_t len = n <= 300 ? n : longs[n - 301];
            const uint8_t *p = buf + off;
            uint32_t want32 = ref_crc32(0xEDB88320u, p, len), want32c = ref_crc32(0x82F63B78u, p, len);
            if (cksum_crc32(0, p, len) != want32 || cksum_crc32c_sw(0, p, len) != want32c ||
                cksum_crc64nvme(0, p, len) != ref_crc64nvme(p, len) || cksum_crc32c(0, p, len) != want32c) {
                if (bad++ < 5)
                    fprintf(stderr, "mismatch at offset %zu length %zu\n", off, len);
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* Random lengths (up to 3 MiB), alignments and starting values: ISA-L's
 * CRC32C, whose register convention differs from ours (no inversion in or
 * out), equals the tables' with any value carried in. */
static void test_crc32c_random(void)
{
    enum { MAXLEN = 3 << 20 };
    static uint8_t buf[MAXLEN + 64];
    int bad = 0;

    fill(buf, sizeof(buf));
    for (int i = 0; i < 400; i++) {
        size_t off = (size_t)(rng() % 64), len = (size_t)(rng() % (i < 300 ? 70000 : MAXLEN));
        uint32_t seed = i % 4 == 0 ? 0 : (uint32_t)rng();
        if (cksum_crc32c(seed, buf + off, len) != cksum_crc32c_sw(seed, buf + off, len) && bad++ < 5)
            fprintf(stderr, "mismatch at offset %zu length %zu seed %08x\n", off, len, seed);
    }
    CHECK_EQ_INT(bad, 0);
}

/* The value over pieces, cut anywhere, is the value of the whole. */
static void test_pieces(void)
{
    static uint8_t buf[1000];
    uint8_t whole[CKSUM_SIZE_MAX], parts[CKSUM_SIZE_MAX];
    int bad = 0;

    fill(buf, sizeof(buf));
    uint32_t c32 = cksum_crc32(0, buf, sizeof(buf)), c32c = cksum_crc32c(0, buf, sizeof(buf));
    uint64_t c64 = cksum_crc64nvme(0, buf, sizeof(buf));
    for (size_t cut = 0; cut <= sizeof(buf); cut++) {
        size_t rest = sizeof(buf) - cut;
        if (cksum_crc32(cksum_crc32(0, buf, cut), buf + cut, rest) != c32 ||
            cksum_crc32c(cksum_crc32c(0, buf, cut), buf + cut, rest) != c32c ||
            cksum_crc32c_sw(cksum_crc32c_sw(0, buf, cut), buf + cut, rest) != c32c ||
            cksum_crc64nvme(cksum_crc64nvme(0, buf, cut), buf + cut, rest) != c64)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);

    for (int a = 0; a < CKSUM_NALGS; a++) {
        CHECK_EQ_INT(cksum_compute((cksum_alg_t)a, buf, sizeof(buf), whole), 0);
        for (size_t cut = 0; cut <= sizeof(buf); cut += 37) {
            cksum_t c;
            CHECK_EQ_INT(cksum_init(&c, (cksum_alg_t)a), 0);
            CHECK_EQ_INT(cksum_update(&c, buf, cut), 0);
            CHECK_EQ_INT(cksum_update(&c, NULL, 0), 0);
            CHECK_EQ_INT(cksum_update(&c, buf + cut, sizeof(buf) - cut), 0);
            CHECK_EQ_INT(cksum_final(&c, parts), 0);
            CHECK(memcmp(whole, parts, cksum_size((cksum_alg_t)a)) == 0);
        }
    }
}

static void test_base64_rfc4648(void)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *text[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        uint8_t back[16];
        size_t n = 99;
        CHECK_EQ_INT(cksum_base64_encode(out, plain[i], strlen(plain[i])), strlen(text[i]));
        CHECK_EQ_STR(out, text[i]);
        char *exact = test_dup_exact(text[i], strlen(text[i]));
        CHECK_EQ_INT(cksum_base64_decode(back, sizeof(back), exact, strlen(text[i]), &n), 0);
        free(exact);
        CHECK_EQ_INT(n, strlen(plain[i]));
        CHECK(memcmp(back, plain[i], n) == 0);
    }
    /* every byte value round trips, at every length up to 256 */
    uint8_t all[256], back[256];
    char enc[CKSUM_BASE64_LEN(256) + 1];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len <= 256; len++) {
        size_t n, tl = cksum_base64_encode(enc, all, len);
        CHECK_EQ_INT(tl, CKSUM_BASE64_LEN(len));
        CHECK_EQ_INT(cksum_base64_decode(back, sizeof(back), enc, tl, &n), 0);
        CHECK(n == len && memcmp(all, back, len) == 0);
    }
}

static void test_base64_refuses(void)
{
    static const char *bad[] = {
        "Zg=",      /* not a whole group */
        "Zh==",     /* bits under the padding */
        "Zm9=",     /* the same, one '=' */
        "Z===",     /* three '=' */
        "=Zm9",     /* '=' first */
        "Zg==Zg==", /* padding before the end */
        "Zm=v",     /* '=' inside the group */
        "Zm9v\n",   /* a line break */
        "Zm 9",     /* a space */
        "Zm9-",     /* the URL alphabet */
        "Zm9_",
    };
    uint8_t out[16];
    size_t n;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = cksum_base64_decode(out, sizeof(out), bad[i], strlen(bad[i]), &n);
        if (rc != CIO_EINVAL)
            fprintf(stderr, "accepted %s\n", bad[i]);
        CHECK_EQ_INT(rc, CIO_EINVAL);
    }
    CHECK_EQ_INT(cksum_base64_decode(out, 2, "Zm9v", 4, &n), CIO_ETOOBIG);
    CHECK_EQ_INT(cksum_base64_decode(out, 3, "Zm9v", 4, &n), 0);
    CHECK_EQ_INT(cksum_base64_decode(out, 2, "Zm8=", 4, &n), 0);
    CHECK_EQ_INT(n, 2);
}

/* A CRC32C of blocks (ISA-L's AVX-512 code on a CPU that has it) returns
 * with the upper halves of the vector registers clean (XGETBV 1: the AVX
 * and ZMM_Hi256 state not in use), so that SSE code after it in the same
 * thread does not pay for them (common/cksum.c, crc32c_wide_done). */
static void test_crc32c_upper_clean(void)
{
#if defined(__x86_64__)
    static uint8_t buf[1 << 20];
    unsigned a, b, c, d, lo, hi;

    if (!__builtin_cpu_supports("avx") || !__get_cpuid_count(0xd, 1, &a, &b, &c, &d) || (a & 4) == 0) {
        printf("skipped: this CPU cannot tell which state is in use (XGETBV 1)\n");
        return;
    }
    fill(buf, sizeof(buf));
    for (size_t n = 256; n <= sizeof(buf); n *= 4) { /* 256 bytes and more take the wide code */
        (void)cksum_crc32c(0, buf, n);
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
        CHECK((lo & (1u << 2 | 1u << 6)) == 0);
    }
#endif
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Not a check: the figures go to the log (docs/s3-checksums.md and
 * docs/benchmarks.md quote them). 64 KiB is a block of the block checksums. */
static void report_throughput(void)
{
    enum { MIB = 1 << 20, BYTES = 64 * MIB };
    static uint8_t buf[MIB];
    static const char *names[] = {"crc32", "crc32c (ISA-L)", "crc32c (tables)", "crc64nvme"};
    static const size_t sizes[] = {MIB, 64 << 10};
    uint64_t sink = 0;

    fill(buf, sizeof(buf));
    for (int s = 0; s < 2; s++)
        for (int w = 0; w < 4; w++) {
            size_t n = sizes[s];
            double t0 = seconds();
            for (size_t done = 0; done < BYTES; done += n) {
                switch (w) {
                case 0:
                    sink += cksum_crc32(0, buf, n);
                    break;
                case 1:
                    sink += cksum_crc32c(0, buf, n);
                    break;
                case 2:
                    sink += cksum_crc32c_sw(0, buf, n);
                    break;
                default:
                    sink += cksum_crc64nvme(0, buf, n);
                }
            }
            double dt = seconds() - t0;
            printf("throughput %-16s %6.2f GB/s (%zu KiB x %zu)\n", names[w], dt > 0 ? (double)BYTES / dt / 1e9 : 0.0, n >> 10,
                   BYTES / n);
        }
    CHECK(sink != 0);
}

int main(void)
{
    RUN(test_check_values);
    RUN(test_crc32c_rfc3720);
    RUN(test_crc64nvme_published);
    RUN(test_digests);
    RUN(test_names);
    RUN(test_crc_paths_agree);
    RUN(test_crc32c_random);
    RUN(test_pieces);
    RUN(test_crc32c_upper_clean);
    RUN(test_base64_rfc4648);
    RUN(test_base64_refuses);
    RUN(report_throughput);
    return TEST_SUMMARY();
}
