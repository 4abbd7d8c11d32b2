/*
 * mmap_scan: touch a file through mmap, sequentially or at random 4 KiB
 * pages, and report the rate.  The same program scans a view through a
 * umapfs mount and the plain file through the kernel, so the two differ only
 * in who serves the faults.
 *
 *   mmap_scan [-r] [-n TOUCHES] [-S SEED] [-M] [-w] [-c] FILE
 *
 *   (default)  sequential: touch every 4 KiB page, start to end; the rate is
 *              file bytes per second
 *   -r         random: TOUCHES (default: one per 4 KiB page of the file, at
 *              most 65536) touches of random 4 KiB pages; the rate is touched
 *              bytes (TOUCHES x 4 KiB) per second
 *   -w         a touch reads one 8-byte word of the page (measures faults and
 *              mapping alone); by default it reads all 4 KiB (a scan that uses
 *              the data)
 *   -M         madvise(MADV_RANDOM) on the mapping (no kernel readahead)
 *   -c         CSV line instead of key=value: mode,bytes,touches,seconds,mbps,checksum
 *
 * Output (one line): mode=seq bytes=N touches=N seconds=S mbps=M checksum=X
 * where mbps is 10^6 bytes per second.  The checksum (sum of the words read)
 * lets a caller check that the mount served the same bytes as the file.
 * Exit status 0, or 1 with a message on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void usage(void)
{
	fprintf(stderr, "usage: mmap_scan [-r] [-n TOUCHES] [-S SEED] [-M] [-w] [-c] FILE\n");
	exit(1);
}

int main(int argc, char **argv)
{
	int random = 0, madv = 0, csv = 0, word = 0, opt;
	uint64_t touches = 0, seed = 12345;
	while ((opt = getopt(argc, argv, "rn:S:Mwc")) != -1) {
		switch (opt) {
		case 'r':
			random = 1;
			break;
		case 'n':
			touches = strtoull(optarg, NULL, 10);
			break;
		case 'S':
			seed = strtoull(optarg, NULL, 10);
			break;
		case 'M':
			madv = 1;
			break;
		case 'w':
			word = 1;
			break;
		case 'c':
			csv = 1;
			break;
		default:
			usage();
		}
	}
	if (optind + 1 != argc)
		usage();
	const char *path = argv[optind];
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "mmap_scan: %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size < 4096) {
		fprintf(stderr, "mmap_scan: %s: not a file of at least 4 KiB\n", path);
		return 1;
	}
	uint64_t size = (uint64_t)st.st_size, pages = size / 4096;
	const volatile uint64_t *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "mmap_scan: mmap %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (madv && madvise((void *)map, size, MADV_RANDOM) < 0) {
		fprintf(stderr, "mmap_scan: madvise: %s\n", strerror(errno));
		return 1;
	}
	if (!touches || !random)
		touches = random ? (pages < 65536 ? pages : 65536) : pages;
	if (!seed)
		seed = 1;

	uint64_t sum = 0;
	double t0 = now();
	for (uint64_t i = 0; i < touches; i++) {
		uint64_t p = random ? xorshift(&seed) % pages : i;
		if (word) {
			sum += map[p * 512 + (p % 511)];
		} else {
			uint64_t s = 0;
			for (unsigned w = 0; w < 512; w++)
				s += map[p * 512 + w];
			sum += s;
		}
	}
	double secs = now() - t0;
	uint64_t bytes = random ? touches * 4096 : pages * 4096;
	double mbps = secs > 0 ? (double)bytes / secs / 1e6 : 0;
	if (csv)
		printf("%s,%llu,%llu,%.6f,%.1f,%016llx\n", random ? "rand" : "seq",
		       (unsigned long long)bytes, (unsigned long long)touches, secs, mbps,
		       (unsigned long long)sum);
	else
		printf("mode=%s bytes=%llu touches=%llu seconds=%.6f mbps=%.1f checksum=%016llx\n",
		       random ? "rand" : "seq", (unsigned long long)bytes, (unsigned long long)touches,
		       secs, mbps, (unsigned long long)sum);
	munmap((void *)map, size);
	close(fd);
	return 0;
}
