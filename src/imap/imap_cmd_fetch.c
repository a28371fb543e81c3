/* FETCH and UID FETCH in the session: the attribute list is compiled on the loop
 * (imap/imap_fetch.h), the responses written by worker jobs from a copy of the
 * view's entries, in bounded steps: a step renders about IMAP_FETCH_STEP octets,
 * the next starts once the client has taken most of them
 * (line_session_notify_drain), so a session's memory stays bounded whatever the
 * message sizes. The session stays parked from the first step to the tagged
 * reply. RFC 9051 7.5: no EXPUNGE is reported during FETCH, so FETCH does not
 * refresh the view. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "imap/imap_fetch.h"
#include "imap/imap_session_int.h"
#include "imap/imap_vanished.h"
#include "net/line_session.h"

struct imap_fetch_run {
	struct imap_session *s;
	struct store *st;
	char *account;
	char *mailbox;
	uint32_t uidvalidity;
	char tag[IMAP_TAG_MAX + 1];
	bool uid, utf8, condstore;
	struct imap_fetch *f;
	struct imap_uidmap map; /* the view's, for sequence numbers */
	uint32_t *want;         /* the UIDs asked, ascending */
	size_t nwant, wcur;     /* wcur: the next one to read from the store */
	/* the batch being written: entries read from the store, one item each */
	struct imap_entries e;
	struct imap_fetch_item *items;
	size_t nitems, cur;
	struct imap_fetch_cursor *cursor;
	struct evbuffer *out;
	bool set_seen;               /* add \Seen to each batch first */
	struct imap_view_told *told; /* \Seen set by this step, for the view */
	size_t ntold, captold;
	size_t missing; /* UIDs asked that have no entry any more */
	bool gone;      /* the selected mailbox has gone */
	int result;     /* 1 step ok, -1 error, IMAP_FETCH_UNKNOWN_CTE */
	char *error;
	/* UID FETCH ... (CHANGEDSINCE n VANISHED), RFC 7162 3.2.6 */
	bool vanished;
	struct imap_seqset vset; /* the UID set, resolved against the view's last UID */
	struct imap_vanished vw;
};

static void imap_fetch_vanished_cb(void *ctx, uint32_t first, uint32_t last)
{
	struct imap_fetch_run *f = ctx;
	imap_vanished_add(&f->vw, first, last);
}

void imap_fetch_run_free(struct imap_fetch_run **fp)
{
	struct imap_fetch_run *f = *fp;
	if (f == NULL)
		return;
	imap_fetch_cursor_free(&f->cursor);
	imap_fetch_free(&f->f);
	imap_seqset_free(&f->vset);
	imap_uidmap_free(&f->map);
	imap_entries_clear(&f->e);
	free(f->e.v);
	free(f->items);
	free(f->want);
	if (f->out != NULL)
		evbuffer_free(f->out);
	free(f->told);
	free(f->account);
	free(f->mailbox);
	free(f->error);
	free(f);
	*fp = NULL;
}

static void imap_fetch_seen_cb(void *ctx, const struct store_message_info *m)
{
	struct imap_fetch_run *f = ctx;
	/* entries are in ascending UID order */
	size_t lo = 0, hi = f->e.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->e.v[mid].uid < m->uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == f->e.n || f->e.v[lo].uid != m->uid)
		return;
	char *nf = strdup(m->flags != NULL ? m->flags : "");
	if (nf == NULL)
		return;
	struct imap_entry *x = &f->e.v[lo];
	free(x->flags);
	x->flags = nf;
	x->modseq = m->modseq;
	x->marked = true; /* RFC 9051 6.4.5: the changed flags SHOULD go too */
	if (f->ntold == f->captold) {
		size_t ncap = f->captold ? f->captold * 2 : 64;
		struct imap_view_told *p = reallocarray(f->told, ncap, sizeof(*p));
		if (p == NULL)
			return; /* reported again by the next refresh: harmless */
		f->told = p;
		f->captold = ncap;
	}
	f->told[f->ntold++] = (struct imap_view_told){.uid = m->uid, .modseq = m->modseq};
}

/* Reads the next batch of entries from the store (and sets \Seen on them when
 * the FETCH does): 1 ok, 0 the mailbox has gone, -1 error. */
static int imap_fetch_load(struct imap_fetch_run *f)
{
	imap_entries_clear(&f->e);
	f->nitems = f->cur = 0;
	size_t k = f->nwant - f->wcur;
	if (k > IMAP_FETCH_BATCH)
		k = IMAP_FETCH_BATCH;
	int r = imap_entries_read(f->st, f->account, f->mailbox, f->uidvalidity, &f->map,
	                          f->want + f->wcur, k, &f->e, &f->error);
	if (r <= 0) {
		f->gone = r == 0;
		return r;
	}
	f->missing += k - f->e.n;
	f->wcur += k;
	/* CHANGEDSINCE (RFC 7162 3.1.4.1): only what changed after it */
	uint64_t since = imap_fetch_changedsince(f->f);
	size_t n = 0;
	for (size_t i = 0; i < f->e.n; i++) {
		if (since > 0 && f->e.v[i].modseq <= since) {
			free(f->e.v[i].flags);
			continue;
		}
		f->e.v[n++] = f->e.v[i];
	}
	f->e.n = n;
	if (f->set_seen) {
		/* RFC 9051 6.4.5: BODY[] sets \Seen; done first, so that FLAGS in the
		 * responses shows it */
		uint32_t uids[IMAP_FETCH_BATCH];
		size_t nu = 0;
		for (size_t i = 0; i < f->e.n; i++)
			if (strstr(f->e.v[i].flags, "\\Seen") == NULL)
				uids[nu++] = f->e.v[i].uid;
		static const struct store_flags_ops ops = {.changed = imap_fetch_seen_cb};
		char *error = NULL;
		if (nu > 0 && store_message_flags(f->st, f->account, f->mailbox, uids, nu,
		                                  STORE_FLAGS_ADD, "\\Seen", 0, &ops, f, &error) < 0)
			free(error); /* the messages are served all the same */
	}
	for (size_t i = 0; i < f->e.n; i++) {
		const struct imap_entry *x = &f->e.v[i];
		f->items[i] = (struct imap_fetch_item){
		    .seq = x->seq,
		    .uid = x->uid,
		    .modseq = x->modseq,
		    .size = x->size,
		    .internal_date = x->internal_date,
		    .flags = x->flags,
		    .blob_id = x->blob_id,
		    .add_flags = x->marked,
		    .add_modseq = f->condstore};
	}
	f->nitems = f->e.n;
	return 1;
}

/* One step on a worker: responses until about IMAP_FETCH_STEP octets are out. */
static void imap_fetch_step_run(void *arg)
{
	struct imap_fetch_run *f = arg;
	f->result = 1;
	if (f->vanished) {
		f->vanished = false;
		static const struct store_changes_ops vops = {.vanished = imap_fetch_vanished_cb};
		char *error = NULL;
		f->vw = (struct imap_vanished){.out = f->out, .only = &f->vset};
		if (store_mailbox_changes(f->st, f->account, f->mailbox,
		                          imap_fetch_changedsince(f->f), &vops, f, &error) < 0) {
			f->result = -1;
			f->error = error;
			return;
		}
		imap_vanished_end(&f->vw);
	}
	while (evbuffer_get_length(f->out) < IMAP_FETCH_STEP) {
		if (f->cur == f->nitems) {
			if (f->wcur == f->nwant)
				break;
			int r = imap_fetch_load(f);
			if (r <= 0) {
				f->result = r < 0 ? -1 : 1;
				break;
			}
			continue;
		}
		size_t budget = IMAP_FETCH_STEP - evbuffer_get_length(f->out);
		int r = imap_fetch_write(f->f, f->st, &f->items[f->cur], f->utf8, &f->cursor,
		                         f->out, budget, &f->error);
		if (r == 1) {
			f->cur++;
			continue;
		}
		if (r == 0)
			break;
		f->result = r;
		break;
	}
}

static bool imap_fetch_more(const struct imap_fetch_run *f)
{
	return !f->gone && (f->cur < f->nitems || f->wcur < f->nwant);
}

static void imap_fetch_step_done(void *arg);

static void imap_fetch_step(struct imap_session *s)
{
	struct imap_fetch_run *f = s->fetch;
	if (conn_submit(s->c, imap_fetch_step_run, imap_fetch_step_done, f) < 0) {
		/* what was sent cannot be completed: end the connection */
		imap_fetch_run_free(&s->fetch);
		s->busy = false;
		imap_session_set_state(s, IMAP_STATE_LOGOUT);
		line_session_end(s->ls);
	}
}

static void imap_fetch_step_done(void *arg)
{
	struct imap_fetch_run *f = arg;
	struct imap_session *s = f->s;
	if (imap_session_gone(s)) {
		imap_fetch_run_free(&s->fetch);
		imap_session_unpark(s);
		return;
	}
	/* the view learns which flag changes its client has been told */
	for (size_t k = 0; k < f->ntold && s->view != NULL; k++)
		imap_view_told_add(s->view, f->told[k].uid, f->told[k].modseq);
	f->ntold = 0;
	struct evbuffer *out = imap_output(s);
	if (out != NULL)
		evbuffer_add_buffer(out, f->out);
	if (f->result == IMAP_FETCH_UNKNOWN_CTE) {
		char esc[300];
		imap_reply(s, "%s NO [UNKNOWN-CTE] %s", f->tag,
		           log_escape_str(f->error != NULL ? f->error : "Unknown encoding", esc,
		                          sizeof(esc)));
		imap_fetch_run_free(&s->fetch);
		imap_session_unpark(s);
		return;
	}
	if (f->result < 0) {
		char esc[600];
		log_error(
		    s->c->sid, "event=fetch-failed user=%s error=\"%s\"", s->account,
		    log_escape_str(f->error != NULL ? f->error : "unknown", esc, sizeof(esc)));
		imap_fetch_run_free(&s->fetch);
		s->busy = false;
		/* a response may be cut short: the stream cannot go on */
		imap_session_set_state(s, IMAP_STATE_LOGOUT);
		line_session_end(s->ls);
		return;
	}
	if (f->gone) {
		imap_fetch_run_free(&s->fetch);
		imap_view_gone(s);
		imap_session_unpark(s);
		return;
	}
	if (imap_fetch_more(f)) {
		line_session_notify_drain(s->ls, IMAP_FETCH_LOW);
		return;
	}
	if (f->missing > 0 && !f->uid) {
		/* RFC 2180 4.1.2, RFC 5530: responses for the messages that are still
		 * there, and NO for those another session expunged (not yet reported:
		 * no EXPUNGE during FETCH, RFC 9051 7.5). UID FETCH ignores a UID that
		 * is gone (RFC 9051 6.4.9). */
		imap_reply(s, "%s NO [EXPUNGEISSUED] Some of the requested messages no longer exist",
		           f->tag);
	} else {
		imap_reply(s, "%s OK %sFETCH completed", f->tag, f->uid ? "UID " : "");
	}
	imap_fetch_run_free(&s->fetch);
	imap_session_unpark(s);
}

void imap_session_on_drain(struct imap_session *s)
{
	if (s->fetch != NULL)
		imap_fetch_step(s);
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_token *a = cmd->args;
	bool uid = cmd->uid_name != NULL;
	if (cmd->nargs < 2) {
		imap_reply_bad(s, "BAD Expected a sequence set and data items");
		return;
	}
	struct imap_fetch *cf = NULL;
	const char *err = NULL;
	if (imap_fetch_compile(a, imap_token_skip(a, 0), cmd->nargs, uid, &cf, &err) < 0) {
		imap_reply_bad(s, "BAD %s", err != NULL ? err : "Invalid data items");
		return;
	}
	if (imap_fetch_vanished(cf) && !(s->enabled & IMAP_EN_QRESYNC)) {
		imap_fetch_free(&cf);
		imap_reply_bad(s, "BAD VANISHED needs QRESYNC enabled");
		return;
	}
	uint32_t *uids;
	size_t n;
	if (imap_arg_uids(s, &a[0], uid, &uids, &n) < 0) {
		imap_fetch_free(&cf);
		return;
	}
	struct imap_seqset vset = {0}, vparsed = {0};
	const char *verr;
	if (imap_fetch_vanished(cf) &&
	    (!uid ||
	     imap_seqset_parse(a[0].data, a[0].len, IMAP_SEQSET_RANGES_MAX, &vparsed, &verr) < 0)) {
		imap_fetch_free(&cf);
		free(uids);
		imap_reply_bad(s, "BAD VANISHED needs UID FETCH");
		return;
	}
	if (vparsed.n > 0) {
		/* RFC 7162 3.2.6: only UIDs of the set; "*" is the last UID of the
		 * view (any UID when the view is empty), numbers above it count */
		uint32_t max_uid = imap_uidmap_max(&s->view->map);
		if (max_uid == 0)
			max_uid = UINT32_MAX;
		for (unsigned k = 0; k < vparsed.n; k++) {
			struct imap_seq_range *r = &vparsed.ranges[k];
			if (r->lo == IMAP_SEQ_STAR)
				r->lo = max_uid;
			if (r->hi == IMAP_SEQ_STAR)
				r->hi = max_uid;
		}
		int rc = imap_seqset_resolve(&vparsed, UINT32_MAX, &vset);
		imap_seqset_free(&vparsed);
		if (rc < 0) {
			imap_fetch_free(&cf);
			free(uids);
			imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
			return;
		}
	}
	if (imap_fetch_wants_modseq(cf))
		s->enabled |= IMAP_EN_CONDSTORE; /* RFC 7162 3.1 */
	struct imap_fetch_run *f = calloc(1, sizeof(*f));
	if (f != NULL) {
		f->s = s;
		f->st = s->c->srv->store;
		f->f = cf;
		cf = NULL;
		f->uid = uid;
		f->utf8 = imap_utf8(s);
		f->condstore = (s->enabled & IMAP_EN_CONDSTORE) != 0;
		memcpy(f->tag, s->tag, sizeof(f->tag));
		f->account = strdup(s->account);
		f->mailbox = strdup(s->view->name);
		f->uidvalidity = s->view->uidvalidity;
		f->out = evbuffer_new();
		f->items = calloc(IMAP_FETCH_BATCH, sizeof(*f->items));
		f->want = uids;
		f->nwant = n;
		uids = NULL;
		f->vset = vset;
		f->vanished = vset.n > 0;
	} else {
		imap_seqset_free(&vset);
		free(uids);
	}
	if (f == NULL || f->account == NULL || f->mailbox == NULL || f->out == NULL ||
	    f->items == NULL || imap_uidmap_copy(&f->map, &s->view->map) < 0) {
		imap_fetch_free(&cf);
		imap_fetch_run_free(&f);
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return;
	}
	f->set_seen = imap_fetch_sets_seen(f->f) && !s->view->readonly;
	s->fetch = f;
	imap_session_park(s);
	imap_fetch_step(s);
}
