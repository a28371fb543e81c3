/* Store delivery throughput: THREADS threads each deliver PER_THREAD distinct
 * messages of MSG_SIZE bytes to one account, durable (fsync on). Prints
 * deliveries per second. Build: make bench-store; run: build/bench/store_bench [DIR]. */
#include "store/store.h"

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 20
#define PER_THREAD 2000
#define MSG_SIZE 4096

static struct store *st;
static int failures;

static void *run(void *arg)
{
	long t = (long)arg;
	char msg[MSG_SIZE];
	const char *accts[] = {"bench@bench.test"};

	memset(msg, 'x', sizeof(msg));
	for (int i = 0; i < PER_THREAD; i++) {
		int n = snprintf(msg, sizeof(msg), "Subject: %ld-%d\r\n\r\n", t, i);
		msg[n] = 'x';
		struct store_delivery d = {
		    .accounts = accts, .naccounts = 1, .data = msg, .len = sizeof(msg)};
		char *error = NULL;
		if (store_deliver(st, &d, NULL, &error) != 1) {
			fprintf(stderr, "deliver: %s\n", error ? error : "?");
			free(error);
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

int main(int argc, char **argv)
{
	char dir[512];
	pthread_t th[THREADS];
	struct timespec a, b;
	char *error = NULL;

	snprintf(dir, sizeof(dir), "%s/hermod-store-bench.XXXXXX", argc > 1 ? argv[1] : "/tmp");
	if (mkdtemp(dir) == NULL)
		return 1;
	struct store_options opts = {.data_dir = dir, .fsync = true};
	if (store_open(&opts, &st, &error) != 1 ||
	    store_domain_add(st, "bench.test", &error) != 1 ||
	    store_account_add(st, "bench@bench.test", "x", &error) != 1) {
		fprintf(stderr, "setup: %s\n", error ? error : "?");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, run, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("store_bench: %d threads x %d msgs of %d bytes: %.2f s, %.0f deliveries/s, %d "
	       "failures\n",
	       THREADS, PER_THREAD, MSG_SIZE, s, THREADS * PER_THREAD / s, failures);
	store_close(&st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return failures != 0;
}
