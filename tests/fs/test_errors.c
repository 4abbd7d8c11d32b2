/*
 * Refused mounts: bad descriptions and bad options give a clear message
 * (description file and line) and a non-zero exit status, and nothing is
 * mounted.  Exit status 2 is a bad command line, 1 anything else.
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
	tm_init(&m, "errors");
	cr_assert_eq(pattern_file(tm_path(&m, "data.bin"), 1 << 20, 9), 0);
}

static void teardown(void)
{
	tm_cleanup(&m);
}

TestSuite(errors, .init = setup, .fini = teardown, .timeout = 60);

/* Mount `desc` with `opts`; expect exit status `st` and `msg` in stderr. */
static void refused(const char *desc, const char *opts, int st, const char *msg)
{
	const char *src = tm_path(&m, "desc.txt");
	if (desc)
		write_text(src, desc);
	int got = tm_run_fail(&m, src, opts);
	const char *err = tm_stderr(&m);
	cr_assert_eq(got, st, "exit status %d, want %d; stderr:\n%s", got, st, err);
	cr_assert(strstr(err, msg) != NULL, "stderr lacks \"%s\":\n%s", msg, err);
	cr_assert(!tm_is_mounted(m.mnt), "mounted anyway");
}

Test(errors, missing_file)
{
	refused("view v\nnosuch.bin 0 100\n", NULL, 1, "desc.txt:2: nosuch.bin: No such file");
}

Test(errors, extent_past_end)
{
	refused("view v\ndata.bin 0 4096\ndata.bin 1048000 1000\n", NULL, 1,
		"desc.txt:3: data.bin: extent past end of file");
}

Test(errors, rest_past_end)
{
	refused("view v\ndata.bin 1M rest\n", NULL, 1, "desc.txt:2: data.bin: offset 1048576");
}

Test(errors, duplicate_view)
{
	refused("view v\ndata.bin 0 4096\n\n# again\nview v\ndata.bin 0 4096\n", NULL, 1,
		"desc.txt:5: duplicate view name 'v' (first defined at line 1)");
}

Test(errors, bad_numbers)
{
	refused("view v\ndata.bin 12x 4096\n", NULL, 1, "desc.txt:2: '12x' is not an offset");
	refused("view v\ndata.bin 0 -5\n", NULL, 1, "desc.txt:2: '-5' is not a positive length");
	refused("view v\nzero 0\n", NULL, 1, "desc.txt:2: '0' is not a positive length");
	refused("view v page_size=3000\ndata.bin 0 rest\n", NULL, 1, "desc.txt:1: page_size=3000");
}

Test(errors, structure)
{
	refused("data.bin 0 4096\n", NULL, 1, "desc.txt:1: extent outside a view");
	refused("view v\nview w\ndata.bin 0 1\n", NULL, 1, "desc.txt:1: view 'v' has no extents");
	refused("# nothing\n\n", NULL, 1, "no views");
	refused("view v colour=red\ndata.bin 0 1\n", NULL, 1, "desc.txt:1: unknown view option");
	refused("view v\ndata.bin 0\n", NULL, 1, "desc.txt:2: expected 'FILE OFFSET LENGTH'");
	refused("view a/b\ndata.bin 0 1\n", NULL, 1, "desc.txt:1: 'a/b' is not a valid file name");
	refused("view v\n\"data.bin 0 1\n", NULL, 1, "desc.txt:2: unterminated quote");
}

Test(errors, bad_options)
{
	const char *ok = "view v\ndata.bin 0 rest\n";
	refused(ok, "page_size=3000", 2, "page_size=3000: must be a power of two");
	refused(ok, "page_size=128M", 2, "must be a power of two from 4K to 64M");
	refused(ok, "buffer_size=lots", 2, "buffer_size=lots: not a size");
	refused(ok, "page_size=1M,buffer_size=64K", 2, "buffer_size=65536: must hold at least one page");
	refused(ok, "policy=random", 2, "policy=random: unknown policy");
	refused(ok, "readaround=2G", 2, "readaround=2147483648: at most 1G");
	refused(ok, "readaround=near", 2, "readaround=near: not a size");
	refused(ok, "threads=0", 2, "threads=0");
	refused(ok, "plugin=nosuch", 1, "plugin 'nosuch' not found");
	refused(ok, "plugin=/nonexistent/x.so", 1, "cannot load plugin /nonexistent/x.so");
	refused(ok, "frobnicate=1", 1, "unknown option(s) 'frobnicate=1'");
	refused(ok, "page_size", 2, "option page_size needs a value");
}

Test(errors, bad_plugin_abi)
{
	const char *root = getenv("UMAPFS_BUILD_ROOT");
	cr_assert_not_null(root);
	char opt[1024];
	snprintf(opt, sizeof(opt), "plugin=%s/tests/fs/badabi.so", root);
	refused("view v\ndata.bin 0 rest\n", opt, 1, "has ABI version 99, this umapfs speaks version 1");
}

Test(errors, bad_arguments)
{
	/* no mount point */
	const char *daemon = tm_daemon();
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "'%s' -f '%s' 2>/dev/null", daemon, tm_path(&m, "desc.txt"));
	write_text(tm_path(&m, "desc.txt"), "view v\ndata.bin 0 rest\n");
	int st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
	/* a third positional argument */
	snprintf(cmd, sizeof(cmd), "'%s' -f a b c 2>/dev/null", daemon);
	st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
}

Test(errors, missing_source)
{
	int got = tm_run_fail(&m, tm_path(&m, "absent.txt"), NULL);
	cr_assert_eq(got, 1);
	cr_assert(strstr(tm_stderr(&m), "absent.txt: No such file or directory"), "%s", tm_stderr(&m));
	cr_assert(!tm_is_mounted(m.mnt));
}

Test(errors, help_and_version)
{
	const char *daemon = tm_daemon();
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "'%s' --help | grep -q buffer_size", daemon);
	cr_assert_eq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "'%s' -V | grep -q '^umapfs '", daemon);
	cr_assert_eq(system(cmd), 0);
}
