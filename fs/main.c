/*
 * umapfs: mount the views a plugin describes over SOURCE at MOUNTPOINT.
 *
 *   umapfs [-f] [-d] [-o opt[,opt...]] SOURCE MOUNTPOINT
 *
 * Arguments may come in any order (mount.fuse3 calls "umapfs SOURCE
 * MOUNTPOINT -o opts"), so /etc/fstab and `mount -t fuse.umapfs` work.
 * Everything that can fail (options, the plugin, the backing files, the
 * mount itself) is done before the daemon detaches, and reported on stderr
 * with a non-zero exit status: 2 for a bad command line, 1 otherwise.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "umapfs_i.h"

#ifndef UMAPFS_VERSION
#define UMAPFS_VERSION "unknown"
#endif
#ifndef UMAPFS_PLUGINDIR
#define UMAPFS_PLUGINDIR "/usr/local/lib/umapfs/plugins"
#endif

#define EXIT_USAGE 2

/* ---- logging ---------------------------------------------------------- */

static int g_syslog;
static int g_debug;

static void vdlog(int level, const char *fmt, va_list ap)
{
	if (level >= UMAPFS_LOG_INFO && !g_debug)
		return;
	if (g_syslog) {
		vsyslog(level, fmt, ap);
		return;
	}
	char buf[1024];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	fprintf(stderr, "umapfs: %s\n", buf);
}

void dlog(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdlog(level, fmt, ap);
	va_end(ap);
}

void dlog_engine(void *arg, int level, const char *msg)
{
	(void)arg;
	dlog(level, "%s", msg);
}

/* ---- options ---------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: umapfs [options] SOURCE MOUNTPOINT\n"
		"\n"
		"Mount the views a plugin describes over SOURCE (for the raw plugin, a\n"
		"text file listing views as extents of backing files) at MOUNTPOINT.\n"
		"\n"
		"  -f                  stay in the foreground (log to stderr)\n"
		"  -d, -o debug        debug output (implies -f)\n"
		"  -h, --help          this help\n"
		"  -V, --version       version\n"
		"  -o page_size=SIZE   application page size, power of two, 4K..64M (default 1M)\n"
		"  -o buffer_size=SIZE memory budget of the mount: view pages cached by\n"
		"                      the kernel for this mount (default 1G)\n"
		"  -o staging_size=SIZE engine buffer for fills in flight (default:\n"
		"                      min(buffer_size, max(16 pages, 8M, min(buffer_size/4, 64M))))\n"
		"  -o policy=NAME      replacement policy of the engine: fifo, clock, lru\n"
		"  -o prefetch=SIZE    read ahead this far on sequential access (default\n"
		"                      min(8M, staging_size/4); 0: off)\n"
		"  -o readahead=SIZE   kernel readahead window of the mount (default: 4K;\n"
		"                      page size, at most 1M, if a view is writable)\n"
		"  -o readaround=SIZE  region filled around a miss where access is dense\n"
		"                      (default 8M; off below 4 pages and with 0)\n"
		"  -o threads=N        maximum FUSE worker threads (default 16)\n"
		"  -o io_threads=N     engine threads running prefetch fills (default 8)\n"
		"  -o plugin=NAME|PATH view plugin (default raw); searched in\n"
		"                      $UMAPFS_PLUGIN_PATH, then %s\n"
		"  -o writable         read-write mount (default: read-only)\n"
		"  -o FUSEOPT          allow_other, allow_root, auto_unmount, fsname=, subtype=,\n"
		"                      max_read=, ro, rw, nosuid, nodev, noexec, ... go to FUSE\n"
		"  -o OTHER            any other option is given to the plugin\n"
		"\n"
		"SIZE takes K, M, G suffixes (powers of 1024).  See umapfs(1).\n",
		UMAPFS_PLUGINDIR);
}

enum { KEY_HELP, KEY_VERSION, KEY_FG, KEY_DEBUG };

static const struct fuse_opt opt_spec[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),    FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION), FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FG),      FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG), FUSE_OPT_END,
};

/* Options libfuse 3.14 itself accepts (lib/mount.c, lib/fuse_lowlevel.c). */
static const char *const fuse_flag_opts[] = {
	"allow_other", "allow_root", "blkdev", "auto_unmount", "default_permissions",
	"ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "async", "sync",
	"dirsync", "noatime", "nodiratime", "nostrictatime", NULL,
};
static const char *const fuse_value_opts[] = {
	"fsname=", "subtype=", "max_read=", "blksize=", "context=", "fscontext=",
	"defcontext=", "rootcontext=", NULL,
};
/* Generic mount(8)/fstab options that mean nothing to a FUSE daemon. */
static const char *const ignored_opts[] = {
	"defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser",
	"owner", "group", "atime", "relatime", "norelatime", "strictatime", "lazytime",
	"nolazytime", "diratime", NULL,
};

struct parse_state {
	struct options *o;
	int help, version;
	int error;
	int fsname_given, subtype_given;
};

static int in_list(const char *const *list, const char *s, int prefix)
{
	for (; *list; list++) {
		if (prefix ? strncmp(s, *list, strlen(*list)) == 0 : strcmp(s, *list) == 0)
			return 1;
	}
	return 0;
}

static int append_opt(char **list, const char *opt)
{
	return fuse_opt_add_opt(list, opt) == 0 ? 0 : -ENOMEM;
}

static int parse_size_opt(struct parse_state *ps, const char *name, const char *val,
			  uint64_t *out)
{
	int ret = umapfs_parse_size(val, out);
	if (ret < 0) {
		fprintf(stderr, "umapfs: %s=%s: %s\n", name, val,
			ret == -ERANGE ? "too large" : "not a size (use e.g. 64K, 1M, 2G)");
		ps->error = 1;
		return -1;
	}
	return 0;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_state *ps = data;
	struct options *o = ps->o;
	(void)outargs;
	switch (key) {
	case KEY_HELP:
		ps->help = 1;
		return 0;
	case KEY_VERSION:
		ps->version = 1;
		return 0;
	case KEY_FG:
		o->foreground = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = 1;
		o->foreground = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (!o->source)
			o->source = strdup(arg);
		else if (!o->mountpoint)
			o->mountpoint = strdup(arg);
		else {
			fprintf(stderr, "umapfs: unexpected argument '%s'\n", arg);
			ps->error = 1;
		}
		return 0;
	default:
		break;
	}
	/* FUSE_OPT_KEY_OPT: "-x" or an element of a -o list. */
	if (arg[0] == '-') {
		fprintf(stderr, "umapfs: unknown option '%s' (see umapfs --help)\n", arg);
		ps->error = 1;
		return 0;
	}
	const char *eq = strchr(arg, '=');
	const char *val = eq ? eq + 1 : NULL;
	size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
#define IS(name) (nl == strlen(name) && strncmp(arg, name, nl) == 0)
	if (IS("page_size") || IS("buffer_size") || IS("staging_size") || IS("prefetch") ||
	    IS("readahead") || IS("readaround") || IS("policy") || IS("plugin") || IS("threads") ||
	    IS("io_threads")) {
		if (!val || !*val) {
			fprintf(stderr, "umapfs: option %.*s needs a value\n", (int)nl, arg);
			ps->error = 1;
			return 0;
		}
	}
	if (IS("page_size")) {
		parse_size_opt(ps, "page_size", val, &o->page_size);
	} else if (IS("buffer_size")) {
		parse_size_opt(ps, "buffer_size", val, &o->buffer_size);
	} else if (IS("staging_size")) {
		if (parse_size_opt(ps, "staging_size", val, &o->staging_size) == 0)
			o->have_staging = 1;
	} else if (IS("prefetch")) {
		if (parse_size_opt(ps, "prefetch", val, &o->prefetch) == 0)
			o->have_prefetch = 1;
	} else if (IS("readahead")) {
		if (parse_size_opt(ps, "readahead", val, &o->readahead) == 0)
			o->have_readahead = 1;
	} else if (IS("readaround")) {
		if (parse_size_opt(ps, "readaround", val, &o->readaround) == 0)
			o->have_readaround = 1;
	} else if (IS("policy")) {
		int p = umapfs_policy_parse(val);
		if (p < 0) {
			fprintf(stderr, "umapfs: policy=%s: unknown policy (fifo, clock or lru)\n", val);
			ps->error = 1;
		} else {
			o->policy = p;
		}
	} else if (IS("plugin")) {
		free(o->plugin);
		o->plugin = strdup(val);
	} else if (IS("threads") || IS("io_threads")) {
		char *end;
		errno = 0;
		unsigned long t = strtoul(val, &end, 10);
		unsigned long max = IS("threads") ? 1024 : 256;
		if (errno || *end || t < 1 || t > max) {
			fprintf(stderr, "umapfs: %s=%s: not a number in 1..%lu\n", IS("threads") ? "threads" : "io_threads",
				val, max);
			ps->error = 1;
		} else if (IS("threads")) {
			o->threads = (unsigned)t;
		} else {
			o->io_threads = (unsigned)t;
		}
	} else if (IS("writable")) {
		if (val) {
			fprintf(stderr, "umapfs: option writable takes no value\n");
			ps->error = 1;
		}
		o->writable = 1;
	} else if (in_list(fuse_flag_opts, arg, 0) || in_list(fuse_value_opts, arg, 1)) {
		if (IS("fsname"))
			ps->fsname_given = 1;
		if (IS("subtype"))
			ps->subtype_given = 1;
		if (append_opt(&o->fuse_opts, arg) < 0)
			ps->error = 1;
	} else if (in_list(ignored_opts, arg, 0) || strncmp(arg, "x-", 2) == 0 ||
		   strncmp(arg, "comment=", 8) == 0) {
		/* fstab noise */
	} else {
		if (append_opt(&o->plugin_opts, arg) < 0)
			ps->error = 1;
	}
#undef IS
	return 0;
}

static int is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* Check option values and fill in defaults.  Returns 0 or -1 after a message. */
static int check_options(struct options *o)
{
	if (!o->source || !o->mountpoint) {
		fprintf(stderr, "umapfs: %s\nusage: umapfs [options] SOURCE MOUNTPOINT (umapfs --help)\n",
			!o->source ? "missing SOURCE and MOUNTPOINT" : "missing MOUNTPOINT");
		return -1;
	}
	if (!is_pow2(o->page_size) || o->page_size < UMAPFS_MIN_PAGE_SIZE ||
	    o->page_size > UMAPFS_MAX_PAGE_SIZE) {
		fprintf(stderr, "umapfs: page_size=%llu: must be a power of two from 4K to 64M\n",
			(unsigned long long)o->page_size);
		return -1;
	}
	if (o->buffer_size < o->page_size) {
		fprintf(stderr, "umapfs: buffer_size=%llu: must hold at least one page (%llu)\n",
			(unsigned long long)o->buffer_size, (unsigned long long)o->page_size);
		return -1;
	}
	if (!o->have_staging) {
		/*
		 * Room for fills in flight, prefetch and (for plugins whose fills
		 * read other views) nested fills: at least 16 pages or 8M, a
		 * quarter of the budget up to 64M, never more than the budget.
		 */
		uint64_t s = o->buffer_size / 4 < (UINT64_C(64) << 20) ? o->buffer_size / 4
								       : UINT64_C(64) << 20;
		if (s < 16 * o->page_size)
			s = 16 * o->page_size;
		if (s < (UINT64_C(8) << 20))
			s = UINT64_C(8) << 20;
		o->staging_size = s < o->buffer_size ? s : o->buffer_size;
	} else if (o->staging_size < o->page_size) {
		fprintf(stderr, "umapfs: staging_size=%llu: must hold at least one page (%llu)\n",
			(unsigned long long)o->staging_size, (unsigned long long)o->page_size);
		return -1;
	}
	if (!o->have_prefetch)
		o->prefetch = o->staging_size / 4 < (UINT64_C(8) << 20) ? o->staging_size / 4
								      : UINT64_C(8) << 20;
	if (o->prefetch > o->staging_size / 2 && o->have_prefetch) {
		fprintf(stderr, "umapfs: prefetch=%llu: at most half the staging buffer (%llu)\n",
			(unsigned long long)o->prefetch, (unsigned long long)o->staging_size / 2);
		return -1;
	}
	if (!o->have_readahead)
		o->readahead = o->page_size < (UINT64_C(1) << 20) ? o->page_size : UINT64_C(1) << 20;
	if (!o->have_readaround)
		o->readaround = UINT64_C(8) << 20;
	if (o->readaround > (UINT64_C(1) << 30)) {
		fprintf(stderr, "umapfs: readaround=%llu: at most 1G\n",
			(unsigned long long)o->readaround);
		return -1;
	}
	if (o->readahead > (UINT64_C(1) << 30)) {
		fprintf(stderr, "umapfs: readahead=%llu: at most 1G\n",
			(unsigned long long)o->readahead);
		return -1;
	}
	return 0;
}

/* ---- plugin host ------------------------------------------------------ */

struct host {
	struct umapfs_plugin_host h; /* first: the plugin sees only this */
	struct daemon *d;
};

static struct daemon *host_daemon(struct umapfs_plugin_host *h)
{
	return ((struct host *)h)->d;
}

static void host_log(struct umapfs_plugin_host *h, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void host_log(struct umapfs_plugin_host *h, int level, const char *fmt, ...)
{
	(void)h;
	va_list ap;
	va_start(ap, fmt);
	vdlog(level, fmt, ap);
	va_end(ap);
}

static int check_name(struct daemon *d, const char *name)
{
	size_t l = name ? strlen(name) : 0;
	if (l == 0 || l > 255 || strchr(name, '/') || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strcmp(name, DOTDIR_NAME) == 0)
		return -EINVAL;
	for (size_t i = 0; i < d->n_nodes; i++)
		if (strcmp(d->nodes[i]->name, name) == 0)
			return -EEXIST;
	return 0;
}

static struct node *add_node(struct daemon *d, const char *name, enum node_kind kind)
{
	if (d->n_nodes == d->cap_nodes) {
		size_t cap = d->cap_nodes ? 2 * d->cap_nodes : 16;
		struct node **nn = realloc(d->nodes, cap * sizeof(*nn));
		if (!nn)
			return NULL;
		d->nodes = nn;
		d->cap_nodes = cap;
	}
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->kind = kind;
	n->d = d;
	n->ino = INO_FIRST_FILE + d->n_nodes;
	pthread_mutex_init(&n->seq.lock, NULL);
	atomic_init(&n->seq.marker, UINT64_MAX);
	d->nodes[d->n_nodes++] = n;
	return n;
}

static int host_publish(struct umapfs_plugin_host *h, const char *name, struct umapfs_view *view)
{
	struct daemon *d = host_daemon(h);
	if (!view)
		return -EINVAL;
	int ret = check_name(d, name);
	if (ret < 0)
		return ret;
	uint64_t ps = umapfs_view_page_size(view);
	uint64_t npages = (umapfs_view_size(view) + ps - 1) / ps;
	uint64_t nchunks = (npages >> 20) + 1;
	uint64_t **chunks = calloc(nchunks, sizeof(*chunks));
	uint64_t **full = calloc(nchunks, sizeof(*full));
	struct node *n = chunks && full ? add_node(d, name, NODE_VIEW) : NULL;
	if (!n) {
		free(chunks);
		free(full);
		return -ENOMEM;
	}
	n->view = view;
	n->size = umapfs_view_size(view);
	n->page_size = ps;
	n->writable = d->opt.writable && umapfs_view_writable(view);
	n->kc.chunks = chunks;
	n->kc.nchunks = nchunks;
	n->kfull.chunks = full;
	n->kfull.nchunks = nchunks;
	dlog(UMAPFS_LOG_INFO, "view %s: %llu bytes, %llu-byte pages%s", name,
	     (unsigned long long)n->size, (unsigned long long)ps, n->writable ? ", writable" : "");
	return 0;
}

static int host_publish_text(struct umapfs_plugin_host *h, const char *name, const char *text,
			     size_t len)
{
	struct daemon *d = host_daemon(h);
	int ret = check_name(d, name);
	if (ret < 0)
		return ret;
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	struct node *n = add_node(d, name, NODE_TEXT);
	if (!n) {
		free(copy);
		return -ENOMEM;
	}
	n->text = copy;
	n->text_len = len;
	return 0;
}

/* Find NAME.so (or NAME/NAME.so) in a directory; returns 0 and fills path. */
static int find_in_dir(const char *dir, size_t dlen, const char *name, char *path, size_t sz)
{
	snprintf(path, sz, "%.*s/%s.so", (int)dlen, dir, name);
	if (access(path, R_OK) == 0)
		return 0;
	snprintf(path, sz, "%.*s/%s/%s.so", (int)dlen, dir, name, name);
	if (access(path, R_OK) == 0)
		return 0;
	return -1;
}

static int load_plugin(struct daemon *d)
{
	const char *name = d->opt.plugin;
	char path[PATH_MAX];
	if (strchr(name, '/')) {
		snprintf(path, sizeof(path), "%s", name);
	} else {
		for (const char *c = name; *c; c++) {
			if (!(*c == '-' || *c == '_' || (*c >= '0' && *c <= '9') ||
			      (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))) {
				fprintf(stderr, "umapfs: plugin=%s: not a plugin name or a path\n", name);
				return -EINVAL;
			}
		}
		int found = 0;
		const char *sp = getenv("UMAPFS_PLUGIN_PATH");
		while (sp && *sp && !found) {
			const char *colon = strchr(sp, ':');
			size_t l = colon ? (size_t)(colon - sp) : strlen(sp);
			if (l && find_in_dir(sp, l, name, path, sizeof(path)) == 0)
				found = 1;
			sp = colon ? colon + 1 : NULL;
		}
		if (!found && find_in_dir(UMAPFS_PLUGINDIR, strlen(UMAPFS_PLUGINDIR), name, path,
					  sizeof(path)) == 0)
			found = 1;
		if (!found) {
			fprintf(stderr,
				"umapfs: plugin '%s' not found (looked for %s.so in $UMAPFS_PLUGIN_PATH and %s)\n",
				name, name, UMAPFS_PLUGINDIR);
			return -ENOENT;
		}
	}
	d->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!d->dl) {
		fprintf(stderr, "umapfs: cannot load plugin %s: %s\n", path, dlerror());
		return -ENOEXEC;
	}
	const struct umapfs_plugin *p = dlsym(d->dl, UMAPFS_PLUGIN_SYMBOL);
	if (!p) {
		fprintf(stderr, "umapfs: %s is not a umapfs plugin (no symbol %s)\n", path,
			UMAPFS_PLUGIN_SYMBOL);
		return -ENOEXEC;
	}
	if (p->abi_version != UMAPFS_PLUGIN_ABI_VERSION) {
		fprintf(stderr, "umapfs: plugin %s has ABI version %u, this umapfs speaks version %u\n",
			path, p->abi_version, UMAPFS_PLUGIN_ABI_VERSION);
		return -ENOEXEC;
	}
	size_t min = offsetof(struct umapfs_plugin, open_check) + sizeof(p->open_check);
	if (p->struct_size < min) {
		fprintf(stderr, "umapfs: plugin %s: struct_size %u is smaller than ABI v1's %zu\n", path,
			p->struct_size, min);
		return -ENOEXEC;
	}
	memset(&d->plugin, 0, sizeof(d->plugin));
	memcpy(&d->plugin, p, p->struct_size < sizeof(d->plugin) ? p->struct_size : sizeof(d->plugin));
	if (!d->plugin.init || !d->plugin.name) {
		fprintf(stderr, "umapfs: plugin %s has no name or init function\n", path);
		return -ENOEXEC;
	}
	dlog(UMAPFS_LOG_INFO, "plugin %s from %s", d->plugin.name, path);
	return 0;
}

/* ---- daemon lifecycle ------------------------------------------------- */

/*
 * Detach from the terminal before any thread exists (a fork keeps only the
 * calling thread).  The parent waits until the child has mounted and reports
 * its exit status, so errors still reach the caller's terminal and exit code.
 */
static int daemon_pipe = -1;

static void daemonize_start(void)
{
	int fds[2];
	if (pipe(fds) < 0) {
		perror("umapfs: pipe");
		exit(1);
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("umapfs: fork");
		exit(1);
	}
	if (pid > 0) {
		close(fds[1]);
		char c;
		ssize_t r;
		do
			r = read(fds[0], &c, 1);
		while (r < 0 && errno == EINTR);
		if (r == 1)
			_exit(0);
		int st;
		if (waitpid(pid, &st, 0) == pid && WIFEXITED(st))
			_exit(WEXITSTATUS(st) ? WEXITSTATUS(st) : 1);
		_exit(1);
	}
	close(fds[0]);
	daemon_pipe = fds[1];
	setsid();
}

static void daemonize_finish(void)
{
	openlog("umapfs", LOG_PID, LOG_DAEMON);
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		if (nul > 2)
			close(nul);
	}
	g_syslog = 1;
	char c = 0;
	if (write(daemon_pipe, &c, 1) != 1)
		dlog(UMAPFS_LOG_WARNING, "cannot signal the parent: %s", strerror(errno));
	close(daemon_pipe);
	daemon_pipe = -1;
}

/* The minor number of our mount (its bdi is "0:N"), from mountinfo. */
static void find_bdi(struct daemon *d)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		char devno[64], mnt[PATH_MAX], fstype[256];
		/* id parent major:minor root mountpoint ... - fstype ... */
		if (sscanf(line, "%*d %*d %63s %*s %4095s", devno, mnt) != 2)
			continue;
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(dash + 3, "%255s", fstype) != 1 || strncmp(fstype, "fuse", 4))
			continue;
		/* unescape \ooo */
		char un[PATH_MAX];
		size_t j = 0;
		for (size_t i = 0; mnt[i] && j + 1 < sizeof(un); i++) {
			if (mnt[i] == '\\' && mnt[i + 1] >= '0' && mnt[i + 1] <= '7' && mnt[i + 2] &&
			    mnt[i + 3]) {
				un[j++] = (char)(((mnt[i + 1] - '0') << 6) | ((mnt[i + 2] - '0') << 3) |
						 (mnt[i + 3] - '0'));
				i += 3;
			} else {
				un[j++] = mnt[i];
			}
		}
		un[j] = 0;
		if (strcmp(un, d->opt.mountpoint_abs) == 0)
			snprintf(d->bdi, sizeof(d->bdi), "%s", devno);
	}
	free(line);
	fclose(f);
}

/*
 * The watchdog.  A push into the kernel cache (notify_store) waits,
 * uninterruptibly, for a page the kernel has locked for a READ not yet
 * answered.  If the daemon dies at that moment (SIGKILL, a crash) the
 * waiting thread cannot die, /dev/fuse is never closed, the READ is never
 * failed: every client would hang.  A small child process that holds no
 * /dev/fuse descriptor watches the daemon and, when it dies without a clean
 * exit, aborts the connection (fusectl's abort file), so clients get
 * ENOTCONN/SIGBUS and the stuck thread is released.  Only async-signal-safe
 * calls are used in the child (it is forked from a threaded process).
 */
static volatile int *g_clean_exit;
static pid_t g_watchdog = -1;
static volatile sig_atomic_t g_parent_died;

static void watchdog_on_death(int sig)
{
	(void)sig;
	g_parent_died = 1;
}

/*
 * The connection's abort file, opened once when the watchdog starts.  Opening
 * it by name only when the daemon is gone could hit another mount: once our
 * connection is torn down (fusermount3 -u), its number is free and the next
 * FUSE mount gets it at once.  A file opened earlier stays bound to our
 * connection (fusectl clears it when the connection goes; writes then fail).
 */
static int g_abort_fd = -1;

static int watchdog_open_abort(const char *abort_path)
{
	int fd = open(abort_path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
		fd = open(abort_path, O_WRONLY | O_CLOEXEC);
	}
	return fd;
}

static void watchdog_abort(const char *abort_path)
{
	(void)abort_path;
	if (g_abort_fd >= 0) {
		if (write(g_abort_fd, "1", 1) < 0) { /* already gone: nothing more to try */
		}
	}
}

static int watchdog_coredumping(const char *status_path)
{
	char buf[4096];
	int fd = open(status_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *p = strstr(buf, "CoreDumping:");
	return p && p[12] == '\t' && p[13] == '1';
}

static void start_watchdog(struct daemon *d)
{
	const char *colon = strchr(d->bdi, ':');
	if (!colon)
		return;
	char abort_path[128], status_path[64];
	snprintf(abort_path, sizeof(abort_path), "/sys/fs/fuse/connections/%s/abort", colon + 1);
	pid_t parent = getpid();
	snprintf(status_path, sizeof(status_path), "/proc/%d/status", (int)parent);
	void *flag = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (flag == MAP_FAILED)
		return;
	g_clean_exit = flag;
	pid_t pid = fork();
	if (pid < 0) {
		dlog(UMAPFS_LOG_WARNING, "no watchdog: fork: %s", strerror(errno));
		return;
	}
	if (pid > 0) {
		g_watchdog = pid;
		return;
	}
	/* child: hold nothing of the daemon's, survive the terminal's signals */
	close_range(3, ~0u, 0);
	g_abort_fd = watchdog_open_abort(abort_path);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	/*
	 * The death signal comes when the daemon's main thread exits; getppid()
	 * alone would not tell, because a stuck thread keeps the process alive.
	 */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watchdog_on_death;
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGUSR1);
	int aborted = 0;
	for (;;) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (g_parent_died || getppid() != parent) {
			if (!*g_clean_exit && !aborted)
				watchdog_abort(abort_path);
			_exit(0);
		}
		if (!aborted && !*g_clean_exit && watchdog_coredumping(status_path)) {
			watchdog_abort(abort_path);
			aborted = 1;
		}
	}
}

static void stop_watchdog(void)
{
	if (g_watchdog <= 0)
		return;
	*g_clean_exit = 1;
	kill(g_watchdog, SIGKILL);
	waitpid(g_watchdog, NULL, 0);
	g_watchdog = -1;
}

static atomic_int g_exiting;

/*
 * SIGTERM/SIGINT/SIGHUP: write back what the engine holds dirty, detach the
 * mount lazily and keep serving until the last user is gone (pending writes
 * and FLUSH arrive then); the session loop then ends and main() flushes
 * everything and exits 0.  libfuse's own handler would close /dev/fuse
 * first and lose unsynced mmap writes.
 */
static void *signal_main(void *arg)
{
	struct daemon *d = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (atomic_load(&g_exiting))
			return NULL;
		if (sig == SIGUSR1)
			continue;
		if (atomic_exchange(&d->detached, 1)) {
			dlog(UMAPFS_LOG_NOTICE, "signal %d: already detached, waiting for the last user",
			     sig);
			continue;
		}
		dlog(UMAPFS_LOG_NOTICE, "signal %d: writing back, detaching %s", sig,
		     d->opt.mountpoint_abs);
		for (size_t i = 0; i < d->n_nodes; i++) {
			struct node *n = d->nodes[i];
			if (n->kind == NODE_VIEW && n->writable && umapfs_view_flush(n->view) < 0)
				dlog(UMAPFS_LOG_ERR, "%s: write-back failed", n->name);
		}
		if (geteuid() == 0) {
			if (umount2(d->opt.mountpoint_abs, MNT_DETACH) < 0)
				dlog(UMAPFS_LOG_ERR, "umount2 %s: %s", d->opt.mountpoint_abs,
				     strerror(errno));
		} else {
			pid_t pid = fork();
			if (pid == 0) {
				execlp("fusermount3", "fusermount3", "-u", "-z", "-q", "--",
				       d->opt.mountpoint_abs, (char *)NULL);
				_exit(127);
			}
			int st;
			if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
			    WEXITSTATUS(st) != 0)
				dlog(UMAPFS_LOG_ERR, "fusermount3 -u -z %s failed", d->opt.mountpoint_abs);
		}
	}
}

static void free_options(struct options *o)
{
	free(o->source);
	free(o->mountpoint);
	free(o->plugin);
	free(o->fuse_opts);
	free(o->plugin_opts);
	free(o->source_abs);
	free(o->mountpoint_abs);
}

/* Destroy views (writing back), the plugin and the engine.  Returns 0 or -1. */
static int teardown(struct daemon *d)
{
	int status = 0;
	for (size_t i = 0; i < d->n_nodes; i++) {
		struct node *n = d->nodes[i];
		if (n->kind == NODE_VIEW && n->view) {
			umapfs_view_set_hooks(n->view, NULL);
			if (umapfs_view_destroy(n->view) < 0) {
				dlog(UMAPFS_LOG_ERR, "%s: final write-back failed", n->name);
				status = -1;
			}
			n->view = NULL;
		}
	}
	if (d->plugin_state && d->plugin.fini)
		d->plugin.fini(d->plugin_state);
	free(d->plugin_state);
	d->plugin_state = NULL;
	for (size_t i = 0; i < d->n_nodes; i++) {
		struct node *n = d->nodes[i];
		kbitmap_free(&n->kc);
		kbitmap_free(&n->kfull);
		pthread_mutex_destroy(&n->seq.lock);
		free(n->text);
		free(n->name);
		free(n);
	}
	free(d->nodes);
	d->nodes = NULL;
	d->n_nodes = 0;
	if (d->engine && umapfs_engine_destroy(d->engine) < 0)
		status = -1;
	d->engine = NULL;
	kc_fini(d);
	free(d->host);
	d->host = NULL;
	if (d->dl)
		dlclose(d->dl);
	d->dl = NULL;
	return status;
}

int main(int argc, char **argv)
{
	static struct daemon dd;
	struct daemon *d = &dd;
	struct options *o = &d->opt;
	o->page_size = UINT64_C(1) << 20;
	o->buffer_size = UINT64_C(1) << 30;
	o->policy = UMAPFS_POLICY_FIFO;
	o->plugin = strdup("raw");
	o->threads = 16;
	o->io_threads = 8;

	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct parse_state ps = { .o = o };
	if (fuse_opt_parse(&args, &ps, opt_spec, opt_proc) < 0)
		ps.error = 1;
	fuse_opt_free_args(&args);
	if (ps.help) {
		usage(stdout);
		free_options(o);
		return 0;
	}
	if (ps.version) {
		printf("umapfs %s (libfuse %d, plugin ABI %u)\n", UMAPFS_VERSION, fuse_version(),
		       UMAPFS_PLUGIN_ABI_VERSION);
		free_options(o);
		return 0;
	}
	if (ps.error || check_options(o) < 0) {
		free_options(o);
		return EXIT_USAGE;
	}
	g_debug = o->debug;

	/* Paths first: the daemon changes to / before serving. */
	o->source_abs = realpath(o->source, NULL);
	if (!o->source_abs) {
		fprintf(stderr, "umapfs: %s: %s\n", o->source, strerror(errno));
		free_options(o);
		return 1;
	}
	o->mountpoint_abs = realpath(o->mountpoint, NULL);
	struct stat st;
	if (!o->mountpoint_abs || stat(o->mountpoint_abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "umapfs: mount point %s: %s\n", o->mountpoint,
			o->mountpoint_abs ? "not a directory" : strerror(errno));
		free_options(o);
		return 1;
	}

	if (!o->foreground)
		daemonize_start();

	/* Signals are taken by one thread with sigwait; every thread inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	d->uid = getuid();
	d->gid = getgid();
	clock_gettime(CLOCK_REALTIME, &d->mount_time);
	pthread_mutex_init(&d->kc_lock, NULL);
	pthread_cond_init(&d->kc_cond, NULL);
	pthread_cond_init(&d->kc_done, NULL);
	pthread_mutex_init(&d->pin_lock, NULL);

	int status = 1;
	struct fuse_session *se = NULL;
	pthread_t sig_thread;
	int sig_running = 0;
	struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);

	struct umapfs_engine_config cfg;
	umapfs_engine_config_init(&cfg);
	cfg.page_size = o->page_size;
	cfg.buffer_size = o->staging_size;
	cfg.policy = o->policy;
	cfg.log = dlog_engine;
	/*
	 * Prefetch fills run on the engine's I/O threads; a plugin fill is a
	 * synchronous read, so these threads are its queue depth.
	 */
	cfg.io_threads = o->io_threads;
	int ret = umapfs_engine_create(&cfg, &d->engine);
	if (ret < 0) {
		fprintf(stderr, "umapfs: cannot create the paging engine: %s\n", strerror(-ret));
		goto out;
	}

	if (load_plugin(d) < 0)
		goto out;
	d->host = calloc(1, sizeof(*d->host));
	d->plugin_state = calloc(1, d->plugin.state_size ? d->plugin.state_size : 1);
	if (!d->host || !d->plugin_state) {
		fprintf(stderr, "umapfs: out of memory\n");
		goto out;
	}
	d->host->d = d;
	d->host->h.abi_version = UMAPFS_PLUGIN_ABI_VERSION;
	d->host->h.struct_size = sizeof(struct umapfs_plugin_host);
	d->host->h.engine = d->engine;
	d->host->h.writable = o->writable;
	d->host->h.log = host_log;
	d->host->h.publish = host_publish;
	d->host->h.publish_text = host_publish_text;
	d->host->h.host_private = d;
	ret = d->plugin.init(d->plugin_state, &d->host->h, o->source_abs,
			     o->plugin_opts ? o->plugin_opts : "");
	if (ret < 0) {
		fprintf(stderr, "umapfs: %s: the %s plugin refused it (%s); not mounted\n",
			o->source, d->plugin.name, strerror(-ret));
		goto out;
	}
	size_t nviews = 0;
	for (size_t i = 0; i < d->n_nodes; i++)
		nviews += d->nodes[i]->kind == NODE_VIEW;
	if (d->n_nodes == 0) {
		fprintf(stderr, "umapfs: %s: describes no views; not mounted\n", o->source);
		goto out;
	}
	uint64_t max_ps = 0;
	for (size_t i = 0; i < d->n_nodes; i++)
		if (d->nodes[i]->kind == NODE_VIEW && d->nodes[i]->page_size > max_ps)
			max_ps = d->nodes[i]->page_size;
	d->pin_budget = o->staging_size / 2 > max_ps ? o->staging_size / 2 : max_ps;
	if (d->pin_budget > o->staging_size)
		d->pin_budget = o->staging_size;
	d->pin_avail = d->pin_budget;
	if (!o->have_readahead) {
		/*
		 * Pushed views need little kernel readahead: a fault fetches a
		 * block, the daemon fills the whole application page and pushes
		 * it, sequential prefetch runs ahead; a window as large as a
		 * small page only makes a random fault fill two pages.  With
		 * pages of 1M and more the window is 256K: a sequential reader
		 * that catches up with the pushes then gets its page in a few
		 * READs instead of one per 4 KiB block (+45% on a cold mmap scan
		 * against 4K; 64K lost 4-7%), while a random fault's window,
		 * centred on it, seldom reaches into a second page (with the 1M
		 * of writable views, which are not pushed, every fault at 1M
		 * pages filled two: 128 sparse touches on 4 GiB took 0.3-0.46 s,
		 * now 0.18-0.28 s; at 4M 0.57-0.68 s, now 0.46-0.52 s).
		 */
		int any_writable = 0;
		for (size_t i = 0; i < d->n_nodes; i++)
			any_writable |= d->nodes[i]->kind == NODE_VIEW && d->nodes[i]->writable;
		if (!any_writable)
			o->readahead = o->page_size < (UINT64_C(1) << 20) ? 4096 : UINT64_C(256) << 10;
	}
	if (kc_init(d) < 0) {
		fprintf(stderr, "umapfs: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < d->n_nodes; i++) {
		struct node *n = d->nodes[i];
		if (n->kind != NODE_VIEW)
			continue;
		struct umapfs_view_hooks h = {
			.struct_size = sizeof(h),
			.arg = n,
			.filled = kc_filled,
			.evicting = kc_evicting,
		};
		umapfs_view_set_hooks(n->view, &h);
	}

	/* The FUSE side: our own argv for libfuse, options it knows only. */
	if (fuse_opt_add_arg(&fargs, argv[0]) < 0 || fuse_opt_add_arg(&fargs, "-o") < 0)
		goto oom;
	char *fo = NULL;
	if (fuse_opt_add_opt(&fo, "default_permissions") < 0)
		goto oom;
	if (!ps.subtype_given && fuse_opt_add_opt(&fo, "subtype=umapfs") < 0)
		goto oom;
	if (!ps.fsname_given) {
		char *esc = NULL, *opt = NULL;
		if (fuse_opt_add_opt_escaped(&esc, o->source_abs) < 0 ||
		    asprintf(&opt, "fsname=%s", esc) < 0) {
			free(esc);
			free(fo);
			goto oom;
		}
		free(esc);
		ret = fuse_opt_add_opt(&fo, opt);
		free(opt);
		if (ret < 0) {
			free(fo);
			goto oom;
		}
	}
	if (o->fuse_opts && fuse_opt_add_opt(&fo, o->fuse_opts) < 0) {
		free(fo);
		goto oom;
	}
	ret = fuse_opt_add_arg(&fargs, fo);
	free(fo);
	if (ret < 0 || (o->debug && fuse_opt_add_arg(&fargs, "-d") < 0))
		goto oom;

	se = fuse_session_new(&fargs, &umapfs_ops, sizeof(umapfs_ops), d);
	if (!se) {
		fprintf(stderr, "umapfs: bad FUSE options; not mounted\n");
		status = EXIT_USAGE;
		goto out;
	}
	d->se = se;
	if (fuse_session_mount(se, o->mountpoint_abs) != 0) {
		fprintf(stderr, "umapfs: cannot mount on %s\n", o->mountpoint_abs);
		goto out;
	}
	find_bdi(d);
	start_watchdog(d);
	if (kc_start(d) < 0 || pthread_create(&sig_thread, NULL, signal_main, d) != 0) {
		fprintf(stderr, "umapfs: cannot start threads\n");
		goto out;
	}
	sig_running = 1;
	dlog(UMAPFS_LOG_INFO, "mounted %s on %s: %zu view(s), page %llu, budget %llu, staging %llu",
	     o->source_abs, o->mountpoint_abs, nviews, (unsigned long long)o->page_size,
	     (unsigned long long)o->buffer_size, (unsigned long long)o->staging_size);
	if (chdir("/") < 0)
		dlog(UMAPFS_LOG_WARNING, "chdir /: %s", strerror(errno));
	if (!o->foreground)
		daemonize_finish();

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc)
		goto oom;
	fuse_loop_cfg_set_max_threads(lc, o->threads);
	fuse_loop_cfg_set_idle_threads(lc, o->threads / 2 ? o->threads / 2 : 1);
	fuse_loop_cfg_set_clone_fd(lc, 0);
	ret = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	status = ret == 0 ? 0 : 1;
	if (ret != 0)
		dlog(UMAPFS_LOG_ERR, "session loop ended with %d", ret);
	/*
	 * The loop ends when the kernel connection is gone: the mount was
	 * unmounted (by us after a signal, or by fusermount3 -u).  Then
	 * fuse_session_unmount() sees POLLERR on /dev/fuse and unmounts
	 * nothing, so a new mount on the same path is safe.
	 */
	goto out;

oom:
	fprintf(stderr, "umapfs: out of memory\n");
	status = 1;
out:
	atomic_store(&g_exiting, 1);
	if (sig_running) {
		pthread_kill(sig_thread, SIGUSR1);
		pthread_join(sig_thread, NULL);
	}
	kc_stop(d);
	stop_watchdog();
	if (se) {
		fuse_session_unmount(se); /* no-op unless mounted and still connected */
		fuse_session_destroy(se);
	}
	fuse_opt_free_args(&fargs);
	if (teardown(d) < 0 && status == 0)
		status = 1;
	if (status == 0)
		dlog(UMAPFS_LOG_INFO, "unmounted %s", o->mountpoint_abs);
	free_options(o);
	pthread_mutex_destroy(&d->kc_lock);
	pthread_cond_destroy(&d->kc_cond);
	pthread_cond_destroy(&d->kc_done);
	pthread_mutex_destroy(&d->pin_lock);
	if (daemon_pipe >= 0)
		close(daemon_pipe); /* parent sees EOF and reports our status */
	if (g_syslog)
		closelog();
	return status;
}
