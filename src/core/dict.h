/* A small bounded hash table: byte-string keys (copied), fixed-size values stored
 * inline, entries kept in least-recently-used order. For per-process tables keyed
 * by something a peer controls (client IPs, account names, maildrops), so:
 *   - the hash is seeded per table from getrandom(), so chains cannot be aimed at;
 *   - at most max_entries entries: when the table is full, dict_put either forgets
 *     the least recently used entry (DICT_EVICT: caches, throttles) or fails
 *     (DICT_NO_EVICT: tables whose entries must not be dropped, e.g. counts that
 *     are decremented later);
 *   - keys are at most DICT_KEY_MAX bytes (longer is refused: truncate first).
 *
 * Values are value_size bytes, zeroed when created, suitably aligned for any type,
 * and stay at the same address until their entry is deleted or evicted (so a
 * caller may keep a pointer while it does not call dict_put or dict_delete*).
 * "Used" means created by dict_put or moved by dict_touch; dict_get does not
 * change the order.
 *
 * Not thread-safe: a table belongs to one thread or is guarded by its owner's
 * lock (auth/throttle.c, auth/ratelimit.c hold a mutex around every call). */
#ifndef HERMOD_CORE_DICT_H
#define HERMOD_CORE_DICT_H

#include <stdbool.h>
#include <stddef.h>

#define DICT_KEY_MAX 4096

enum dict_policy {
	DICT_NO_EVICT, /* full: dict_put of a new key fails */
	DICT_EVICT,    /* full: the least recently used entry is forgotten */
};

struct dict;

/* max_entries 0 means unbounded (only for tables bounded by their caller).
 * NULL when out of memory. */
struct dict *dict_new(size_t value_size, size_t max_entries, enum dict_policy policy);
void dict_free(struct dict **d);

/* The value of key, or NULL when absent. */
void *dict_get(struct dict *d, const void *key, size_t keylen);
/* The value of key, created (zeroed, most recently used) when absent; *created_r
 * (may be NULL) tells which. NULL when out of memory, when keylen exceeds
 * DICT_KEY_MAX, or when the table is full under DICT_NO_EVICT. An existing entry
 * keeps its place in the order (dict_touch moves it). */
void *dict_put(struct dict *d, const void *key, size_t keylen, bool *created_r);
/* Makes value (from dict_get/dict_put) the most recently used. */
void dict_touch(struct dict *d, void *value);
/* Removes key; returns true when it was there. */
bool dict_delete(struct dict *d, const void *key, size_t keylen);
/* Removes the entry of value (from dict_get/dict_put/dict_oldest). */
void dict_delete_value(struct dict *d, void *value);

/* The least recently used value, or NULL when empty: with dict_next, walks from
 * least to most recently used (expiry loops stop at the first live entry). */
void *dict_oldest(struct dict *d);
/* The value used next after value, or NULL at the end. */
void *dict_next(struct dict *d, void *value);
/* The key of value's entry (not NUL-terminated; *len_r gets its length). */
const void *dict_key(const struct dict *d, const void *value, size_t *len_r);

size_t dict_count(const struct dict *d);
/* Changes the bound (0 = unbounded); under DICT_EVICT, entries over the new
 * bound are forgotten now, least recently used first. */
void dict_set_max(struct dict *d, size_t max_entries);

#endif
