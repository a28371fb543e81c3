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

/* Completions posted from foreign threads (as the store's committer does): each
 * runs once, on the inbox's loop, in the order its thread posted them. */
#define WT_POSTERS 3
#define WT_POSTS 1000

struct wt_post_loop {
	struct event_base *base;
	struct worker_inbox *inbox;
	pthread_t self;
	unsigned next[WT_POSTERS]; /* the sequence number expected from each poster */
	unsigned done, wrong_thread, out_of_order;
};

struct wt_post_arg {
	struct wt_post_loop *l;
	unsigned poster, seq;
};

struct wt_poster {
	struct wt_post_loop *l;
	unsigned idx;
	unsigned failed;
};

static void wt_post_done(void *arg)
{
	struct wt_post_arg *a = arg;
	struct wt_post_loop *l = a->l;
	if (!pthread_equal(pthread_self(), l->self))
		l->wrong_thread++;
	if (a->seq != l->next[a->poster])
		l->out_of_order++;
	l->next[a->poster] = a->seq + 1;
	if (++l->done == WT_POSTERS * WT_POSTS)
		event_base_loopexit(l->base, NULL);
	free(a);
}

static void *wt_poster_main(void *arg)
{
	struct wt_poster *p = arg;
	for (unsigned i = 0; i < WT_POSTS; i++) {
		struct wt_post_arg *a = malloc(sizeof(*a));
		struct worker_post *wp = a != NULL ? worker_post_new(wt_post_done, a) : NULL;
		if (wp == NULL) {
			free(a);
			p->failed++;
			continue;
		}
		a->l = p->l;
		a->poster = p->idx;
		a->seq = i;
		worker_inbox_post(p->l->inbox, wp);
	}
	return NULL;
}

static void test_post_from_foreign_threads(void)
{
	struct wt_post_loop l = {.base = event_base_new(), .self = pthread_self()};
	l.inbox = worker_inbox_new(l.base);
	CHECK(l.inbox != NULL);
	if (l.inbox == NULL)
		return;
	struct wt_poster posters[WT_POSTERS];
	pthread_t threads[WT_POSTERS];
	for (unsigned i = 0; i < WT_POSTERS; i++) {
		posters[i] = (struct wt_poster){.l = &l, .idx = i};
		CHECK(pthread_create(&threads[i], NULL, wt_poster_main, &posters[i]) == 0);
	}
	event_base_dispatch(l.base); /* until the last completion ran */
	for (unsigned i = 0; i < WT_POSTERS; i++) {
		pthread_join(threads[i], NULL);
		CHECK(posters[i].failed == 0);
		CHECK(l.next[i] == WT_POSTS);
	}
	CHECK(l.done == WT_POSTERS * WT_POSTS);
	CHECK(l.wrong_thread == 0);
	CHECK(l.out_of_order == 0);

	/* a post not yet run when the loop stopped runs from worker_inbox_free; one
	 * never posted is freed by worker_post_free */
	struct wt_post_arg *a = malloc(sizeof(*a));
	*a = (struct wt_post_arg){.l = &l, .poster = 0, .seq = WT_POSTS};
	struct worker_post *wp = worker_post_new(wt_post_done, a);
	CHECK(wp != NULL);
	worker_inbox_post(l.inbox, wp);
	struct worker_post *unused = worker_post_new(wt_post_done, NULL);
	worker_post_free(&unused);
	CHECK(unused == NULL);
	worker_post_free(&unused); /* NULL is fine */
	worker_inbox_free(&l.inbox);
	CHECK(l.done == WT_POSTERS * WT_POSTS + 1 && l.next[0] == WT_POSTS + 1);
	event_base_free(l.base);
}

/* A job submitted without an inbox runs and reports nothing; a post submitted as
 * a job (worker_pool_submit_post) runs its job on the pool, then its function on
 * the inbox's loop, each once and in order. */
struct wt_seq {
	atomic_uint ran;
	unsigned done;
};

static void wt_seq_run(void *arg)
{
	struct wt_seq *q = arg;
	atomic_fetch_add(&q->ran, 1);
}

static void wt_seq_done(void *arg)
{
	struct wt_seq *q = arg;
	q->done++;
}

static void test_detached_and_post_jobs(void)
{
	struct worker_pool *pool = worker_pool_create(3, 0);
	struct event_base *base = event_base_new();
	struct worker_inbox *inbox = worker_inbox_new(base);
	CHECK(pool != NULL && inbox != NULL);
	if (pool == NULL || inbox == NULL)
		return;
	struct wt_seq detached = {0};
	for (int i = 0; i < 100; i++)
		CHECK(worker_pool_submit(pool, NULL, wt_seq_run, NULL, &detached) == 1);
	struct worker_pool *one = worker_pool_create(1, 0);
	struct wt_seq posted = {0};
	unsigned failed = 0;
	for (int i = 0; i < 100; i++) {
		struct worker_post *p = worker_post_new(wt_seq_done, &posted);
		if (p == NULL) {
			failed++;
			continue;
		}
		worker_pool_submit_post(one, inbox, wt_seq_run, p);
	}
	worker_pool_destroy(&pool);
	worker_pool_destroy(&one);
	CHECK(failed == 0);
	CHECK(atomic_load(&detached.ran) == 100);
	CHECK(detached.done == 0);
	CHECK(atomic_load(&posted.ran) == 100);
	CHECK(posted.done == 0); /* not before the inbox runs */
	worker_inbox_run(inbox);
	CHECK(posted.done == 100);
	worker_inbox_free(&inbox);
	event_base_free(base);
}

int main(void)
{
	test_completions_on_their_loop();
	test_leftover_completions();
	test_post_from_foreign_threads();
	test_detached_and_post_jobs();
	return unit_finish("worker");
}
