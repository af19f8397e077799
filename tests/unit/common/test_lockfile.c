/* test_lockfile.c - unit tests for common/lockfile.c: one holder at a time,
 * from this process or another, and the lock goes with the descriptor. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/lockfile.h"
#include "testutil.h"

static char dir[] = "/tmp/comio-test-lockfile-XXXXXX";

static void test_one_holder(void)
{
    char err[1024] = "", want[1200];
    int fd = lockfile_take(dir, "x.lock", "tester", err, sizeof(err));
    CHECK(fd >= 0);

    /* a second open file in this process is a second holder: refused */
    CHECK_EQ_INT(lockfile_take(dir, "x.lock", "tester", err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: in use by another tester (it holds %s/x.lock)", dir, dir);
    CHECK(strcmp(err, want) == 0);

    /* another process too */
    pid_t pid = fork();
    if (pid == 0) {
        char e[1024];
        _exit(lockfile_take(dir, "x.lock", "tester", e, sizeof(e)) == -1 ? 0 : 1);
    }
    int st = -1;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* another name is another lock */
    int other = lockfile_take(dir, "y.lock", "tester", err, sizeof(err));
    CHECK(other >= 0);
    close(other);

    /* released with its descriptor */
    close(fd);
    fd = lockfile_take(dir, "x.lock", "tester", err, sizeof(err));
    CHECK(fd >= 0);
    close(fd);
}

static void test_errors(void)
{
    char err[1024] = "";
    char missing[1100];
    snprintf(missing, sizeof(missing), "%s/no-such-dir", dir);
    CHECK_EQ_INT(lockfile_take(missing, "x.lock", "tester", err, sizeof(err)), -1);
    CHECK(strstr(err, "cannot open") != NULL && strstr(err, "No such file or directory") != NULL);

    char *longdir = malloc(5000);
    memset(longdir, 'a', 4999);
    longdir[4999] = '\0';
    CHECK_EQ_INT(lockfile_take(longdir, "x.lock", "tester", err, sizeof(err)), -1);
    CHECK(strstr(err, "path too long") != NULL);
    free(longdir);
}

int main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_one_holder);
    RUN(test_errors);
    char path[1100];
    snprintf(path, sizeof(path), "%s/x.lock", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/y.lock", dir);
    unlink(path);
    rmdir(dir);
    return TEST_SUMMARY();
}
