#include "core/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

struct worker_job {
	struct worker_job *next;
	struct worker_inbox *inbox;
	worker_job_fn *job;
	worker_done_fn *done;
	void *arg;
};

struct worker_job_queue {
	struct worker_job *head, *tail;
};

/* One pool thread. An idle thread waits on its own condition variable, on the
 * pool's stack of idle threads: a job wakes exactly one thread, the one that went
 * idle last (its stack and caches are warm, and under a light load the same few
 * threads do all the work while the others stay asleep). */
struct worker_thread {
	struct worker_pool *pool;
	pthread_t tid;
	pthread_cond_t cond;
	bool idle;                 /* on the idle stack (pool->lock) */
	struct worker_thread *next_idle;
};

struct worker_pool {
	pthread_mutex_t lock;
	struct worker_job_queue waiting; /* waiting for a thread */
	struct worker_thread *idle;      /* idle threads, the last one to go idle first */
	bool quit;
	atomic_uint pending; /* queued or running */
	unsigned nthreads;
	int nice;
	struct worker_thread *threads;
};

struct worker_inbox {
	pthread_mutex_t lock;
	struct worker_job_queue done; /* finished, completion not yet run */
	int efd;                      /* eventfd: "done queue is non-empty" */
	struct event *ev;
};

static void worker_queue_push(struct worker_job_queue *q, struct worker_job *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct worker_job *worker_queue_take_all(struct worker_job_queue *q)
{
	struct worker_job *j = q->head;
	q->head = q->tail = NULL;
	return j;
}

static void worker_inbox_push(struct worker_inbox *inbox, struct worker_job *j)
{
	pthread_mutex_lock(&inbox->lock);
	bool was_empty = inbox->done.head == NULL;
	worker_queue_push(&inbox->done, j);
	pthread_mutex_unlock(&inbox->lock);
	if (was_empty) {
		uint64_t one = 1;
		ssize_t w = write(inbox->efd, &one, sizeof(one));
		(void)w; /* eventfd write only fails on counter overflow */
	}
}

/* A posted completion is a job that has already run: the inbox treats both alike. */
struct worker_post {
	struct worker_job job;
};

struct worker_post *worker_post_new(worker_done_fn *fn, void *arg)
{
	struct worker_post *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->job.done = fn;
	p->job.arg = arg;
	return p;
}

void worker_post_free(struct worker_post **pp)
{
	free(*pp);
	*pp = NULL;
}

void worker_inbox_post(struct worker_inbox *inbox, struct worker_post *p)
{
	p->job.inbox = inbox;
	/* the inbox frees what it runs with free(): p is the first member's address */
	worker_inbox_push(inbox, &p->job);
}

static void *worker_thread_main(void *ctx)
{
	struct worker_thread *t = ctx;
	struct worker_pool *pool = t->pool;
	if (pool->nice > 0) /* Linux: per-thread priority; failure only costs latency */
		(void)setpriority(PRIO_PROCESS, (id_t)gettid(), pool->nice);
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		struct worker_job *j = pool->waiting.head;
		if (j == NULL) {
			if (pool->quit)
				break;
			/* Waits until a submit takes t off the idle stack (or quit). A
			 * spurious wake-up finds t still on the stack and waits again. */
			if (!t->idle) {
				t->idle = true;
				t->next_idle = pool->idle;
				pool->idle = t;
			}
			pthread_cond_wait(&t->cond, &pool->lock);
			continue;
		}
		pool->waiting.head = j->next;
		if (pool->waiting.head == NULL)
			pool->waiting.tail = NULL;
		pthread_mutex_unlock(&pool->lock);

		j->job(j->arg);
		atomic_fetch_sub(&pool->pending, 1);
		if (j->inbox != NULL)
			worker_inbox_push(j->inbox, j);
		else
			free(j); /* no completion: no loop to wake */

		pthread_mutex_lock(&pool->lock);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

void worker_inbox_run(struct worker_inbox *inbox)
{
	uint64_t n;
	ssize_t r = read(inbox->efd, &n, sizeof(n));
	(void)r;
	pthread_mutex_lock(&inbox->lock);
	struct worker_job *j = worker_queue_take_all(&inbox->done);
	pthread_mutex_unlock(&inbox->lock);
	while (j != NULL) {
		struct worker_job *next = j->next;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
		j = next;
	}
}

static void worker_inbox_on_event(evutil_socket_t fd, short what, void *ctx)
{
	worker_inbox_run(ctx);
}

struct worker_inbox *worker_inbox_new(struct event_base *base)
{
	struct worker_inbox *inbox = calloc(1, sizeof(*inbox));
	if (inbox == NULL)
		return NULL;
	pthread_mutex_init(&inbox->lock, NULL);
	inbox->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (inbox->efd >= 0)
		inbox->ev =
		    event_new(base, inbox->efd, EV_READ | EV_PERSIST, worker_inbox_on_event, inbox);
	if (inbox->ev == NULL || event_add(inbox->ev, NULL) < 0) {
		if (inbox->ev != NULL)
			event_free(inbox->ev);
		if (inbox->efd >= 0)
			close(inbox->efd);
		pthread_mutex_destroy(&inbox->lock);
		free(inbox);
		return NULL;
	}
	return inbox;
}

void worker_inbox_free(struct worker_inbox **inboxp)
{
	struct worker_inbox *inbox = *inboxp;
	if (inbox == NULL)
		return;
	worker_inbox_run(inbox);
	event_free(inbox->ev);
	close(inbox->efd);
	pthread_mutex_destroy(&inbox->lock);
	free(inbox);
	*inboxp = NULL;
}

struct worker_pool *worker_pool_create(unsigned nthreads, int nice)
{
	struct worker_pool *pool = calloc(1, sizeof(*pool));
	if (pool == NULL)
		return NULL;
	pool->nice = nice;
	if (nthreads == 0)
		nthreads = 1;
	pthread_mutex_init(&pool->lock, NULL);
	pool->threads = calloc(nthreads, sizeof(*pool->threads));
	if (pool->threads == NULL)
		goto fail;
	for (unsigned i = 0; i < nthreads; i++) {
		struct worker_thread *t = &pool->threads[i];
		t->pool = pool;
		pthread_cond_init(&t->cond, NULL);
		if (pthread_create(&t->tid, NULL, worker_thread_main, t) != 0) {
			pthread_cond_destroy(&t->cond);
			break;
		}
		pool->nthreads++;
	}
	if (pool->nthreads == 0)
		goto fail;
	return pool;
fail:
	free(pool->threads);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
	errno = ENOMEM;
	return NULL;
}

static void worker_pool_queue(struct worker_pool *pool, struct worker_job *j)
{
	atomic_fetch_add(&pool->pending, 1);
	pthread_mutex_lock(&pool->lock);
	worker_queue_push(&pool->waiting, j);
	/* Wake one idle thread, if any (a busy one takes the job when it is done).
	 * The signal goes out after the unlock, so that the woken thread does not
	 * block at once on the mutex still held here. */
	struct worker_thread *t = pool->idle;
	if (t != NULL) {
		pool->idle = t->next_idle;
		t->next_idle = NULL;
		t->idle = false;
	}
	pthread_mutex_unlock(&pool->lock);
	if (t != NULL)
		pthread_cond_signal(&t->cond);
}

int worker_pool_submit(struct worker_pool *pool, struct worker_inbox *inbox, worker_job_fn *job,
                       worker_done_fn *done, void *arg)
{
	struct worker_job *j = malloc(sizeof(*j));
	if (j == NULL)
		return -1;
	j->inbox = inbox;
	j->job = job;
	j->done = done;
	j->arg = arg;
	worker_pool_queue(pool, j);
	return 1;
}

void worker_pool_submit_post(struct worker_pool *pool, struct worker_inbox *inbox,
                             worker_job_fn *job, struct worker_post *p)
{
	p->job.inbox = inbox;
	p->job.job = job;
	/* done and arg were set by worker_post_new; p is its job's address */
	worker_pool_queue(pool, &p->job);
}

unsigned worker_pool_pending(const struct worker_pool *pool)
{
	return atomic_load(&pool->pending);
}

void worker_pool_destroy(struct worker_pool **poolp)
{
	struct worker_pool *pool = *poolp;
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->quit = true;
	pool->idle = NULL;
	for (unsigned i = 0; i < pool->nthreads; i++) {
		pool->threads[i].idle = false;
		pthread_cond_signal(&pool->threads[i].cond);
	}
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->nthreads; i++) {
		pthread_join(pool->threads[i].tid, NULL);
		pthread_cond_destroy(&pool->threads[i].cond);
	}
	pthread_mutex_destroy(&pool->lock);
	free(pool->threads);
	free(pool);
	*poolp = NULL;
}
