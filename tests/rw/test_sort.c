/*
 * The in-place out-of-core sort (examples/sort.c, umapfs-sort) through a
 * writable mount whose buffer is a quarter of the file, and through kernel
 * mmap of a plain file; the result is checked sorted and a permutation of
 * the generated keys (checksum recomputed from the seed) in the backing
 * file after unmount.  The verifier itself must catch an unsorted file and
 * a sorted non-permutation; bad input gives a clear message.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rwutil.h"

static struct tmount m;
static char sortbin[1024];

static void setup(void)
{
	tm_init(&m, "rw-sort");
	const char *root = getenv("UMAPFS_BUILD_ROOT");
	snprintf(sortbin, sizeof(sortbin), "%s/examples/umapfs-sort", root ? root : ".");
}

static void teardown(void)
{
	tm_cleanup(&m);
}

TestSuite(sort, .init = setup, .fini = teardown, .timeout = 90);

/* Run umapfs-sort with `args` in the work directory; output to out.log (truncated first). */
static int sort_run(const char *args)
{
	const char *log = tm_path(&m, "out.log");
	unlink(log);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "'%s' %s", sortbin, args);
	return run_cmd(m.dir, log, 60, cmd);
}

static const char *out(void)
{
	return slurp(tm_path(&m, "out.log"));
}

static void sort_through_mount(const char *dist, uint64_t nkeys)
{
	char args[512];
	snprintf(args, sizeof(args), "--generate %llu --seed 99 --dist %s keys.bin",
		 (unsigned long long)nkeys, dist);
	cr_assert_eq(sort_run(args), 0, "%s", out());
	write_text(tm_path(&m, "desc.txt"), "view keys\nkeys.bin 0 rest\n");
	char opts[128];
	snprintf(opts, sizeof(opts), "writable,page_size=64K,buffer_size=%lluK",
		 (unsigned long long)(nkeys * 8 / 4 / 1024));
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), opts), 0, "%s", tm_stderr(&m));
	/* no --mem: the sort takes the mount's buffer and page size from .umapfs/stats */
	int r = sort_run("mnt/keys");
	cr_assert_eq(r, 0, "sort through the mount failed (%d):\n%s\ndaemon:\n%s", r, out(),
		     tm_stderr(&m));
	char want[128];
	snprintf(want, sizeof(want), "mem=%llu unit=65536", (unsigned long long)(nkeys * 8 / 4));
	cr_assert(strstr(out(), want) != NULL, "did not use the mount's limits (%s):\n%s", want,
		  out());
	const char *stats = slurp(tm_path(&m, "mnt/.umapfs/stats"));
	cr_assert_gt(stats_get(stats, "kernel_invalidations"), 0,
		     "a buffer of a quarter of the file was never full?\n%s", stats);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
	/* the backing file, read directly: sorted, and the generated multiset */
	snprintf(args, sizeof(args), "--verify --seed 99 --dist %s keys.bin", dist);
	cr_assert_eq(sort_run(args), 0, "%s", out());
}

Test(sort, uniform_through_mount_quarter_buffer)
{
	sort_through_mount("uniform", 2u << 20); /* 16 MiB, 4 MiB buffer */
}

Test(sort, duplicates_through_mount_quarter_buffer)
{
	sort_through_mount("dups", 1u << 20);
}

Test(sort, plain_file_kernel_mmap)
{
	static const char *const dists[] = { "uniform", "narrow", "reverse", "sorted" };
	for (int i = 0; i < 4; i++) {
		char args[256];
		snprintf(args, sizeof(args), "--generate 1000003 --seed %d --dist %s k.bin", i, dists[i]);
		cr_assert_eq(sort_run(args), 0, "%s", out());
		cr_assert_eq(sort_run("--mem 1M k.bin"), 0, "%s: %s", dists[i], out());
		snprintf(args, sizeof(args), "--verify --seed %d --dist %s k.bin", i, dists[i]);
		cr_assert_eq(sort_run(args), 0, "%s: %s", dists[i], out());
	}
}

Test(sort, verify_catches_unsorted_and_non_permutation)
{
	cr_assert_eq(sort_run("--generate 100000 --seed 5 k.bin"), 0, "%s", out());
	cr_assert_eq(sort_run("k.bin"), 0, "%s", out());
	/* the printed input checksum is accepted as --expect */
	const char *c = strstr(out(), "checksum=");
	cr_assert(c);
	char sum[64];
	cr_assert_eq(sscanf(c, "checksum=%48s", sum), 1);
	char args[256];
	snprintf(args, sizeof(args), "--verify --expect %s k.bin", sum);
	cr_assert_eq(sort_run(args), 0, "%s", out());

	int fd = open(tm_path(&m, "k.bin"), O_RDWR);
	cr_assert_geq(fd, 0);
	uint64_t a, b;
	cr_assert_eq(pread(fd, &a, 8, 8 * 500), 8);
	cr_assert_eq(pread(fd, &b, 8, 8 * 90000), 8);
	cr_assert_neq(a, b);
	/* swapped: same multiset, not sorted */
	cr_assert_eq(pwrite(fd, &b, 8, 8 * 500), 8);
	cr_assert_eq(pwrite(fd, &a, 8, 8 * 90000), 8);
	cr_assert_eq(sort_run("--verify --seed 5 k.bin"), 1, "%s", out());
	cr_assert(strstr(out(), "not sorted") && !strstr(out(), "permutation"), "%s", out());
	/* restored order, one key changed keeping order: sorted, not a permutation */
	cr_assert_eq(pwrite(fd, &a, 8, 8 * 500), 8);
	cr_assert_eq(pwrite(fd, &b, 8, 8 * 90000), 8);
	uint64_t last;
	cr_assert_eq(pread(fd, &last, 8, 8 * 99999), 8);
	last = UINT64_MAX;
	cr_assert_eq(pwrite(fd, &last, 8, 8 * 99999), 8);
	close(fd);
	cr_assert_eq(sort_run("--verify --seed 5 k.bin"), 1, "%s", out());
	cr_assert(strstr(out(), "not a permutation") && strstr(out(), "sorted=yes"), "%s", out());
}

Test(sort, bad_input_is_a_clear_error)
{
	write_text(tm_path(&m, "odd.bin"), "0123456789"); /* 10 bytes */
	cr_assert_eq(sort_run("odd.bin"), 1, "%s", out());
	cr_assert(strstr(out(), "odd.bin") && strstr(out(), "multiple of 8"), "%s", out());
	cr_assert_eq(sort_run("missing.bin"), 1, "%s", out());
	cr_assert(strstr(out(), "missing.bin") && strstr(out(), "No such file"), "%s", out());
	cr_assert_eq(sort_run("--threads 0 odd.bin"), 2, "%s", out());
	/* a read-only mount: the writable mapping is refused at open, clearly */
	cr_assert_eq(sort_run("--generate 4096 --seed 1 keys.bin"), 0, "%s", out());
	write_text(tm_path(&m, "desc.txt"), "view keys\nkeys.bin 0 rest\n");
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "page_size=64K,buffer_size=1M"), 0, "%s",
		     tm_stderr(&m));
	cr_assert_eq(sort_run("mnt/keys"), 1, "%s", out());
	cr_assert(strstr(out(), "mnt/keys") && strstr(out(), "Permission denied"), "%s", out());
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
}
