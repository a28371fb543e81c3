/* TLS report counting (tlsrpt_count.h). */
#include "delivery/tlsrpt_count.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dict.h"
#include "core/log.h"
#include "core/worker.h"
#include "delivery/tlsrpt.h"
#include "store/store.h"

/* A row's key: its eight strings, each followed by a NUL. */
#define KEY_FIELDS 8

struct tlsrpt_counts {
	struct store *st;
	struct worker_pool *pool;
	struct worker_inbox *inbox;
	struct dict *d; /* key -> uint64_t count */
	bool flushing;  /* a job is out */
};

struct flush_job {
	struct tlsrpt_counts *c;
	struct dict *d; /* taken from c */
	struct store_tlsrpt_row *rows;
	size_t n;
	int rc;
	char *error;
};

struct tlsrpt_counts *tlsrpt_counts_new(struct store *st, struct worker_pool *pool,
                                        struct worker_inbox *inbox)
{
	struct tlsrpt_counts *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->st = st;
	c->pool = pool;
	c->inbox = inbox;
	c->d = dict_new(sizeof(uint64_t), TLSRPT_COUNTS_MAX, DICT_NO_EVICT);
	if (c->d == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

static size_t key_build(char *out, size_t outlen, const char *const v[KEY_FIELDS])
{
	size_t len = 0;
	for (int i = 0; i < KEY_FIELDS; i++) {
		const char *s = v[i] != NULL ? v[i] : "";
		size_t l = strlen(s);
		if (len + l + 1 > outlen)
			return 0;
		memcpy(out + len, s, l);
		out[len + l] = '\0';
		len += l + 1;
	}
	return len;
}

void tlsrpt_counts_note(struct tlsrpt_counts *c, time_t now, const struct store_tlsrpt_row *row)
{
	if (c == NULL)
		return;
	char day[TLSRPT_DAY_LEN + 1];
	if (tlsrpt_day(now, day) < 0)
		return;
	const char *v[KEY_FIELDS] = {day,     row->domain, row->policy_type, row->policy,
	                             row->mx, row->result, row->sending_ip,  row->receiving_ip};
	char key[DICT_KEY_MAX];
	size_t klen = key_build(key, sizeof(key), v);
	if (klen == 0)
		return; /* a policy this long is not worth a report row */
	uint64_t *n = dict_put(c->d, key, klen, NULL);
	if (n == NULL) {
		tlsrpt_counts_flush(c);
		if (c->d == NULL || (n = dict_put(c->d, key, klen, NULL)) == NULL) {
			log_warn(NULL, "event=tlsrpt-count-dropped domain=%s", row->domain);
			return;
		}
	}
	*n += row->count;
}

/* The rows of d, pointing into its keys. */
static int rows_of(struct dict *d, struct store_tlsrpt_row **rows_r, size_t *n_r)
{
	size_t n = 0, cap = 64;
	struct store_tlsrpt_row *rows = malloc(cap * sizeof(*rows));
	if (rows == NULL)
		return -1;
	for (uint64_t *v = dict_oldest(d); v != NULL; v = dict_next(d, v)) {
		if (n == cap) {
			struct store_tlsrpt_row *nr = realloc(rows, 2 * cap * sizeof(*rows));
			if (nr == NULL) {
				free(rows);
				return -1;
			}
			rows = nr;
			cap *= 2;
		}
		size_t klen;
		const char *k = dict_key(d, v, &klen);
		const char *f[KEY_FIELDS];
		for (int i = 0; i < KEY_FIELDS; i++) {
			f[i] = k;
			k += strlen(k) + 1;
		}
		rows[n++] = (struct store_tlsrpt_row){
		    .day = f[0],
		    .domain = f[1],
		    .policy_type = f[2],
		    .policy = f[3],
		    .mx = f[4],
		    .result = f[5],
		    .sending_ip = f[6],
		    .receiving_ip = f[7],
		    .count = *v,
		};
	}
	*rows_r = rows;
	*n_r = n;
	return 1;
}

static void flush_run(void *arg)
{
	struct flush_job *j = arg;
	j->rc = store_tlsrpt_add(j->c->st, j->rows, j->n, &j->error);
}

static void flush_job_free(struct flush_job *j)
{
	free(j->rows);
	dict_free(&j->d);
	free(j->error);
	free(j);
}

static void flush_done(void *arg)
{
	struct flush_job *j = arg;
	if (j->rc < 0)
		log_warn(NULL, "event=tlsrpt-flush-failed rows=%zu error=\"%s\"", j->n,
		         j->error != NULL ? j->error : "?");
	j->c->flushing = false;
	flush_job_free(j);
}

void tlsrpt_counts_flush(struct tlsrpt_counts *c)
{
	if (c == NULL || c->flushing || c->d == NULL || dict_oldest(c->d) == NULL)
		return;
	struct flush_job *j = calloc(1, sizeof(*j));
	struct dict *fresh = dict_new(sizeof(uint64_t), TLSRPT_COUNTS_MAX, DICT_NO_EVICT);
	if (j == NULL || fresh == NULL) {
		free(j);
		dict_free(&fresh);
		return;
	}
	j->c = c;
	j->d = c->d;
	if (rows_of(j->d, &j->rows, &j->n) < 0) {
		free(j);
		dict_free(&fresh);
		return;
	}
	c->d = fresh;
	if (worker_pool_submit(c->pool, c->inbox, flush_run, flush_done, j) < 0) {
		/* keep counting into the old table */
		dict_free(&c->d);
		c->d = j->d;
		j->d = NULL;
		flush_job_free(j);
		return;
	}
	c->flushing = true;
}

void tlsrpt_counts_free(struct tlsrpt_counts **cp)
{
	struct tlsrpt_counts *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	struct store_tlsrpt_row *rows;
	size_t n;
	if (c->d != NULL && dict_oldest(c->d) != NULL && rows_of(c->d, &rows, &n) > 0) {
		char *err = NULL;
		if (store_tlsrpt_add(c->st, rows, n, &err) < 0)
			log_warn(NULL, "event=tlsrpt-flush-failed rows=%zu error=\"%s\"", n,
			         err != NULL ? err : "?");
		free(err);
		free(rows);
	}
	dict_free(&c->d);
	free(c);
}
