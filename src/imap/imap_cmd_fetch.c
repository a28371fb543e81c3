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

struct imap_fetch_entry {
	struct imap_fetch_item it;
	char *flags;
	char blob_id[BLOB_ID_LEN + 1];
};

struct imap_fetch_run {
	struct imap_session *s;
	struct store *st;
	char *account;
	char *mailbox;
	char tag[IMAP_TAG_MAX + 1];
	bool uid, utf8;
	struct imap_fetch *f;
	struct imap_fetch_entry *items;
	size_t n, cur;
	struct imap_fetch_cursor *cursor;
	struct evbuffer *out;
	bool set_seen; /* first step: add \Seen to the items first */
	bool seen_done;
	uint32_t *seen_uids; /* entries whose flags gained \Seen */
	size_t nseen;
	int result; /* 1 step ok, -1 error, IMAP_FETCH_UNKNOWN_CTE */
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
	for (size_t i = 0; i < f->n; i++)
		free(f->items[i].flags);
	free(f->items);
	if (f->out != NULL)
		evbuffer_free(f->out);
	free(f->seen_uids);
	free(f->account);
	free(f->mailbox);
	free(f->error);
	free(f);
	*fp = NULL;
}

static void imap_fetch_seen_cb(void *ctx, const struct store_message_info *m)
{
	struct imap_fetch_run *f = ctx;
	/* items are in ascending UID order */
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->items[mid].it.uid < m->uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == f->n || f->items[lo].it.uid != m->uid)
		return;
	char *nf = strdup(m->flags != NULL ? m->flags : "");
	if (nf == NULL)
		return;
	free(f->items[lo].flags);
	f->items[lo].flags = nf;
	f->items[lo].it.flags = nf;
	f->items[lo].it.modseq = m->modseq;
	f->items[lo].it.add_flags = true; /* RFC 9051 6.4.5: the changed flags SHOULD go too */
	f->seen_uids[f->nseen++] = m->uid;
}

/* One step on a worker. */
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
	if (f->set_seen && !f->seen_done) {
		/* RFC 9051 6.4.5: BODY[] sets \Seen; done first, so that FLAGS in the
		 * responses shows it */
		f->seen_done = true;
		uint32_t *uids = reallocarray(NULL, f->n > 0 ? f->n : 1, sizeof(*uids));
		f->seen_uids = reallocarray(NULL, f->n > 0 ? f->n : 1, sizeof(*uids));
		if (uids != NULL && f->seen_uids != NULL) {
			size_t k = 0;
			for (size_t i = 0; i < f->n; i++)
				if (strstr(f->items[i].flags, "\\Seen") == NULL)
					uids[k++] = f->items[i].it.uid;
			static const struct store_flags_ops ops = {.changed = imap_fetch_seen_cb};
			char *error = NULL;
			if (k > 0 &&
			    store_message_flags(f->st, f->account, f->mailbox, uids, k,
			                        STORE_FLAGS_ADD, "\\Seen", 0, &ops, f, &error) < 0)
				free(error); /* the messages are served all the same */
		}
		free(uids);
	}
	while (f->cur < f->n && evbuffer_get_length(f->out) < IMAP_FETCH_STEP) {
		size_t budget = IMAP_FETCH_STEP - evbuffer_get_length(f->out);
		int r = imap_fetch_write(f->f, f->st, &f->items[f->cur].it, f->utf8, &f->cursor,
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
	/* the view learns the \Seen flags set by the first step */
	for (size_t k = 0; k < f->nseen && s->view != NULL; k++) {
		long i = imap_view_find(s->view, f->seen_uids[k]);
		size_t lo = 0, hi = f->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (f->items[mid].it.uid < f->seen_uids[k])
				lo = mid + 1;
			else
				hi = mid;
		}
		if (i < 0 || lo == f->n)
			continue;
		char *nf = strdup(f->items[lo].flags);
		if (nf != NULL) {
			free(s->view->msgs[i].flags);
			s->view->msgs[i].flags = nf;
			if (f->items[lo].it.modseq > s->view->msgs[i].modseq)
				s->view->msgs[i].modseq = f->items[lo].it.modseq;
		}
	}
	f->nseen = 0;
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
	if (f->cur < f->n) {
		line_session_notify_drain(s->ls, IMAP_FETCH_LOW);
		return;
	}
	imap_reply(s, "%s OK %sFETCH completed", f->tag, f->uid ? "UID " : "");
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
		uint32_t max_uid = s->view->n > 0 ? s->view->msgs[s->view->n - 1].uid : UINT32_MAX;
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
		memcpy(f->tag, s->tag, sizeof(f->tag));
		f->account = strdup(s->account);
		f->mailbox = strdup(s->view->name);
		f->out = evbuffer_new();
		f->items = calloc(n > 0 ? n : 1, sizeof(*f->items));
	}
	if (f != NULL) {
		f->vset = vset;
		f->vanished = vset.n > 0;
	} else {
		imap_seqset_free(&vset);
	}
	if (f == NULL || f->account == NULL || f->mailbox == NULL || f->out == NULL ||
	    f->items == NULL) {
		imap_fetch_free(&cf);
		imap_fetch_run_free(&f);
		free(uids);
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return;
	}
	uint64_t since = imap_fetch_changedsince(f->f);
	for (size_t k = 0; k < n; k++) {
		long i = imap_view_find(s->view, uids[k]);
		if (i < 0)
			continue;
		const struct imap_view_msg *m = &s->view->msgs[i];
		if (since > 0 && m->modseq <= since)
			continue;
		struct imap_fetch_entry *e = &f->items[f->n];
		e->flags = strdup(m->flags);
		if (e->flags == NULL)
			break;
		memcpy(e->blob_id, m->blob_id, sizeof(e->blob_id));
		e->it =
		    (struct imap_fetch_item){.seq = (uint32_t)i + 1,
		                             .uid = m->uid,
		                             .modseq = m->modseq,
		                             .size = m->size,
		                             .internal_date = m->internal_date,
		                             .flags = e->flags,
		                             .blob_id = e->blob_id,
		                             .add_modseq = (s->enabled & IMAP_EN_CONDSTORE) != 0};
		f->n++;
	}
	free(uids);
	f->set_seen = imap_fetch_sets_seen(f->f) && !s->view->readonly;
	s->fetch = f;
	imap_session_park(s);
	imap_fetch_step(s);
}
