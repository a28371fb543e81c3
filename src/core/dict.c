/* Bounded hash table with an LRU list. See dict.h.
 *
 * One allocation per entry: the header, then the value (aligned to
 * max_align_t), then the key. Buckets are a power of two and double when the
 * table holds more entries than buckets; they never shrink (a table that was
 * large once keeps its bucket array, a few bytes per bucket). */
#include "core/dict.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DICT_MIN_BUCKETS 16

struct dict_entry {
	struct dict_entry *hnext;               /* hash chain */
	struct dict_entry *lru_prev, *lru_next; /* head = least recently used */
	uint64_t hash;
	size_t keylen;
	alignas(max_align_t) unsigned char data[]; /* value, then key */
};

struct dict {
	struct dict_entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	size_t max_entries; /* 0 = unbounded */
	size_t value_size;  /* rounded up to max_align_t */
	enum dict_policy policy;
	struct dict_entry *lru_head, *lru_tail;
	uint64_t seed;
};

static struct dict_entry *dict_entry_of(const void *value)
{
	return (struct dict_entry *)((const unsigned char *)value -
	                             offsetof(struct dict_entry, data));
}

/* FNV-1a with a seeded basis and a final mix: not a MAC, but the seed is secret
 * and the table is never shown to peers. */
static uint64_t dict_hash(const struct dict *d, const unsigned char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ d->seed;
	for (size_t i = 0; i < len; i++) {
		h ^= key[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

struct dict *dict_new(size_t value_size, size_t max_entries, enum dict_policy policy)
{
	size_t align = alignof(max_align_t);
	if (value_size > SIZE_MAX / 2)
		return NULL;
	struct dict *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->nbuckets = DICT_MIN_BUCKETS;
	d->buckets = calloc(d->nbuckets, sizeof(*d->buckets));
	if (d->buckets == NULL) {
		free(d);
		return NULL;
	}
	d->value_size = (value_size + align - 1) / align * align;
	d->max_entries = max_entries;
	d->policy = policy;
	if (getrandom(&d->seed, sizeof(d->seed), GRND_NONBLOCK) != (ssize_t)sizeof(d->seed))
		d->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)d;
	return d;
}

void dict_free(struct dict **dp)
{
	struct dict *d = *dp;
	if (d == NULL)
		return;
	struct dict_entry *e = d->lru_head;
	while (e != NULL) {
		struct dict_entry *next = e->lru_next;
		free(e);
		e = next;
	}
	free(d->buckets);
	free(d);
	*dp = NULL;
}

static struct dict_entry *dict_find(struct dict *d, const void *key, size_t len, uint64_t hash)
{
	struct dict_entry *e = d->buckets[hash & (d->nbuckets - 1)];
	for (; e != NULL; e = e->hnext) {
		if (e->hash == hash && e->keylen == len &&
		    memcmp(e->data + d->value_size, key, len) == 0)
			return e;
	}
	return NULL;
}

static void dict_lru_unlink(struct dict *d, struct dict_entry *e)
{
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		d->lru_head = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		d->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void dict_lru_append(struct dict *d, struct dict_entry *e)
{
	e->lru_prev = d->lru_tail;
	e->lru_next = NULL;
	if (d->lru_tail != NULL)
		d->lru_tail->lru_next = e;
	else
		d->lru_head = e;
	d->lru_tail = e;
}

static void dict_remove(struct dict *d, struct dict_entry *e)
{
	struct dict_entry **pp = &d->buckets[e->hash & (d->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	dict_lru_unlink(d, e);
	d->count--;
	free(e);
}

/* Doubles the bucket array; keeps the old one when out of memory (chains get
 * longer, nothing breaks). */
static void dict_grow(struct dict *d)
{
	if (d->nbuckets > SIZE_MAX / 2 / sizeof(*d->buckets))
		return;
	size_t n = d->nbuckets * 2;
	struct dict_entry **b = calloc(n, sizeof(*b));
	if (b == NULL)
		return;
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct dict_entry *e = d->buckets[i];
		while (e != NULL) {
			struct dict_entry *next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(d->buckets);
	d->buckets = b;
	d->nbuckets = n;
}

void *dict_get(struct dict *d, const void *key, size_t keylen)
{
	if (keylen > DICT_KEY_MAX)
		return NULL;
	struct dict_entry *e = dict_find(d, key, keylen, dict_hash(d, key, keylen));
	return e != NULL ? e->data : NULL;
}

void *dict_put(struct dict *d, const void *key, size_t keylen, bool *created_r)
{
	if (created_r != NULL)
		*created_r = false;
	if (keylen > DICT_KEY_MAX)
		return NULL;
	uint64_t hash = dict_hash(d, key, keylen);
	struct dict_entry *e = dict_find(d, key, keylen, hash);
	if (e != NULL)
		return e->data;
	if (d->max_entries > 0 && d->count >= d->max_entries) {
		if (d->policy == DICT_NO_EVICT)
			return NULL;
		while (d->count >= d->max_entries && d->lru_head != NULL)
			dict_remove(d, d->lru_head);
	}
	e = calloc(1, sizeof(*e) + d->value_size + keylen);
	if (e == NULL)
		return NULL;
	memcpy(e->data + d->value_size, key, keylen);
	e->keylen = keylen;
	e->hash = hash;
	if (d->count >= d->nbuckets)
		dict_grow(d);
	size_t i = hash & (d->nbuckets - 1);
	e->hnext = d->buckets[i];
	d->buckets[i] = e;
	dict_lru_append(d, e);
	d->count++;
	if (created_r != NULL)
		*created_r = true;
	return e->data;
}

void dict_touch(struct dict *d, void *value)
{
	struct dict_entry *e = dict_entry_of(value);
	if (d->lru_tail == e)
		return;
	dict_lru_unlink(d, e);
	dict_lru_append(d, e);
}

bool dict_delete(struct dict *d, const void *key, size_t keylen)
{
	void *v = dict_get(d, key, keylen);
	if (v == NULL)
		return false;
	dict_remove(d, dict_entry_of(v));
	return true;
}

void dict_delete_value(struct dict *d, void *value)
{
	dict_remove(d, dict_entry_of(value));
}

void *dict_oldest(struct dict *d)
{
	return d->lru_head != NULL ? d->lru_head->data : NULL;
}

void *dict_next(struct dict *d, void *value)
{
	struct dict_entry *e = dict_entry_of(value)->lru_next;
	return e != NULL ? e->data : NULL;
}

const void *dict_key(const struct dict *d, const void *value, size_t *len_r)
{
	const struct dict_entry *e = dict_entry_of(value);
	*len_r = e->keylen;
	return e->data + d->value_size;
}

size_t dict_count(const struct dict *d)
{
	return d->count;
}

void dict_set_max(struct dict *d, size_t max_entries)
{
	d->max_entries = max_entries;
	if (d->policy == DICT_EVICT && max_entries > 0) {
		while (d->count > max_entries && d->lru_head != NULL)
			dict_remove(d, d->lru_head);
	}
}
