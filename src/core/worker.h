/* Worker pool for blocking work (fsync, SQLite, password hashing). Jobs run on pool
 * threads; each job's completion runs on the event loop that submitted it: every
 * loop has a struct worker_inbox (an eventfd watched by that loop), and a job
 * carries the inbox it reports to. One pool serves every loop, so protocol code
 * never blocks a loop and a completion never runs on a foreign loop. */
#ifndef HERMOD_CORE_WORKER_H
#define HERMOD_CORE_WORKER_H

struct event_base;
struct worker_inbox;
struct worker_pool;

typedef void worker_job_fn(void *arg);  /* runs on a worker thread */
typedef void worker_done_fn(void *arg); /* runs on the submitting loop afterwards */

/* Returns NULL on failure (errno set). nice > 0 lowers the threads' CPU priority
 * (setpriority on each thread), so CPU-heavy jobs yield to the event loops. */
struct worker_pool *worker_pool_create(unsigned nthreads, int nice);
/* Queues a job whose completion runs on inbox's loop; done may be NULL. inbox
 * NULL: the job has no completion at all (done must be NULL; nothing is posted to
 * any loop), for a job that reports by itself (worker_inbox_post). Any thread.
 * Returns 1 ok, -1 out of memory. */
int worker_pool_submit(struct worker_pool *pool, struct worker_inbox *inbox, worker_job_fn *job,
                       worker_done_fn *done, void *arg);
/* Jobs queued or running (their completions may still be in an inbox). */
unsigned worker_pool_pending(const struct worker_pool *pool);
/* Waits for queued jobs to finish and joins the threads. Completions not yet run
 * stay in their inboxes (run them with worker_inbox_run). */
void worker_pool_destroy(struct worker_pool **pool);

/* Completions for the loop of base (an event on base). NULL on failure. */
struct worker_inbox *worker_inbox_new(struct event_base *base);
/* Runs the completions delivered so far, on the calling thread (the inbox's loop,
 * or any thread once that loop has stopped). */
void worker_inbox_run(struct worker_inbox *inbox);
/* Completions posted from any thread (e.g. the store's committer calling back):
 * allocate the post on the loop beforehand, so that posting cannot fail where
 * there is no way to report it. */
struct worker_post;
/* NULL on out of memory. */
struct worker_post *worker_post_new(worker_done_fn *fn, void *arg);
/* Frees a post that was never posted. NULL ok. */
void worker_post_free(struct worker_post **p);
/* Queues fn(arg) of p to run on inbox's loop (in order with the job completions
 * delivered there) and takes p over (freed after fn ran). Any thread; never
 * fails, never blocks but for the inbox's mutex. */
void worker_inbox_post(struct worker_inbox *inbox, struct worker_post *p);
/* Runs job(arg) of p on a pool thread, then fn(arg) of p on inbox's loop, like
 * worker_pool_submit, with the memory allocated beforehand (worker_post_new): it
 * never fails, so a job can be deferred and submitted later from where an error
 * could not be reported. Takes p over. Any thread. */
void worker_pool_submit_post(struct worker_pool *pool, struct worker_inbox *inbox,
                             worker_job_fn *job, struct worker_post *p);
/* Frees the inbox; completions still in it are run first. */
void worker_inbox_free(struct worker_inbox **inbox);

#endif
