/*
 * disk_uring: the physical limit.  Sequential and random read bandwidth of
 * the disk under a file, with O_DIRECT reads through io_uring.
 *
 *   disk_uring [-s SIZE] [-b SEQ_BS] [-q SEQ_QD] [-B RAND_BS] [-Q RAND_QD]
 *              [-T SECONDS] [-S SEED] FILE
 *
 * If FILE is missing or shorter than SIZE it is (re)written first with
 * pseudo-random bytes (O_DIRECT, then fdatasync).  Then:
 *   seq   one whole pass over the file in SEQ_BS reads (default 1 MiB), QD SEQ_QD (16)
 *   rand  RAND_BS reads (default 4 KiB) at uniformly random aligned offsets,
 *         QD RAND_QD (32), for SECONDS (default 3)
 * O_DIRECT bypasses the page cache, so no cache dropping is needed.  Prints
 * one key=value line per test: MB/s (10^6 bytes), IOPS, mean latency.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csr.h" /* csr_mix64 */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_size(const char *s, uint64_t *out)
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
	default: break;
	}
	if (*end || v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* Write `size` pseudo-random bytes to `path` with O_DIRECT. */
static int make_file(const char *path, uint64_t size, uint64_t seed)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "disk_uring: %s: %s\n", path, strerror(errno));
		return -1;
	}
	const size_t bs = 1 << 20;
	uint64_t *buf;
	if (posix_memalign((void **)&buf, 4096, bs)) {
		close(fd);
		return -1;
	}
	uint64_t ctr = seed;
	int ret = 0;
	for (uint64_t off = 0; off < size; off += bs) {
		for (size_t i = 0; i < bs / 8; i++)
			buf[i] = csr_mix64(++ctr);
		ssize_t w = pwrite(fd, buf, bs, (off_t)off);
		if (w != (ssize_t)bs) {
			fprintf(stderr, "disk_uring: %s: write at %llu: %s\n", path,
				(unsigned long long)off, w < 0 ? strerror(errno) : "short write");
			ret = -1;
			break;
		}
	}
	if (ret == 0 && fdatasync(fd) < 0) {
		fprintf(stderr, "disk_uring: %s: fdatasync: %s\n", path, strerror(errno));
		ret = -1;
	}
	free(buf);
	close(fd);
	return ret;
}

struct job {
	const char *name;
	int fd;
	uint64_t size, bs;
	unsigned qd;
	int random;
	double seconds;
	uint64_t seed;
};

/*
 * Run one read job; prints its line.  Keeps `qd` reads in flight until the
 * sequential pass ends or the time is up.
 */
static int run_job(const struct job *j)
{
	struct io_uring ring;
	int ret = io_uring_queue_init(j->qd, &ring, 0);
	if (ret < 0) {
		fprintf(stderr, "disk_uring: io_uring_queue_init: %s\n", strerror(-ret));
		return -1;
	}
	int failed = 0;
	char **bufs = calloc(j->qd, sizeof(*bufs));
	double *start = calloc(j->qd, sizeof(*start)); /* 0: slot free */
	for (unsigned i = 0; bufs && i < j->qd; i++)
		if (posix_memalign((void **)&bufs[i], 4096, j->bs))
			bufs[i] = NULL, failed = 1;
	if (!bufs || !start || failed) {
		fprintf(stderr, "disk_uring: out of memory\n");
		failed = 1;
		goto out;
	}
	uint64_t nblocks = j->size / j->bs;
	uint64_t next = 0, ios = 0, bytes = 0, rng = j->seed;
	unsigned inflight = 0;
	double lat_sum = 0;
	double t0 = now(), deadline = t0 + j->seconds;
	int stop = 0;
	for (;;) {
		/* Top up the queue; the slot index rides in user_data. */
		while (!stop && inflight < j->qd) {
			uint64_t blk;
			if (j->random) {
				rng += UINT64_C(0x9e3779b97f4a7c15);
				blk = (uint64_t)(((unsigned __int128)csr_mix64(rng) * nblocks) >> 64);
			} else {
				if (next == nblocks) {
					stop = 1;
					break;
				}
				blk = next++;
			}
			unsigned slot = 0;
			while (start[slot] != 0)
				slot++;
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_read(sqe, j->fd, bufs[slot], (unsigned)j->bs, blk * j->bs);
			io_uring_sqe_set_data64(sqe, slot);
			start[slot] = now();
			inflight++;
		}
		if (inflight == 0)
			break;
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR) {
			/* Nothing more can be waited for safely: leak the buffers. */
			fprintf(stderr, "disk_uring: io_uring_submit_and_wait: %s\n", strerror(-ret));
			io_uring_queue_exit(&ring);
			return -1;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			unsigned slot = (unsigned)io_uring_cqe_get_data64(cqe);
			double t = now();
			if (cqe->res != (int)j->bs && !failed) {
				fprintf(stderr, "disk_uring: %s read: %s\n", j->name,
					cqe->res < 0 ? strerror(-cqe->res) : "short read");
				failed = 1;
			}
			lat_sum += t - start[slot];
			start[slot] = 0;
			ios++;
			bytes += j->bs;
			inflight--;
			seen++;
			if (t >= deadline || failed)
				stop = 1;
		}
		io_uring_cq_advance(&ring, seen);
	}
	if (!failed) {
		double el = now() - t0;
		printf("disk test=%s bs=%llu qd=%u seconds=%.3f bytes=%llu mbps=%.1f iops=%.0f "
		       "lat_us=%.1f\n",
		       j->name, (unsigned long long)j->bs, j->qd, el, (unsigned long long)bytes,
		       bytes / el / 1e6, ios / el, ios ? lat_sum / ios * 1e6 : 0);
		fflush(stdout);
	}
out:
	io_uring_queue_exit(&ring);
	for (unsigned i = 0; bufs && i < j->qd; i++)
		free(bufs[i]);
	free(bufs);
	free(start);
	return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t size = UINT64_C(1) << 30, sbs = 1 << 20, rbs = 4096, sqd = 16, rqd = 32, seed = 1;
	double seconds = 3;
	int c;
	while ((c = getopt(argc, argv, "s:b:q:B:Q:T:S:h")) != -1) {
		switch (c) {
		case 's':
			if (parse_size(optarg, &size) < 0)
				goto bad;
			break;
		case 'b':
			if (parse_size(optarg, &sbs) < 0)
				goto bad;
			break;
		case 'q':
			if (parse_size(optarg, &sqd) < 0 || sqd < 1 || sqd > 4096)
				goto bad;
			break;
		case 'B':
			if (parse_size(optarg, &rbs) < 0)
				goto bad;
			break;
		case 'Q':
			if (parse_size(optarg, &rqd) < 0 || rqd < 1 || rqd > 4096)
				goto bad;
			break;
		case 'T': {
			char *end;
			seconds = strtod(optarg, &end);
			if (end == optarg || *end || !(seconds > 0 && seconds < 3600))
				goto bad;
			break;
		}
		case 'S':
			if (parse_size(optarg, &seed) < 0)
				goto bad;
			break;
		case 'h':
			printf("usage: disk_uring [-s SIZE] [-b SEQ_BS] [-q SEQ_QD] [-B RAND_BS] "
			       "[-Q RAND_QD] [-T SECONDS] [-S SEED] FILE\n");
			return 0;
		default:
			goto usage;
		}
	}
	if (optind != argc - 1)
		goto usage;
	for (uint64_t bs = sbs;; bs = rbs) {
		if (bs < 512 || bs > (UINT64_C(64) << 20) || (bs & (bs - 1)) || bs > size) {
			fprintf(stderr, "disk_uring: block size %llu: must be a power of two from "
				"512 to 64M and at most the file size\n", (unsigned long long)bs);
			return 2;
		}
		if (bs == rbs)
			break;
	}
	if (size % sbs || size % rbs) {
		fprintf(stderr, "disk_uring: size %llu must be a multiple of both block sizes\n",
			(unsigned long long)size);
		return 2;
	}
	const char *path = argv[optind];
	struct stat st;
	if (stat(path, &st) < 0 || (uint64_t)st.st_size < size) {
		if (make_file(path, size, seed) < 0)
			return 1;
	}
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "disk_uring: %s: O_DIRECT open: %s\n", path, strerror(errno));
		return 1;
	}
	struct job seq = { "seq", fd, size, sbs, (unsigned)sqd, 0, 1e9, seed };
	struct job rnd = { "rand", fd, size, rbs, (unsigned)rqd, 1, seconds, seed };
	int ret = run_job(&seq);
	if (ret == 0)
		ret = run_job(&rnd);
	close(fd);
	return ret < 0 ? 1 : 0;
bad:
	fprintf(stderr, "disk_uring: bad value '%s' for -%c\n", optarg, c);
usage:
	fprintf(stderr, "usage: disk_uring [-s SIZE] [-b SEQ_BS] [-q SEQ_QD] [-B RAND_BS] "
			"[-Q RAND_QD] [-T SECONDS] [-S SEED] FILE\n");
	return 2;
}
