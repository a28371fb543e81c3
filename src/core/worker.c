#include "core/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

struct worker_job {
	struct worker_job *next;
	worker_job_fn *job;
	worker_done_fn *done;
	void *arg;
};

struct worker_job_queue {
	struct worker_job *head, *tail;
};

struct worker_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker_job_queue waiting; /* waiting for a thread */
	struct worker_job_queue done; /* finished, completion not yet run */
	bool quit;
	unsigned pending; /* loop thread only */
	unsigned nthreads;
	int nice;
	pthread_t *threads;
	int efd; /* eventfd: "done queue is non-empty" */
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

static void *worker_thread_main(void *ctx)
{
	struct worker_pool *pool = ctx;
	if (pool->nice > 0) /* Linux: per-thread priority; failure only costs latency */
		(void)setpriority(PRIO_PROCESS, (id_t)gettid(), pool->nice);
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->waiting.head == NULL && !pool->quit)
			pthread_cond_wait(&pool->cond, &pool->lock);
		struct worker_job *j = pool->waiting.head;
		if (j == NULL)
			break; /* quit and nothing left */
		pool->waiting.head = j->next;
		if (pool->waiting.head == NULL)
			pool->waiting.tail = NULL;
		pthread_mutex_unlock(&pool->lock);

		j->job(j->arg);

		pthread_mutex_lock(&pool->lock);
		bool was_empty = pool->done.head == NULL;
		worker_queue_push(&pool->done, j);
		if (was_empty) {
			uint64_t one = 1;
			ssize_t w = write(pool->efd, &one, sizeof(one));
			(void)w; /* eventfd write only fails on counter overflow */
		}
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

static void worker_pool_run_completions(struct worker_pool *pool)
{
	uint64_t n;
	ssize_t r = read(pool->efd, &n, sizeof(n));
	(void)r;
	pthread_mutex_lock(&pool->lock);
	struct worker_job *j = worker_queue_take_all(&pool->done);
	pthread_mutex_unlock(&pool->lock);
	while (j != NULL) {
		struct worker_job *next = j->next;
		pool->pending--;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
		j = next;
	}
}

static void worker_pool_on_event(evutil_socket_t fd, short what, void *ctx)
{
	worker_pool_run_completions(ctx);
}

struct worker_pool *worker_pool_create(struct event_base *base, unsigned nthreads, int nice)
{
	struct worker_pool *pool = calloc(1, sizeof(*pool));
	if (pool == NULL)
		return NULL;
	pool->nice = nice;
	if (nthreads == 0)
		nthreads = 1;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pool->threads = calloc(nthreads, sizeof(pthread_t));
	if (pool->efd < 0 || pool->threads == NULL)
		goto fail;
	pool->ev = event_new(base, pool->efd, EV_READ | EV_PERSIST, worker_pool_on_event, pool);
	if (pool->ev == NULL || event_add(pool->ev, NULL) < 0)
		goto fail;
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&pool->threads[i], NULL, worker_thread_main, pool) != 0)
			break;
		pool->nthreads++;
	}
	if (pool->nthreads == 0)
		goto fail;
	return pool;
fail:
	if (pool->ev != NULL)
		event_free(pool->ev);
	if (pool->efd >= 0)
		close(pool->efd);
	free(pool->threads);
	free(pool);
	errno = ENOMEM;
	return NULL;
}

int worker_pool_submit(struct worker_pool *pool, worker_job_fn *job, worker_done_fn *done,
		       void *arg)
{
	struct worker_job *j = malloc(sizeof(*j));
	if (j == NULL)
		return -1;
	j->job = job;
	j->done = done;
	j->arg = arg;
	pool->pending++;
	pthread_mutex_lock(&pool->lock);
	worker_queue_push(&pool->waiting, j);
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return 1;
}

unsigned worker_pool_pending(const struct worker_pool *pool)
{
	return pool->pending;
}

void worker_pool_destroy(struct worker_pool **poolp)
{
	struct worker_pool *pool = *poolp;
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->quit = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	/* every job has finished: run the remaining completions here */
	uint64_t one = 1;
	ssize_t w = write(pool->efd, &one, sizeof(one));
	(void)w;
	worker_pool_run_completions(pool);
	event_free(pool->ev);
	close(pool->efd);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool->threads);
	free(pool);
	*poolp = NULL;
}
