/*
 * Helpers for the engine suite: scratch files with deterministic bytes, a
 * log hook that records messages, and engine construction shortcuts.
 * Scratch data lives under /var/tmp/umapfs-engine-* (a disk file system, so
 * O_DIRECT is real) unless a test asks for /dev/shm (tmpfs).
 */
#ifndef UMAPFS_TESTS_EUTIL_H
#define UMAPFS_TESTS_EUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "umapfs/engine.h"

struct tdir {
	char path[256];
};

/* mkdtemp under base ("/var/tmp" or "/dev/shm"). */
void td_init(struct tdir *d, const char *base);
/* Path of `name` inside the directory (rotating static buffers). */
const char *td_path(const struct tdir *d, const char *name);
/* Remove the directory and its files. */
void td_cleanup(struct tdir *d);

/* Byte `i` of pattern stream `seed`. */
static inline unsigned char pat_byte(uint64_t seed, uint64_t i)
{
	uint64_t x = (i >> 3) * UINT64_C(0x9e3779b97f4a7c15) ^ (seed * UINT64_C(0xd1b54a32d192ed69));
	x ^= x >> 29;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 32;
	return (unsigned char)(x >> (8 * (i & 7)));
}
void pat_fill(void *buf, size_t len, uint64_t seed, uint64_t start);
/* Create a file of `size` pattern bytes; aborts the test on failure. */
void make_file(const char *path, uint64_t size, uint64_t seed);
/* pread the whole range (test oracle); aborts the test on failure. */
void file_read(const char *path, void *buf, size_t len, uint64_t off);

/* A log hook recording every message (thread-safe). */
void tlog(void *arg, int level, const char *msg);
/* All messages so far, newline separated. */
const char *tlog_text(void);
/* How many messages contain `needle`. */
int tlog_count(const char *needle);

/* An engine with the given page size, buffer and policy; the log hook set. */
struct umapfs_engine *mk_engine(uint64_t page, uint64_t buffer, int policy);
struct umapfs_stats stats_of(struct umapfs_engine *e);

#endif
