/* TLS report counting (RFC 8460; docs/delivery.md): the queue runner notes how
 * TLS went on every outbound session, per day, policy domain and policy, in
 * memory; the counts go to the store every few seconds (store_tlsrpt_add) on a
 * worker, where the daily reports (tlsrpt_send.h) read them. One per runner,
 * on the runner's loop. */
#ifndef HERMOD_DELIVERY_TLSRPT_COUNT_H
#define HERMOD_DELIVERY_TLSRPT_COUNT_H

#include <time.h>

struct store;
struct store_tlsrpt_row;
struct worker_pool;
struct worker_inbox;
struct tlsrpt_counts;

/* At most this many distinct rows wait in memory; past it, the counts are
 * flushed at once and a row that still does not fit is dropped. */
#define TLSRPT_COUNTS_MAX 10000

/* NULL when out of memory. */
struct tlsrpt_counts *tlsrpt_counts_new(struct store *st, struct worker_pool *pool,
                                        struct worker_inbox *inbox);
/* Adds row->count to the row's key; row->day is ignored: the UTC day of now. */
void tlsrpt_counts_note(struct tlsrpt_counts *c, time_t now, const struct store_tlsrpt_row *row);
/* Sends what was counted to the store on a worker (nothing when a flush is
 * still out or nothing was counted). */
void tlsrpt_counts_flush(struct tlsrpt_counts *c);
/* After the loop and the pool have stopped and the inbox's completions have
 * run: what is left is written by the caller's thread; then freed. NULL ok. */
void tlsrpt_counts_free(struct tlsrpt_counts **c);

#endif
