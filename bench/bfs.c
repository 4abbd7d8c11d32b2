/*
 * bfs: breadth-first search over a CSR graph file, read through mmap.
 *
 *   bfs [-t THREADS] [-r NROOTS] [-R ROOT] [-S SEED] [-a ADVICE] [-V] [-v] FILE
 *
 * FILE may be a plain file (the kernel pages it) or a file in a umapfs mount
 * (umapfs pages it).  Prints one line of key=value pairs: the total search
 * time over all roots, TEPS (Graph500: undirected edges in the traversed
 * components per second), and a checksum of the level arrays that does not
 * depend on the thread count or the pager: equal checksums mean equal
 * results.  -V also checks every search against a serial reference BFS and
 * validates the BFS trees (slow; for correctness runs).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "csr.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bfs [options] FILE\n"
		"  -t THREADS  search threads (default 2)\n"
		"  -r NROOTS   searches from NROOTS roots picked from SEED (default 4)\n"
		"  -R ROOT     one search from vertex ROOT instead\n"
		"  -S SEED     root seed (default 1)\n"
		"  -a ADVICE   madvise the mapping: normal, random, sequential, willneed\n"
		"              (default: none)\n"
		"  -V          validate the graph, each tree, and each result against a\n"
		"              serial reference BFS (slow)\n"
		"  -v          one line per root on stderr\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t threads = 2, nroots = 4, root = 0, seed = 1;
	int one_root = 0, validate = 0, verbose = 0, advice = -1;
	int c;
	while ((c = getopt(argc, argv, "t:r:R:S:a:Vvh")) != -1) {
		switch (c) {
		case 't':
			if (parse_u64(optarg, &threads) < 0 || threads < 1 || threads > 256)
				goto bad;
			break;
		case 'r':
			if (parse_u64(optarg, &nroots) < 0 || nroots < 1 || nroots > 1024)
				goto bad;
			break;
		case 'R':
			if (parse_u64(optarg, &root) < 0)
				goto bad;
			one_root = 1;
			break;
		case 'S':
			if (parse_u64(optarg, &seed) < 0)
				goto bad;
			break;
		case 'a':
			if (!strcmp(optarg, "normal"))
				advice = MADV_NORMAL;
			else if (!strcmp(optarg, "random"))
				advice = MADV_RANDOM;
			else if (!strcmp(optarg, "sequential"))
				advice = MADV_SEQUENTIAL;
			else if (!strcmp(optarg, "willneed"))
				advice = MADV_WILLNEED;
			else
				goto bad;
			break;
		case 'V':
			validate = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	char err[CSR_ERRLEN];
	struct csr_graph g;
	if (csr_open(path, &g, err, sizeof(err)) < 0) {
		fprintf(stderr, "bfs: %s\n", err);
		return 1;
	}
	int status = 1;
	uint64_t *roots = calloc(nroots, sizeof(*roots));
	uint32_t *level = malloc(g.n * sizeof(*level));
	int64_t *parent = malloc(g.n * sizeof(*parent));
	uint32_t *ref = validate ? malloc(g.n * sizeof(*ref)) : NULL;
	if (!roots || !level || !parent || (validate && !ref)) {
		fprintf(stderr, "bfs: %s: out of memory for %llu vertices\n", path,
			(unsigned long long)g.n);
		goto out;
	}
	if (advice >= 0 && madvise(g.map, g.map_len, advice) < 0)
		fprintf(stderr, "bfs: %s: madvise: %s (ignored)\n", path, strerror(errno));
	if (validate && csr_validate(&g, 0, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "bfs: %s\n", err);
		goto out;
	}
	if (one_root) {
		roots[0] = root;
		nroots = 1;
	} else {
		int k = bfs_pick_roots(&g, seed, (unsigned)nroots, roots);
		if (k <= 0) {
			fprintf(stderr, "bfs: %s: no vertex has an edge\n", path);
			goto out;
		}
		nroots = (uint64_t)k;
	}

	double total = 0;
	uint64_t edges = 0, reached = 0, sum = UINT64_C(0x6266732d73756d);
	uint32_t levels = 0;
	for (uint64_t i = 0; i < nroots; i++) {
		struct bfs_result r;
		if (bfs_run(&g, roots[i], (unsigned)threads, level, parent, &r, path, err,
			    sizeof(err)) < 0) {
			fprintf(stderr, "bfs: %s\n", err);
			goto out;
		}
		total += r.seconds;
		edges += r.edges_scanned / 2;
		reached += r.reached;
		if (r.levels > levels)
			levels = r.levels;
		sum = csr_mix64(sum ^ r.checksum);
		if (verbose)
			fprintf(stderr,
				"bfs: root %llu: %.6f s, reached %llu, levels %u, %.3g TEPS, checksum %016llx\n",
				(unsigned long long)roots[i], r.seconds,
				(unsigned long long)r.reached, r.levels,
				r.seconds > 0 ? (double)r.edges_scanned / 2 / r.seconds : 0,
				(unsigned long long)r.checksum);
		if (validate) {
			if (bfs_validate(&g, roots[i], level, parent, err, sizeof(err)) < 0) {
				fprintf(stderr, "bfs: %s: root %llu: invalid BFS tree: %s\n", path,
					(unsigned long long)roots[i], err);
				goto out;
			}
			if (bfs_reference(&g, roots[i], ref) < 0 ||
			    memcmp(ref, level, g.n * sizeof(*ref)) != 0) {
				fprintf(stderr, "bfs: %s: root %llu: levels differ from the serial reference\n",
					path, (unsigned long long)roots[i]);
				goto out;
			}
		}
	}
	printf("bfs file=%s n=%llu m=%llu threads=%llu roots=%llu seconds=%.6f teps=%.6g "
	       "reached=%llu edges=%llu levels=%u checksum=%016llx%s\n",
	       path, (unsigned long long)g.n, (unsigned long long)g.m,
	       (unsigned long long)threads, (unsigned long long)nroots, total,
	       total > 0 ? (double)edges / total : 0, (unsigned long long)reached,
	       (unsigned long long)edges, levels, (unsigned long long)sum,
	       validate ? " validated=yes" : "");
	status = 0;
out:
	free(roots);
	free(level);
	free(parent);
	free(ref);
	csr_close(&g);
	return status;
bad:
	fprintf(stderr, "bfs: bad value '%s' for -%c\n", optarg, c);
	usage(stderr);
	return 2;
}
