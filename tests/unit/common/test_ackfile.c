/* test_ackfile.c - unit tests for common/ackfile.c: stamps, trust, monotonic ack points, the inotify tick, a foreign file. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include "common/ackfile.c"
#include "testutil.h"

static char dir[] = "/tmp/comio-test-ackfile-XXXXXX";

static void cleanup(void)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, ACKFILE_NAME);
    unlink(p);
}

static void test_stamp_publish_read(void)
{
    ackfile_t *w, *r;
    ackfile_owner_t b = {"b", 1, 2, ackfile_url_hash("http://b:8080")};
    uint64_t a = 99;

    CHECK_EQ_INT(ackfile_open(&w, dir), 0);
    CHECK_EQ_INT(ackfile_open(&r, dir), 0);
    /* nothing stamped: nothing trusted */
    CHECK_EQ_INT(ackfile_read(r, &b, &a, NULL), CIO_ENOTFOUND);
    ackfile_stamp(w, 3, &b, 7, 10);
    CHECK_EQ_INT(ackfile_read(r, &b, &a, NULL), 0);
    CHECK(a == 10);
    CHECK_EQ_INT(ackfile_publish(w, 3, 15), 0);
    CHECK_EQ_INT(ackfile_read(r, &b, &a, NULL), 0);
    CHECK(a == 15);
    /* never backwards */
    CHECK_EQ_INT(ackfile_publish(w, 3, 12), 0);
    CHECK_EQ_INT(ackfile_read(r, &b, &a, NULL), 0);
    CHECK(a == 15);

    /* another name, store or URL: not trusted */
    ackfile_owner_t other = b;
    other.name = "c";
    CHECK_EQ_INT(ackfile_read(r, &other, &a, NULL), CIO_ENOTFOUND);
    other = b;
    other.store_lo = 3;
    CHECK_EQ_INT(ackfile_read(r, &other, &a, NULL), CIO_ENOTFOUND);
    other = b;
    other.url_hash = ackfile_url_hash("http://elsewhere:8080");
    CHECK_EQ_INT(ackfile_read(r, &other, &a, NULL), CIO_ENOTFOUND);
    other = b;
    other.name = "bb"; /* a longer name with the same start */
    CHECK_EQ_INT(ackfile_read(r, &other, &a, NULL), CIO_ENOTFOUND);

    /* a slot being stamped (gen odd) is not trusted */
    ackfile_slot_t *s = slot_at(w, 3);
    s->gen++;
    CHECK_EQ_INT(ackfile_read(r, &b, &a, NULL), CIO_ENOTFOUND);
    s->gen++;
    CHECK_EQ_INT(ackfile_read(r, &b, &a, NULL), 0);

    /* a new run restamps: the ack point is its own (the persisted cursor) */
    ackfile_stamp(w, 3, &b, 8, 14);
    CHECK_EQ_INT(ackfile_read(r, &b, &a, NULL), 0);
    CHECK(a == 14);
    ackfile_close(w);
    ackfile_close(r);

    /* the values survive both daemons: a later open reads them */
    CHECK_EQ_INT(ackfile_open(&r, dir), 0);
    CHECK_EQ_INT(ackfile_read(r, &b, &a, NULL), 0);
    CHECK(a == 14);
    ackfile_close(r);
    cleanup();
}

static void test_failed_ring(void)
{
    ackfile_t *w, *r;
    ackfile_owner_t b = {"b", 1, 2, 3};
    uint64_t a, n;

    CHECK_EQ_INT(ackfile_open(&w, dir), 0);
    CHECK_EQ_INT(ackfile_open(&r, dir), 0);
    ackfile_stamp(w, 0, &b, 1, 0);
    CHECK_EQ_INT(ackfile_read(r, &b, &a, &n), 0);
    CHECK(n == 0);
    CHECK_EQ_INT(ackfile_was_failed(r, &b, 5, 0), 0);
    ackfile_note_failed(w, 0, 5);
    CHECK_EQ_INT(ackfile_read(r, &b, &a, &n), 0);
    CHECK(n == 1);
    CHECK_EQ_INT(ackfile_was_failed(r, &b, 5, 0), 1);
    CHECK_EQ_INT(ackfile_was_failed(r, &b, 5, 1), 1); /* failed before the reader looked: still found */
    CHECK_EQ_INT(ackfile_was_failed(r, &b, 6, 1), 0);
    /* a restart of repld (same owner) keeps the ring */
    ackfile_stamp(w, 0, &b, 2, 4);
    CHECK_EQ_INT(ackfile_was_failed(r, &b, 5, 1), 1);
    /* many failures while a write waits: it cannot tell, so it counts as failed */
    for (uint64_t k = 100; k < 100 + ACKFILE_FAILED_RING; k++)
        ackfile_note_failed(w, 0, k);
    CHECK_EQ_INT(ackfile_was_failed(r, &b, 6, 1), 1);
    CHECK_EQ_INT(ackfile_was_failed(r, &b, 6, 1 + ACKFILE_FAILED_RING), 0);
    /* an owner the slot does not carry: cannot tell */
    ackfile_owner_t c = {"c", 1, 2, 3};
    CHECK_EQ_INT(ackfile_was_failed(r, &c, 6, 0), 1);
    ackfile_close(w);
    ackfile_close(r);
    cleanup();
}

static void test_publish_wakes_inotify(void)
{
    ackfile_t *w;
    ackfile_owner_t b = {"b", 1, 2, 3};
    char buf[4096];
    int ifd;

    CHECK_EQ_INT(ackfile_open(&w, dir), 0);
    ackfile_stamp(w, 0, &b, 1, 0);
    ifd = inotify_init1(IN_NONBLOCK);
    CHECK(ifd >= 0 && inotify_add_watch(ifd, ackfile_path(w), IN_MODIFY) >= 0);
    CHECK(read(ifd, buf, sizeof(buf)) < 0);
    CHECK_EQ_INT(ackfile_publish(w, 0, 5), 0);
    CHECK(read(ifd, buf, sizeof(buf)) > 0);
    /* no move, no tick */
    CHECK_EQ_INT(ackfile_publish(w, 0, 5), 0);
    CHECK(read(ifd, buf, sizeof(buf)) < 0);
    close(ifd);
    ackfile_close(w);
    cleanup();
}

static void test_foreign_file(void)
{
    ackfile_t *f;
    char p[256];
    int fd;

    snprintf(p, sizeof(p), "%s/%s", dir, ACKFILE_NAME);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, "not an ack file", 15) == 15);
    close(fd);
    CHECK_EQ_INT(ackfile_open(&f, dir), CIO_EINVAL);
    CHECK(f == NULL);
    cleanup();
}

int main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    log_init("test", "test", LOG_LVL_ERROR, 0);
    RUN(test_stamp_publish_read);
    RUN(test_failed_ring);
    RUN(test_publish_wakes_inotify);
    RUN(test_foreign_file);
    rmdir(dir);
    return TEST_SUMMARY();
}
