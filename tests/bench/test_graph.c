/*
 * Correctness of the benchmark's graph code (bench/csr.h): the R-MAT
 * generator is deterministic and follows its parameters, the CSR files it
 * writes are valid, corrupt CSR files are refused with a reason, and the
 * parallel BFS agrees with a serial reference.  Also the command-line
 * programs end to end (rmat_gen, bfs, disk_uring).  No timings are checked.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "csr.h"

static char dir[256];

static void mkscratch(void)
{
	snprintf(dir, sizeof(dir), "/var/tmp/umapfs-bench-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void rmscratch(void)
{
	char cmd[PATH_MAX + 16];
	if (!dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static const char *path(const char *name)
{
	static char bufs[8][PATH_MAX];
	static int i;
	char *b = bufs[i++ % 8];
	snprintf(b, PATH_MAX, "%s/%s", dir, name);
	return b;
}

static void *slurp(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	cr_assert_not_null(f, "%s: %s", p, strerror(errno));
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	void *buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *p, const void *buf, size_t len)
{
	FILE *f = fopen(p, "wb");
	cr_assert_not_null(f, "%s: %s", p, strerror(errno));
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static void gen(const char *out, unsigned scale, uint64_t seed, unsigned width, uint64_t mem)
{
	struct rmat_params p;
	rmat_params_init(&p);
	p.scale = scale;
	p.seed = seed;
	p.nbr_bytes = width;
	if (mem)
		p.mem_limit = mem;
	char err[CSR_ERRLEN] = "";
	int ret = rmat_generate(&p, out, err, sizeof(err));
	cr_assert_eq(ret, 0, "rmat_generate: %d %s", ret, err);
}

static int same_file(const char *a, const char *b)
{
	size_t la, lb;
	void *x = slurp(a, &la), *y = slurp(b, &lb);
	int same = la == lb && memcmp(x, y, la) == 0;
	free(x);
	free(y);
	return same;
}

TestSuite(rmat, .init = mkscratch, .fini = rmscratch);
TestSuite(csr, .init = mkscratch, .fini = rmscratch);
TestSuite(bfs, .init = mkscratch, .fini = rmscratch);
TestSuite(programs, .init = mkscratch, .fini = rmscratch, .timeout = 100);

/* ---- R-MAT ------------------------------------------------------------ */

Test(rmat, same_seed_same_bytes)
{
	gen(path("a.csr"), 12, 7, 4, 0);
	gen(path("b.csr"), 12, 7, 4, 0);
	cr_assert(same_file(path("a.csr"), path("b.csr")), "two runs with seed 7 differ");
}

Test(rmat, different_seed_different_graph)
{
	gen(path("a.csr"), 12, 7, 4, 0);
	gen(path("b.csr"), 12, 8, 4, 0);
	cr_assert_not(same_file(path("a.csr"), path("b.csr")), "seeds 7 and 8 gave one graph");
}

Test(rmat, external_sort_gives_the_same_file)
{
	/* 64 KiB of sort memory forces many partition files at scale 12. */
	gen(path("mem.csr"), 12, 3, 4, 0);
	gen(path("ext.csr"), 12, 3, 4, 64 << 10);
	cr_assert(same_file(path("mem.csr"), path("ext.csr")),
		  "external and in-memory generation differ");
	/* No partition files are left behind. */
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q part", dir);
	cr_assert_neq(system(cmd), 0, "partition files left in %s", dir);
}

Test(rmat, edge_function_is_pure_and_in_range)
{
	struct rmat_params p;
	rmat_params_init(&p);
	p.scale = 10;
	p.seed = 99;
	for (uint64_t i = 0; i < 1000; i++) {
		uint64_t u1, v1, u2, v2;
		rmat_edge(&p, i, &u1, &v1);
		rmat_edge(&p, i, &u2, &v2);
		cr_assert(u1 == u2 && v1 == v2);
		cr_assert(u1 < 1024 && v1 < 1024);
	}
}

Test(rmat, quadrant_frequencies_follow_the_parameters)
{
	/*
	 * The top bit of (u, v) picks the first quadrant: (0,0) with
	 * probability A, (0,1) B, (1,0) C, (1,1) D.  200k seeded draws: the
	 * frequencies must be within 0.01 of the parameters (≈ 9 sigma).
	 */
	struct rmat_params p;
	rmat_params_init(&p);
	p.scale = 16;
	p.seed = 5;
	uint64_t count[4] = {0};
	const uint64_t n = 200000;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t u, v;
		rmat_edge(&p, i, &u, &v);
		count[(u >> 15) * 2 + (v >> 15)]++;
	}
	double want[4] = {0.57, 0.19, 0.19, 0.05};
	for (int q = 0; q < 4; q++)
		cr_assert_float_eq((double)count[q] / n, want[q], 0.01, "quadrant %d: %f", q,
				   (double)count[q] / n);
}

Test(rmat, bad_parameters_are_refused)
{
	struct rmat_params p;
	rmat_params_init(&p);
	char err[CSR_ERRLEN] = "";
	p.scale = 0;
	cr_assert_eq(rmat_generate(&p, path("x.csr"), err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "scale"), "%s", err);
	rmat_params_init(&p);
	p.a = 0.9;
	p.b = 0.2;
	cr_assert_eq(rmat_generate(&p, path("x.csr"), err, sizeof(err)), -EINVAL);
	rmat_params_init(&p);
	cr_assert_lt(rmat_generate(&p, "/nonexistent-dir/x.csr", err, sizeof(err)), 0);
	cr_assert(strstr(err, "/nonexistent-dir/x.csr"), "%s", err);
}

/* ---- CSR -------------------------------------------------------------- */

static void check_generated(unsigned width)
{
	gen(path("g.csr"), 11, 1, width, 0);
	struct csr_graph g;
	char err[CSR_ERRLEN] = "";
	cr_assert_eq(csr_open(path("g.csr"), &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(g.n, 2048u);
	cr_assert_eq(g.nbr_bytes, width);
	cr_assert_eq(g.hdr.scale, 11u);
	cr_assert_eq(g.hdr.edgefactor, 16u);
	cr_assert_eq(g.hdr.n_input_edges, 16u * 2048);
	cr_assert_gt(g.m, 16u * 2048); /* both directions of most edges survive */
	cr_assert_leq(g.m, 2u * 16 * 2048);
	cr_assert_eq(g.m % 2, 0u, "symmetric graph with odd entry count");
	cr_assert_eq(g.hdr.nbrs_offset % CSR_ALIGN, 0u);
	cr_assert_eq(g.hdr.file_size % CSR_ALIGN, 0u);
	struct stat st;
	cr_assert_eq(stat(path("g.csr"), &st), 0);
	cr_assert_eq((uint64_t)st.st_size, g.hdr.file_size);
	cr_assert_eq(csr_validate(&g, 1, path("g.csr"), err, sizeof(err)), 0, "%s", err);
	csr_close(&g);
}

Test(csr, generated_graph_is_valid_32bit)
{
	check_generated(4);
}

Test(csr, generated_graph_is_valid_64bit)
{
	check_generated(8);
}

Test(csr, widths_hold_the_same_graph)
{
	gen(path("a.csr"), 10, 2, 4, 0);
	gen(path("b.csr"), 10, 2, 8, 0);
	struct csr_graph a, b;
	char err[CSR_ERRLEN];
	cr_assert_eq(csr_open(path("a.csr"), &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(csr_open(path("b.csr"), &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(a.m, b.m);
	cr_assert_eq(memcmp(a.off, b.off, (a.n + 1) * 8), 0);
	for (uint64_t i = 0; i < a.m; i++)
		cr_assert_eq(csr_nbr(&a, i), csr_nbr(&b, i));
	csr_close(&a);
	csr_close(&b);
}

Test(csr, write_then_open_roundtrip)
{
	/* 0-1, 1-2, 2-0, 3 isolated */
	uint64_t off[] = {0, 2, 4, 6, 6};
	uint32_t nb[] = {1, 2, 0, 2, 0, 1};
	char err[CSR_ERRLEN] = "";
	cr_assert_eq(csr_write(path("t.csr"), 4, 6, off, nb, 4, NULL, err, sizeof(err)), 0, "%s",
		     err);
	struct csr_graph g;
	cr_assert_eq(csr_open(path("t.csr"), &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(g.n, 4u);
	cr_assert_eq(g.m, 6u);
	cr_assert_eq(csr_nbr(&g, 3), 2u);
	cr_assert_eq(g.off[4], 6u);
	cr_assert_eq(csr_validate(&g, 1, "t", err, sizeof(err)), 0, "%s", err);
	csr_close(&g);
}

/* Write a valid little graph, let `corrupt` change its bytes, expect refusal. */
static void expect_refused(void (*corrupt)(unsigned char *buf, size_t *len), const char *needle,
			   int at_open)
{
	gen(path("ok.csr"), 8, 1, 4, 0);
	size_t len;
	unsigned char *buf = slurp(path("ok.csr"), &len);
	corrupt(buf, &len);
	spit(path("bad.csr"), buf, len);
	free(buf);
	struct csr_graph g;
	char err[CSR_ERRLEN] = "";
	int ret = csr_open(path("bad.csr"), &g, err, sizeof(err));
	if (at_open) {
		cr_assert_eq(ret, -EINVAL, "csr_open accepted a corrupt file (%d)", ret);
	} else {
		cr_assert_eq(ret, 0, "%s", err);
		ret = csr_validate(&g, 0, path("bad.csr"), err, sizeof(err));
		cr_assert_eq(ret, -EINVAL, "csr_validate accepted a corrupt file");
		/* The BFS must refuse it too, without crashing. */
		uint32_t *level = malloc(g.n * sizeof(*level));
		struct bfs_result r;
		char err2[CSR_ERRLEN] = "";
		int failures = 0;
		for (uint64_t root = 0; root < g.n; root += 17) {
			if (bfs_run(&g, root, 2, level, NULL, &r, "bad.csr", err2, sizeof(err2)) < 0)
				failures++;
		}
		cr_assert_gt(failures, 0, "no BFS noticed the corruption");
		cr_assert(strstr(err2, "corrupt graph"), "%s", err2);
		free(level);
		csr_close(&g);
	}
	cr_assert(strstr(err, "bad.csr"), "message does not name the file: %s", err);
	cr_assert(strstr(err, needle), "message '%s' lacks '%s'", err, needle);
}

static void bad_magic(unsigned char *b, size_t *len)
{
	(void)len;
	b[0] = 'X';
}
static void bad_version(unsigned char *b, size_t *len)
{
	(void)len;
	b[8] = 9;
}
static void bad_width(unsigned char *b, size_t *len)
{
	(void)len;
	b[12] = 3;
}
static void truncated(unsigned char *b, size_t *len)
{
	(void)b;
	*len -= 8192;
}
static void short_header(unsigned char *b, size_t *len)
{
	(void)b;
	*len = 100;
}
static void huge_n(unsigned char *b, size_t *len)
{
	(void)len;
	uint64_t n = UINT64_C(1) << 50;
	memcpy(b + 16, &n, 8);
}
static void nbr_out_of_range(unsigned char *b, size_t *len)
{
	(void)len;
	struct csr_header h;
	memcpy(&h, b, sizeof(h));
	/* Every neighbour id becomes n + 5. */
	for (uint64_t i = 0; i < h.n_entries; i++) {
		uint32_t v = (uint32_t)h.n_vertices + 5;
		memcpy(b + h.nbrs_offset + i * 4, &v, 4);
	}
}
static void offsets_decrease(unsigned char *b, size_t *len)
{
	(void)len;
	struct csr_header h;
	memcpy(&h, b, sizeof(h));
	/* Every other offset jumps past m. */
	for (uint64_t v = 1; v < h.n_vertices; v += 2) {
		uint64_t o = h.n_entries + 1000;
		memcpy(b + CSR_HDR_SIZE + v * 8, &o, 8);
	}
}

Test(csr, refuses_bad_magic)
{
	expect_refused(bad_magic, "bad magic", 1);
}
Test(csr, refuses_bad_version)
{
	expect_refused(bad_version, "version", 1);
}
Test(csr, refuses_bad_width)
{
	expect_refused(bad_width, "width", 1);
}
Test(csr, refuses_truncated_file)
{
	expect_refused(truncated, "truncated", 1);
}
Test(csr, refuses_short_header)
{
	expect_refused(short_header, "shorter than its header", 1);
}
Test(csr, refuses_absurd_vertex_count)
{
	expect_refused(huge_n, "vertices", 1);
}
Test(csr, refuses_neighbour_out_of_range)
{
	expect_refused(nbr_out_of_range, "neighbour", 0);
}
Test(csr, refuses_decreasing_offsets)
{
	expect_refused(offsets_decrease, "offsets", 0);
}

Test(csr, missing_file_is_named)
{
	struct csr_graph g;
	char err[CSR_ERRLEN] = "";
	cr_assert_eq(csr_open(path("nope.csr"), &g, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "nope.csr"), "%s", err);
}

Test(csr, strict_check_finds_asymmetry)
{
	/* 0->1 without 1->0 */
	uint64_t off[] = {0, 1, 1};
	uint32_t nb[] = {1};
	char err[CSR_ERRLEN] = "";
	cr_assert_eq(csr_write(path("d.csr"), 2, 1, off, nb, 4, NULL, err, sizeof(err)), 0);
	struct csr_graph g;
	cr_assert_eq(csr_open(path("d.csr"), &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(csr_validate(&g, 0, "d", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(csr_validate(&g, 1, "d", err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "reverse"), "%s", err);
	csr_close(&g);
}

/* ---- BFS -------------------------------------------------------------- */

/* Run the parallel BFS and the reference from `root`; they must agree. */
static uint64_t compare_with_reference(const struct csr_graph *g, uint64_t root, unsigned threads)
{
	uint32_t *level = malloc(g->n * sizeof(*level));
	uint32_t *ref = malloc(g->n * sizeof(*ref));
	int64_t *parent = malloc(g->n * sizeof(*parent));
	cr_assert(level && ref && parent);
	struct bfs_result r;
	char err[CSR_ERRLEN] = "";
	cr_assert_eq(bfs_run(g, root, threads, level, parent, &r, "g", err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(bfs_reference(g, root, ref), 0);
	for (uint64_t v = 0; v < g->n; v++)
		cr_assert_eq(level[v], ref[v], "root %llu threads %u: vertex %llu level %u, reference %u",
			     (unsigned long long)root, threads, (unsigned long long)v, level[v],
			     ref[v]);
	cr_assert_eq(bfs_validate(g, root, level, parent, err, sizeof(err)), 0, "%s", err);
	uint64_t reached = 0, deg = 0;
	uint32_t maxl = 0;
	for (uint64_t v = 0; v < g->n; v++) {
		if (ref[v] == BFS_UNREACHED)
			continue;
		reached++;
		deg += g->off[v + 1] - g->off[v];
		maxl = ref[v] > maxl ? ref[v] : maxl;
	}
	cr_assert_eq(r.reached, reached);
	cr_assert_eq(r.edges_scanned, deg);
	cr_assert_eq(r.levels, maxl + 1);
	cr_assert_eq(r.checksum, bfs_checksum(ref, g->n));
	free(level);
	free(ref);
	free(parent);
	return r.checksum;
}

Test(bfs, matches_reference_on_rmat_graphs)
{
	for (unsigned scale = 6; scale <= 12; scale += 3) {
		gen(path("g.csr"), scale, scale, 4, 0);
		struct csr_graph g;
		char err[CSR_ERRLEN];
		cr_assert_eq(csr_open(path("g.csr"), &g, err, sizeof(err)), 0, "%s", err);
		uint64_t roots[6];
		int k = bfs_pick_roots(&g, 1, 6, roots);
		cr_assert_eq(k, 6);
		for (int i = 0; i < k; i++) {
			uint64_t c1 = compare_with_reference(&g, roots[i], 1);
			uint64_t c2 = compare_with_reference(&g, roots[i], 2);
			uint64_t c3 = compare_with_reference(&g, roots[i], 3);
			cr_assert(c1 == c2 && c2 == c3, "checksum depends on thread count");
		}
		/* An isolated vertex (R-MAT has many) reaches only itself. */
		for (uint64_t v = 0; v < g.n; v++) {
			if (g.off[v] == g.off[v + 1]) {
				compare_with_reference(&g, v, 2);
				break;
			}
		}
		csr_close(&g);
	}
}

Test(bfs, matches_reference_on_64bit_ids)
{
	gen(path("g.csr"), 10, 4, 8, 0);
	struct csr_graph g;
	char err[CSR_ERRLEN];
	cr_assert_eq(csr_open(path("g.csr"), &g, err, sizeof(err)), 0, "%s", err);
	uint64_t roots[3];
	cr_assert_eq(bfs_pick_roots(&g, 9, 3, roots), 3);
	for (int i = 0; i < 3; i++)
		compare_with_reference(&g, roots[i], 2);
	csr_close(&g);
}

Test(bfs, path_graph_levels)
{
	/* 0 - 1 - 2 - ... - 99 : level of v from 0 is v; from 50 is |v - 50|. */
	enum { N = 100 };
	uint64_t off[N + 1];
	uint32_t nb[2 * (N - 1)];
	uint64_t m = 0;
	for (uint32_t v = 0; v < N; v++) {
		off[v] = m;
		if (v > 0)
			nb[m++] = v - 1;
		if (v < N - 1)
			nb[m++] = v + 1;
	}
	off[N] = m;
	char err[CSR_ERRLEN] = "";
	cr_assert_eq(csr_write(path("p.csr"), N, m, off, nb, 4, NULL, err, sizeof(err)), 0, "%s",
		     err);
	struct csr_graph g;
	cr_assert_eq(csr_open(path("p.csr"), &g, err, sizeof(err)), 0, "%s", err);
	uint32_t level[N];
	int64_t parent[N];
	struct bfs_result r;
	cr_assert_eq(bfs_run(&g, 50, 2, level, parent, &r, "p", err, sizeof(err)), 0, "%s", err);
	for (uint32_t v = 0; v < N; v++)
		cr_assert_eq(level[v], v > 50 ? v - 50 : 50 - v);
	cr_assert_eq(r.levels, 51u);
	cr_assert_eq(r.reached, (uint64_t)N);
	cr_assert_eq(parent[49], 50);
	cr_assert_eq(parent[51], 50);
	cr_assert_eq(parent[0], 1);
	compare_with_reference(&g, 0, 2);
	csr_close(&g);
}

Test(bfs, disconnected_components_stay_unreached)
{
	/* two triangles {0,1,2} {3,4,5} and isolated 6 */
	uint64_t off[] = {0, 2, 4, 6, 8, 10, 12, 12};
	uint32_t nb[] = {1, 2, 0, 2, 0, 1, 4, 5, 3, 5, 3, 4};
	char err[CSR_ERRLEN] = "";
	cr_assert_eq(csr_write(path("t.csr"), 7, 12, off, nb, 4, NULL, err, sizeof(err)), 0);
	struct csr_graph g;
	cr_assert_eq(csr_open(path("t.csr"), &g, err, sizeof(err)), 0, "%s", err);
	uint32_t level[7];
	int64_t parent[7];
	struct bfs_result r;
	cr_assert_eq(bfs_run(&g, 4, 2, level, parent, &r, "t", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.reached, 3u);
	for (int v = 0; v < 3; v++)
		cr_assert_eq(level[v], BFS_UNREACHED);
	cr_assert_eq(level[6], BFS_UNREACHED);
	cr_assert_eq(parent[6], -1);
	cr_assert_eq(level[3], 1u);
	cr_assert_eq(level[5], 1u);
	cr_assert_eq(bfs_validate(&g, 4, level, parent, err, sizeof(err)), 0, "%s", err);
	/* A wrong tree is caught by the validator. */
	parent[5] = 3;
	cr_assert_eq(bfs_validate(&g, 4, level, parent, err, sizeof(err)), -EINVAL);
	cr_assert_eq(bfs_run(&g, 7, 2, level, parent, &r, "t", err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "root 7"), "%s", err);
	csr_close(&g);
}

Test(bfs, root_picker_is_deterministic_and_skips_isolated_vertices)
{
	gen(path("g.csr"), 10, 3, 4, 0);
	struct csr_graph g;
	char err[CSR_ERRLEN];
	cr_assert_eq(csr_open(path("g.csr"), &g, err, sizeof(err)), 0, "%s", err);
	uint64_t a[16], b[16];
	cr_assert_eq(bfs_pick_roots(&g, 42, 16, a), 16);
	cr_assert_eq(bfs_pick_roots(&g, 42, 16, b), 16);
	cr_assert_eq(memcmp(a, b, sizeof(a)), 0);
	for (int i = 0; i < 16; i++) {
		cr_assert_gt(g.off[a[i] + 1], g.off[a[i]], "root %llu has no edge",
			     (unsigned long long)a[i]);
		for (int j = 0; j < i; j++)
			cr_assert_neq(a[i], a[j]);
	}
	csr_close(&g);
}

/* ---- the programs ----------------------------------------------------- */

static const char *prog(const char *name)
{
	static char bufs[4][PATH_MAX];
	static int i;
	char *b = bufs[i++ % 4];
	const char *root = getenv("UMAPFS_BUILD_ROOT");
	cr_assert_not_null(root, "UMAPFS_BUILD_ROOT is not set (run through meson test)");
	snprintf(b, PATH_MAX, "%s/bench/%s", root, name);
	return b;
}

/* Run a shell command; return its exit status and its stdout in out. */
static int run(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f);
	size_t n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static uint64_t field(const char *line, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), " %s=", key);
	const char *p = strstr(line, k);
	cr_assert_not_null(p, "no %s in '%s'", key, line);
	return strtoull(p + strlen(k), NULL, strcmp(key, "checksum") ? 10 : 16);
}

Test(programs, rmat_gen_and_bfs_agree_with_the_library)
{
	char out[4096];
	cr_assert_eq(run(out, sizeof(out), "'%s' -s 11 -S 5 '%s'", prog("rmat_gen"), path("p.csr")),
		     0);
	gen(path("l.csr"), 11, 5, 4, 0);
	cr_assert(same_file(path("p.csr"), path("l.csr")), "rmat_gen and rmat_generate differ");

	cr_assert_eq(run(out, sizeof(out), "'%s' -V -t 2 -r 3 '%s'", prog("bfs"), path("p.csr")), 0,
		     "%s", out);
	cr_assert(strstr(out, "validated=yes"), "%s", out);
	uint64_t c2 = field(out, "checksum");
	cr_assert_eq(field(out, "roots"), 3u);
	cr_assert_eq(field(out, "n"), 2048u);
	cr_assert_eq(run(out, sizeof(out), "'%s' -t 1 -r 3 '%s'", prog("bfs"), path("p.csr")), 0);
	cr_assert_eq(field(out, "checksum"), c2, "checksum depends on threads");

	/* The same three searches through the library give the same checksum. */
	struct csr_graph g;
	char err[CSR_ERRLEN];
	cr_assert_eq(csr_open(path("l.csr"), &g, err, sizeof(err)), 0, "%s", err);
	uint64_t roots[3];
	cr_assert_eq(bfs_pick_roots(&g, 1, 3, roots), 3);
	uint32_t *level = malloc(g.n * sizeof(*level));
	uint64_t sum = UINT64_C(0x6266732d73756d);
	for (int i = 0; i < 3; i++) {
		struct bfs_result r;
		cr_assert_eq(bfs_run(&g, roots[i], 2, level, NULL, &r, "l", err, sizeof(err)), 0);
		sum = csr_mix64(sum ^ r.checksum);
	}
	cr_assert_eq(sum, c2);
	free(level);
	csr_close(&g);
}

Test(programs, bad_input_gives_a_clear_error)
{
	char out[4096];
	cr_assert_eq(run(out, sizeof(out), "'%s' -s 40 '%s' 2>&1", prog("rmat_gen"), path("x")), 2);
	cr_assert(strstr(out, "-s"), "%s", out);
	spit(path("junk.csr"), "hello, not a graph", 18);
	cr_assert_eq(run(out, sizeof(out), "'%s' '%s' 2>&1", prog("bfs"), path("junk.csr")), 1);
	cr_assert(strstr(out, "junk.csr") && strstr(out, "shorter than its header"), "%s", out);
	cr_assert_eq(run(out, sizeof(out), "'%s' -t 0 '%s' 2>&1", prog("bfs"), path("junk.csr")), 2);
}

Test(programs, disk_uring_reads_a_file)
{
	char out[4096];
	cr_assert_eq(run(out, sizeof(out), "'%s' -s 16M -T 0.2 '%s'", prog("disk_uring"),
			 path("disk.dat")),
		     0, "%s", out);
	struct stat st;
	cr_assert_eq(stat(path("disk.dat"), &st), 0);
	cr_assert_eq(st.st_size, 16 << 20);
	const char *seq = strstr(out, "disk test=seq");
	const char *rnd = strstr(out, "disk test=rand");
	cr_assert(seq && rnd, "%s", out);
	/* The sequential pass reads the whole file exactly once. */
	cr_assert_eq(field(seq, "bytes"), (uint64_t)16 << 20, "%s", out);
	cr_assert_gt(field(rnd, "bytes"), 0u);
	cr_assert_eq(field(rnd, "bytes") % 4096, 0u);
	/* A block size that is not a power of two is refused. */
	cr_assert_eq(run(out, sizeof(out), "'%s' -b 3000 '%s' 2>&1", prog("disk_uring"),
			 path("disk.dat")),
		     2);
}
