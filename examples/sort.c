/*
 * umapfs-sort: sort a file of 64-bit unsigned integers (host byte order) in
 * place, through a shared writable mapping of the file.  This is the
 * out-of-core sort of UMap's application suite, written so that it works on
 * any file: a plain file (kernel mmap) or a view of a writable umapfs mount,
 * where the mount's buffer is the memory bound.
 *
 *   umapfs-sort [--threads N] [--mem SIZE] FILE      sort FILE in place
 *   umapfs-sort --generate N --seed S [--dist D] FILE
 *                                         write N keys (D: uniform, dups,
 *                                         narrow, sorted, reverse)
 *   umapfs-sort --verify [--seed S [--dist D]] [--expect HEX] FILE
 *                                         check FILE is sorted and (with
 *                                         --seed/--expect) a permutation of
 *                                         the generated input
 *
 * The algorithm is an in-place MSD radix sort (American flag sort), chosen
 * because every pass over a range it does not fit in memory is a
 * permutation that touches only one page per bucket at a time:
 *
 *  1. Out-of-core phase (one thread moves, all threads count): a range larger
 *     than a "leaf" (mem / 2 / threads bytes) is partitioned in place on its
 *     next digit.  The digit has at most log2(mem / (2 * unit)) bits, so the
 *     bucket heads being written (one page of `unit` bytes each) fit in half
 *     the memory bound.  Sub-ranges still larger than a leaf are partitioned
 *     again; a range whose keys all share the digit costs a counting pass
 *     and no moves.
 *  2. In-memory phase: the leaves, now in file order and each smaller than
 *     its share of the memory bound, are sorted in place by worker threads
 *     walking the file forward (8-bit digits, insertion sort below 48 keys).
 *
 * No second file and no copy of the data: every move is a swap inside the
 * mapping.  At the end msync(MS_SYNC) makes the result durable; its failure
 * is reported.  The first counting pass also computes an order-independent
 * checksum of the input (count, two sums and an xor of mixed hashes), printed
 * so a later --verify --expect can check the output is a permutation.
 *
 * The memory bound (--mem) defaults to the mount's buffer_size when FILE is
 * in a umapfs mount (read from .umapfs/stats next to it; the page unit is
 * then the mount's page size), else to a quarter of physical memory with a
 * 128 KiB unit (the kernel's readahead window).
 *
 * Output: one line of key=value pairs on stdout (keys, seconds, phases,
 * checksum).  Exit status: 0 done/verified, 1 failure (sort order or
 * checksum wrong, I/O error, msync failure), 2 bad command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "umapfs-sort";
static const char *g_file = "";

#define SMALL_SORT 48
#define MAX_THREADS 64

/* ---- small helpers ----------------------------------------------------- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Parse a size with an optional K/M/G/T suffix (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	unsigned sh = 0;
	switch (*end) {
	case 'k': case 'K': sh = 10; end++; break;
	case 'm': case 'M': sh = 20; end++; break;
	case 'g': case 'G': sh = 30; end++; break;
	case 't': case 'T': sh = 40; end++; break;
	default: break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B' && sh)
		end++;
	if (*end || (sh && v > (UINT64_MAX >> sh)))
		return -1;
	*out = (uint64_t)v << sh;
	return 0;
}

/*
 * An order-independent checksum of a multiset of keys: equal for every
 * permutation, different (with overwhelming probability) for any other
 * multiset of the same size.
 */
struct csum {
	uint64_t n, s1, s2, x;
};

static inline void csum_add(struct csum *c, uint64_t v)
{
	uint64_t h = mix64(v);
	c->n++;
	c->s1 += h;
	c->s2 += mix64(h ^ 0x5bd1e9955bd1e995ULL);
	c->x ^= mix64(v ^ 0xc2b2ae3d27d4eb4fULL) * 0x9ddfea08eb382d69ULL;
}

static void csum_merge(struct csum *a, const struct csum *b)
{
	a->n += b->n;
	a->s1 += b->s1;
	a->s2 += b->s2;
	a->x ^= b->x;
}

static void csum_hex(const struct csum *c, char out[80])
{
	snprintf(out, 80, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, c->s1, c->s2, c->x);
}

/* ---- key generation ---------------------------------------------------- */

enum dist { DIST_UNIFORM, DIST_DUPS, DIST_NARROW, DIST_SORTED, DIST_REVERSE };

static int parse_dist(const char *s)
{
	static const char *const names[] = { "uniform", "dups", "narrow", "sorted", "reverse" };
	for (int i = 0; i < 5; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* Key i of the stream (seed, dist) of n keys: a pure function, so verify can recompute it. */
static inline uint64_t gen_key(uint64_t seed, int dist, uint64_t i, uint64_t n)
{
	uint64_t r = mix64(seed * 0x100000001b3ULL ^ mix64(i));
	switch (dist) {
	case DIST_DUPS:
		return r % 13; /* many equal keys: digits that do not split */
	case DIST_NARROW:
		return r >> 40; /* 24 significant bits: the top digits are all zero */
	case DIST_SORTED:
		return i * 3;
	case DIST_REVERSE:
		return (n - i) * 3;
	default:
		return r;
	}
}

static int do_generate(const char *path, uint64_t n, uint64_t seed, int dist)
{
	int fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != n * 8) {
		/* a fixed-size view refuses this: then N must match its size */
		if (ftruncate(fd, (off_t)(n * 8)) < 0) {
			fprintf(stderr, "%s: %s: cannot size it to %" PRIu64 " keys: %s (a fixed-size "
				"view needs N = its size / 8)\n", prog, path, n, strerror(errno));
			close(fd);
			return 1;
		}
	}
	size_t chunk = 1 << 17; /* keys per write: 1 MiB */
	uint64_t *buf = malloc(chunk * 8);
	if (!buf) {
		fprintf(stderr, "%s: out of memory\n", prog);
		close(fd);
		return 1;
	}
	struct csum c = { 0 };
	int status = 0;
	for (uint64_t i = 0; i < n; i += chunk) {
		size_t k = n - i < chunk ? (size_t)(n - i) : chunk;
		for (size_t j = 0; j < k; j++) {
			buf[j] = gen_key(seed, dist, i + j, n);
			csum_add(&c, buf[j]);
		}
		size_t done = 0;
		while (done < k * 8) {
			ssize_t w = pwrite(fd, (char *)buf + done, k * 8 - done, (off_t)(i * 8 + done));
			if (w <= 0) {
				fprintf(stderr, "%s: %s: write at %" PRIu64 ": %s\n", prog, path, i * 8 + done,
					w < 0 ? strerror(errno) : "no progress");
				status = 1;
				goto out;
			}
			done += (size_t)w;
		}
	}
	if (fsync(fd) < 0) {
		fprintf(stderr, "%s: %s: fsync: %s\n", prog, path, strerror(errno));
		status = 1;
	}
out:
	free(buf);
	if (close(fd) < 0 && !status) {
		fprintf(stderr, "%s: %s: close: %s\n", prog, path, strerror(errno));
		status = 1;
	}
	if (!status) {
		char hex[80];
		csum_hex(&c, hex);
		printf("generated=%" PRIu64 " bytes=%" PRIu64 " checksum=%s\n", n, n * 8, hex);
	}
	return status;
}

/* ---- verify ------------------------------------------------------------ */

static int do_verify(const char *path, int have_seed, uint64_t seed, int dist, const char *expect)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size % 8) {
		fprintf(stderr, "%s: %s: size %lld is not a multiple of 8 bytes\n", prog, path,
			(long long)st.st_size);
		close(fd);
		return 1;
	}
	uint64_t n = (uint64_t)st.st_size / 8;
	size_t chunk = 1 << 17;
	uint64_t *buf = malloc(chunk * 8);
	if (!buf) {
		close(fd);
		return 1;
	}
	struct csum c = { 0 }, g = { 0 };
	uint64_t prev = 0, bad = UINT64_MAX;
	int status = 0;
	for (uint64_t i = 0; i < n; i += chunk) {
		size_t k = n - i < chunk ? (size_t)(n - i) : chunk;
		size_t got = 0;
		while (got < k * 8) {
			ssize_t r = pread(fd, (char *)buf + got, k * 8 - got, (off_t)(i * 8 + got));
			if (r <= 0) {
				fprintf(stderr, "%s: %s: read at %" PRIu64 ": %s\n", prog, path, i * 8 + got,
					r < 0 ? strerror(errno) : "unexpected end of file");
				status = 1;
				goto out;
			}
			got += (size_t)r;
		}
		for (size_t j = 0; j < k; j++) {
			if (buf[j] < prev && bad == UINT64_MAX)
				bad = i + j;
			prev = buf[j];
			csum_add(&c, buf[j]);
			if (have_seed)
				csum_add(&g, gen_key(seed, dist, i + j, n));
		}
	}
	char hex[80], ghex[80];
	csum_hex(&c, hex);
	if (bad != UINT64_MAX) {
		fprintf(stderr, "%s: %s: not sorted: key %" PRIu64 " is smaller than key %" PRIu64 "\n",
			prog, path, bad, bad - 1);
		status = 1;
	}
	if (have_seed) {
		csum_hex(&g, ghex);
		if (strcmp(hex, ghex) != 0) {
			fprintf(stderr, "%s: %s: not a permutation of the generated keys (checksum %s, "
				"expected %s)\n", prog, path, hex, ghex);
			status = 1;
		}
	}
	if (expect && strcmp(hex, expect) != 0) {
		fprintf(stderr, "%s: %s: not a permutation of the input (checksum %s, expected %s)\n",
			prog, path, hex, expect);
		status = 1;
	}
	printf("verified=%s keys=%" PRIu64 " sorted=%s checksum=%s\n", status ? "no" : "yes", n,
	       bad == UINT64_MAX ? "yes" : "no", hex);
out:
	free(buf);
	close(fd);
	return status;
}

/* ---- the sort ---------------------------------------------------------- */

static inline unsigned digit(uint64_t v, unsigned shift, unsigned bits)
{
	return (unsigned)((v >> shift) & ((UINT64_C(1) << bits) - 1));
}

static void insertion_sort(uint64_t *a, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		uint64_t v = a[i];
		size_t j = i;
		while (j > 0 && a[j - 1] > v) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = v;
	}
}

/*
 * Permute a[0..n) in place so that keys are grouped by digit, given the
 * digit counts.  Each bucket's head moves forward only: at any moment the
 * writes touch one position per bucket (the American flag sort cycle).
 */
static void permute(uint64_t *a, const size_t *count, unsigned nb, unsigned shift, unsigned bits)
{
	size_t head[256], tail[256];
	size_t pos = 0;
	for (unsigned b = 0; b < nb; b++) {
		head[b] = pos;
		pos += count[b];
		tail[b] = pos;
	}
	for (unsigned b = 0; b < nb; b++) {
		while (head[b] < tail[b]) {
			uint64_t v = a[head[b]];
			unsigned d = digit(v, shift, bits);
			while (d != b) {
				uint64_t t = a[head[d]];
				a[head[d]++] = v;
				v = t;
				d = digit(v, shift, bits);
			}
			a[head[b]++] = v;
		}
	}
}

/* In-memory MSD radix sort of a[0..n) on the bits below `top` (keys agree above). */
static void radix_sort(uint64_t *a, size_t n, unsigned top)
{
	while (n > SMALL_SORT && top > 0) {
		unsigned bits = top < 8 ? top : 8;
		unsigned shift = top - bits;
		unsigned nb = 1u << bits;
		size_t count[256] = { 0 };
		for (size_t i = 0; i < n; i++)
			count[digit(a[i], shift, bits)]++;
		unsigned nonempty = 0;
		for (unsigned b = 0; b < nb; b++)
			nonempty += count[b] != 0;
		if (nonempty > 1)
			permute(a, count, nb, shift, bits);
		top = shift;
		if (nonempty == 1)
			continue; /* every key shares the digit: next digit, no moves */
		/* recurse on all buckets but the largest; loop on the largest */
		unsigned big = 0;
		for (unsigned b = 1; b < nb; b++)
			if (count[b] > count[big])
				big = b;
		size_t start = 0, bigstart = 0;
		for (unsigned b = 0; b < nb; b++) {
			if (b == big)
				bigstart = start;
			else if (count[b] > 1)
				radix_sort(a + start, count[b], top);
			start += count[b];
		}
		a += bigstart;
		n = count[big];
	}
	if (top > 0) /* else every key is equal */
		insertion_sort(a, n);
}

/* A range still to be sorted: keys agree on every bit at and above `top`. */
struct range {
	size_t start, n;
	unsigned top;
};

struct rangelist {
	struct range *r;
	size_t n, cap;
};

static int rl_push(struct rangelist *l, size_t start, size_t n, unsigned top)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct range *r = realloc(l->r, cap * sizeof(*r));
		if (!r)
			return -1;
		l->r = r;
		l->cap = cap;
	}
	l->r[l->n++] = (struct range){ start, n, top };
	return 0;
}

struct sorter {
	uint64_t *a;
	size_t n;
	unsigned threads;
	uint64_t mem, unit, leaf_keys;
	unsigned obits; /* digit bits of an out-of-core partition */
	/* counting pass */
	unsigned shift, bits;
	int want_csum;
	/* in-memory phase */
	struct rangelist leaves;
	atomic_size_t next_leaf;
};

struct count_job {
	struct sorter *s;
	size_t from, to;
	size_t count[256];
	struct csum c;
};

static void *count_main(void *arg)
{
	struct count_job *j = arg;
	const uint64_t *a = j->s->a;
	unsigned shift = j->s->shift, bits = j->s->bits;
	memset(j->count, 0, sizeof(j->count));
	if (j->s->want_csum) {
		for (size_t i = j->from; i < j->to; i++) {
			uint64_t v = a[i];
			j->count[digit(v, shift, bits)]++;
			csum_add(&j->c, v);
		}
	} else {
		for (size_t i = j->from; i < j->to; i++)
			j->count[digit(a[i], shift, bits)]++;
	}
	return NULL;
}

/* Count digits of a[start..start+n) with every thread; optionally checksum. */
static void count_parallel(struct sorter *s, size_t start, size_t n, size_t *count, struct csum *c)
{
	struct count_job jobs[MAX_THREADS];
	pthread_t tids[MAX_THREADS];
	unsigned t = s->threads;
	if (n < (1u << 16))
		t = 1;
	size_t per = n / t;
	int started[MAX_THREADS] = { 0 };
	for (unsigned i = 0; i < t; i++) {
		jobs[i].s = s;
		jobs[i].from = start + per * i;
		jobs[i].to = i + 1 == t ? start + n : start + per * (i + 1);
		memset(&jobs[i].c, 0, sizeof(jobs[i].c));
		if (i > 0)
			started[i] = pthread_create(&tids[i], NULL, count_main, &jobs[i]) == 0;
	}
	for (unsigned i = 0; i < t; i++)
		if (!started[i])
			count_main(&jobs[i]); /* thread 0, and any that could not start */
	memset(count, 0, 256 * sizeof(*count));
	for (unsigned i = 0; i < t; i++) {
		if (started[i])
			pthread_join(tids[i], NULL);
		for (unsigned b = 0; b < 256; b++)
			count[b] += jobs[i].count[b];
		if (c)
			csum_merge(c, &jobs[i].c);
	}
}

static void *leaf_main(void *arg)
{
	struct sorter *s = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&s->next_leaf, 1);
		if (i >= s->leaves.n)
			return NULL;
		struct range *r = &s->leaves.r[i];
		radix_sort(s->a + r->start, r->n, r->top);
	}
}

/*
 * Phase 1: partition every range larger than a leaf, out of core, until
 * only leaves remain (collected in file order).  Returns 0 or -1 (ENOMEM).
 */
static int partition_phase(struct sorter *s, struct csum *input)
{
	struct rangelist todo = { 0 };
	if (rl_push(&todo, 0, s->n, 64) < 0)
		return -1;
	int first = 1;
	while (todo.n) {
		struct range r = todo.r[--todo.n];
		if (r.n <= s->leaf_keys || r.top == 0) {
			if (r.n > 1 && r.top > 0 && rl_push(&s->leaves, r.start, r.n, r.top) < 0)
				goto oom;
			continue;
		}
		unsigned bits = r.top < s->obits ? r.top : s->obits;
		s->shift = r.top - bits;
		s->bits = bits;
		s->want_csum = first;
		size_t count[256];
		count_parallel(s, r.start, r.n, count, first ? input : NULL);
		first = 0;
		unsigned nb = 1u << bits, nonempty = 0;
		for (unsigned b = 0; b < nb; b++)
			nonempty += count[b] != 0;
		if (nonempty > 1)
			permute(s->a + r.start, count, nb, s->shift, bits);
		/* push in reverse so the stack pops buckets in file order */
		size_t end = r.start + r.n;
		for (unsigned b = nb; b-- > 0;) {
			end -= count[b];
			if (count[b] > 1 && rl_push(&todo, end, count[b], s->shift) < 0)
				goto oom;
		}
	}
	free(todo.r);
	return 0;
oom:
	free(todo.r);
	return -1;
}

static void on_sigbus(int sig)
{
	(void)sig;
	static const char a[] = ": SIGBUS: a page of the mapping could not be read or written "
				"(I/O error, or the file system went away)\n";
	if (write(2, prog, strlen(prog)) < 0 || write(2, ": ", 2) < 0 ||
	    write(2, g_file, strlen(g_file)) < 0 || write(2, a, sizeof(a) - 1) < 0) {
	}
	_exit(1);
}

/* If FILE lives in a umapfs mount, read its buffer and page size from .umapfs/stats. */
static void mount_limits(const char *path, uint64_t *buffer, uint64_t *page)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	char stats[PATH_MAX + 32];
	if (slash) {
		*slash = 0;
		snprintf(stats, sizeof(stats), "%s/.umapfs/stats", dir[0] ? dir : "/");
	} else {
		snprintf(stats, sizeof(stats), ".umapfs/stats");
	}
	FILE *f = fopen(stats, "r");
	if (!f)
		return;
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;
		if (sscanf(line, "mount_buffer_size %llu", &v) == 1)
			*buffer = v;
		else if (sscanf(line, "page_size %llu", &v) == 1)
			*page = v;
	}
	fclose(f);
}

static int do_sort(const char *path, unsigned threads, uint64_t mem)
{
	int fd = open(path, O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		close(fd);
		return 1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size % 8) {
		fprintf(stderr, "%s: %s: %s\n", prog, path,
			!S_ISREG(st.st_mode) ? "not a regular file"
					     : "size is not a multiple of 8 bytes (64-bit keys)");
		close(fd);
		return 1;
	}
	uint64_t bytes = (uint64_t)st.st_size;
	uint64_t mbuf = 0, page = 0;
	mount_limits(path, &mbuf, &page);
	uint64_t unit = page ? page : (UINT64_C(128) << 10);
	if (!mem)
		mem = mbuf ? mbuf : (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) / 4;
	unsigned obits = 1;
	while (obits < 8 && (UINT64_C(2) << (obits + 1)) * unit <= mem)
		obits++; /* 2^obits bucket heads of one unit each within mem/2 */

	struct sorter s = { 0 };
	s.n = bytes / 8;
	s.threads = threads;
	s.mem = mem;
	s.unit = unit;
	s.obits = obits;
	s.leaf_keys = mem / 2 / threads / 8;
	if (s.leaf_keys < 1024)
		s.leaf_keys = 1024;
	atomic_init(&s.next_leaf, 0);

	double t0 = now(), t1 = t0, t2 = t0, t3 = t0;
	struct csum in = { 0 };
	int status = 0;
	if (s.n) {
		s.a = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (s.a == MAP_FAILED) {
			fprintf(stderr, "%s: %s: mmap(PROT_READ|PROT_WRITE, MAP_SHARED): %s\n", prog, path,
				strerror(errno));
			close(fd);
			return 1;
		}
		if (partition_phase(&s, &in) < 0) {
			fprintf(stderr, "%s: out of memory\n", prog);
			status = 1;
			goto unmap;
		}
		if (in.n == 0) {
			/* nothing was counted (a single leaf): checksum the input now */
			memset(&in, 0, sizeof(in));
			for (size_t i = 0; i < s.n; i++)
				csum_add(&in, s.a[i]);
		}
		t1 = now();
		pthread_t tids[MAX_THREADS];
		unsigned started = 0;
		for (unsigned i = 1; i < threads; i++) {
			if (pthread_create(&tids[started], NULL, leaf_main, &s) == 0)
				started++;
		}
		leaf_main(&s);
		for (unsigned i = 0; i < started; i++)
			pthread_join(tids[i], NULL);
		t2 = now();
		if (msync(s.a, bytes, MS_SYNC) < 0) {
			fprintf(stderr, "%s: %s: msync(MS_SYNC): %s: the sorted data may not be durable\n",
				prog, path, strerror(errno));
			status = 1;
		}
		t3 = now();
unmap:
		munmap(s.a, bytes);
	}
	if (close(fd) < 0 && !status) {
		fprintf(stderr, "%s: %s: close: %s\n", prog, path, strerror(errno));
		status = 1;
	}
	free(s.leaves.r);
	if (!status) {
		char hex[80];
		csum_hex(&in, hex);
		printf("keys=%zu bytes=%" PRIu64 " threads=%u mem=%" PRIu64 " unit=%" PRIu64
		       " leaves=%zu seconds=%.3f partition_s=%.3f leaves_s=%.3f msync_s=%.3f "
		       "checksum=%s\n",
		       s.n, bytes, threads, mem, unit, s.leaves.n, t3 - t0, t1 - t0, t2 - t1, t3 - t2, hex);
	}
	return status;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--threads N] [--mem SIZE] FILE\n"
		"       %s --generate N --seed S [--dist uniform|dups|narrow|sorted|reverse] FILE\n"
		"       %s --verify [--seed S [--dist D]] [--expect CHECKSUM] FILE\n"
		"\n"
		"Sort a file of 64-bit unsigned integers (host order) in place through a\n"
		"shared writable mapping; works on plain files and writable umapfs views.\n"
		"  --threads N   worker threads (default: online CPUs)\n"
		"  --mem SIZE    memory bound (default: the umapfs mount's buffer_size,\n"
		"                else a quarter of RAM); K/M/G suffixes\n",
		prog, prog, prog);
}

int main(int argc, char **argv)
{
	enum { MODE_SORT, MODE_GEN, MODE_VERIFY } mode = MODE_SORT;
	long nthreads = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t mem = 0, gen_n = 0, seed = 1;
	int have_seed = 0, dist = DIST_UNIFORM;
	const char *expect = NULL;
	static const struct option lo[] = {
		{ "threads", required_argument, NULL, 't' }, { "mem", required_argument, NULL, 'm' },
		{ "generate", required_argument, NULL, 'g' }, { "seed", required_argument, NULL, 's' },
		{ "dist", required_argument, NULL, 'd' },    { "verify", no_argument, NULL, 'v' },
		{ "expect", required_argument, NULL, 'e' },  { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "t:m:g:s:d:ve:h", lo, NULL)) != -1) {
		char *end;
		switch (c) {
		case 't':
			nthreads = strtol(optarg, &end, 10);
			if (*end || nthreads < 1 || nthreads > MAX_THREADS) {
				fprintf(stderr, "%s: --threads %s: want 1..%d\n", prog, optarg, MAX_THREADS);
				return 2;
			}
			break;
		case 'm':
			if (parse_size(optarg, &mem) < 0 || mem == 0) {
				fprintf(stderr, "%s: --mem %s: not a size (e.g. 256M)\n", prog, optarg);
				return 2;
			}
			break;
		case 'g':
			mode = MODE_GEN;
			if (parse_size(optarg, &gen_n) < 0 || gen_n > (UINT64_MAX / 8)) {
				fprintf(stderr, "%s: --generate %s: not a key count\n", prog, optarg);
				return 2;
			}
			break;
		case 's':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "%s: --seed %s: not a number\n", prog, optarg);
				return 2;
			}
			have_seed = 1;
			break;
		case 'd':
			dist = parse_dist(optarg);
			if (dist < 0) {
				fprintf(stderr, "%s: --dist %s: want uniform, dups, narrow, sorted or reverse\n",
					prog, optarg);
				return 2;
			}
			break;
		case 'v':
			mode = MODE_VERIFY;
			break;
		case 'e':
			expect = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	g_file = argv[optind];
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigaction(SIGBUS, &sa, NULL);
	switch (mode) {
	case MODE_GEN:
		return do_generate(g_file, gen_n, seed, dist);
	case MODE_VERIFY:
		return do_verify(g_file, have_seed, seed, dist, expect);
	default:
		return do_sort(g_file, (unsigned)nthreads, mem);
	}
}
