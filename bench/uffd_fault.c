/*
 * uffd_fault: the in-process userfaultfd mapping (umapfs_map_*) against
 * kernel mmap of the same file.
 *
 * 1. Per-fault cost: time to make one application page accessible (one
 *    umapfs fault; for kernel mmap with MADV_RANDOM, the faults on each
 *    4 KiB of the page), pages touched in random order, for 4 KiB and 64 KiB
 *    pages, with the backing bytes
 *      resident: already in the engine's buffer (umapfs only: pure fault
 *                handling, pin + UFFDIO_COPY),
 *      cached:   in memory (a tmpfs copy of the file, /dev/shm or -m; the engine
 *                reads it with O_DIRECT, the kernel maps its page cache),
 *      cold:     on disk, the file's cached pages dropped first.
 * 2. Throughput of a random-page workload: threads read 4 KiB at random
 *    offsets of a cold file larger than the buffer, for page sizes 4 KiB to
 *    4 MiB, against kernel mmap (MADV_RANDOM) of the same cold file.
 *
 * Output: a readable table with ratios, or CSV with -c.  Never asserts times.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "umapfs/map.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)

static int csv;
static const char *dir = "/var/tmp";
static const char *shmdir = "/dev/shm"; /* the in-memory copy: must be a tmpfs */
static uint64_t fault_size = 64 * MiB, tp_size = 256 * MiB, tp_buffer = 64 * MiB;
static double tp_seconds = 1.0;
static unsigned nthreads = 2;
static int global_drop;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "uffd_fault: %s: %s\n", what, strerror(err));
	exit(1);
}

static void make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die(path, errno);
	char *buf = malloc(MiB);
	for (uint64_t off = 0; off < size; off += MiB) {
		for (size_t i = 0; i < MiB; i += 8)
			*(uint64_t *)(buf + i) = (off + i) * UINT64_C(0x9e3779b97f4a7c15);
		if (pwrite(fd, buf, MiB, (off_t)off) != (ssize_t)MiB)
			die(path, errno);
	}
	free(buf);
	fsync(fd);
	close(fd);
}

/* Drop the file's cached pages (or all caches with -D). */
static void drop(const char *path)
{
	if (global_drop) {
		sync();
		FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
		if (f) {
			fputs("3\n", f);
			fclose(f);
			return;
		}
	}
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path, errno);
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

static void warm(const char *path)
{
	int fd = open(path, O_RDONLY);
	char *buf = malloc(MiB);
	while (read(fd, buf, MiB) > 0)
		;
	free(buf);
	close(fd);
}

static uint64_t *perm(uint64_t n, uint64_t seed)
{
	uint64_t *p = malloc(n * sizeof(*p));
	for (uint64_t i = 0; i < n; i++)
		p[i] = i;
	uint64_t x = seed | 1;
	for (uint64_t i = n - 1; i > 0; i--) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t j = x % (i + 1), t = p[i];
		p[i] = p[j];
		p[j] = t;
	}
	return p;
}

static volatile uint64_t sink;

/* Touch one byte of each page in random order; returns µs per page. */
static double touch_pages(const unsigned char *b, uint64_t size, uint64_t page, uint64_t step)
{
	uint64_t n = size / page, s = 0;
	uint64_t *p = perm(n, 42);
	double t0 = now();
	for (uint64_t i = 0; i < n; i++)
		for (uint64_t o = 0; o < page; o += step)
			s += b[p[i] * page + o];
	double t = now() - t0;
	sink += s;
	free(p);
	return t * 1e6 / (double)n;
}

static double kernel_fault(const char *path, uint64_t size, uint64_t page)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path, errno);
	unsigned char *b = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (b == MAP_FAILED)
		die("mmap", errno);
	madvise(b, size, MADV_RANDOM);
	double us = touch_pages(b, size, page, 4096);
	munmap(b, size);
	close(fd);
	return us;
}

static struct umapfs_engine *mk_engine(uint64_t page, uint64_t buffer)
{
	struct umapfs_engine_config ec;
	umapfs_engine_config_init(&ec);
	ec.page_size = page;
	ec.buffer_size = buffer;
	struct umapfs_engine *e;
	int r = umapfs_engine_create(&ec, &e);
	if (r < 0)
		die("umapfs_engine_create", -r);
	return e;
}

/* umapfs per-fault µs: first pass (fills from `path`), second pass resident. */
static void umap_fault(const char *path, uint64_t size, uint64_t page, double *fill_us,
		       double *resident_us)
{
	struct umapfs_engine *e = mk_engine(page, size + page);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = path, .length = size };
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.size = size;
	d.page_size = page;
	d.extents = &x;
	d.n_extents = 1;
	struct umapfs_view *v;
	int r = umapfs_view_create(e, &d, &v);
	if (r < 0)
		die("umapfs_view_create", -r);
	struct umapfs_map_config c;
	umapfs_map_config_init(&c);
	c.fault_threads = nthreads;
	for (int pass = 0; pass < 2; pass++) {
		struct umapfs_map *m;
		r = umapfs_map_view(v, &c, &m);
		if (r < 0)
			die("umapfs_map_view", -r);
		double us = touch_pages(umapfs_map_addr(m), size, page, page);
		*(pass ? resident_us : fill_us) = us;
		umapfs_map_unmap(m);
	}
	umapfs_view_destroy(v);
	umapfs_engine_destroy(e);
}

static void row(const char *section, uint64_t page, const char *backing, double u, double k,
		const char *unit)
{
	double ratio = strcmp(unit, "us/page") == 0 ? k / u : u / k; /* > 1: umapfs faster */
	if (csv) {
		if (k > 0)
			printf("%s,%llu,%s,%.3f,%.3f,%s,%.3f\n", section, (unsigned long long)page, backing,
			       u, k, unit, ratio);
		else
			printf("%s,%llu,%s,%.3f,,%s,\n", section, (unsigned long long)page, backing, u, unit);
	} else if (k > 0) {
		printf("%-7s %5llu KiB  %-8s umapfs %10.2f  mmap %10.2f %-8s  umapfs speed-up %.2fx\n",
		       section, (unsigned long long)(page >> 10), backing, u, k, unit, ratio);
	} else {
		printf("%-7s %5llu KiB  %-8s umapfs %10.2f  %-8s\n", section,
		       (unsigned long long)(page >> 10), backing, u, unit);
	}
	fflush(stdout);
}

/* ---- throughput ---- */

struct tp_arg {
	const unsigned char *b;
	uint64_t size;
	unsigned id;
	double until;
	uint64_t ops;
};

static void *tp_thread(void *p)
{
	struct tp_arg *a = p;
	uint64_t x = 0x9e3779b97f4a7c15ull * (a->id + 1), s = 0, ops = 0;
	while (now() < a->until) {
		for (int k = 0; k < 16; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			const uint64_t *q = (const uint64_t *)(a->b + (x % (a->size / 4096)) * 4096);
			for (int i = 0; i < 512; i++)
				s += q[i];
			ops++;
		}
	}
	sink += s;
	a->ops = ops;
	return NULL;
}

static double run_tp(const unsigned char *b, uint64_t size)
{
	struct tp_arg a[16];
	pthread_t t[16];
	double t0 = now();
	for (unsigned i = 0; i < nthreads; i++) {
		a[i] = (struct tp_arg){ b, size, i, t0 + tp_seconds, 0 };
		pthread_create(&t[i], NULL, tp_thread, &a[i]);
	}
	uint64_t ops = 0;
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		ops += a[i].ops;
	}
	return (double)ops / (now() - t0);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: uffd_fault [-c] [-d dir] [-m tmpfs_dir] [-s fault_MiB] [-S tp_MiB] [-b tp_buffer_MiB]\n"
		"                  [-t secs] [-j threads] [-D] [-F|-T]\n"
		"  -d directory of the files on disk (default /var/tmp), -m of the in-memory copy\n"
		"     (a tmpfs, default /dev/shm)\n"
		"  -c CSV (section,page_size,backing,umapfs,kernel_mmap,unit,ratio; ratio = mmap/umapfs\n"
		"     time for us/page, umapfs/mmap rate for ops/s: > 1 means umapfs is faster)\n"
		"  -D drop all caches (echo 3 > drop_caches) instead of only the file's pages\n"
		"  -F only per-fault costs, -T only throughput\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt, only = 0;
	while ((opt = getopt(argc, argv, "cd:m:s:S:b:t:j:DFTh")) != -1) {
		switch (opt) {
		case 'c': csv = 1; break;
		case 'd': dir = optarg; break;
		case 'm': shmdir = optarg; break;
		case 's': fault_size = strtoull(optarg, NULL, 0) * MiB; break;
		case 'S': tp_size = strtoull(optarg, NULL, 0) * MiB; break;
		case 'b': tp_buffer = strtoull(optarg, NULL, 0) * MiB; break;
		case 't': tp_seconds = atof(optarg); break;
		case 'j': nthreads = (unsigned)atoi(optarg); break;
		case 'D': global_drop = 1; break;
		case 'F': only = 'F'; break;
		case 'T': only = 'T'; break;
		default: usage();
		}
	}
	if (!nthreads || nthreads > 16 || !fault_size || tp_size < 8 * MiB || !tp_buffer)
		usage();
	char disk[512], shm[512];
	snprintf(disk, sizeof(disk), "%s/uffd_fault-%d.dat", dir, (int)getpid());
	snprintf(shm, sizeof(shm), "%s/uffd_fault-%d.dat", shmdir, (int)getpid());
	if (csv)
		printf("section,page_size,backing,umapfs,kernel_mmap,unit,ratio\n");

	if (only != 'T') {
		make_file(disk, fault_size);
		make_file(shm, fault_size);
		for (uint64_t page = 4 * KiB; page <= 64 * KiB; page *= 16) {
			double fill, res, k;
			umap_fault(shm, fault_size, page, &fill, &res);
			row("fault", page, "resident", res, 0, "us/page");
			warm(shm);
			k = kernel_fault(shm, fault_size, page);
			row("fault", page, "cached", fill, k, "us/page");
			drop(disk);
			umap_fault(disk, fault_size, page, &fill, &res);
			drop(disk);
			k = kernel_fault(disk, fault_size, page);
			row("fault", page, "cold", fill, k, "us/page");
		}
		unlink(shm);
		unlink(disk);
	}
	if (only != 'F') {
		make_file(disk, tp_size);
		drop(disk);
		int fd = open(disk, O_RDONLY);
		unsigned char *kb = mmap(NULL, tp_size, PROT_READ, MAP_SHARED, fd, 0);
		madvise(kb, tp_size, MADV_RANDOM);
		double kops = run_tp(kb, tp_size);
		munmap(kb, tp_size);
		close(fd);
		for (uint64_t page = 4 * KiB; page <= 4 * MiB; page *= 4) {
			drop(disk);
			struct umapfs_map_config c;
			umapfs_map_config_init(&c);
			c.page_size = page;
			c.buffer_size = tp_buffer;
			c.fault_threads = nthreads;
			struct umapfs_map *m;
			int r = umapfs_map_file(disk, 0, 0, &c, &m);
			if (r < 0)
				die("umapfs_map_file", -r);
			double uops = run_tp(umapfs_map_addr(m), tp_size);
			umapfs_map_unmap(m);
			row("random", page, "cold", uops, kops, "ops/s");
		}
		unlink(disk);
	}
	return 0;
}
