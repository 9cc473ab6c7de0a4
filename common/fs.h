/*
 * fs — durable file-system operations: the one atomic-write helper
 * (temporary file, fsync, rename, directory fsync), directory fsync, symlink
 * flips (a new link renamed over the old one), a tree removal
 * that never follows symlinks, and bounded whole-file reads.
 *
 * Every function returns 0, or -1 with errno set; on failure nothing is left
 * half-done where the doc says so (temporary files are always removed).
 * Temporary names are ".NAME.tmp.PID.COUNTER" in the destination's directory,
 * so a crash can leave one behind but never a truncated destination. The next
 * fs_atomic_begin() (so every atomic write and copy) or fs_symlink_replace()
 * for the same NAME removes the temporaries of NAME whose PID no longer
 * exists, so at most one per writer that died since the last write remains.
 */
#ifndef TANDEM_FS_H
#define TANDEM_FS_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/util.h"

/* Deepest directory nesting fs_rmtree() descends into (ELOOP beyond). */
#define FS_RMTREE_MAX_DEPTH 256

/*
 * An atomic file being written: begin, write (any number of times), then
 * commit or abort. Fields are private. Initialise with FS_ATOMIC_INIT so that
 * fs_atomic_abort() is safe on an object that was never begun.
 */
struct fs_atomic {
	int dirfd;
	int fd;
	char base[NAME_MAX + 1];
	char tmp[NAME_MAX + 1];
};
#define FS_ATOMIC_INIT { .dirfd = -1, .fd = -1, .base = "", .tmp = "" }

/*
 * Start writing PATH atomically: create a unique temporary file beside it
 * with O_CREAT|O_EXCL|O_CLOEXEC, permissions exactly MODE (the umask is not
 * applied). PATH itself is not touched until fs_atomic_commit().
 */
int fs_atomic_begin(struct fs_atomic *a, const char *path, mode_t mode) WUR;
/* Append LEN bytes (retries short writes and EINTR). On failure call abort. */
int fs_atomic_write(struct fs_atomic *a, const void *buf, size_t len) WUR;
/*
 * fsync, checked close, rename over PATH, fsync the directory. On failure
 * before the rename the temporary file is removed and PATH is unchanged; if
 * only the final directory fsync fails, PATH already holds the new content
 * but its durability is unknown. Always releases A (no abort needed after).
 */
int fs_atomic_commit(struct fs_atomic *a) WUR;
/* Remove the temporary file and release A; errno is preserved. Idempotent. */
void fs_atomic_abort(struct fs_atomic *a);
/*
 * fs_atomic_commit() under NAME (a plain file name, no '/') in the same
 * directory instead of the PATH given to fs_atomic_begin(): for content whose
 * name is known only once written (a file named by its digest). The
 * temporaries keep the name begun with, so its next fs_atomic_begin() sweeps
 * them. EINVAL (A released) for a NAME that is not a plain name.
 */
int fs_atomic_commit_as(struct fs_atomic *a, const char *name) WUR;
/*
 * The temporary's name in the destination's directory while A is begun (to
 * read back what was written before committing it), "" otherwise.
 */
const char *fs_atomic_tmp_name(const struct fs_atomic *a);

/*
 * Replace PATH with LEN bytes of DATA atomically and durably, with
 * permissions exactly MODE. On failure PATH is unchanged (see
 * fs_atomic_commit() for the directory-fsync case) and no temporary remains.
 */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode) WUR;

/* Write all LEN bytes to FD, retrying short writes and EINTR. */
int fs_write_all(int fd, const void *buf, size_t len) WUR;

/*
 * fsync the directory DIR (so that renames and creations in it are durable).
 * Filesystems that cannot sync directories (EINVAL) count as success.
 */
int fs_fsync_dir(const char *dir) WUR;
/* fsync the directory containing PATH ("." when PATH has no slash). */
int fs_fsync_parent(const char *path) WUR;

/*
 * Create PATH and any missing parents, each created directory with exactly
 * MODE and its parent fsynced. Existing directories (or symlinks to them) are
 * left alone; a non-directory in the way fails with ENOTDIR.
 */
int fs_mkdir_p(const char *path, mode_t mode) WUR;

/*
 * Remove PATH and everything below it without following any symlink: a
 * symlink (including PATH itself, trailing slashes ignored) is unlinked,
 * never traversed. Only PATH's parent components are resolved normally.
 * A missing PATH is success. Refuses to descend into another mount, bind
 * mounts of the same file system included (EXDEV), or deeper than
 * FS_RMTREE_MAX_DEPTH (ELOOP); "/", "." and ".." as
 * the last component are refused (EINVAL). On failure part of the tree may
 * already be gone.
 */
int fs_rmtree(const char *path) WUR;

/* rename(FROM, TO), then fsync TO's directory and FROM's if it differs. */
int fs_rename_durable(const char *from, const char *to) WUR;

/*
 * Atomically make LINKPATH a symlink to TARGET (the string is stored as is):
 * a temporary symlink beside LINKPATH is renamed over it, then the directory
 * is fsynced. A real directory at LINKPATH fails (EISDIR) and is untouched.
 */
int fs_symlink_replace(const char *target, const char *linkpath) WUR;

/*
 * Read the whole regular file PATH into a malloc'd, NUL-terminated buffer
 * *OUT (caller frees) of *OUTLEN bytes (OUTLEN may be NULL). Files larger
 * than MAX bytes fail with EFBIG; directories with EISDIR; other non-regular
 * files (FIFOs, devices, sockets) with EINVAL, without blocking. The content may itself contain NUL bytes: use
 * *OUTLEN, not strlen, when that matters. *OUT is set only on success.
 */
int fs_read_file(const char *path, size_t max, char **out, size_t *outlen) WUR;

/*
 * Copy the regular file FROM to TO atomically (fs_atomic_*), in 64 KiB
 * chunks, with permissions exactly MODE. On failure TO is unchanged.
 */
int fs_copy_file(const char *from, const char *to, mode_t mode) WUR;

/* Bytes available to unprivileged users on PATH's file system (statvfs). */
int fs_free_bytes(const char *path, unsigned long long *out) WUR;

/*
 * Where temporary directories go: $TMPDIR when it is an absolute path, else
 * "/tmp". The environment's string itself: do not keep it across setenv().
 */
const char *fs_tmp_root(void);

/*
 * A new private directory (0700) fs_tmp_root()/PREFIXXXXXXX into BUF (LEN
 * bytes). Returns 0, or -1 with errno (ENAMETOOLONG when it does not fit;
 * BUF "").
 */
int fs_mkdtemp(const char *prefix, char *buf, size_t len) WUR;

#endif
