/*
 * fio through a writable mount: random writes with ioengine=mmap into a
 * view (64 KiB pages, 2 MiB buffer: 16x smaller than the file, and 16 KiB
 * blocks so every write covers part of an engine page), each block carrying
 * a crc32c header, verified in the same job and made durable with
 * end_fsync (msync(MS_SYNC) in the mmap engine).  Then the mount goes away
 * and three verify-only passes run on the same layout: through a new mount
 * with mmap, through it with psync (read()), and on the backing file
 * directly.  A last pass, after one block of the backing file is damaged,
 * must fail: the verification can see a wrong byte.
 *
 * invalidate=0 keeps fio from dropping the view's cache; fallocate=none
 * (FUSE views cannot fallocate); state files go to the work directory.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rwutil.h"

static struct tmount m;

static void setup(void)
{
	tm_init(&m, "rw-fio");
}

static void teardown(void)
{
	tm_cleanup(&m);
}

TestSuite(fio, .init = setup, .fini = teardown, .timeout = 120);

static int fio(const char *file, const char *args)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "fio --name=rw --filename=%s --size=32M --bs=16k --rw=randwrite --verify=crc32c "
		 "--randrepeat=1 --randseed=4242 --invalidate=0 --fallocate=none "
		 "--verify_state_save=0 --aux-path='%s' %s",
		 file, m.dir, args);
	FILE *f = fopen(tm_path(&m, "fio.log"), "a");
	if (f) {
		fprintf(f, "\n$ %s\n", cmd);
		fclose(f);
	}
	return run_cmd(m.dir, tm_path(&m, "fio.log"), 60, cmd);
}

Test(fio, mmap_randwrite_crc32c_survives_remount)
{
	cr_assert_eq(system("command -v fio >/dev/null"), 0, "fio is not installed (.ci/packages.txt)");
	int fd = open(tm_path(&m, "data.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 32u << 20), 0);
	close(fd);
	write_text(tm_path(&m, "desc.txt"), "view v\ndata.bin 0 rest\n");
	const char *opts = "writable,page_size=64K,buffer_size=2M";

	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), opts), 0, "%s", tm_stderr(&m));
	int r = fio("mnt/v", "--ioengine=mmap --do_verify=1 --end_fsync=1");
	cr_assert_eq(r, 0, "fio random mmap writes + verify through the mount failed (%d):\n%s", r,
		     slurp(tm_path(&m, "fio.log")));
	const char *stats = slurp(tm_path(&m, "mnt/.umapfs/stats"));
	cr_assert_gt(stats_get(stats, "evictions"), 0, "no evictions:\n%s", stats);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));

	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), opts), 0, "%s", tm_stderr(&m));
	r = fio("mnt/v", "--ioengine=mmap --verify_only=1");
	cr_assert_eq(r, 0, "verify-only (mmap) after remount failed (%d):\n%s", r,
		     slurp(tm_path(&m, "fio.log")));
	r = fio("mnt/v", "--ioengine=psync --verify_only=1");
	cr_assert_eq(r, 0, "verify-only (psync) after remount failed (%d):\n%s", r,
		     slurp(tm_path(&m, "fio.log")));
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));

	r = fio("data.bin", "--ioengine=psync --verify_only=1");
	cr_assert_eq(r, 0, "verify-only on the backing file failed (%d):\n%s", r,
		     slurp(tm_path(&m, "fio.log")));

	/* the check can fail: damage one block behind the mount's back */
	fd = open(tm_path(&m, "data.bin"), O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, "damaged", 7, 5000000), 7);
	close(fd);
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), opts), 0, "%s", tm_stderr(&m));
	r = fio("mnt/v", "--ioengine=mmap --verify_only=1");
	cr_assert_neq(r, 0, "fio verified a damaged file:\n%s", slurp(tm_path(&m, "fio.log")));
	cr_assert(strstr(slurp(tm_path(&m, "fio.log")), "verify failed") != NULL, "%s",
		  slurp(tm_path(&m, "fio.log")));
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
}
