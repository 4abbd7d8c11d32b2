/*
 * The CSR graph file: layout, header checks, mapping, validation, writing.
 * Format in csr.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csr.h"

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

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

uint64_t csr_nbrs_offset(uint64_t n)
{
	return align_up(CSR_HDR_SIZE + (n + 1) * 8, CSR_ALIGN);
}

uint64_t csr_file_size(uint64_t n, uint64_t m, unsigned nbr_bytes)
{
	return align_up(csr_nbrs_offset(n) + m * nbr_bytes, CSR_ALIGN);
}

int csr_check_header(const struct csr_header *h, uint64_t file_size, const char *path,
		     char *err, size_t errlen)
{
	if (memcmp(h->magic, CSR_MAGIC, 8) != 0)
		return fail(err, errlen, -EINVAL, "%s: not a CSR graph file (bad magic)", path);
	if (h->version != CSR_VERSION)
		return fail(err, errlen, -EINVAL, "%s: CSR version %u, this program reads %u", path,
			    h->version, CSR_VERSION);
	if (h->nbr_bytes != 4 && h->nbr_bytes != 8)
		return fail(err, errlen, -EINVAL, "%s: neighbour width %u bytes (must be 4 or 8)",
			    path, h->nbr_bytes);
	/* Bounds that keep the size arithmetic below from overflowing. */
	if (h->n_vertices == 0 || h->n_vertices > (UINT64_C(1) << 40))
		return fail(err, errlen, -EINVAL, "%s: %llu vertices (must be 1..2^40)", path,
			    (unsigned long long)h->n_vertices);
	if (h->nbr_bytes == 4 && h->n_vertices > (UINT64_C(1) << 32))
		return fail(err, errlen, -EINVAL,
			    "%s: %llu vertices do not fit 4-byte neighbour ids", path,
			    (unsigned long long)h->n_vertices);
	if (h->n_entries > (UINT64_C(1) << 44))
		return fail(err, errlen, -EINVAL, "%s: %llu neighbour entries (at most 2^44)", path,
			    (unsigned long long)h->n_entries);
	if (h->offsets_offset != CSR_HDR_SIZE)
		return fail(err, errlen, -EINVAL, "%s: offsets at %llu (must be %u)", path,
			    (unsigned long long)h->offsets_offset, CSR_HDR_SIZE);
	if (h->nbrs_offset != csr_nbrs_offset(h->n_vertices))
		return fail(err, errlen, -EINVAL,
			    "%s: neighbours at %llu, expected %llu for %llu vertices", path,
			    (unsigned long long)h->nbrs_offset,
			    (unsigned long long)csr_nbrs_offset(h->n_vertices),
			    (unsigned long long)h->n_vertices);
	uint64_t need = csr_file_size(h->n_vertices, h->n_entries, h->nbr_bytes);
	if (h->file_size != need)
		return fail(err, errlen, -EINVAL, "%s: header says %llu bytes, layout needs %llu",
			    path, (unsigned long long)h->file_size, (unsigned long long)need);
	if (file_size < need)
		return fail(err, errlen, -EINVAL, "%s: truncated: %llu bytes, header needs %llu", path,
			    (unsigned long long)file_size, (unsigned long long)need);
	return 0;
}

int csr_open(const char *path, struct csr_graph *g, char *err, size_t errlen)
{
	memset(g, 0, sizeof(*g));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return fail(err, errlen, -e, "%s: %s", path, strerror(e));
	}
	struct stat st;
	int ret = 0;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		fail(err, errlen, ret, "%s: %s", path, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < CSR_HDR_SIZE) {
		ret = fail(err, errlen, -EINVAL, "%s: not a CSR graph file (%s)", path,
			   S_ISREG(st.st_mode) ? "shorter than its header" : "not a regular file");
		goto out;
	}
	struct csr_header h;
	ssize_t r = pread(fd, &h, sizeof(h), 0);
	if (r != (ssize_t)sizeof(h)) {
		ret = r < 0 ? -errno : -EIO;
		fail(err, errlen, ret, "%s: reading the header: %s", path,
		     r < 0 ? strerror(-ret) : "short read");
		goto out;
	}
	ret = csr_check_header(&h, (uint64_t)st.st_size, path, err, errlen);
	if (ret < 0)
		goto out;
	void *map = mmap(NULL, h.file_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		ret = -errno;
		fail(err, errlen, ret, "%s: mmap: %s", path, strerror(-ret));
		goto out;
	}
	g->n = h.n_vertices;
	g->m = h.n_entries;
	g->nbr_bytes = h.nbr_bytes;
	g->off = (const uint64_t *)((const char *)map + h.offsets_offset);
	g->nbrs = (const char *)map + h.nbrs_offset;
	g->hdr = h;
	g->map = map;
	g->map_len = h.file_size;
out:
	close(fd);
	return ret;
}

void csr_close(struct csr_graph *g)
{
	if (g->map)
		munmap(g->map, g->map_len);
	memset(g, 0, sizeof(*g));
}

/* Is `x` in the sorted list nbrs[lo, hi)? */
static int sorted_contains(const struct csr_graph *g, uint64_t lo, uint64_t hi, uint64_t x)
{
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		uint64_t y = csr_nbr(g, mid);
		if (y == x)
			return 1;
		if (y < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

int csr_validate(const struct csr_graph *g, int strict, const char *path, char *err,
		 size_t errlen)
{
	if (g->off[0] != 0)
		return fail(err, errlen, -EINVAL, "%s: offsets[0] = %llu (must be 0)", path,
			    (unsigned long long)g->off[0]);
	if (g->off[g->n] != g->m)
		return fail(err, errlen, -EINVAL, "%s: offsets[n] = %llu, header says %llu entries",
			    path, (unsigned long long)g->off[g->n], (unsigned long long)g->m);
	for (uint64_t v = 0; v < g->n; v++) {
		if (g->off[v] > g->off[v + 1])
			return fail(err, errlen, -EINVAL,
				    "%s: offsets decrease at vertex %llu (%llu > %llu)", path,
				    (unsigned long long)v, (unsigned long long)g->off[v],
				    (unsigned long long)g->off[v + 1]);
	}
	for (uint64_t v = 0; v < g->n; v++) {
		for (uint64_t j = g->off[v]; j < g->off[v + 1]; j++) {
			uint64_t w = csr_nbr(g, j);
			if (w >= g->n)
				return fail(err, errlen, -EINVAL,
					    "%s: vertex %llu has neighbour %llu >= n = %llu", path,
					    (unsigned long long)v, (unsigned long long)w,
					    (unsigned long long)g->n);
			if (!strict)
				continue;
			if (w == v)
				return fail(err, errlen, -EINVAL, "%s: self-loop at vertex %llu", path,
					    (unsigned long long)v);
			if (j > g->off[v] && csr_nbr(g, j - 1) >= w)
				return fail(err, errlen, -EINVAL,
					    "%s: neighbours of %llu not strictly increasing at entry %llu",
					    path, (unsigned long long)v, (unsigned long long)j);
		}
	}
	if (!strict)
		return 0;
	for (uint64_t v = 0; v < g->n; v++) {
		for (uint64_t j = g->off[v]; j < g->off[v + 1]; j++) {
			uint64_t w = csr_nbr(g, j);
			if (!sorted_contains(g, g->off[w], g->off[w + 1], v))
				return fail(err, errlen, -EINVAL,
					    "%s: edge %llu->%llu has no reverse edge", path,
					    (unsigned long long)v, (unsigned long long)w);
		}
	}
	return 0;
}

/* See csr.h. */
int csr_write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t w = pwrite(fd, p, len > (1u << 30) ? (1u << 30) : len, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int csr_write(const char *path, uint64_t n, uint64_t m, const uint64_t *off, const void *nbrs,
	      unsigned nbr_bytes, const struct csr_header *prov, char *err, size_t errlen)
{
	if (n == 0 || (nbr_bytes != 4 && nbr_bytes != 8) || off[0] != 0 || off[n] != m ||
	    (nbr_bytes == 4 && n > (UINT64_C(1) << 32)))
		return fail(err, errlen, -EINVAL, "%s: inconsistent graph to write", path);
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 5);
	if (!tmp)
		return fail(err, errlen, -ENOMEM, "%s: out of memory", path);
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);

	int ret = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		fail(err, errlen, ret, "%s: %s", tmp, strerror(-ret));
		free(tmp);
		return ret;
	}
	static char block[CSR_HDR_SIZE];
	struct csr_header h;
	memset(&h, 0, sizeof(h));
	if (prov)
		h = *prov;
	memcpy(h.magic, CSR_MAGIC, 8);
	h.version = CSR_VERSION;
	h.nbr_bytes = nbr_bytes;
	h.n_vertices = n;
	h.n_entries = m;
	h.offsets_offset = CSR_HDR_SIZE;
	h.nbrs_offset = csr_nbrs_offset(n);
	h.file_size = csr_file_size(n, m, nbr_bytes);
	memset(block, 0, sizeof(block));
	memcpy(block, &h, sizeof(h));
	if ((ret = csr_write_all(fd, block, sizeof(block), 0)) < 0 ||
	    (ret = csr_write_all(fd, off, (n + 1) * 8, CSR_HDR_SIZE)) < 0 ||
	    (ret = csr_write_all(fd, nbrs, m * nbr_bytes, h.nbrs_offset)) < 0) {
		fail(err, errlen, ret, "%s: write: %s", tmp, strerror(-ret));
		goto bad;
	}
	if (ftruncate(fd, (off_t)h.file_size) < 0) {
		ret = -errno;
		fail(err, errlen, ret, "%s: ftruncate: %s", tmp, strerror(-ret));
		goto bad;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = -errno;
		fail(err, errlen, ret, "%s: close: %s", tmp, strerror(-ret));
		goto bad;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		fail(err, errlen, ret, "rename %s -> %s: %s", tmp, path, strerror(-ret));
		goto bad;
	}
	free(tmp);
	return 0;
bad:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return ret;
}
