/*
 * Statistics: engine-wide counters and a lock-free fill-latency histogram
 * (log2 buckets, each split linearly in HIST_SUB parts, so a percentile is
 * exact to within 1/HIST_SUB of its power of two).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine_i.h"

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	/* msb >= 3: the HIST_SUB-1 bits below the top bit select the linear part */
	unsigned sub = (unsigned)((v >> (msb - 3)) & (HIST_SUB - 1));
	return (msb - 2) * HIST_SUB + sub;
}

/* Upper bound (inclusive) of the values falling into bucket i. */
static uint64_t hist_upper(unsigned i)
{
	if (i < HIST_SUB)
		return i;
	unsigned msb = i / HIST_SUB + 2, sub = i % HIST_SUB;
	uint64_t lo = ((uint64_t)(HIST_SUB + sub)) << (msb - 3);
	return lo + (UINT64_C(1) << (msb - 3)) - 1;
}

void hist_add(struct hist *h, uint64_t ns)
{
	unsigned i = hist_index(ns);
	if (i >= HIST_BUCKETS)
		i = HIST_BUCKETS - 1;
	atomic_fetch_add_explicit(&h->b[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->n, 1, memory_order_relaxed);
	uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
	while (ns > m && !atomic_compare_exchange_weak(&h->max, &m, ns))
		;
}

/* The q-quantile (0 < q <= 1), as the upper bound of its bucket; 0 if empty. */
uint64_t hist_percentile(struct hist *h, double q)
{
	uint64_t counts[HIST_BUCKETS], n = 0;

	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		counts[i] = atomic_load_explicit(&h->b[i], memory_order_relaxed);
		n += counts[i];
	}
	if (!n)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	uint64_t acc = 0, max = atomic_load(&h->max);
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		acc += counts[i];
		if (acc >= rank) {
			uint64_t u = hist_upper(i);
			return u < max ? u : max;
		}
	}
	return max;
}

/*
 * Snapshot the engine's counters into *st.  The values are read without a
 * global lock, so they are each exact but not a single atomic snapshot.
 * Returns 0, or -EINVAL for NULL arguments.
 */
UMAPFS_EXPORT int umapfs_engine_stats(struct umapfs_engine *e, struct umapfs_stats *st)
{
	if (!e || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < NSHARDS; i++) {
		struct shard *s = &e->shards[i];
		pthread_mutex_lock(&s->lock);
		st->hits += s->hits;
		st->misses += s->misses;
		pthread_mutex_unlock(&s->lock);
	}
	st->fills = atomic_load(&e->fills);
	st->fill_errors = atomic_load(&e->fill_errors);
	st->evictions = atomic_load(&e->evictions);
	st->writebacks = atomic_load(&e->writebacks);
	st->writeback_errors = atomic_load(&e->writeback_errors);
	st->bytes_read = atomic_load(&e->bytes_read);
	st->bytes_written = atomic_load(&e->bytes_written);
	st->resident_bytes = atomic_load(&e->used);
	st->dirty_bytes = atomic_load(&e->dirty_bytes);
	st->buffer_size = e->cfg.buffer_size;
	st->page_size = e->cfg.page_size;
	st->prefetches = atomic_load(&e->prefetches);
	st->fill_ns_p50 = hist_percentile(&e->fill_hist, 0.50);
	st->fill_ns_p90 = hist_percentile(&e->fill_hist, 0.90);
	st->fill_ns_p99 = hist_percentile(&e->fill_hist, 0.99);
	st->fill_ns_max = atomic_load(&e->fill_hist.max);
	return 0;
}

/*
 * Write the statistics as "key value\n" lines (keys are the field names of
 * struct umapfs_stats) into buf, always NUL-terminated when len > 0.
 * Returns the length the whole text needs (excluding the NUL), as snprintf
 * does, or -EINVAL for a NULL st (or NULL buf with len > 0).
 */
UMAPFS_EXPORT int umapfs_stats_format(const struct umapfs_stats *st, char *buf, size_t len)
{
	if (!st || (!buf && len))
		return -EINVAL;
	return snprintf(buf, len,
			"hits %" PRIu64 "\nmisses %" PRIu64 "\nfills %" PRIu64 "\nfill_errors %" PRIu64
			"\nevictions %" PRIu64 "\nwritebacks %" PRIu64 "\nwriteback_errors %" PRIu64
			"\nbytes_read %" PRIu64 "\nbytes_written %" PRIu64 "\nresident_bytes %" PRIu64
			"\ndirty_bytes %" PRIu64 "\nbuffer_size %" PRIu64 "\npage_size %" PRIu64
			"\nprefetches %" PRIu64 "\nfill_ns_p50 %" PRIu64 "\nfill_ns_p90 %" PRIu64
			"\nfill_ns_p99 %" PRIu64 "\nfill_ns_max %" PRIu64 "\n",
			st->hits, st->misses, st->fills, st->fill_errors, st->evictions,
			st->writebacks, st->writeback_errors, st->bytes_read, st->bytes_written,
			st->resident_bytes, st->dirty_bytes, st->buffer_size, st->page_size,
			st->prefetches, st->fill_ns_p50, st->fill_ns_p90, st->fill_ns_p99,
			st->fill_ns_max);
}
