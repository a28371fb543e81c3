/* SEARCH and UID SEARCH in the session: the program is compiled on the loop
 * (imap/imap_search.h) and evaluated by one worker job over the view's messages,
 * their entries read from the store a batch at a time; the reply (SEARCH, or ESEARCH for RETURN and IMAP4rev2 clients) is
 * rendered there too. SEARCHRES (RFC 5182): RETURN (SAVE) keeps the result as
 * UIDs for "$". RFC 9051 7.5: no EXPUNGE during SEARCH, so SEARCH does not
 * refresh the view (UID SEARCH does). */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "imap/imap_search.h"
#include "imap/imap_session_int.h"

/* ---- SEARCH ---- */

struct imap_search_run {
	struct imap_job j;
	struct imap_search *q;
	bool uid;
	struct imap_uidmap map; /* the view's */
	struct imap_entries e;  /* one batch */
	uint32_t exists, max_uid;
	uint32_t *nums;
	uint64_t *modseqs;
	uint32_t *uids; /* of the matches, for SEARCHRES */
	size_t nmatch;
	uint32_t *saved; /* "$" as the session had it; then what RETURN (SAVE) keeps */
	size_t nsaved;
	struct evbuffer *out;
};

static void imap_search_run_free(struct imap_job *j)
{
	struct imap_search_run *r = (struct imap_search_run *)j;
	imap_search_free(&r->q);
	imap_uidmap_free(&r->map);
	imap_entries_clear(&r->e);
	free(r->e.v);
	free(r->nums);
	free(r->modseqs);
	free(r->uids);
	free(r->saved);
	if (r->out != NULL)
		evbuffer_free(r->out);
}

/* The view's messages in batches of IMAP_FETCH_BATCH, each batch's entries read
 * from the store in one snapshot; a message expunged by another session
 * meanwhile (not yet reported) has no entry and does not match (RFC 2180 4.3). */
static void imap_search_job_run(struct imap_job *j)
{
	struct imap_search_run *r = (struct imap_search_run *)j;
	struct imap_search_ctx ctx = {
	    .exists = r->exists, .max_uid = r->max_uid, .saved = r->saved, .nsaved = r->nsaved};
	uint32_t uids[IMAP_FETCH_BATCH];
	/* an empty view reads no entries: the mailbox is checked all the same */
	if (r->map.n == 0 && imap_job_check_view(j) <= 0)
		return;
	j->result = 1;
	for (uint32_t seq = 1; seq <= r->map.n;) {
		size_t k = 0;
		for (; k < IMAP_FETCH_BATCH && seq <= r->map.n; k++, seq++)
			uids[k] = imap_uidmap_uid(&r->map, seq);
		imap_entries_clear(&r->e);
		j->result = imap_entries_read(j->st, j->account, j->mailbox, j->uidvalidity, &r->map,
		                              uids, k, &r->e, &j->error);
		if (j->result <= 0)
			return;
		for (size_t i = 0; i < r->e.n; i++) {
			const struct imap_entry *x = &r->e.v[i];
			struct imap_search_item it = {.seq = x->seq,
			                              .uid = x->uid,
			                              .modseq = x->modseq,
			                              .size = x->size,
			                              .internal_date = x->internal_date,
			                              .flags = x->flags,
			                              .blob_id = x->blob_id};
			char *error = NULL;
			int m = imap_search_match(r->q, &ctx, j->st, &it, &error);
			if (m < 0) {
				j->result = -1;
				j->error = error;
				return;
			}
			if (m > 0) {
				r->nums[r->nmatch] = r->uid ? x->uid : x->seq;
				r->modseqs[r->nmatch] = x->modseq;
				r->uids[r->nmatch] = x->uid;
				r->nmatch++;
			}
		}
	}
	if (imap_search_saves(r->q)) {
		/* RFC 5182: the new "$" (room for every match) */
		uint32_t *keep = reallocarray(NULL, r->nmatch > 0 ? r->nmatch : 1, sizeof(*keep));
		if (keep == NULL) {
			j->result = -1;
			j->error = strdup("out of memory");
			return;
		}
		free(r->saved);
		r->saved = keep;
		r->nsaved = imap_search_save_select(r->q, r->uids, r->nmatch, keep);
	}
	if (!imap_search_replies(r->q))
		return;
	if (imap_search_reply(r->q, j->tag, r->uid, r->nums, r->modseqs, r->nmatch, r->out) < 0) {
		j->result = -1;
		j->error = strdup("out of memory");
	}
}

static void imap_search_job_done(struct imap_job *j)
{
	struct imap_search_run *r = (struct imap_search_run *)j;
	if (j->result < 0) {
		imap_job_tempfail(j, "search");
		return;
	}
	struct imap_session *s = j->s;
	if (j->result == 0) {
		imap_view_gone(s);
		return;
	}
	if (imap_search_saves(r->q)) {
		free(s->saved);
		s->saved = r->saved;
		s->nsaved = r->nsaved;
		r->saved = NULL;
		r->nsaved = 0;
	}
	struct evbuffer *out = imap_output(s);
	if (out != NULL)
		evbuffer_add_buffer(out, r->out);
	imap_job_tagged(j, "OK %sSEARCH completed", r->uid ? "UID " : "");
}

void imap_cmd_search(struct imap_session *s, const struct imap_command *cmd)
{
	bool uid = cmd->uid_name != NULL;
	struct imap_search *q = NULL;
	const char *code = NULL, *err = NULL;
	if (imap_search_compile(cmd->args, 0, cmd->nargs, &q, &code, &err) < 0) {
		if (code != NULL)
			imap_reply_bad(s, "NO [%s] %s", code, err != NULL ? err : "Invalid search");
		else
			imap_reply_bad(s, "BAD %s", err != NULL ? err : "Invalid search");
		return;
	}
	if (s->enabled & IMAP_EN_REV2)
		imap_search_force_esearch(q); /* RFC 9051 7.3.4 */
	if (imap_search_wants_modseq(q))
		s->enabled |= IMAP_EN_CONDSTORE; /* RFC 7162 3.1 */
	struct imap_search_run *r = imap_job_new(s, sizeof(*r));
	if (r == NULL) {
		imap_search_free(&q);
		return;
	}
	r->j.run = imap_search_job_run;
	r->j.done = imap_search_job_done;
	r->j.free = imap_search_run_free;
	r->q = q;
	r->uid = uid;
	struct imap_view *v = s->view;
	size_t n = v->map.n;
	r->nums = calloc(n > 0 ? n : 1, sizeof(*r->nums));
	r->modseqs = calloc(n > 0 ? n : 1, sizeof(*r->modseqs));
	r->uids = calloc(n > 0 ? n : 1, sizeof(*r->uids));
	r->out = evbuffer_new();
	r->j.mailbox = strdup(v->name);
	if (s->nsaved > 0) {
		r->saved = reallocarray(NULL, s->nsaved, sizeof(*r->saved));
		if (r->saved != NULL) {
			memcpy(r->saved, s->saved, s->nsaved * sizeof(*r->saved));
			r->nsaved = s->nsaved;
		}
	}
	if (r->nums == NULL || r->modseqs == NULL || r->uids == NULL || r->out == NULL ||
	    r->j.mailbox == NULL || (s->nsaved > 0 && r->saved == NULL) ||
	    imap_uidmap_copy(&r->map, &v->map) < 0) {
		imap_job_free(&r->j);
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return;
	}
	r->exists = v->map.n;
	r->max_uid = imap_uidmap_max(&v->map);
	if (uid)
		imap_job_submit_refresh(s, &r->j);
	else
		imap_job_submit(s, &r->j);
}
