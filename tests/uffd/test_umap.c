/*
 * A UMap-style program built against the compatibility header (umap/umap.h)
 * and linked with libumap-compat: configuration from UMAP_* variables, umap
 * with an offset, reads, writes, umap_flush, prefetch, fetch_and_pin, uunmap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <umap/umap.h>

#include "util.h"

static void env(void)
{
	/* read once, at the first call */
	setenv("UMAP_PAGESIZE", "16384", 1);
	setenv("UMAP_BUFSIZE", "64", 1); /* pages: 1 MiB */
	setenv("UMAP_PAGE_FILLERS", "3", 1);
	setenv("UMAP_PAGE_EVICTORS", "2", 1);
	setenv("UMAP_EVICT_HIGH_WATER_THRESHOLD", "80", 1);
	setenv("UMAP_EVICT_LOW_WATER_THRESHOLD", "60", 1);
	setenv("UMAP_MAX_FAULT_EVENTS", "128", 1);
}

Test(umap, config_from_environment, .init = env)
{
	cr_assert_eq(umapcfg_get_umap_page_size(), 16384);
	cr_assert_eq(umapcfg_get_max_pages_in_buffer(), 64);
	cr_assert_eq(umapcfg_get_num_fillers(), 3);
	cr_assert_eq(umapcfg_get_num_evictors(), 2);
	cr_assert_eq(umapcfg_get_evict_high_water_threshold(), 80);
	cr_assert_eq(umapcfg_get_evict_low_water_threshold(), 60);
	cr_assert_eq(umapcfg_get_max_fault_events(), 128);
	cr_assert_eq(umapcfg_get_system_page_size(), sysconf(_SC_PAGESIZE));
	cr_assert_eq(umap_has_write_support(), 1);
}

Test(umap, read_with_offset, .init = env, .timeout = 60)
{
	char path[64];
	uint64_t size = 8 << 20, off = 64 << 10, len = 6 << 20;
	mkpat(path, sizeof(path), size, 11);
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	unsigned char *b = umap(NULL, len, PROT_READ, UMAP_PRIVATE, fd, (off_t)off);
	cr_assert_neq(b, UMAP_FAILED, "umap: %s", strerror(errno));
	/* UMap itself returns the file's first bytes here */
	cr_assert_eq(b[0], pb(11, off));
	struct umap_prefetch_item items[4];
	for (int i = 0; i < 4; i++)
		items[i].page_base_addr = b + (uint64_t)i * 16384 * 7;
	umap_prefetch(4, items);
	uint64_t x = 99;
	for (int i = 0; i < 5000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t o = x % len;
		cr_assert_eq(b[o], pb(11, off + o), "byte %llu", (unsigned long long)o);
	}
	umap_fetch_and_pin((char *)b + 100000, 50000);
	cr_assert_eq(b[120000], pb(11, off + 120000));
	cr_assert_eq(uunmap(b, len), 0);
	cr_assert_eq(uunmap(b, len), -1);
	cr_assert_eq(errno, EINVAL);
	/* errors are returned, not thrown */
	cr_assert_eq(umap(NULL, len, PROT_READ, UMAP_PRIVATE, fd, 100), UMAP_FAILED);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(umap(NULL, len, PROT_READ, UMAP_PRIVATE, -1, 0), UMAP_FAILED);
	close(fd);
	unlink(path);
}

Test(umap, write_flush_unmap, .init = env, .timeout = 60)
{
	char path[64];
	uint64_t size = 4 << 20;
	mkpat(path, sizeof(path), size, 12);
	int fd = open(path, O_RDWR);
	cr_assert(fd >= 0);
	uint64_t *a = umap(NULL, size, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, 0);
	cr_assert_neq(a, UMAP_FAILED, "umap: %s", strerror(errno));
	size_t n = size / 8;
	for (size_t i = 0; i < n; i++) /* as UMap's sort example initialises its array */
		a[i] = n - i;
	cr_assert_eq(umap_flush(), 0);
	uint64_t *got = malloc(size);
	pread_all(path, got, size, 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(got[i], n - i, "element %zu after umap_flush", i);
	for (size_t i = 0; i < n; i += 1000)
		a[i] = i;
	cr_assert_eq(uunmap(a, size), 0);
	pread_all(path, got, size, 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(got[i], i % 1000 ? n - i : i, "element %zu after uunmap", i);
	free(got);
	close(fd);
	unlink(path);
}
