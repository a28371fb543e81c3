/* Worker pool for blocking work (fsync, SQLite, password hashing). Jobs run on pool
 * threads; their completion callbacks run on the event loop thread that owns the
 * pool, so protocol code never blocks the loop. */
#ifndef HERMOD_CORE_WORKER_H
#define HERMOD_CORE_WORKER_H

struct event_base;
struct worker_pool;

typedef void worker_job_fn(void *arg);  /* runs on a worker thread */
typedef void worker_done_fn(void *arg); /* runs on the loop thread afterwards */

/* Returns NULL on failure (errno set). nice > 0 lowers the threads' CPU priority
 * (setpriority on each thread), so CPU-heavy jobs yield to the event loop. */
struct worker_pool *worker_pool_create(struct event_base *base, unsigned nthreads, int nice);
/* Queues a job; done may be NULL. Returns 1 ok, -1 out of memory. */
int worker_pool_submit(struct worker_pool *pool, worker_job_fn *job, worker_done_fn *done,
		       void *arg);
/* Jobs queued or running whose completion has not been delivered yet. */
unsigned worker_pool_pending(const struct worker_pool *pool);
/* Waits for queued jobs to finish, runs their completions, joins the threads. */
void worker_pool_destroy(struct worker_pool **pool);

#endif
