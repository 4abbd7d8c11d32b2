/*
 * A UMap-style program built against the compatibility header: maps a file
 * at a non-zero offset with umap(), checks every byte against pread,
 * writes through a second read-write region, flushes, uunmaps, and checks
 * the file.  Exit 0 pass, 1 fail.  Usage: umap_prog <scratch-dir>
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <umap.h>

#define FAIL(...) do { fprintf(stderr, "umap_prog: " __VA_ARGS__); fputc('\n', stderr); return 1; } while (0)

int main(int argc, char **argv)
{
	if (argc != 2)
		FAIL("usage: umap_prog DIR");
	char path[512];
	snprintf(path, sizeof(path), "%s/umap_prog.dat", argv[1]);
	uint64_t psize = umapcfg_get_umap_page_size();
	if (psize != 16384)
		FAIL("UMAP_PAGESIZE not honoured: %llu", (unsigned long long)psize);
	if (umapcfg_get_max_pages_in_buffer() != 8 || umapcfg_get_num_fillers() != 1 ||
	    umapcfg_get_evict_high_water_threshold() != 90 || umapcfg_get_max_fault_events() != 256)
		FAIL("getters: buffer %llu fillers %llu high %d events %llu",
		     (unsigned long long)umapcfg_get_max_pages_in_buffer(),
		     (unsigned long long)umapcfg_get_num_fillers(), umapcfg_get_evict_high_water_threshold(),
		     (unsigned long long)umapcfg_get_max_fault_events());
	size_t flen = 64 * psize;
	unsigned char *ref = malloc(flen);
	for (size_t i = 0; i < flen; i++)
		ref[i] = (unsigned char)(i * 131 + i / 4093);
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0 || write(fd, ref, flen) != (ssize_t)flen)
		FAIL("%s: %s", path, strerror(errno));
	fsync(fd);

	/* read-only, offset 3 pages: must start at the file's byte 3*psize (UMap: byte 0) */
	off_t off = 3 * (off_t)psize;
	size_t len = flen - (size_t)off;
	unsigned char *p = umap(NULL, len, PROT_READ, UMAP_PRIVATE, fd, off);
	if (p == UMAP_FAILED)
		FAIL("umap: %s", strerror(errno));
	umap_prefetch_item items[2] = { { p + psize * 10 }, { p + psize * 11 } };
	umap_prefetch(2, items);
	for (size_t i = 0; i < len; i += 7)
		if (p[i] != ref[off + i])
			FAIL("byte %zu of the region (file %zu) is %u, want %u", i, (size_t)off + i, p[i], ref[off + i]);
	if (uunmap(p, len) != 0)
		FAIL("uunmap: %s", strerror(errno));

	/* read-write at offset 1 page */
	p = umap(NULL, 8 * psize, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, (off_t)psize);
	if (p == UMAP_FAILED)
		FAIL("umap rw: %s", strerror(errno));
	for (size_t i = 0; i < 8 * psize; i += 100)
		p[i] = ref[psize + i] = (unsigned char)~ref[psize + i];
	if (umap_flush() != 0)
		FAIL("umap_flush: %s", strerror(errno));
	if (uunmap(p, 8 * psize) != 0)
		FAIL("uunmap rw: %s", strerror(errno));
	unsigned char *got = malloc(flen);
	if (pread(fd, got, flen, 0) != (ssize_t)flen || memcmp(got, ref, flen))
		FAIL("file differs after the read-write region");

	/* errors come back as UMAP_FAILED / -1, never an abort */
	if (umap(NULL, psize, PROT_READ, UMAP_PRIVATE, fd, 100) != UMAP_FAILED || errno != EINVAL)
		FAIL("unaligned offset accepted");
	if (umap(NULL, psize, PROT_READ, UMAP_PRIVATE, -1, 0) != UMAP_FAILED)
		FAIL("bad fd accepted");
	if (umap(NULL, 2 * flen, PROT_READ, UMAP_PRIVATE, fd, 0) != UMAP_FAILED)
		FAIL("range past the end accepted");
	if (uunmap((void *)0x1000, 10) != -1 || errno != EINVAL)
		FAIL("uunmap of nothing");
	close(fd);
	unlink(path);
	free(ref);
	free(got);
	printf("umap_prog: ok\n");
	return 0;
}
