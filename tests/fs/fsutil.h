/*
 * Helpers for the fs suite: real FUSE mounts of the built daemon.
 *
 * Every test works in its own directory under /var/tmp (not tmpfs: the
 * engine uses O_DIRECT) and mounts at <dir>/mnt.  The daemon runs in the
 * foreground as a child; its stderr goes to <dir>/daemon.err.
 */
#ifndef UMAPFS_TESTS_FSUTIL_H
#define UMAPFS_TESTS_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tmount {
	char dir[256];
	char mnt[300];
	char err[300];
	pid_t pid;
	int status; /* exit status once the daemon has ended, else -1 */
};

/* Path of the built daemon ($UMAPFS_BUILD_ROOT/fs/umapfs); sets UMAPFS_PLUGIN_PATH. */
const char *tm_daemon(void);

/* Create a fresh work directory /var/tmp/umapfs-fs-<tag>-XXXXXX with mnt/ in it. */
void tm_init(struct tmount *m, const char *tag);

/* Path inside the work directory (static buffer rotation of 8). */
const char *tm_path(const struct tmount *m, const char *name);

/*
 * Start the daemon in the foreground on SOURCE with "-o OPTS" (NULL: none)
 * and wait until the mount appears.  Returns 0, or -1 if the daemon exited
 * (m->status holds its exit status) or did not mount within 30 s.
 */
int tm_start(struct tmount *m, const char *source, const char *opts);

/* Run the daemon expecting it to exit (a refused mount); returns its exit status. */
int tm_run_fail(struct tmount *m, const char *source, const char *opts);

/* fusermount3 -u, then wait for the daemon; returns its exit status (-1 on timeout). */
int tm_stop(struct tmount *m);

/* Wait up to `ms` for the daemon to exit; returns its exit status or -1. */
int tm_wait(struct tmount *m, int ms);

/* Is `mnt` a umapfs mount point (per /proc/self/mountinfo)? */
int tm_is_mounted(const char *mnt);

/* The daemon's stderr so far (static buffer). */
const char *tm_stderr(const struct tmount *m);

/* Unmount if still mounted, kill a leftover daemon, remove the directory. */
void tm_cleanup(struct tmount *m);

/* Deterministic test bytes: byte i of stream `seed`. */
void pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t start);

/* Write a file of `size` pattern bytes. Returns 0 or -errno. */
int pattern_file(const char *path, uint64_t size, uint64_t seed);

/* Write a text file. */
void write_text(const char *path, const char *text);

/* Resident set of a process in bytes (VmRSS), or 0. */
uint64_t proc_rss(pid_t pid);

/* A key's value in a "key value" stats text, or UINT64_MAX if absent. */
uint64_t stats_get(const char *text, const char *key);

/* Read the whole of a small file into a static buffer (NUL-terminated). */
const char *slurp(const char *path);

#endif
