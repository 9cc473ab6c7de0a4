/*
 * The unit tests' temporary directory: one per test (setup makes it,
 * teardown removes it), and helpers that put files and directories in it by
 * a path relative to it. Failures inside a test fail it (cmocka asserts).
 */
#ifndef TANDEM_TESTS_UNIT_TMPDIR_H
#define TANDEM_TESTS_UNIT_TMPDIR_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Make tandem-ut-NAME.XXXXXX under fs_tmp_root() ($TMPDIR when absolute, else
 * /tmp); its path, or NULL (for a cmocka setup).
 */
const char *tmpdir_make(const char *name);
/* The directory tmpdir_make made. */
const char *tmpdir_path(void);
/* Remove it and everything in it; 0 or -1 (for a cmocka teardown). */
int tmpdir_remove(void);
/*
 * A cmocka teardown for a fixture that is one calloc'd struct in *STATE and
 * the directory: tmpdir_remove(), then free(*STATE); 0 or -1.
 */
int tmpdir_teardown(void **state);
/* BUF = the directory + "/" + REL. */
void tmpdir_join(char *buf, size_t size, const char *rel);
/*
 * BUF = snprintf(FMT, ...), failing the test when it does not fit: for
 * paths built from other paths (PATH_MAX-sized, so any $TMPDIR fits).
 */
void tmpdir_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * BUF = PATH (a Unix socket's), or when PATH does not fit a sockaddr_un
 * (a long $TMPDIR) the same file named through /proc/self/fd/N of its
 * directory, N kept open until tmpdir_remove(): short enough to bind.
 */
void tmpdir_sock_path(char *buf, size_t size, const char *path);
/* Write REL (atomically) with CONTENT and exactly MODE. */
void tmpdir_put(const char *rel, const char *content, mode_t mode);
/* Make the directory REL with exactly MODE. */
void tmpdir_mkdir(const char *rel, mode_t mode);
/*
 * A new empty file under fs_tmp_root(), already unlinked: its read-write
 * descriptor (the caller closes it). Works with or without tmpdir_make().
 */
int tmpdir_anon_fd(void);

#endif
