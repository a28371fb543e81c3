/* Sequence numbers to UIDs as runs of consecutive UIDs (imap_uidmap.h). */
#include "imap/imap_uidmap.h"

#include <stdlib.h>
#include <string.h>

static uint32_t run_len(const struct imap_uidmap *m, uint32_t i)
{
	uint32_t end = i + 1 < m->nruns ? m->runs[i + 1].seq : m->n + 1;
	return end - m->runs[i].seq;
}

static int uidmap_reserve(struct imap_uidmap *m, uint32_t want)
{
	if (want <= m->cap)
		return 1;
	uint32_t ncap = m->cap ? m->cap : 4;
	while (ncap < want) {
		if (ncap > UINT32_MAX / 2)
			return -1;
		ncap *= 2;
	}
	struct imap_uidrun *p = reallocarray(m->runs, ncap, sizeof(*p));
	if (p == NULL)
		return -1;
	m->runs = p;
	m->cap = ncap;
	return 1;
}

int imap_uidmap_append(struct imap_uidmap *m, uint32_t uid)
{
	uint32_t max = imap_uidmap_max(m);
	if (uid == 0 || (m->n > 0 && uid <= max) || m->n == UINT32_MAX)
		return -1;
	if (m->n > 0 && uid == max + 1) {
		m->n++;
		return 1;
	}
	if (uidmap_reserve(m, m->nruns + 1) < 0)
		return -1;
	m->runs[m->nruns++] = (struct imap_uidrun){.uid = uid, .seq = m->n + 1};
	m->n++;
	return 1;
}

/* The run holding message seq (1..n). */
static uint32_t run_of_seq(const struct imap_uidmap *m, uint32_t seq)
{
	uint32_t lo = 0, hi = m->nruns;
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (m->runs[mid].seq <= seq)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

uint32_t imap_uidmap_uid(const struct imap_uidmap *m, uint32_t seq)
{
	if (seq == 0 || seq > m->n)
		return 0;
	const struct imap_uidrun *r = &m->runs[run_of_seq(m, seq)];
	return r->uid + (seq - r->seq);
}

/* The last run starting at or below uid (the map is not empty and uid is at
 * least the first UID). */
static uint32_t run_at(const struct imap_uidmap *m, uint32_t uid)
{
	uint32_t lo = 0, hi = m->nruns;
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (m->runs[mid].uid <= uid)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

uint32_t imap_uidmap_seq(const struct imap_uidmap *m, uint32_t uid)
{
	if (m->nruns == 0 || uid < m->runs[0].uid)
		return 0;
	uint32_t lo = run_at(m, uid);
	uint32_t off = uid - m->runs[lo].uid;
	return off < run_len(m, lo) ? m->runs[lo].seq + off : 0;
}

uint32_t imap_uidmap_lower(const struct imap_uidmap *m, uint32_t uid)
{
	if (m->nruns == 0 || uid <= m->runs[0].uid)
		return 1;
	uint32_t lo = run_at(m, uid);
	uint32_t off = uid - m->runs[lo].uid;
	if (off < run_len(m, lo))
		return m->runs[lo].seq + off;
	/* past this run: the next run's first message (or n + 1) */
	return m->runs[lo].seq + run_len(m, lo);
}

uint32_t imap_uidmap_max(const struct imap_uidmap *m)
{
	if (m->nruns == 0)
		return 0;
	return m->runs[m->nruns - 1].uid + run_len(m, m->nruns - 1) - 1;
}

void imap_uidmap_run(const struct imap_uidmap *m, uint32_t i, uint32_t *uid_r, uint32_t *len_r)
{
	*uid_r = m->runs[i].uid;
	*len_r = run_len(m, i);
}

int imap_uidmap_remove(struct imap_uidmap *m, uint32_t seq)
{
	if (seq == 0 || seq > m->n)
		return 1;
	uint32_t i = run_of_seq(m, seq);
	struct imap_uidrun *r = &m->runs[i];
	uint32_t len = run_len(m, i), off = seq - r->seq;
	uint32_t next; /* the first run whose sequence numbers move down */
	if (len == 1) {
		/* the run goes */
		memmove(&m->runs[i], &m->runs[i + 1], (m->nruns - i - 1) * sizeof(m->runs[0]));
		m->nruns--;
		next = i;
	} else if (off == 0) {
		r->uid++; /* same seq: it now starts one UID later */
		next = i + 1;
	} else if (off == len - 1) {
		next = i + 1; /* the last one goes: the run is shorter */
	} else {
		/* split: [uid, uid+off) stays, [uid+off+1, ...) follows at seq */
		if (uidmap_reserve(m, m->nruns + 1) < 0)
			return -1;
		r = &m->runs[i];
		memmove(&m->runs[i + 2], &m->runs[i + 1], (m->nruns - i - 1) * sizeof(m->runs[0]));
		m->runs[i + 1] = (struct imap_uidrun){.uid = r->uid + off + 1, .seq = seq + 1};
		m->nruns++;
		next = i + 1;
	}
	for (uint32_t k = next; k < m->nruns; k++)
		m->runs[k].seq--;
	m->n--;
	return 1;
}

void imap_uidmap_trim(struct imap_uidmap *m)
{
	if (m->nruns == 0) {
		free(m->runs);
		m->runs = NULL;
		m->cap = 0;
		return;
	}
	if (m->cap > m->nruns) {
		struct imap_uidrun *p = reallocarray(m->runs, m->nruns, sizeof(*p));
		if (p != NULL) {
			m->runs = p;
			m->cap = m->nruns;
		}
	}
}

int imap_uidmap_copy(struct imap_uidmap *dst, const struct imap_uidmap *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->nruns == 0) {
		dst->n = src->n;
		return 1;
	}
	dst->runs = reallocarray(NULL, src->nruns, sizeof(*dst->runs));
	if (dst->runs == NULL)
		return -1;
	memcpy(dst->runs, src->runs, src->nruns * sizeof(*dst->runs));
	dst->nruns = dst->cap = src->nruns;
	dst->n = src->n;
	return 1;
}

void imap_uidmap_free(struct imap_uidmap *m)
{
	free(m->runs);
	memset(m, 0, sizeof(*m));
}

size_t imap_uidmap_bytes(const struct imap_uidmap *m)
{
	return (size_t)m->cap * sizeof(m->runs[0]);
}
