/* Session ids (net/server.h server_sid_next): format, and unique over many ids
 * taken from several threads at once. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net/server.h"
#include "unit.h"

#define SID_THREADS 4
#define SID_PER_THREAD 50000

static char sid_ids[SID_THREADS * SID_PER_THREAD][20];

static void *sid_thread(void *arg)
{
	size_t base = (size_t)(uintptr_t)arg * SID_PER_THREAD;
	for (size_t i = 0; i < SID_PER_THREAD; i++)
		server_sid_next(sid_ids[base + i]);
	return NULL;
}

static int sid_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_format(void)
{
	char a[20], b[20];
	server_sid_next(a);
	server_sid_next(b);
	size_t la = strlen(a);
	CHECK(la >= 14 && la <= 19);
	CHECK(strspn(a, "0123456789abcdefghijkmnpqrstvwxyz") == la);
	CHECK(strcmp(a, b) != 0);
	/* the node id (last 10 characters) is the same within a process */
	CHECK(strcmp(a + la - 10, b + strlen(b) - 10) == 0);
}

static void test_unique_across_threads(void)
{
	pthread_t t[SID_THREADS];
	for (uintptr_t i = 0; i < SID_THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, sid_thread, (void *)i) == 0);
	for (int i = 0; i < SID_THREADS; i++)
		pthread_join(t[i], NULL);
	qsort(sid_ids, SID_THREADS * SID_PER_THREAD, sizeof(sid_ids[0]), sid_cmp);
	size_t dups = 0;
	for (size_t i = 1; i < SID_THREADS * SID_PER_THREAD; i++)
		if (strcmp(sid_ids[i - 1], sid_ids[i]) == 0)
			dups++;
	CHECK(dups == 0);
}

int main(void)
{
	test_format();
	test_unique_across_threads();
	return unit_finish("server_sid");
}
