/*
 * rmat_gen: write an R-MAT graph (Graph500 parameters) as a CSR file.
 *
 *   rmat_gen [-s SCALE] [-e EDGEFACTOR] [-S SEED] [-a A -b B -c C] [-w 4|8]
 *            [-m MEMLIMIT] [-t TMPDIR] [-v] OUTPUT
 *
 * Same parameters, same bytes.  Format and method: csr.h, rmat.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csr.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rmat_gen [options] OUTPUT\n"
		"  -s SCALE       2^SCALE vertices (1..32, default 16)\n"
		"  -e EDGEFACTOR  edges generated per vertex (default 16)\n"
		"  -S SEED        generator seed (default 1)\n"
		"  -a A -b B -c C quadrant probabilities (default 0.57 0.19 0.19)\n"
		"  -w 4|8         bytes per neighbour id (default 4)\n"
		"  -m SIZE        memory for sorting, K/M/G suffix (default 1G); more edges\n"
		"                 than fit are sorted externally in partition files\n"
		"  -t DIR         directory for partition files (default: OUTPUT's)\n"
		"  -v             progress on stderr\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	uint64_t mul = 1;
	switch (*end) {
	case 'k': case 'K': mul = UINT64_C(1) << 10; end++; break;
	case 'm': case 'M': mul = UINT64_C(1) << 20; end++; break;
	case 'g': case 'G': mul = UINT64_C(1) << 30; end++; break;
	case 't': case 'T': mul = UINT64_C(1) << 40; end++; break;
	default: break;
	}
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

static int parse_prob(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= 0 && v <= 1))
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	struct rmat_params p;
	rmat_params_init(&p);
	int c;
	uint64_t v;
	while ((c = getopt(argc, argv, "s:e:S:a:b:c:w:m:t:vh")) != -1) {
		switch (c) {
		case 's':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 32)
				goto bad;
			p.scale = (unsigned)v;
			break;
		case 'e':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 1024)
				goto bad;
			p.edgefactor = (unsigned)v;
			break;
		case 'S':
			if (parse_u64(optarg, &p.seed) < 0)
				goto bad;
			break;
		case 'a':
			if (parse_prob(optarg, &p.a) < 0)
				goto bad;
			break;
		case 'b':
			if (parse_prob(optarg, &p.b) < 0)
				goto bad;
			break;
		case 'c':
			if (parse_prob(optarg, &p.c) < 0)
				goto bad;
			break;
		case 'w':
			if (parse_u64(optarg, &v) < 0 || (v != 4 && v != 8))
				goto bad;
			p.nbr_bytes = (unsigned)v;
			break;
		case 'm':
			if (parse_u64(optarg, &p.mem_limit) < 0 || p.mem_limit == 0)
				goto bad;
			break;
		case 't':
			p.tmpdir = optarg;
			break;
		case 'v':
			p.verbose = 1;
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
	char err[CSR_ERRLEN];
	int ret = rmat_generate(&p, argv[optind], err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "rmat_gen: %s\n", err);
		return 1;
	}
	return 0;
bad:
	fprintf(stderr, "rmat_gen: bad value '%s' for -%c\n", optarg, c);
	usage(stderr);
	return 2;
}
