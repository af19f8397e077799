/* diff.h - "comio diff": compares the objects of two sites (keys, sizes, ETags, versions). */
#ifndef COMIO_CLI_DIFF_H
#define COMIO_CLI_DIFF_H

/* Runs "comio diff" with argv[1..argc) (argv[0] is "diff"): lists every
 * bucket of --source and --target (or only --bucket) page by page, merges the
 * two sorted listings and prints the keys missing on the target, extra on the
 * target, different in size or ETag, and of another version (the same bytes
 * at another (version, origin); not with --no-versions, nor against a site
 * whose listing has no versions). Memory is bounded by one page per site,
 * whatever the number of keys. Returns the exit status: 0 the sites hold the
 * same keys, sizes, ETags and versions, 1 they differ, 2 usage error, 3 a site
 * could not be listed (unreachable, HTTP error, unexpected reply). See
 * docs/cli.md. */
int diff_main(int argc, char **argv);

#endif
