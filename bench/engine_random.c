/*
 * engine_random: random page reads through the engine, side by side with
 * plain O_DIRECT pread of the same page sequence.
 *
 *   engine_random [--file PATH] [--size BYTES] [--buffer BYTES]
 *                 [--pages 4K,64K,1M,4M] [--threads 1,2] [--mib N] [--csv]
 *
 * Without --file a scratch file of --size bytes (default 512 MiB, twice the
 * default 256 MiB buffer) is created under /var/tmp and removed at the end.
 * For every page size and thread count both sides read the same random
 * page sequences A and B (passes of --mib MiB, default 256; at least 2000
 * pages for pages up to 64 KiB, at least twice the buffer from 256 KiB),
 * each thread its own slice, into its own aligned
 * buffer: raw with pread(O_DIRECT), the engine with umapfs_view_read on a
 * fresh engine whose buffer is smaller than the file.  The engine's "cold"
 * figure is pass A from an empty buffer (it pays for faulting in its frames,
 * which is slow on a VM); "warm" is pass B right after, buffer full.  Raw and
 * engine alternate in chunks of 1/16 pass so a noisy machine hits both
 * alike; two rounds with new sequences.  MB/s = bytes asked for / wall time.  The engine's advantage, where
 * it has one, comes from pages it still holds (hit%, of the warm pass).
 * peak_rss (CSV) is the process's peak resident bytes so far (getrusage):
 * the engine's buffer and bookkeeping (O_DIRECT reads leave no page cache).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "umapfs/engine.h"

struct cfg {
	const char *file;
	uint64_t size, buffer, mib;
	uint64_t pages[8];
	int npages;
	int threads[4];
	int nthreads;
	int csv;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct job {
	int raw;
	int fd;
	struct umapfs_view *v;
	uint64_t ps;
	const uint64_t *seq;
	size_t n;
	int err;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	void *buf;
	if (posix_memalign(&buf, 4096, j->ps)) {
		j->err = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < j->n; i++) {
		uint64_t off = j->seq[i] * j->ps;
		ssize_t r = j->raw ? pread(j->fd, buf, j->ps, (off_t)off)
				   : umapfs_view_read(j->v, buf, j->ps, off);
		if (r != (ssize_t)j->ps) {
			j->err = r < 0 ? (j->raw ? -errno : (int)r) : -EIO;
			break;
		}
	}
	free(buf);
	return NULL;
}

/* Run n jobs in threads; returns wall seconds or -1. */
static double run(struct job *jobs, int nt)
{
	pthread_t th[4];
	double t0 = now_s();
	for (int i = 0; i < nt; i++)
		pthread_create(&th[i], NULL, run_job, &jobs[i]);
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	double t = now_s() - t0;
	for (int i = 0; i < nt; i++)
		if (jobs[i].err) {
			fprintf(stderr, "engine_random: read failed: %s\n", strerror(-jobs[i].err));
			return -1;
		}
	return t;
}

static int parse_list(const char *s, uint64_t *out, int max, int sizes)
{
	char *dup = strdup(s), *save = NULL;
	int n = 0;
	for (char *t = strtok_r(dup, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		if (sizes ? umapfs_parse_size(t, &v) : (v = strtoull(t, NULL, 10), 0)) {
			free(dup);
			return -1;
		}
		out[n++] = v;
	}
	free(dup);
	return n;
}

static void log_hook(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level <= UMAPFS_LOG_WARNING)
		fprintf(stderr, "engine: %s\n", msg);
}

static int make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	size_t chunk = 4 << 20;
	unsigned char *b = malloc(chunk);
	uint64_t s = 88172645463325252ull;
	for (uint64_t off = 0; off < size; off += chunk) {
		for (size_t i = 0; i < chunk; i += 8) {
			uint64_t x = rng(&s);
			memcpy(b + i, &x, 8);
		}
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
		if (pwrite(fd, b, n, (off_t)off) != (ssize_t)n) {
			free(b);
			close(fd);
			return -EIO;
		}
	}
	free(b);
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* O_DIRECT reads bypass it anyway */
	close(fd);
	return 0;
}

static const char *human(uint64_t v, char *buf)
{
	if (v >= (1u << 20) && v % (1u << 20) == 0)
		sprintf(buf, "%" PRIu64 "M", v >> 20);
	else if (v >= 1024 && v % 1024 == 0)
		sprintf(buf, "%" PRIu64 "K", v >> 10);
	else
		sprintf(buf, "%" PRIu64, v);
	return buf;
}

/* Read seq[0..n) with nt threads, raw (fd) or through v; wall seconds or -1. */
static double run_slice(int fd, struct umapfs_view *v, uint64_t ps, const uint64_t *seq, size_t n,
			int nt)
{
	struct job jobs[4];
	for (int k = 0; k < nt; k++)
		jobs[k] = (struct job){ .raw = v == NULL, .fd = fd, .v = v, .ps = ps,
					.seq = seq + n * (size_t)k / (size_t)nt,
					.n = n * (size_t)(k + 1) / (size_t)nt - n * (size_t)k / (size_t)nt };
	return run(jobs, nt);
}

/* A fresh engine (FIFO, the configured buffer) and a view of the first npg pages. */
static int open_engine(const struct cfg *c, uint64_t npg, uint64_t ps, struct umapfs_engine **e,
		       struct umapfs_view **v)
{
	struct umapfs_engine_config ec;
	umapfs_engine_config_init(&ec);
	ec.page_size = ps;
	ec.buffer_size = c->buffer;
	ec.io_threads = 1;
	ec.log = log_hook;
	int r = umapfs_engine_create(&ec, e);
	if (r < 0) {
		fprintf(stderr, "engine_random: engine: %s\n", strerror(-r));
		return -1;
	}
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = c->file, .length = npg * ps };
	struct umapfs_view_desc vd;
	umapfs_view_desc_init(&vd);
	vd.name = "bench";
	vd.size = npg * ps;
	vd.extents = &x;
	vd.n_extents = 1;
	r = umapfs_view_create(*e, &vd, v);
	if (r < 0) {
		fprintf(stderr, "engine_random: view: %s\n", strerror(-r));
		umapfs_engine_destroy(*e);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cfg c = { .size = UINT64_C(512) << 20, .buffer = UINT64_C(256) << 20, .mib = 256 };
	uint64_t tl[4];
	char tmpl[] = "/var/tmp/umapfs-bench-XXXXXX", path[64] = "";
	int ret = 1;

	c.npages = parse_list("4K,64K,1M,4M", c.pages, 8, 1);
	c.nthreads = 2;
	c.threads[0] = 1;
	c.threads[1] = 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;
		if (!strcmp(a, "--csv")) {
			c.csv = 1;
			continue;
		}
		if (!val) {
			bad = 1;
		} else if (!strcmp(a, "--file")) {
			c.file = val;
		} else if (!strcmp(a, "--size")) {
			bad = umapfs_parse_size(val, &c.size) < 0;
		} else if (!strcmp(a, "--buffer")) {
			bad = umapfs_parse_size(val, &c.buffer) < 0;
		} else if (!strcmp(a, "--mib")) {
			bad = umapfs_parse_size(val, &c.mib) < 0 || !c.mib;
		} else if (!strcmp(a, "--pages")) {
			c.npages = parse_list(val, c.pages, 8, 1);
			bad = c.npages <= 0;
		} else if (!strcmp(a, "--threads")) {
			c.nthreads = parse_list(val, tl, 4, 0);
			bad = c.nthreads <= 0;
			for (int k = 0; k < c.nthreads && !bad; k++) {
				c.threads[k] = (int)tl[k];
				bad = tl[k] < 1 || tl[k] > 4;
			}
		} else {
			bad = 1;
		}
		if (bad) {
			fprintf(stderr,
				"usage: engine_random [--file PATH] [--size BYTES] [--buffer BYTES]\n"
				"       [--pages 4K,64K,1M,4M] [--threads 1,2] [--mib N] [--csv]\n"
				"bad or missing value for %s\n", a);
			return 2;
		}
		i++;
	}

	if (!c.file) {
		if (!mkdtemp(tmpl)) {
			perror("mkdtemp");
			return 1;
		}
		snprintf(path, sizeof(path), "%s/data", tmpl);
		int r = make_file(path, c.size);
		if (r < 0) {
			fprintf(stderr, "engine_random: cannot create %s: %s\n", path, strerror(-r));
			goto out;
		}
		c.file = path;
	}
	int fd = open(c.file, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "engine_random: open %s with O_DIRECT: %s\n", c.file, strerror(errno));
		goto out;
	}
	c.size = (uint64_t)lseek(fd, 0, SEEK_END);

	char h1[32], h2[32];
	if (c.csv)
		printf("page,threads,pages_per_pass,raw_mbps,engine_cold_mbps,engine_warm_mbps,"
		       "cold_ratio,warm_ratio,warm_hit_pct,peak_rss\n");
	else
		printf("engine_random: %s (%s), buffer %s, FIFO, O_DIRECT both sides\n"
		       "passes of %" PRIu64 " MiB: cold = engine from empty, warm = next pass, buffer full\n"
		       "%6s %3s %7s %9s %10s %10s %6s %6s %5s\n", c.file, human(c.size, h1),
		       human(c.buffer, h2), c.mib, "page", "thr", "pages", "raw MB/s", "cold MB/s",
		       "warm MB/s", "cold×", "warm×", "hit%");
	ret = 0;
	for (int pi = 0; pi < c.npages; pi++) {
		uint64_t ps = c.pages[pi];
		uint64_t npg = c.size / ps;
		if (npg < 2 || ps > c.buffer) {
			fprintf(stderr, "engine_random: page %s does not fit file/buffer, skipped\n",
				human(ps, h1));
			continue;
		}
		size_t n = (size_t)((c.mib << 20) / ps);
		if (n < 2000 && ps <= 65536)
			n = 2000;
		/* big pages: the cold pass must fill the buffer for the warm one to be warm */
		if (ps >= (256u << 10) && n < 2 * (c.buffer / ps))
			n = (size_t)(2 * (c.buffer / ps));
		if (n < 64)
			n = 64;
		uint64_t *seqa = malloc(n * sizeof(*seqa)), *seqb = malloc(n * sizeof(*seqb));
		for (int ti = 0; ti < c.nthreads && !ret; ti++) {
			int nt = c.threads[ti];
			double traw = 0, tcold = 0, twarm = 0;
			uint64_t hits = 0, lookups = 0;
			/*
			 * Two rounds with new page sequences A and B and a fresh engine.
			 * Raw and engine alternate chunk by chunk (1/16 of a pass, the
			 * side that goes first alternating too), so load from other
			 * processes and caches below the guest hit both sides alike.  The
			 * engine reads A from empty (cold), then B with its buffer full
			 * (warm); raw reads the same pages.
			 */
			for (int round = 0; round < 2 && !ret; round++) {
				uint64_t s = 0x9e3779b97f4a7c15ull ^ ps ^ ((uint64_t)(round + 1) << 40) ^
					     (uint64_t)nt << 32;
				for (size_t i = 0; i < n; i++)
					seqa[i] = rng(&s) % npg;
				for (size_t i = 0; i < n; i++)
					seqb[i] = rng(&s) % npg;
				struct umapfs_engine *e;
				struct umapfs_view *v;
				if (open_engine(&c, npg, ps, &e, &v) < 0) {
					ret = 1;
					break;
				}
				size_t chunk = n / 16 > 16 ? n / 16 : 16;
				for (int pass = 0; pass < 2 && !ret; pass++) {
					const uint64_t *seq = pass ? seqb : seqa;
					struct umapfs_stats s0, s1;
					umapfs_engine_stats(e, &s0);
					for (size_t at = 0, ci = 0; at < n && !ret; at += chunk, ci++) {
						size_t len = n - at < chunk ? n - at : chunk;
						for (int side = 0; side < 2; side++) {
							bool raw = (side == 0) == ((ci + (size_t)round) % 2 == 0);
							double t = run_slice(fd, raw ? NULL : v, ps, seq + at, len, nt);
							if (t < 0) {
								ret = 1;
								break;
							}
							if (raw)
								traw += t;
							else if (pass)
								twarm += t;
							else
								tcold += t;
						}
					}
					umapfs_engine_stats(e, &s1);
					if (pass) {
						hits += s1.hits - s0.hits;
						lookups += (s1.hits + s1.misses) - (s0.hits + s0.misses);
					}
				}
				umapfs_view_destroy(v);
				umapfs_engine_destroy(e);
			}
			if (ret)
				break;
			double mb = 2.0 * (double)n * (double)ps / 1e6; /* per side, per kind of pass */
			double raw = 2 * mb / traw, cold = mb / tcold, warm = mb / twarm;
			double hit = lookups ? 100.0 * (double)hits / (double)lookups : 0;
			struct rusage ru;
			getrusage(RUSAGE_SELF, &ru);
			if (c.csv)
				printf("%" PRIu64 ",%d,%zu,%.1f,%.1f,%.1f,%.3f,%.3f,%.1f,%lld\n", ps, nt, n, raw,
				       cold, warm, cold / raw, warm / raw, hit, (long long)ru.ru_maxrss * 1024);
			else
				printf("%6s %3d %7zu %9.1f %10.1f %10.1f %6.2f %6.2f %5.1f\n", human(ps, h1), nt,
				       n, raw, cold, warm, cold / raw, warm / raw, hit);
			fflush(stdout);
		}
		free(seqa);
		free(seqb);
	}
	close(fd);
out:
	if (path[0]) {
		unlink(path);
		rmdir(tmpl);
	}
	return ret;
}
