/* Unit tests for the bounded hash table (src/core/dict.c) and the string
 * helpers (src/core/str.c). */
#include "unit.h"

#include "core/dict.h"
#include "core/str.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct val {
	uint64_t n;
	char tag[8];
};

static void test_basic(void)
{
	struct dict *d = dict_new(sizeof(struct val), 0, DICT_NO_EVICT);
	bool created = false;

	CHECK(d != NULL);
	CHECK(dict_get(d, "a", 1) == NULL);
	CHECK(dict_oldest(d) == NULL);
	struct val *v = dict_put(d, "a", 1, &created);
	CHECK(v != NULL && created);
	CHECK(v->n == 0 && v->tag[0] == '\0'); /* zeroed */
	CHECK((uintptr_t)v % _Alignof(max_align_t) == 0);
	v->n = 42;
	CHECK(dict_put(d, "a", 1, &created) == v && !created);
	CHECK(dict_get(d, "a", 1) == v);
	CHECK(((struct val *)dict_get(d, "a", 1))->n == 42);
	/* keys are bytes with a length: prefixes, NULs and case all differ */
	CHECK(dict_get(d, "A", 1) == NULL);
	CHECK(dict_get(d, "a\0", 2) == NULL);
	CHECK(dict_get(d, "", 0) == NULL);
	CHECK(dict_put(d, "a\0", 2, NULL) != v);
	CHECK(dict_put(d, "", 0, NULL) != NULL);
	CHECK(dict_count(d) == 3);
	size_t len = 99;
	const char *k = dict_key(d, v, &len);
	CHECK(len == 1 && k[0] == 'a');
	CHECK(dict_delete(d, "a", 1));
	CHECK(!dict_delete(d, "a", 1));
	CHECK(dict_get(d, "a", 1) == NULL);
	CHECK(dict_count(d) == 2);
	/* too long a key is refused, not truncated */
	static char big[DICT_KEY_MAX + 1];
	memset(big, 'x', sizeof(big));
	CHECK(dict_put(d, big, sizeof(big), &created) == NULL && !created);
	CHECK(dict_put(d, big, DICT_KEY_MAX, NULL) != NULL);
	dict_free(&d);
	CHECK(d == NULL);
	dict_free(&d);
}

/* Many keys: growth keeps every entry reachable with its value; deleting every
 * other one leaves exactly the rest. */
static void test_many(void)
{
	enum { N = 50000 };
	struct dict *d = dict_new(sizeof(uint64_t), 0, DICT_NO_EVICT);
	char key[32];

	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);
		uint64_t *v = dict_put(d, key, (size_t)n, NULL);
		CHECK(v != NULL);
		if (v != NULL)
			*v = (uint64_t)i * 7;
	}
	CHECK(dict_count(d) == N);
	int bad = 0;
	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);
		uint64_t *v = dict_get(d, key, (size_t)n);
		if (v == NULL || *v != (uint64_t)i * 7)
			bad++;
	}
	CHECK(bad == 0);
	for (int i = 0; i < N; i += 2) {
		int n = snprintf(key, sizeof(key), "key-%d", i);
		if (!dict_delete(d, key, (size_t)n))
			bad++;
	}
	CHECK(bad == 0);
	CHECK(dict_count(d) == N / 2);
	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);
		uint64_t *v = dict_get(d, key, (size_t)n);
		if ((i % 2 == 0) != (v == NULL))
			bad++;
		else if (v != NULL && *v != (uint64_t)i * 7)
			bad++;
	}
	CHECK(bad == 0);
	/* the walk sees each remaining entry once, oldest first */
	size_t seen = 0;
	int last = -1;
	for (uint64_t *v = dict_oldest(d); v != NULL; v = dict_next(d, v)) {
		if ((int)(*v / 7) <= last)
			bad++;
		last = (int)(*v / 7);
		seen++;
	}
	CHECK(bad == 0);
	CHECK(seen == N / 2);
	/* delete the rest through the walk */
	void *v = dict_oldest(d);
	while (v != NULL) {
		void *next = dict_next(d, v);
		dict_delete_value(d, v);
		v = next;
	}
	CHECK(dict_count(d) == 0);
	CHECK(dict_oldest(d) == NULL);
	CHECK(dict_put(d, "again", 5, NULL) != NULL);
	CHECK(dict_count(d) == 1);
	dict_free(&d);
}

static void test_bounds(void)
{
	char key[32];

	/* DICT_NO_EVICT: a full table refuses new keys, keeps old ones */
	struct dict *d = dict_new(sizeof(int), 3, DICT_NO_EVICT);
	CHECK(dict_put(d, "1", 1, NULL) != NULL);
	CHECK(dict_put(d, "2", 1, NULL) != NULL);
	CHECK(dict_put(d, "3", 1, NULL) != NULL);
	CHECK(dict_put(d, "4", 1, NULL) == NULL);
	CHECK(dict_put(d, "1", 1, NULL) != NULL); /* existing: fine */
	CHECK(dict_count(d) == 3);
	CHECK(dict_delete(d, "2", 1));
	CHECK(dict_put(d, "4", 1, NULL) != NULL);
	dict_free(&d);

	/* DICT_EVICT: the least recently used goes; touch saves an entry */
	d = dict_new(sizeof(int), 3, DICT_EVICT);
	void *one = dict_put(d, "1", 1, NULL);
	dict_put(d, "2", 1, NULL);
	dict_put(d, "3", 1, NULL);
	dict_touch(d, one);
	CHECK(dict_put(d, "4", 1, NULL) != NULL); /* forgets "2" */
	CHECK(dict_get(d, "1", 1) == one);
	CHECK(dict_get(d, "2", 1) == NULL);
	CHECK(dict_get(d, "3", 1) != NULL);
	CHECK(dict_count(d) == 3);
	/* a flood never grows it */
	for (int i = 0; i < 10000; i++) {
		int n = snprintf(key, sizeof(key), "flood-%d", i);
		CHECK(dict_put(d, key, (size_t)n, NULL) != NULL);
	}
	CHECK(dict_count(d) == 3);
	CHECK(dict_get(d, "flood-9999", 10) != NULL);
	CHECK(dict_get(d, "flood-9997", 10) != NULL);
	CHECK(dict_get(d, "flood-9996", 10) == NULL);
	/* lowering the bound forgets the oldest now */
	dict_set_max(d, 1);
	CHECK(dict_count(d) == 1);
	CHECK(dict_get(d, "flood-9999", 10) != NULL);
	dict_free(&d);
}

static void test_str(void)
{
	char *s = str_dup("hello");
	CHECK_STR(s, "hello");
	free(s);
	CHECK(str_dup(NULL) == NULL);
	s = str_ndup("abcdef", 3);
	CHECK_STR(s, "abc");
	free(s);
	s = str_ndup(NULL, 0);
	CHECK_STR(s, "");
	free(s);
	s = str_printf("%s=%d", "x", 5);
	CHECK_STR(s, "x=5");
	free(s);

	char *err = NULL;
	CHECK(str_error(&err, "%s: %u", "bad", 7u) == -1);
	CHECK_STR(err, "bad: 7");
	free(err);
	CHECK(str_error(NULL, "ignored %d", 1) == -1);
}

int main(void)
{
	test_basic();
	test_many();
	test_bounds();
	test_str();
	return unit_finish("dict");
}
