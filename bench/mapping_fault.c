/*
 * mapping_fault: the cost of a page fault served by an umapfs mapping
 * (userfaultfd, include/umapfs/mapping.h) next to a kernel mmap fault of the
 * same file, and random-page throughput at page sizes 4 KiB .. 4 MiB.
 *
 *   mapping_fault [--file PATH] [--size MiB] [--faults N] [--seconds S] [--csv]
 *
 * Per-fault: N distinct random pages touched once each (one byte), µs per
 * touch; "cold" drops the page cache first (needs root: drop_caches),
 * "cache" has the file in the page cache (the engine reads with O_DIRECT,
 * so its "cache" faults still read the disk), "engine" has the page
 * resident in the engine but not mapped (pure fault service: uffd event,
 * pin, UFFDIO_COPY).  Throughput: random 4 KiB-aligned touches over the
 * whole file for S seconds from a cold cache; umapfs buffer = file/4, the
 * kernel's page cache unbounded.  Never asserts times.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "umapfs/mapping.h"

static int csv;
static const char *path = "/var/tmp/mapping-bench.dat";
static uint64_t fsize = 256ull << 20;
static unsigned nfaults = 2000;
static double seconds = 1.5;
static volatile unsigned sink;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int drop_cache(void)
{
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	int d = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (d < 0)
		return -errno;
	int ok = write(d, "3\n", 2) == 2;
	close(d);
	return ok ? 0 : -EIO;
}

static void warm_cache(void)
{
	int fd = open(path, O_RDONLY);
	char *b = malloc(1 << 20);
	while (read(fd, b, 1 << 20) > 0)
		;
	free(b);
	close(fd);
}

static void make_file(void)
{
	struct stat sb;
	if (stat(path, &sb) == 0 && (uint64_t)sb.st_size == fsize)
		return;
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0) {
		fprintf(stderr, "mapping_fault: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	uint64_t s = 88172645463325252ull, *b = malloc(1 << 20);
	for (uint64_t off = 0; off < fsize; off += 1 << 20) {
		for (size_t i = 0; i < (1 << 20) / 8; i++)
			b[i] = rng(&s);
		if (write(fd, b, 1 << 20) != 1 << 20) {
			fprintf(stderr, "mapping_fault: write %s: %s\n", path, strerror(errno));
			exit(1);
		}
	}
	free(b);
	fsync(fd);
	close(fd);
}

/* n distinct random page indexes out of npages (a shuffled prefix). */
static uint64_t *pick(uint64_t npages, unsigned n, uint64_t seed)
{
	uint64_t *all = malloc(npages * sizeof(*all)), s = seed;
	for (uint64_t i = 0; i < npages; i++)
		all[i] = i;
	for (uint64_t i = 0; i < n && i < npages; i++) {
		uint64_t j = i + rng(&s) % (npages - i), t = all[i];
		all[i] = all[j];
		all[j] = t;
	}
	return all;
}

static double touch_us(const unsigned char *b, uint64_t ps, const uint64_t *idx, unsigned n)
{
	unsigned x = 0;
	double t0 = now();
	for (unsigned i = 0; i < n; i++)
		x += b[idx[i] * ps + (i * 64) % ps];
	double t = now() - t0;
	sink += x;
	return t * 1e6 / n;
}

static struct umapfs_mapping *map_umapfs(uint64_t ps, uint64_t buf)
{
	struct umapfs_engine_config c;
	umapfs_engine_config_init(&c);
	c.page_size = ps;
	c.buffer_size = buf;
	struct umapfs_mapping *m;
	int r = umapfs_mapping_map_file(path, 0, 0, NULL, 0, &c, &m);
	if (r < 0) {
		fprintf(stderr, "mapping_fault: map %s: %s\n", path, strerror(-r));
		exit(1);
	}
	return m;
}

static unsigned char *map_kernel(int *fd)
{
	*fd = open(path, O_RDONLY);
	unsigned char *b = mmap(NULL, fsize, PROT_READ, MAP_SHARED, *fd, 0);
	if (b == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	madvise(b, fsize, MADV_RANDOM);
	return b;
}

static void row(const char *kind, const char *what, uint64_t ps, const char *cache, double v,
		const char *unit)
{
	if (csv)
		printf("%s,%s,%llu,%s,%.3f,%s\n", kind, what, (unsigned long long)ps, cache, v, unit);
	else
		printf("%-10s %-7s %8lluK %-7s %12.2f %s\n", kind, what, (unsigned long long)(ps >> 10), cache,
		       v, unit);
	fflush(stdout);
}

static void per_fault(uint64_t ps, int can_drop)
{
	uint64_t npages = fsize / ps;
	unsigned n = nfaults < npages ? nfaults : (unsigned)npages;
	uint64_t *idx = pick(npages, n, ps * 7 + 1);
	for (int cold = can_drop ? 1 : 0; cold >= 0; cold--) {
		const char *cache = cold ? "cold" : "cache";
		/* umapfs; buffer holds every touched page: no eviction in the measurement */
		if (cold)
			drop_cache();
		else
			warm_cache();
		struct umapfs_mapping *m = map_umapfs(ps, (uint64_t)n * ps + ps);
		unsigned char *b = umapfs_mapping_addr(m);
		row("fault", "umapfs", ps, cache, touch_us(b, ps, idx, n), "us/fault");
		if (!cold) {
			madvise(b, fsize, MADV_DONTNEED); /* engine keeps the pages */
			row("fault", "umapfs", ps, "engine", touch_us(b, ps, idx, n), "us/fault");
		}
		umapfs_mapping_unmap(m);
		int fd;
		if (cold)
			drop_cache();
		else
			warm_cache();
		b = map_kernel(&fd);
		row("fault", "mmap", ps, cache, touch_us(b, ps, idx, n), "us/fault");
		munmap(b, fsize);
		close(fd);
	}
	free(idx);
}

static double random_touches(const unsigned char *b)
{
	uint64_t s = 12345, n = 0, x = 0;
	double t0 = now(), t;
	do {
		for (int i = 0; i < 64; i++, n++)
			x += b[(rng(&s) % (fsize / 4096)) * 4096];
		t = now() - t0;
	} while (t < seconds);
	sink += (unsigned)x;
	return (double)n / t;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--csv"))
			csv = 1;
		else if (!strcmp(argv[i], "--file") && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			fsize = strtoull(argv[++i], NULL, 0) << 20;
		else if (!strcmp(argv[i], "--faults") && i + 1 < argc)
			nfaults = (unsigned)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else {
			fprintf(stderr, "usage: mapping_fault [--file PATH] [--size MiB] [--faults N] "
					"[--seconds S] [--csv]\n");
			return 2;
		}
	}
	if (fsize < (8ull << 20)) {
		fprintf(stderr, "mapping_fault: --size must be at least 8 (MiB)\n");
		return 2;
	}
	make_file();
	int can_drop = drop_cache() == 0;
	if (!can_drop)
		fprintf(stderr, "mapping_fault: cannot drop caches (not root?): cold runs skipped\n");
	if (csv)
		printf("kind,system,page_size,cache,value,unit\n");
	per_fault(4096, can_drop);
	per_fault(65536, can_drop);
	for (uint64_t ps = 4096; ps <= (4u << 20); ps *= 4) {
		const char *cache = can_drop ? "cold" : "cache";
		drop_cache();
		struct umapfs_mapping *m = map_umapfs(ps, fsize / 4);
		row("random", "umapfs", ps, cache, random_touches(umapfs_mapping_addr(m)), "touches/s");
		umapfs_mapping_unmap(m);
	}
	int fd;
	drop_cache();
	unsigned char *b = map_kernel(&fd);
	row("random", "mmap", 4096, can_drop ? "cold" : "cache", random_touches(b), "touches/s");
	munmap(b, fsize);
	close(fd);
	return 0;
}
