/* Helpers for the uffd suite: scratch files of deterministic bytes. */
#ifndef UMAPFS_TESTS_UFFD_UTIL_H
#define UMAPFS_TESTS_UFFD_UTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

/* Byte i of pattern `seed`. */
static inline unsigned char pb(uint64_t seed, uint64_t i)
{
	uint64_t x = (i >> 3) * UINT64_C(0x9e3779b97f4a7c15) ^ (seed * UINT64_C(0xd1b54a32d192ed69) + 1);
	x ^= x >> 29;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 32;
	return (unsigned char)(x >> (8 * (i & 7)));
}

/* A scratch file under /var/tmp (real disk: O_DIRECT is real) of pattern bytes. */
static inline void mkpat(char *path, size_t cap, uint64_t size, uint64_t seed)
{
	snprintf(path, cap, "/var/tmp/uffd-test-XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0, "mkstemp %s", path);
	unsigned char *buf = malloc(1 << 20);
	cr_assert(buf);
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < (1u << 20) ? (size_t)(size - off) : (1u << 20);
		for (size_t i = 0; i < n; i++)
			buf[i] = pb(seed, off + i);
		cr_assert(pwrite(fd, buf, n, (off_t)off) == (ssize_t)n);
		off += n;
	}
	free(buf);
	fsync(fd);
	close(fd);
}

static inline void pread_all(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	cr_assert(pread(fd, buf, len, (off_t)off) == (ssize_t)len);
	close(fd);
}

#endif
