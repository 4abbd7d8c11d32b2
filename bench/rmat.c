/*
 * R-MAT graph generation (Chakrabarti, Zhan, Faloutsos 2004) with the
 * Graph500 parameters, written as a CSR file (csr.h).
 *
 * Each edge is a pure function of (seed, index): its `scale` quadrant choices
 * come from a counter-based generator (splitmix64's mixer over a per-edge
 * counter), so the graph does not depend on generation order.  Vertices are
 * then relabelled by a seeded Fisher-Yates permutation, so vertex ids carry
 * no locality (as Graph500 requires).  Unlike Graph500's reference code the
 * quadrant probabilities get no per-level noise.
 *
 * Building the CSR: edges (both directions, self-loops dropped) are bucketed
 * by source vertex into P partitions.  P = 1 when everything fits in
 * mem_limit: the bucket is an array.  Otherwise the buckets are files, read
 * back and sorted one at a time (an external bucket sort), so a graph larger
 * than memory can be generated.  Within a partition the lists are built by a
 * counting sort on the source, then each list is sorted and deduplicated.
 * The output is the same for every P.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csr.h"

#define GAMMA UINT64_C(0x9e3779b97f4a7c15)

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

void rmat_params_init(struct rmat_params *p)
{
	memset(p, 0, sizeof(*p));
	p->scale = 16;
	p->edgefactor = 16;
	p->seed = 1;
	p->a = 0.57;
	p->b = 0.19;
	p->c = 0.19;
	p->nbr_bytes = 4;
	p->mem_limit = UINT64_C(1) << 30;
}

/* Precomputed quadrant thresholds on 32-bit uniforms. */
struct rmat_gen {
	unsigned scale;
	uint64_t key;
	uint64_t words; /* 64-bit draws per edge */
	uint64_t ta, tab, tabc;
};

static uint64_t threshold(double p)
{
	if (p <= 0)
		return 0;
	if (p >= 1)
		return UINT64_C(1) << 32;
	return (uint64_t)(p * 4294967296.0);
}

static void gen_init(struct rmat_gen *g, const struct rmat_params *p)
{
	g->scale = p->scale;
	g->key = csr_mix64(p->seed ^ UINT64_C(0x5eed5eed5eed5eed));
	g->words = (p->scale + 1) / 2;
	g->ta = threshold(p->a);
	g->tab = threshold(p->a + p->b);
	g->tabc = threshold(p->a + p->b + p->c);
}

static inline void gen_edge(const struct rmat_gen *g, uint64_t idx, uint64_t *pu, uint64_t *pv)
{
	uint64_t u = 0, v = 0, r = 0;
	uint64_t ctr = idx * g->words;
	for (unsigned k = 0; k < g->scale; k++) {
		uint64_t x;
		if ((k & 1) == 0) {
			r = csr_mix64(g->key + (++ctr) * GAMMA);
			x = r & 0xffffffffu;
		} else {
			x = r >> 32;
		}
		uint64_t bit = UINT64_C(1) << (g->scale - 1 - k);
		if (x < g->ta)
			continue;
		if (x < g->tab)
			v |= bit;
		else if (x < g->tabc)
			u |= bit;
		else
			u |= bit, v |= bit;
	}
	*pu = u;
	*pv = v;
}

void rmat_edge(const struct rmat_params *p, uint64_t idx, uint64_t *u, uint64_t *v)
{
	struct rmat_gen g;
	gen_init(&g, p);
	gen_edge(&g, idx, u, v);
}

/* The seeded vertex relabelling: perm[old] = new. */
static uint32_t *make_perm(uint64_t n, uint64_t seed)
{
	uint32_t *perm = malloc(n * sizeof(*perm));
	if (!perm)
		return NULL;
	for (uint64_t i = 0; i < n; i++)
		perm[i] = (uint32_t)i;
	uint64_t s = csr_mix64(seed ^ UINT64_C(0x7065726d75746521));
	for (uint64_t i = n - 1; i > 0; i--) {
		s += GAMMA;
		uint64_t j = (uint64_t)(((unsigned __int128)csr_mix64(s) * (i + 1)) >> 64);
		uint32_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	return perm;
}

/*
 * Sort a neighbour list: insertion sort for short lists, otherwise a
 * median-of-three quicksort (recursing into the smaller half, so the stack
 * stays O(log n)).  No comparison callbacks: lists are sorted in the inner
 * loop of generation.
 */
static void sort_u32(uint32_t *a, uint64_t n)
{
	while (n >= 24) {
		uint32_t x = a[0], y = a[n / 2], z = a[n - 1];
		uint32_t pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
		uint64_t i = 0, j = n - 1;
		for (;;) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i >= j)
				break;
			uint32_t t = a[i];
			a[i] = a[j];
			a[j] = t;
			i++;
			j--;
		}
		/* [0, j] <= pivot <= [j+1, n) */
		uint64_t left = j + 1;
		if (left < n - left) {
			sort_u32(a, left);
			a += left;
			n -= left;
		} else {
			sort_u32(a + left, n - left);
			n = left;
		}
	}
	for (uint64_t i = 1; i < n; i++) {
		uint32_t x = a[i];
		uint64_t j = i;
		while (j > 0 && a[j - 1] > x) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = x;
	}
}

/* The state of one generation. */
struct build {
	const struct rmat_params *p;
	const char *path;
	char *err;
	size_t errlen;
	int fd;           /* the output (.tmp) */
	uint64_t n;
	uint64_t nbrs_off;
	uint64_t base;    /* neighbour entries written so far */
	uint64_t range;   /* vertices per partition */
	unsigned parts;
};

/*
 * Turn the (src << 32 | dst) pairs of the partition holding sources
 * [lo, hi) into CSR lists, append them to the output and write their
 * offsets.  Consumes `pairs`.
 */
static int flush_partition(struct build *b, uint64_t *pairs, uint64_t np, uint64_t lo,
			   uint64_t hi)
{
	uint64_t nv = hi - lo;
	uint64_t *off = calloc(nv + 1, sizeof(*off));
	uint32_t *nb = malloc((np ? np : 1) * sizeof(*nb));
	int ret = 0;
	if (!off || !nb) {
		ret = fail(b->err, b->errlen, -ENOMEM, "%s: out of memory sorting a partition",
			   b->path);
		goto out;
	}
	for (uint64_t i = 0; i < np; i++)
		off[(pairs[i] >> 32) - lo + 1]++;
	for (uint64_t v = 0; v < nv; v++)
		off[v + 1] += off[v];
	/* Scatter: off[v] walks from v's start to its end (= start of v+1). */
	for (uint64_t i = 0; i < np; i++)
		nb[off[(pairs[i] >> 32) - lo]++] = (uint32_t)pairs[i];
	/* Now off[v] is the end of v's list; sort, dedup and compact. */
	uint64_t w = 0, start = 0;
	for (uint64_t v = 0; v < nv; v++) {
		uint64_t end = off[v];
		uint32_t *l = nb + start;
		uint64_t d = end - start;
		sort_u32(l, d);
		off[v] = b->base + w;
		for (uint64_t j = 0; j < d; j++) {
			if (j > 0 && l[j] == l[j - 1])
				continue;
			nb[w++] = l[j];
		}
		start = end;
	}
	off[nv] = b->base + w; /* written only by the last partition (below) */
	ret = csr_write_all(b->fd, off, (hi == b->n ? nv + 1 : nv) * 8, CSR_HDR_SIZE + lo * 8);
	if (ret == 0 && w) {
		if (b->p->nbr_bytes == 8) {
			/* Widen in chunks. */
			uint64_t chunk[8192];
			for (uint64_t i = 0; i < w && ret == 0; i += 8192) {
				uint64_t k = w - i < 8192 ? w - i : 8192;
				for (uint64_t j = 0; j < k; j++)
					chunk[j] = nb[i + j];
				ret = csr_write_all(b->fd, chunk, k * 8, b->nbrs_off + (b->base + i) * 8);
			}
		} else {
			ret = csr_write_all(b->fd, nb, w * 4, b->nbrs_off + b->base * 4);
		}
	}
	if (ret < 0)
		fail(b->err, b->errlen, ret, "%s: write: %s", b->path, strerror(-ret));
	b->base += w;
out:
	free(off);
	free(nb);
	return ret;
}

int rmat_generate(const struct rmat_params *p, const char *path, char *err, size_t errlen)
{
	if (p->scale < 1 || p->scale > 32)
		return fail(err, errlen, -EINVAL, "scale %u: must be 1..32", p->scale);
	if (p->edgefactor < 1 || p->edgefactor > 1024)
		return fail(err, errlen, -EINVAL, "edgefactor %u: must be 1..1024", p->edgefactor);
	if (!(p->a >= 0 && p->b >= 0 && p->c >= 0 && p->a + p->b + p->c <= 1.0 + 1e-12))
		return fail(err, errlen, -EINVAL,
			    "R-MAT probabilities a=%g b=%g c=%g: need a,b,c >= 0, a+b+c <= 1", p->a,
			    p->b, p->c);
	unsigned nbr_bytes = p->nbr_bytes ? p->nbr_bytes : 4;
	if (nbr_bytes != 4 && nbr_bytes != 8)
		return fail(err, errlen, -EINVAL, "neighbour width %u: must be 4 or 8", nbr_bytes);
	struct rmat_params pp = *p;
	pp.nbr_bytes = nbr_bytes;

	struct build b = {
		.p = &pp, .path = path, .err = err, .errlen = errlen, .fd = -1,
	};
	b.n = UINT64_C(1) << p->scale;
	b.nbrs_off = csr_nbrs_offset(b.n);
	uint64_t ne = (uint64_t)p->edgefactor * b.n;

	/* Memory: perm 4n stays; a partition needs pairs 8 + lists 4 per entry. */
	uint64_t fixed = 4 * b.n;
	uint64_t need = (2 * ne * 12 + 8 * b.n) / 4 * 5;
	uint64_t avail = p->mem_limit > fixed + (UINT64_C(16) << 20) ? p->mem_limit - fixed
								     : (UINT64_C(16) << 20);
	uint64_t parts = need <= avail ? 1 : (need + avail - 1) / avail;
	if (parts > b.n)
		parts = b.n;
	if (parts > 4096)
		return fail(err, errlen, -EINVAL,
			    "mem_limit %llu bytes is far too small for scale %u (needs %llu partitions)",
			    (unsigned long long)p->mem_limit, p->scale, (unsigned long long)parts);
	b.parts = (unsigned)parts;
	b.range = (b.n + parts - 1) / parts;

	size_t plen = strlen(path);
	char *tmp = malloc(plen + 5);
	uint32_t *perm = make_perm(b.n, p->seed);
	FILE **pf = NULL;
	char **pname = NULL;
	uint64_t *pairs = NULL;
	int ret = 0;
	if (!tmp || !perm) {
		ret = fail(err, errlen, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);
	b.fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (b.fd < 0) {
		ret = -errno;
		fail(err, errlen, ret, "%s: %s", tmp, strerror(-ret));
		goto out;
	}

	struct rmat_gen g;
	gen_init(&g, &pp);
	if (p->verbose)
		fprintf(stderr, "rmat_gen: scale %u, %llu vertices, %llu edges, %u partition(s)\n",
			p->scale, (unsigned long long)b.n, (unsigned long long)ne, b.parts);

	if (b.parts == 1) {
		pairs = malloc(2 * ne * sizeof(*pairs));
		if (!pairs) {
			ret = fail(err, errlen, -ENOMEM, "%s: out of memory for %llu edges", path,
				   (unsigned long long)ne);
			goto out;
		}
		uint64_t np = 0;
		for (uint64_t i = 0; i < ne; i++) {
			uint64_t u, v;
			gen_edge(&g, i, &u, &v);
			if (u == v)
				continue;
			u = perm[u];
			v = perm[v];
			pairs[np++] = u << 32 | v;
			pairs[np++] = v << 32 | u;
		}
		free(perm);
		perm = NULL;
		ret = flush_partition(&b, pairs, np, 0, b.n);
		if (ret < 0)
			goto out;
	} else {
		/* External: bucket files next to the output (or in tmpdir). */
		const char *dir = p->tmpdir;
		char *dcopy = NULL;
		if (!dir) {
			dcopy = strdup(path);
			if (!dcopy) {
				ret = fail(err, errlen, -ENOMEM, "%s: out of memory", path);
				goto out;
			}
			char *slash = strrchr(dcopy, '/');
			if (slash)
				slash[slash == dcopy ? 1 : 0] = '\0';
			dir = slash ? dcopy : ".";
		}
		pf = calloc(b.parts, sizeof(*pf));
		pname = calloc(b.parts, sizeof(*pname));
		if (!pf || !pname) {
			free(dcopy);
			ret = fail(err, errlen, -ENOMEM, "%s: out of memory", path);
			goto out;
		}
		for (unsigned k = 0; k < b.parts; k++) {
			if (asprintf(&pname[k], "%s/rmat-%ld-%u.part", dir, (long)getpid(), k) < 0) {
				pname[k] = NULL;
				ret = fail(err, errlen, -ENOMEM, "%s: out of memory", path);
				break;
			}
			pf[k] = fopen(pname[k], "w+");
			if (!pf[k]) {
				ret = -errno;
				fail(err, errlen, ret, "%s: %s", pname[k], strerror(-ret));
				break;
			}
		}
		free(dcopy);
		if (ret < 0)
			goto out;
		for (uint64_t i = 0; i < ne; i++) {
			uint64_t u, v;
			gen_edge(&g, i, &u, &v);
			if (u == v)
				continue;
			u = perm[u];
			v = perm[v];
			uint64_t e1 = u << 32 | v, e2 = v << 32 | u;
			if (fwrite(&e1, 8, 1, pf[u / b.range]) != 1 ||
			    fwrite(&e2, 8, 1, pf[v / b.range]) != 1) {
				ret = fail(err, errlen, -EIO, "%s: writing a partition file failed",
					   path);
				goto out;
			}
		}
		free(perm);
		perm = NULL;
		for (unsigned k = 0; k < b.parts; k++) {
			if (fflush(pf[k]) != 0) {
				ret = -errno;
				fail(err, errlen, ret, "%s: %s", pname[k], strerror(-ret));
				goto out;
			}
			long sz = ftell(pf[k]);
			uint64_t np = sz > 0 ? (uint64_t)sz / 8 : 0;
			pairs = malloc((np ? np : 1) * sizeof(*pairs));
			if (!pairs) {
				ret = fail(err, errlen, -ENOMEM, "%s: out of memory for partition %u",
					   path, k);
				goto out;
			}
			rewind(pf[k]);
			if (fread(pairs, 8, np, pf[k]) != np) {
				ret = fail(err, errlen, -EIO, "%s: short read", pname[k]);
				goto out;
			}
			fclose(pf[k]);
			pf[k] = NULL;
			unlink(pname[k]);
			uint64_t lo = (uint64_t)k * b.range;
			uint64_t hi = lo + b.range < b.n ? lo + b.range : b.n;
			if (lo < hi)
				ret = flush_partition(&b, pairs, np, lo, hi);
			free(pairs);
			pairs = NULL;
			if (ret < 0)
				goto out;
			if (p->verbose)
				fprintf(stderr, "rmat_gen: partition %u/%u done\n", k + 1, b.parts);
		}
	}

	/* Header, padding, rename. */
	{
		static char block[CSR_HDR_SIZE];
		struct csr_header h;
		memset(&h, 0, sizeof(h));
		memcpy(h.magic, CSR_MAGIC, 8);
		h.version = CSR_VERSION;
		h.nbr_bytes = nbr_bytes;
		h.n_vertices = b.n;
		h.n_entries = b.base;
		h.offsets_offset = CSR_HDR_SIZE;
		h.nbrs_offset = b.nbrs_off;
		h.file_size = csr_file_size(b.n, b.base, nbr_bytes);
		h.seed = p->seed;
		h.scale = p->scale;
		h.edgefactor = p->edgefactor;
		h.n_input_edges = ne;
		h.a = p->a;
		h.b = p->b;
		h.c = p->c;
		memset(block, 0, sizeof(block));
		memcpy(block, &h, sizeof(h));
		ret = csr_write_all(b.fd, block, sizeof(block), 0);
		if (ret == 0 && ftruncate(b.fd, (off_t)h.file_size) < 0)
			ret = -errno;
		if (ret < 0) {
			fail(err, errlen, ret, "%s: %s", tmp, strerror(-ret));
			goto out;
		}
	}
	if (close(b.fd) < 0) {
		b.fd = -1;
		ret = -errno;
		fail(err, errlen, ret, "%s: close: %s", tmp, strerror(-ret));
		goto out;
	}
	b.fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		fail(err, errlen, ret, "rename %s -> %s: %s", tmp, path, strerror(-ret));
	}
out:
	if (pf) {
		for (unsigned k = 0; k < b.parts; k++) {
			if (pf[k])
				fclose(pf[k]);
			if (pname && pname[k])
				unlink(pname[k]);
		}
	}
	if (pname)
		for (unsigned k = 0; k < b.parts; k++)
			free(pname[k]);
	free(pname);
	free(pf);
	free(pairs);
	free(perm);
	if (b.fd >= 0) {
		close(b.fd);
		unlink(tmp);
	} else if (ret < 0 && tmp) {
		unlink(tmp);
	}
	free(tmp);
	return ret;
}
