/*
 * Helpers for the rw suite (writable mounts, durability, faults).  Mounts
 * go through tests/fs/fsutil.c (struct tmount); this adds a seeded random
 * generator, whole-file comparisons and child processes with deadlines, so
 * that a hang becomes a failure with a message instead of a stuck test.
 */
#ifndef UMAPFS_TESTS_RWUTIL_H
#define UMAPFS_TESTS_RWUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fsutil.h"

/* xoshiro256** seeded by splitmix64. */
struct rng {
	uint64_t s[4];
};
void rng_init(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n) (n > 0). */
uint64_t rng_below(struct rng *r, uint64_t n);
void rng_bytes(struct rng *r, void *buf, size_t len);

/*
 * The seed of a randomised test: $UMAPFS_RW_SEED if set (to replay a
 * failure), else derived from the clock and pid.
 */
uint64_t rw_seed(void);

/*
 * Read [off, off+len) of `path` (pread, not through any mount) into buf.
 * Returns 0 or -errno (-EIO for a short read).
 */
int file_read(const char *path, uint64_t off, void *buf, size_t len);

/* Offset of the first differing byte of a and b, or -1 if equal. */
long long first_diff(const void *a, const void *b, size_t len);

/*
 * Run a shell command in `dir` with stdout+stderr appended to `log`, killed
 * after `timeout_s`.  Returns the exit status, 128+signal, or -1 on timeout.
 */
int run_cmd(const char *dir, const char *log, int timeout_s, const char *cmd);

/* Wait for child `pid` up to `ms`; returns the raw wait status or -1 (then kills it). */
int wait_child(pid_t pid, int ms);

/* Does the file system under `path` have at least `bytes` free? */
int have_space(const char *path, uint64_t bytes);

#endif
