/* Worker pool with one inbox per loop: every completion runs on the thread of the
 * loop that submitted the job, however the jobs interleave on the pool. */
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/worker.h"
#include "unit.h"

#define WT_LOOPS 3
#define WT_JOBS 2000

struct wt_loop {
	struct worker_pool *pool;
	struct event_base *base;
	struct worker_inbox *inbox;
	pthread_t thread; /* set by pthread_create */
	pthread_t self;   /* set by the loop's thread itself */
	unsigned done, wrong_thread;
	atomic_uint ran;
};

struct wt_job {
	struct wt_loop *loop;
};

static void wt_job_run(void *arg)
{
	struct wt_job *j = arg;
	atomic_fetch_add(&j->loop->ran, 1);
}

static void wt_job_done(void *arg)
{
	struct wt_job *j = arg;
	struct wt_loop *l = j->loop;
	if (!pthread_equal(pthread_self(), l->self))
		l->wrong_thread++;
	if (++l->done == WT_JOBS)
		event_base_loopexit(l->base, NULL);
	free(j);
}

static void *wt_loop_main(void *arg)
{
	struct wt_loop *l = arg;
	l->self = pthread_self();
	for (unsigned i = 0; i < WT_JOBS; i++) {
		struct wt_job *j = malloc(sizeof(*j));
		j->loop = l;
		worker_pool_submit(l->pool, l->inbox, wt_job_run, wt_job_done, j);
	}
	event_base_dispatch(l->base);
	return NULL;
}

static void test_completions_on_their_loop(void)
{
	struct worker_pool *pool = worker_pool_create(4, 0);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	struct wt_loop loops[WT_LOOPS] = {0};
	for (int i = 0; i < WT_LOOPS; i++) {
		loops[i].pool = pool;
		loops[i].base = event_base_new();
		loops[i].inbox = worker_inbox_new(loops[i].base);
		CHECK(loops[i].inbox != NULL);
	}
	for (int i = 0; i < WT_LOOPS; i++)
		CHECK(pthread_create(&loops[i].thread, NULL, wt_loop_main, &loops[i]) == 0);
	for (int i = 0; i < WT_LOOPS; i++)
		pthread_join(loops[i].thread, NULL);
	worker_pool_destroy(&pool);
	CHECK(pool == NULL);
	for (int i = 0; i < WT_LOOPS; i++) {
		CHECK(atomic_load(&loops[i].ran) == WT_JOBS);
		CHECK(loops[i].done == WT_JOBS);
		CHECK(loops[i].wrong_thread == 0);
		worker_inbox_free(&loops[i].inbox);
		CHECK(loops[i].inbox == NULL);
		event_base_free(loops[i].base);
	}
}

/* Completions left when a loop has stopped run from worker_inbox_run/free. */
static void test_leftover_completions(void)
{
	struct worker_pool *pool = worker_pool_create(1, 0);
	struct event_base *base = event_base_new();
	struct worker_inbox *inbox = worker_inbox_new(base);
	struct wt_loop l = {.pool = pool, .base = base, .inbox = inbox, .self = pthread_self()};
	for (int i = 0; i < 10; i++) {
		struct wt_job *j = malloc(sizeof(*j));
		j->loop = &l;
		CHECK(worker_pool_submit(pool, inbox, wt_job_run, wt_job_done, j) == 1);
	}
	worker_pool_destroy(&pool); /* every job has run; no completion yet */
	CHECK(atomic_load(&l.ran) == 10);
	CHECK(l.done == 0);
	worker_inbox_free(&inbox);
	CHECK(l.done == 10 && l.wrong_thread == 0);
	event_base_free(base);
}

int main(void)
{
	test_completions_on_their_loop();
	test_leftover_completions();
	return unit_finish("worker");
}
