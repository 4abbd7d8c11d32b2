/* Helpers of the 'mapping' suite: scratch files with known bytes. */
#ifndef MUTIL_H
#define MUTIL_H
#include <stddef.h>
#include <stdint.h>

/* Create /var/tmp/mapping-XXXXXX/<name> with `len` bytes from seed; returns the path (static storage per slot). */
const char *mk_file(const char *name, size_t len, uint32_t seed, unsigned char **content);
/* Remove the scratch directory and its files. */
void rm_files(void);
/* Deterministic byte at position i for seed. */
static inline unsigned char byte_at(uint32_t seed, uint64_t i)
{
	uint64_t x = (i / 8 + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 32);
	x ^= x >> 29; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 32;
	return (unsigned char)(x >> ((i % 8) * 8));
}
#endif
