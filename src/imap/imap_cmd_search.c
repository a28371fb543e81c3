/* SEARCH and UID SEARCH in the session: the program is compiled on the loop
 * (imap/imap_search.h) and evaluated by one worker job over a copy of the view's
 * entries; the reply (SEARCH, or ESEARCH for RETURN and IMAP4rev2 clients) is
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
	struct imap_search_item *items;
	char **flags;
	char (*blobs)[BLOB_ID_LEN + 1];
	size_t n;
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
	for (size_t i = 0; r->flags != NULL && i < r->n; i++)
		free(r->flags[i]);
	free(r->flags);
	free(r->blobs);
	free(r->items);
	free(r->nums);
	free(r->modseqs);
	free(r->uids);
	free(r->saved);
	if (r->out != NULL)
		evbuffer_free(r->out);
}

static void imap_search_job_run(struct imap_job *j)
{
	struct imap_search_run *r = (struct imap_search_run *)j;
	struct imap_search_ctx ctx = {
	    .exists = r->exists, .max_uid = r->max_uid, .saved = r->saved, .nsaved = r->nsaved};
	j->result = 1;
	for (size_t i = 0; i < r->n; i++) {
		char *error = NULL;
		int m = imap_search_match(r->q, &ctx, j->st, &r->items[i], &error);
		if (m < 0) {
			j->result = -1;
			j->error = error;
			return;
		}
		if (m > 0) {
			r->nums[r->nmatch] = r->uid ? r->items[i].uid : r->items[i].seq;
			r->modseqs[r->nmatch] = r->items[i].modseq;
			r->uids[r->nmatch] = r->items[i].uid;
			r->nmatch++;
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
	size_t n = v->n;
	r->items = calloc(n > 0 ? n : 1, sizeof(*r->items));
	r->flags = calloc(n > 0 ? n : 1, sizeof(*r->flags));
	r->blobs = calloc(n > 0 ? n : 1, sizeof(*r->blobs));
	r->nums = calloc(n > 0 ? n : 1, sizeof(*r->nums));
	r->modseqs = calloc(n > 0 ? n : 1, sizeof(*r->modseqs));
	r->uids = calloc(n > 0 ? n : 1, sizeof(*r->uids));
	r->out = evbuffer_new();
	if (s->nsaved > 0) {
		r->saved = reallocarray(NULL, s->nsaved, sizeof(*r->saved));
		if (r->saved != NULL) {
			memcpy(r->saved, s->saved, s->nsaved * sizeof(*r->saved));
			r->nsaved = s->nsaved;
		}
	}
	if (r->items == NULL || r->flags == NULL || r->blobs == NULL || r->nums == NULL ||
	    r->modseqs == NULL || r->uids == NULL || r->out == NULL ||
	    (s->nsaved > 0 && r->saved == NULL)) {
		imap_job_free(&r->j);
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct imap_view_msg *m = &v->msgs[i];
		r->flags[i] = strdup(m->flags);
		if (r->flags[i] == NULL) {
			r->n = i;
			imap_job_free(&r->j);
			imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
			return;
		}
		memcpy(r->blobs[i], m->blob_id, sizeof(r->blobs[i]));
		r->items[i] = (struct imap_search_item){.seq = (uint32_t)i + 1,
		                                        .uid = m->uid,
		                                        .modseq = m->modseq,
		                                        .size = m->size,
		                                        .internal_date = m->internal_date,
		                                        .flags = r->flags[i],
		                                        .blob_id = r->blobs[i]};
	}
	r->n = n;
	r->exists = v->n;
	r->max_uid = v->n > 0 ? v->msgs[v->n - 1].uid : 0;
	if (uid)
		imap_job_submit_refresh(s, &r->j);
	else
		imap_job_submit(s, &r->j);
}
