/*
 * Breadth-first search over a CSR graph: a level-synchronous top-down BFS
 * on N threads (the Graph500 kernel 2 shape), a serial reference, a BFS
 * tree validator and a deterministic root picker.
 *
 * The parallel BFS: the current frontier is an array; threads take chunks
 * of it from a shared cursor, claim unvisited neighbours with a
 * compare-and-swap on their level, and append claimed vertices to the next
 * frontier through a per-thread buffer.  Threads meet at a barrier after
 * each level.  The graph is read through its mapping only (offsets and
 * neighbour lists), so each touch of a missing page is a page fault served
 * by whoever backs the mapping: the kernel for a plain file, umapfs for a
 * mounted view.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csr.h"

#define CHUNK 64
#define LOCAL_BUF 1024

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

uint64_t bfs_checksum(const uint32_t *level, uint64_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (uint64_t v = 0; v < n; v++)
		h = (h ^ level[v]) * UINT64_C(0x100000001b3);
	return csr_mix64(h ^ n);
}

/* Shared state of one parallel BFS. */
struct bfs_shared {
	const struct csr_graph *g;
	uint32_t *level;
	int64_t *parent;
	uint64_t *cur, *next; /* frontiers */
	uint64_t cur_len;
	uint64_t next_len;    /* atomic */
	uint64_t cursor;      /* atomic: next chunk of cur */
	uint32_t depth;       /* level of cur */
	int done;
	int error;            /* atomic: first corruption seen */
	uint64_t bad_vertex, bad_value;
	pthread_barrier_t barrier;
	unsigned threads;
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	int gate; /* 0 wait, 1 go, -1 abandon */
};

struct bfs_thread {
	struct bfs_shared *s;
	unsigned id;
	uint64_t scanned;
	pthread_t tid;
};

static void report_error(struct bfs_shared *s, int kind, uint64_t v, uint64_t val)
{
	int expected = 0;
	if (__atomic_compare_exchange_n(&s->error, &expected, kind, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		s->bad_vertex = v;
		s->bad_value = val;
	}
}

static void flush_local(struct bfs_shared *s, const uint64_t *buf, unsigned k)
{
	if (!k)
		return;
	uint64_t at = __atomic_fetch_add(&s->next_len, k, __ATOMIC_RELAXED);
	memcpy(s->next + at, buf, k * sizeof(*buf));
}

static void *bfs_worker(void *arg)
{
	struct bfs_thread *t = arg;
	struct bfs_shared *s = t->s;
	const struct csr_graph *g = s->g;
	uint64_t local[LOCAL_BUF];
	if (t->id != 0) {
		pthread_mutex_lock(&s->gate_lock);
		while (s->gate == 0)
			pthread_cond_wait(&s->gate_cond, &s->gate_lock);
		int go = s->gate > 0;
		pthread_mutex_unlock(&s->gate_lock);
		if (!go)
			return NULL;
	}
	for (;;) {
		/* Expand the current frontier. */
		uint32_t nd = s->depth + 1;
		unsigned k = 0;
		for (;;) {
			uint64_t at = __atomic_fetch_add(&s->cursor, CHUNK, __ATOMIC_RELAXED);
			if (at >= s->cur_len || __atomic_load_n(&s->error, __ATOMIC_RELAXED))
				break;
			uint64_t end = at + CHUNK < s->cur_len ? at + CHUNK : s->cur_len;
			for (uint64_t i = at; i < end; i++) {
				uint64_t u = s->cur[i];
				uint64_t b = g->off[u], e = g->off[u + 1];
				if (b > e || e > g->m) {
					report_error(s, 1, u, e);
					break;
				}
				t->scanned += e - b;
				for (uint64_t j = b; j < e; j++) {
					uint64_t v = csr_nbr(g, j);
					if (v >= g->n) {
						report_error(s, 2, u, v);
						break;
					}
					if (__atomic_load_n(&s->level[v], __ATOMIC_RELAXED) !=
					    BFS_UNREACHED)
						continue;
					uint32_t un = BFS_UNREACHED;
					if (!__atomic_compare_exchange_n(&s->level[v], &un, nd, 0,
									 __ATOMIC_RELAXED,
									 __ATOMIC_RELAXED))
						continue;
					if (s->parent)
						s->parent[v] = (int64_t)u;
					local[k++] = v;
					if (k == LOCAL_BUF) {
						flush_local(s, local, k);
						k = 0;
					}
				}
			}
		}
		flush_local(s, local, k);
		/* Everyone has finished the level; thread 0 swaps frontiers. */
		pthread_barrier_wait(&s->barrier);
		if (t->id == 0) {
			uint64_t *tmp = s->cur;
			s->cur = s->next;
			s->next = tmp;
			s->cur_len = s->next_len;
			s->next_len = 0;
			s->cursor = 0;
			s->depth = nd;
			s->done = s->cur_len == 0 || s->error;
		}
		pthread_barrier_wait(&s->barrier);
		if (s->done)
			return NULL;
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int bfs_run(const struct csr_graph *g, uint64_t root, unsigned threads, uint32_t *level,
	    int64_t *parent, struct bfs_result *res, const char *path, char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	if (root >= g->n)
		return fail(err, errlen, -EINVAL, "%s: root %llu is not a vertex (n = %llu)", path,
			    (unsigned long long)root, (unsigned long long)g->n);
	if (threads < 1 || threads > 256)
		return fail(err, errlen, -EINVAL, "threads %u: must be 1..256", threads);

	struct bfs_shared s;
	memset(&s, 0, sizeof(s));
	s.g = g;
	s.level = level;
	s.parent = parent;
	s.threads = threads;
	pthread_mutex_init(&s.gate_lock, NULL);
	pthread_cond_init(&s.gate_cond, NULL);
	s.cur = malloc(g->n * sizeof(uint64_t));
	s.next = malloc(g->n * sizeof(uint64_t));
	struct bfs_thread *t = calloc(threads, sizeof(*t));
	int ret = 0;
	if (!s.cur || !s.next || !t) {
		ret = fail(err, errlen, -ENOMEM, "%s: out of memory for BFS frontiers", path);
		goto out;
	}
	for (uint64_t v = 0; v < g->n; v++)
		level[v] = BFS_UNREACHED;
	if (parent)
		for (uint64_t v = 0; v < g->n; v++)
			parent[v] = -1;

	double t0 = now();
	level[root] = 0;
	if (parent)
		parent[root] = (int64_t)root;
	s.cur[0] = root;
	s.cur_len = 1;
	s.depth = 0;
	/*
	 * Workers wait at a gate until every thread exists, so that a failed
	 * pthread_create never leaves a barrier waiting for a missing thread.
	 */
	int rc = pthread_barrier_init(&s.barrier, NULL, threads);
	if (rc) {
		ret = fail(err, errlen, -rc, "pthread_barrier_init: %s", strerror(rc));
		goto out;
	}
	unsigned started = 0;
	for (unsigned i = 0; i < threads; i++) {
		t[i].s = &s;
		t[i].id = i;
	}
	pthread_mutex_lock(&s.gate_lock);
	for (unsigned i = 1; i < threads; i++) {
		rc = pthread_create(&t[i].tid, NULL, bfs_worker, &t[i]);
		if (rc)
			break;
		started++;
	}
	s.gate = started == threads - 1 ? 1 : -1;
	pthread_cond_broadcast(&s.gate_cond);
	pthread_mutex_unlock(&s.gate_lock);
	if (s.gate > 0)
		bfs_worker(&t[0]);
	else
		report_error(&s, 3, 0, (uint64_t)rc);
	for (unsigned i = 1; i <= started; i++)
		pthread_join(t[i].tid, NULL);
	double t1 = now();
	pthread_barrier_destroy(&s.barrier);

	if (s.error == 1)
		ret = fail(err, errlen, -EINVAL,
			   "%s: corrupt graph: offsets of vertex %llu out of order or past m (end %llu)",
			   path, (unsigned long long)s.bad_vertex, (unsigned long long)s.bad_value);
	else if (s.error == 2)
		ret = fail(err, errlen, -EINVAL,
			   "%s: corrupt graph: vertex %llu has neighbour %llu >= n = %llu", path,
			   (unsigned long long)s.bad_vertex, (unsigned long long)s.bad_value,
			   (unsigned long long)g->n);
	else if (s.error == 3)
		ret = fail(err, errlen, -EAGAIN, "pthread_create: %s", strerror((int)s.bad_value));
	if (ret < 0)
		goto out;

	res->seconds = t1 - t0;
	uint32_t maxl = 0;
	for (uint64_t v = 0; v < g->n; v++) {
		if (level[v] != BFS_UNREACHED) {
			res->reached++;
			if (level[v] > maxl)
				maxl = level[v];
		}
	}
	for (unsigned i = 0; i < threads; i++)
		res->edges_scanned += t[i].scanned;
	res->levels = maxl + 1;
	res->checksum = bfs_checksum(level, g->n);
out:
	pthread_mutex_destroy(&s.gate_lock);
	pthread_cond_destroy(&s.gate_cond);
	free(s.cur);
	free(s.next);
	free(t);
	return ret;
}

int bfs_reference(const struct csr_graph *g, uint64_t root, uint32_t *level)
{
	if (root >= g->n)
		return -EINVAL;
	uint64_t *q = malloc(g->n * sizeof(*q));
	if (!q)
		return -ENOMEM;
	for (uint64_t v = 0; v < g->n; v++)
		level[v] = BFS_UNREACHED;
	uint64_t head = 0, tail = 0;
	level[root] = 0;
	q[tail++] = root;
	int ret = 0;
	while (head < tail) {
		uint64_t u = q[head++];
		uint64_t b = g->off[u], e = g->off[u + 1];
		if (b > e || e > g->m) {
			ret = -EINVAL;
			break;
		}
		for (uint64_t j = b; j < e; j++) {
			uint64_t v = csr_nbr(g, j);
			if (v >= g->n) {
				ret = -EINVAL;
				goto out;
			}
			if (level[v] == BFS_UNREACHED) {
				level[v] = level[u] + 1;
				q[tail++] = v;
			}
		}
	}
out:
	free(q);
	return ret;
}

static int has_edge(const struct csr_graph *g, uint64_t u, uint64_t v)
{
	for (uint64_t j = g->off[u]; j < g->off[u + 1]; j++)
		if (csr_nbr(g, j) == v)
			return 1;
	return 0;
}

int bfs_validate(const struct csr_graph *g, uint64_t root, const uint32_t *level,
		 const int64_t *parent, char *err, size_t errlen)
{
	if (root >= g->n || level[root] != 0 || parent[root] != (int64_t)root)
		return fail(err, errlen, -EINVAL, "root %llu: level %u parent %lld",
			    (unsigned long long)root, root < g->n ? level[root] : 0,
			    root < g->n ? (long long)parent[root] : -1LL);
	for (uint64_t v = 0; v < g->n; v++) {
		if (level[v] == BFS_UNREACHED) {
			if (parent[v] != -1)
				return fail(err, errlen, -EINVAL,
					    "unreached vertex %llu has parent %lld",
					    (unsigned long long)v, (long long)parent[v]);
			continue;
		}
		if (v != root) {
			int64_t p = parent[v];
			if (p < 0 || (uint64_t)p >= g->n)
				return fail(err, errlen, -EINVAL, "vertex %llu: parent %lld",
					    (unsigned long long)v, (long long)p);
			if (level[p] == BFS_UNREACHED || level[p] + 1 != level[v])
				return fail(err, errlen, -EINVAL,
					    "vertex %llu at level %u has parent %lld at level %u",
					    (unsigned long long)v, level[v], (long long)p, level[p]);
			if (!has_edge(g, (uint64_t)p, v))
				return fail(err, errlen, -EINVAL,
					    "tree edge %lld->%llu is not in the graph", (long long)p,
					    (unsigned long long)v);
		}
		for (uint64_t j = g->off[v]; j < g->off[v + 1]; j++) {
			uint64_t w = csr_nbr(g, j);
			if (level[w] == BFS_UNREACHED || level[w] > level[v] + 1)
				return fail(err, errlen, -EINVAL,
					    "edge %llu->%llu spans levels %u and %u",
					    (unsigned long long)v, (unsigned long long)w, level[v],
					    level[w]);
		}
	}
	return 0;
}

int bfs_pick_roots(const struct csr_graph *g, uint64_t seed, unsigned k, uint64_t *roots)
{
	unsigned found = 0;
	uint64_t s = csr_mix64(seed ^ UINT64_C(0x726f6f7473));
	uint64_t tries = 0, max_tries = 64 * (uint64_t)k + 1024;
	while (found < k && tries < max_tries) {
		tries++;
		s += UINT64_C(0x9e3779b97f4a7c15);
		uint64_t v = (uint64_t)(((unsigned __int128)csr_mix64(s) * g->n) >> 64);
		if (g->off[v + 1] <= g->off[v])
			continue;
		int dup = 0;
		for (unsigned i = 0; i < found; i++)
			dup |= roots[i] == v;
		if (!dup)
			roots[found++] = v;
	}
	if (found < k) {
		/* Sparse graph: fall back to a scan in vertex order. */
		for (uint64_t v = 0; v < g->n && found < k; v++) {
			if (g->off[v + 1] <= g->off[v])
				continue;
			int dup = 0;
			for (unsigned i = 0; i < found; i++)
				dup |= roots[i] == v;
			if (!dup)
				roots[found++] = v;
		}
	}
	return (int)found;
}
