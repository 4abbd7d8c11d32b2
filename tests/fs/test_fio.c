/*
 * fio against a raw view: fio lays out verifiable blocks (crc32c headers)
 * in the backing file, then verifies them through the mount with
 * ioengine=mmap, sequentially and at random.  invalidate=0 keeps fio from
 * dropping the view's cache; its state files go to the work directory.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"

static struct tmount m;

static void setup(void)
{
	tm_init(&m, "fio");
}

static void teardown(void)
{
	tm_cleanup(&m);
}

TestSuite(fio, .init = setup, .fini = teardown, .timeout = 240);

static int run(const char *cmd)
{
	char full[4096];
	snprintf(full, sizeof(full), "cd '%s' && %s >>'%s/fio.log' 2>&1", m.dir, cmd, m.dir);
	int st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(fio, mmap_verify_crc32c)
{
	cr_assert_eq(system("command -v fio >/dev/null"), 0, "fio is not installed (.ci/packages.txt)");
	const char *common = "--bs=64k --size=48M --verify=crc32c --verify_state_save=0 "
			     "--randrepeat=1 --randseed=42";
	char cmd[2048];
	/* the data, written to the backing file directly */
	snprintf(cmd, sizeof(cmd),
		 "fio --name=lay --filename=data.bin --rw=write --ioengine=psync --do_verify=0 %s",
		 common);
	cr_assert_eq(run(cmd), 0, "fio write failed:\n%s", slurp(tm_path(&m, "fio.log")));
	write_text(tm_path(&m, "desc.txt"), "view v\ndata.bin 0 rest\n");
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "page_size=256K,buffer_size=16M"), 0,
		     "%s", tm_stderr(&m));
	/* read back through the mount with mmap: every block's header and crc */
	snprintf(cmd, sizeof(cmd),
		 "fio --name=seq --filename=mnt/v --rw=read --ioengine=mmap --invalidate=0 %s", common);
	cr_assert_eq(run(cmd), 0, "fio sequential verify failed:\n%s", slurp(tm_path(&m, "fio.log")));
	snprintf(cmd, sizeof(cmd),
		 "fio --name=rand --filename=mnt/v --rw=randread --ioengine=mmap --invalidate=0 "
		 "--numjobs=2 %s", common);
	cr_assert_eq(run(cmd), 0, "fio random verify failed:\n%s", slurp(tm_path(&m, "fio.log")));
	const char *log = slurp(tm_path(&m, "fio.log"));
	cr_assert(strstr(log, "verify") == NULL || strstr(log, "bad magic") == NULL, "%s", log);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
}
