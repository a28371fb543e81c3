/* IMAP message commands (RFC 9051 6.3.12 APPEND, 6.4 STORE, EXPUNGE, COPY, MOVE
 * and their UID forms; RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 3502 MULTIAPPEND,
 * RFC 7162 CONDSTORE UNCHANGEDSINCE) through the IMAP part of store.h. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "imap/imap_session_int.h"
#include "net/line_session.h"

/* ---- sequence sets ---- */

int imap_arg_uids(struct imap_session *s, const struct imap_token *t, bool uid, uint32_t **uids_r,
                  size_t *n_r)
{
	struct imap_view *v = s->view;
	*uids_r = NULL;
	*n_r = 0;
	if (t->type != IMAP_TOKEN_ATOM || !(t->flags & IMAP_ATOM_SEQSET)) {
		imap_reply_bad(s, "BAD Invalid sequence set");
		return -1;
	}
	struct imap_seqset set;
	const char *err;
	if (imap_seqset_parse(t->data, t->len, IMAP_SEQSET_RANGES_MAX, &set, &err) < 0) {
		imap_reply_bad(s, "BAD Invalid sequence set: %s", err);
		return -1;
	}
	uint32_t count = v->map.n;
	if (set.last_result) {
		/* RFC 5182: "$" is the saved result (UIDs), whatever the command form */
		uint32_t *uids = reallocarray(NULL, s->nsaved > 0 ? s->nsaved : 1, sizeof(*uids));
		if (uids == NULL) {
			imap_seqset_free(&set);
			imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
			return -1;
		}
		size_t n = 0;
		for (size_t k = 0; k < s->nsaved; k++)
			if (imap_view_seq(v, s->saved[k]) > 0)
				uids[n++] = s->saved[k];
		imap_seqset_free(&set);
		*uids_r = uids;
		*n_r = n;
		return 1;
	}
	if (!uid && !imap_seqset_in_range(&set, count)) {
		/* RFC 9051 9: a message sequence number above the count is an error */
		imap_seqset_free(&set);
		imap_reply_bad(s, "BAD Invalid sequence set: message number out of range");
		return -1;
	}
	uint64_t max = uid ? imap_uidmap_max(&v->map) : count;
	struct imap_seqset rs;
	if (imap_seqset_resolve(&set, max, &rs) < 0) {
		imap_seqset_free(&set);
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return -1;
	}
	imap_seqset_free(&set);
	/* room for the whole view at most, for the set's ranges otherwise */
	uint64_t want = 0;
	for (size_t k = 0; k < rs.n && want < count; k++)
		want += (uint64_t)rs.ranges[k].hi - rs.ranges[k].lo + 1;
	if (want > count)
		want = count;
	uint32_t *uids = reallocarray(NULL, want > 0 ? want : 1, sizeof(*uids));
	if (uids == NULL) {
		imap_seqset_free(&rs);
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return -1;
	}
	size_t n = 0;
	if (uid) {
		for (uint32_t r = 0; r < v->map.nruns; r++) {
			uint32_t first, len;
			imap_uidmap_run(&v->map, r, &first, &len);
			for (uint32_t u = first; u - first < len && n < want; u++)
				if (imap_seqset_contains(&rs, u, max))
					uids[n++] = u;
		}
	} else {
		uint64_t cur = 0, num;
		while (n < want && imap_seqset_next(&rs, max, &cur, &num) > 0)
			uids[n++] = imap_uidmap_uid(&v->map, (uint32_t)num);
	}
	imap_seqset_free(&rs);
	*uids_r = uids;
	*n_r = n;
	return 1;
}

/* Ascending numbers as a sequence set ("1:3,7"). */
static void imap_buf_uidset(struct buf *b, const uint32_t *u, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = i;
		while (k + 1 < n && u[k + 1] == u[k] + 1)
			k++;
		if (k > i)
			buf_printf(b, "%s%u:%u", i ? "," : "", u[i], u[k]);
		else
			buf_printf(b, "%s%u", i ? "," : "", u[i]);
		i = k + 1;
	}
}

/* ---- flags ---- */

/* A flag list (RFC 9051 9 flag-list, or STORE's bare flags): system flags in
 * their canonical case, keywords as given, space-separated into b. 1 ok, -1 after
 * replying BAD. */
static int imap_flags_arg(struct imap_session *s, const struct imap_token *a, unsigned i,
                          unsigned end, struct buf *b)
{
	static const char *const sys[] = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
	                                  "\\Draft"};
	for (unsigned k = i; k < end; k++) {
		const struct imap_token *t = &a[k];
		if (t->type != IMAP_TOKEN_ATOM) {
			imap_reply_bad(s, "BAD Invalid flag");
			return -1;
		}
		const char *f = NULL;
		if (t->flags & IMAP_ATOM_FLAG) {
			for (size_t x = 0; x < sizeof(sys) / sizeof(sys[0]); x++)
				if (strcasecmp(t->data, sys[x]) == 0)
					f = sys[x];
			if (f == NULL) {
				/* \Recent cannot be stored (RFC 9051 2.3.2), nor \* */
				imap_reply_bad(s, "BAD Invalid system flag");
				return -1;
			}
		} else if (t->flags & IMAP_ATOM_ATOM) {
			f = t->data;
		} else {
			imap_reply_bad(s, "BAD Invalid flag");
			return -1;
		}
		if (buf_printf(b, "%s%s", b->len ? " " : "", f) < 0) {
			imap_reply_bad(s, "BAD [LIMIT] Too many flags");
			return -1;
		}
	}
	return 1;
}

/* ---- STORE ---- */

struct imap_store_change {
	uint32_t uid;
	uint64_t modseq;
};

struct imap_store_job {
	struct imap_job j;
	uint32_t *uids;
	size_t n;
	enum store_flags_op op;
	char *flags;
	uint64_t unchangedsince;
	bool silent, uid;
	struct imap_store_change *changed;
	size_t nchanged, capchanged;
	uint32_t *modified;
	size_t nmodified;
	struct imap_entries now; /* the set's entries after the change (not .SILENT) */
	bool oom;
};

static void imap_store_job_free(struct imap_job *j)
{
	struct imap_store_job *sj = (struct imap_store_job *)j;
	free(sj->changed);
	free(sj->modified);
	free(sj->uids);
	free(sj->flags);
	imap_entries_clear(&sj->now);
	free(sj->now.v);
}

static void imap_store_changed_cb(void *ctx, const struct store_message_info *m)
{
	struct imap_store_job *sj = ctx;
	if (sj->oom)
		return;
	if (sj->nchanged == sj->capchanged) {
		size_t ncap = sj->capchanged ? sj->capchanged * 2 : 16;
		struct imap_store_change *p = reallocarray(sj->changed, ncap, sizeof(*p));
		if (p == NULL) {
			sj->oom = true;
			return;
		}
		sj->changed = p;
		sj->capchanged = ncap;
	}
	sj->changed[sj->nchanged++] = (struct imap_store_change){.uid = m->uid, .modseq = m->modseq};
}

static void imap_store_modified_cb(void *ctx, uint32_t uid)
{
	struct imap_store_job *sj = ctx;
	if (sj->modified == NULL)
		sj->modified = reallocarray(NULL, sj->n > 0 ? sj->n : 1, sizeof(uint32_t));
	if (sj->modified == NULL) {
		sj->oom = true;
		return;
	}
	if (sj->nmodified < sj->n)
		sj->modified[sj->nmodified++] = uid;
}

/* The change, then (unless .SILENT) the flags of the whole set as they are now
 * (RFC 9051 6.4.6: the flags of every message of the set, whether this STORE
 * changed them or not). */
static void imap_store_job_run(struct imap_job *j)
{
	struct imap_store_job *sj = (struct imap_store_job *)j;
	static const struct store_flags_ops ops = {
	    .changed = imap_store_changed_cb,
	    .modified = imap_store_modified_cb,
	};
	if (imap_job_check_view(j) <= 0)
		return;
	j->result = store_message_flags(j->st, j->account, j->mailbox, sj->uids, sj->n, sj->op,
	                                sj->flags, sj->unchangedsince, &ops, sj, &j->error);
	if (j->result > 0 && sj->oom) {
		j->result = -1;
		return;
	}
	if (j->result > 0 && !sj->silent)
		j->result = imap_entries_read(j->st, j->account, j->mailbox, j->uidvalidity, NULL,
		                              sj->uids, sj->n, &sj->now, &j->error);
}

static bool imap_store_was_modified(const struct imap_store_job *sj, uint32_t uid)
{
	for (size_t x = 0; x < sj->nmodified; x++)
		if (sj->modified[x] == uid)
			return true;
	return false;
}

static void imap_store_job_done(struct imap_job *j)
{
	struct imap_store_job *sj = (struct imap_store_job *)j;
	struct imap_session *s = j->s;
	struct imap_view *v = s->view;
	if (j->result < 0) {
		imap_job_tempfail(j, "store");
		return;
	}
	if (j->result == 0) {
		imap_view_gone(s);
		return;
	}
	for (size_t k = 0; k < sj->nchanged; k++)
		imap_view_told_add(v, sj->changed[k].uid, sj->changed[k].modseq);
	struct evbuffer *out = imap_output(s);
	if (out == NULL)
		return;
	bool expunged = false;
	if (!sj->silent) {
		/* RFC 9051 6.4.6: the flags of every message of the set that is still
		 * there; RFC 2180 4.2: one expunged by another session meanwhile gets
		 * none (and the tagged NO below for STORE; UID STORE ignores a UID
		 * that is gone, RFC 9051 6.4.9, and reports the expunge after) */
		expunged = sj->now.n < sj->n;
		for (size_t k = 0; k < sj->now.n; k++) {
			const struct imap_entry *e = &sj->now.v[k];
			uint32_t seq = imap_view_seq(v, e->uid);
			if (seq == 0 || imap_store_was_modified(sj, e->uid))
				continue;
			/* RFC 7162 3.1.3: MODSEQ once CONDSTORE is on */
			imap_write_flags_fetch(out, seq, e->flags, sj->uid ? e->uid : 0,
			                       (s->enabled & IMAP_EN_CONDSTORE) ? e->modseq : 0);
			imap_view_told_add(v, e->uid, e->modseq);
		}
	}
	if (sj->nmodified > 0) {
		/* RFC 7162 3.1.3: MODIFIED names what was not changed */
		struct buf b;
		buf_init(&b, 0);
		if (sj->uid) {
			imap_buf_uidset(&b, sj->modified, sj->nmodified);
		} else {
			uint32_t *seqs = reallocarray(NULL, sj->nmodified, sizeof(*seqs));
			size_t ns = 0;
			for (size_t x = 0; seqs != NULL && x < sj->nmodified; x++) {
				uint32_t seq = imap_view_seq(v, sj->modified[x]);
				if (seq > 0)
					seqs[ns++] = seq;
			}
			if (seqs != NULL)
				imap_buf_uidset(&b, seqs, ns);
			free(seqs);
		}
		imap_job_tagged(j, "OK [MODIFIED %s] Conditional STORE failed",
		                b.data != NULL ? b.data : "");
		buf_free(&b);
		return;
	}
	if (expunged && !sj->uid) {
		/* RFC 5530 EXPUNGEISSUED */
		imap_job_tagged(j, "NO [EXPUNGEISSUED] Some of the requested messages no longer "
		                   "exist");
		return;
	}
	imap_job_tagged(j, "OK %sSTORE completed", sj->uid ? "UID " : "");
}

void imap_cmd_store(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_token *a = cmd->args;
	bool uid = cmd->uid_name != NULL;
	if (cmd->nargs < 3) {
		imap_reply_bad(s, "BAD Expected a sequence set, a data item and flags");
		return;
	}
	unsigned i = 1;
	uint64_t unchangedsince = 0;
	bool never = false;
	if (a[1].type == IMAP_TOKEN_LIST) {
		/* RFC 7162 3.1.3: (UNCHANGEDSINCE n) */
		if (a[1].span != 2 || a[2].type != IMAP_TOKEN_ATOM ||
		    strcasecmp(a[2].data, "UNCHANGEDSINCE") != 0 || a[3].type != IMAP_TOKEN_ATOM ||
		    !(a[3].flags & IMAP_ATOM_NUMBER)) {
			imap_reply_bad(s, "BAD Expected (UNCHANGEDSINCE modseq)");
			return;
		}
		unchangedsince = a[3].num;
		/* RFC 7162 3.1.3: every message has a MODSEQ above 0, so UNCHANGEDSINCE 0
		 * changes none (the store takes 0 as "no condition") */
		never = unchangedsince == 0;
		i = imap_token_skip(a, 1);
	}
	if (i + 1 >= cmd->nargs || a[i].type != IMAP_TOKEN_ATOM) {
		imap_reply_bad(s, "BAD Expected a data item and flags");
		return;
	}
	const char *item = a[i].data;
	enum store_flags_op op = STORE_FLAGS_SET;
	if (item[0] == '+') {
		op = STORE_FLAGS_ADD;
		item++;
	} else if (item[0] == '-') {
		op = STORE_FLAGS_REMOVE;
		item++;
	}
	bool silent = false;
	if (strcasecmp(item, "FLAGS.SILENT") == 0)
		silent = true;
	else if (strcasecmp(item, "FLAGS") != 0) {
		imap_reply_bad(s, "BAD Unknown data item");
		return;
	}
	i++;
	struct buf flags;
	buf_init(&flags, 16384);
	int r;
	if (a[i].type == IMAP_TOKEN_LIST) {
		if (imap_token_skip(a, i) != cmd->nargs) {
			imap_reply_bad(s, "BAD Unexpected arguments");
			return;
		}
		r = imap_flags_arg(s, a, i + 1, i + 1 + a[i].span, &flags);
	} else {
		r = imap_flags_arg(s, a, i, cmd->nargs, &flags);
	}
	if (r < 0) {
		buf_free(&flags);
		return;
	}
	if (s->view->readonly) {
		buf_free(&flags);
		imap_reply(s, "%s NO [CANNOT] Mailbox is read-only", s->tag);
		return;
	}
	if (unchangedsince > 0)
		s->enabled |= IMAP_EN_CONDSTORE; /* RFC 7162 3.1: UNCHANGEDSINCE enables it */
	uint32_t *uids;
	size_t n;
	if (imap_arg_uids(s, &a[0], uid, &uids, &n) < 0) {
		buf_free(&flags);
		return;
	}
	if (n == 0) {
		free(uids);
		buf_free(&flags);
		imap_reply(s, "%s OK %sSTORE completed", s->tag, uid ? "UID " : "");
		return;
	}
	if (never) {
		struct buf b;
		buf_init(&b, 0);
		if (!uid)
			for (size_t k = 0; k < n; k++)
				uids[k] = imap_view_seq(s->view, uids[k]);
		imap_buf_uidset(&b, uids, n);
		imap_reply(s, "%s OK [MODIFIED %s] Conditional STORE failed", s->tag,
		           b.data != NULL ? b.data : "");
		buf_free(&b);
		free(uids);
		buf_free(&flags);
		return;
	}
	struct imap_store_job *sj = imap_job_new(s, sizeof(*sj));
	if (sj == NULL) {
		free(uids);
		buf_free(&flags);
		return;
	}
	sj->j.run = imap_store_job_run;
	sj->j.done = imap_store_job_done;
	sj->j.free = imap_store_job_free;
	sj->uids = uids;
	sj->n = n;
	sj->op = op;
	sj->flags = flags.data != NULL ? buf_steal(&flags, NULL) : strdup("");
	sj->unchangedsince = unchangedsince;
	sj->silent = silent;
	sj->uid = uid;
	sj->j.mailbox = strdup(s->view->name);
	if (sj->flags == NULL || sj->j.mailbox == NULL) {
		imap_job_free(&sj->j);
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return;
	}
	/* RFC 9051 7.5: no EXPUNGE during STORE; UID STORE may report them */
	if (uid)
		imap_job_submit_refresh(s, &sj->j);
	else
		imap_job_submit(s, &sj->j);
}

/* ---- EXPUNGE and UID EXPUNGE ---- */

struct imap_expunge_job {
	struct imap_job j;
	uint32_t *only;
	size_t nonly;
	bool uid;
	uint32_t *expunged;
	size_t n, cap;
	bool oom;
	bool gone; /* the selected mailbox has gone */
};

static void imap_expunge_job_free(struct imap_job *j)
{
	struct imap_expunge_job *ej = (struct imap_expunge_job *)j;
	free(ej->only);
	free(ej->expunged);
}

static void imap_expunged_cb(void *ctx, uint32_t uid)
{
	struct imap_expunge_job *ej = ctx;
	if (ej->oom)
		return;
	if (ej->n == ej->cap) {
		size_t ncap = ej->cap ? ej->cap * 2 : 64;
		uint32_t *p = reallocarray(ej->expunged, ncap, sizeof(*p));
		if (p == NULL) {
			ej->oom = true;
			return;
		}
		ej->expunged = p;
		ej->cap = ncap;
	}
	ej->expunged[ej->n++] = uid;
}

static void imap_expunge_job_run(struct imap_job *j)
{
	struct imap_expunge_job *ej = (struct imap_expunge_job *)j;
	if (imap_job_check_view(j) <= 0) {
		ej->gone = j->result == 0;
		return;
	}
	j->result = store_mailbox_expunge_deleted(j->st, j->account, j->mailbox, ej->only,
	                                          ej->nonly, imap_expunged_cb, ej, &j->error);
}

/* The expunged UIDs (ascending) leave the view, each reported with its sequence
 * number at that moment (RFC 9051 7.5.1). The refresh that follows finds them
 * gone already and reports nothing more about them. */
static void imap_expunge_report(struct imap_session *s, const uint32_t *uids, size_t n)
{
	for (size_t k = n; k-- > 0 && !imap_session_gone(s);) {
		uint32_t seq = imap_view_seq(s->view, uids[k]);
		if (seq > 0)
			imap_view_expunge_report(s, seq);
	}
}

static void imap_expunge_job_done(struct imap_job *j)
{
	struct imap_expunge_job *ej = (struct imap_expunge_job *)j;
	if (j->result < 0) {
		imap_job_tempfail(j, "expunge");
		return;
	}
	if (ej->gone) {
		imap_view_gone(j->s);
		return;
	}
	imap_expunge_report(j->s, ej->expunged, ej->n);
	log_info(j->s->c->sid, "event=expunge user=%s expunged=%zu", j->account, ej->n);
	imap_job_tagged(j, "OK %sEXPUNGE completed", ej->uid ? "UID " : "");
}

void imap_cmd_expunge(struct imap_session *s, const struct imap_command *cmd)
{
	bool uid = cmd->uid_name != NULL;
	if ((uid && cmd->nargs != 1) || (!uid && cmd->nargs != 0)) {
		imap_reply_bad(s, uid ? "BAD Expected a UID set" : "BAD Unexpected arguments");
		return;
	}
	uint32_t *only = NULL;
	size_t nonly = 0;
	if (uid && imap_arg_uids(s, &cmd->args[0], true, &only, &nonly) < 0)
		return;
	if (s->view->readonly) {
		free(only);
		imap_reply(s, "%s NO [CANNOT] Mailbox is read-only", s->tag);
		return;
	}
	if (uid && nonly == 0) {
		free(only);
		imap_reply(s, "%s OK UID EXPUNGE completed", s->tag);
		return;
	}
	struct imap_expunge_job *ej = imap_job_new(s, sizeof(*ej));
	if (ej == NULL) {
		free(only);
		return;
	}
	ej->j.run = imap_expunge_job_run;
	ej->j.done = imap_expunge_job_done;
	ej->j.free = imap_expunge_job_free;
	ej->only = only;
	ej->nonly = nonly;
	ej->uid = uid;
	ej->j.mailbox = strdup(s->view->name);
	if (ej->j.mailbox == NULL) {
		imap_job_free(&ej->j);
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return;
	}
	imap_job_submit_refresh(s, &ej->j);
}

/* ---- COPY, MOVE ---- */

struct imap_copy_job {
	struct imap_job j;
	uint32_t *uids;
	size_t n;
	bool move, uid;
	char to[STORE_MAILBOX_NAME_MAX + 1];
	struct store_copy_result r;
};

static void imap_copy_job_free(struct imap_job *j)
{
	struct imap_copy_job *cj = (struct imap_copy_job *)j;
	free(cj->uids);
	store_copy_result_free(&cj->r);
}

static void imap_copy_job_run(struct imap_job *j)
{
	struct imap_copy_job *cj = (struct imap_copy_job *)j;
	if (imap_job_check_view(j) <= 0)
		return;
	j->result = store_message_copy(j->st, j->account, j->mailbox, cj->to, cj->uids, cj->n,
	                               cj->move, &cj->r, &j->error);
}

static void imap_copy_job_done(struct imap_job *j)
{
	struct imap_copy_job *cj = (struct imap_copy_job *)j;
	struct imap_session *s = j->s;
	const char *verb = cj->move ? "MOVE" : "COPY";
	switch (j->result) {
	case 1:
		break;
	case 0:
		imap_view_gone(s);
		return;
	case STORE_NOMAILBOX:
		/* RFC 9051 6.4.7 */
		imap_job_tagged(j, "NO [TRYCREATE] Mailbox does not exist");
		return;
	case STORE_CANNOT:
		imap_job_tagged(j, "NO [CANNOT] Cannot move a message to its own mailbox");
		return;
	case STORE_OVERQUOTA:
		imap_job_tagged(j, "NO [OVERQUOTA] Quota exceeded");
		return;
	default:
		imap_job_tempfail(j, cj->move ? "move" : "copy");
		return;
	}
	struct buf code;
	buf_init(&code, 0);
	if (cj->r.n > 0) {
		/* RFC 4315 3: COPYUID uidvalidity source-set destination-set */
		buf_printf(&code, "[COPYUID %u ", cj->r.uidvalidity);
		imap_buf_uidset(&code, cj->r.src_uids, cj->r.n);
		buf_append_str(&code, " ");
		imap_buf_uidset(&code, cj->r.dst_uids, cj->r.n);
		buf_append_str(&code, "] ");
	}
	log_info(s->c->sid, "event=%s user=%s messages=%zu", cj->move ? "move" : "copy", j->account,
	         cj->r.n);
	if (cj->move) {
		/* RFC 6851 4.3: COPYUID in an untagged OK before the expunges */
		if (code.len > 0)
			imap_reply(s, "* OK %sMoved", code.data);
		imap_expunge_report(s, cj->r.src_uids, cj->r.n);
		imap_job_tagged(j, "OK %s%s completed", cj->uid ? "UID " : "", verb);
	} else {
		imap_job_tagged(j, "OK %s%s%s completed", code.len > 0 ? code.data : "",
		                cj->uid ? "UID " : "", verb);
	}
	buf_free(&code);
}

static void imap_copy(struct imap_session *s, const struct imap_command *cmd, bool move)
{
	bool uid = cmd->uid_name != NULL;
	if (cmd->nargs != 2) {
		imap_reply_bad(s, "BAD Expected a sequence set and a mailbox name");
		return;
	}
	char to[STORE_MAILBOX_NAME_MAX + 1];
	if (imap_arg_mailbox(s, &cmd->args[1], to) < 0)
		return;
	uint32_t *uids;
	size_t n;
	if (imap_arg_uids(s, &cmd->args[0], uid, &uids, &n) < 0)
		return;
	if (move && s->view->readonly) {
		free(uids);
		imap_reply(s, "%s NO [CANNOT] Mailbox is read-only", s->tag);
		return;
	}
	if (n == 0) {
		free(uids);
		imap_reply(s, "%s OK %s%s completed", s->tag, uid ? "UID " : "",
		           move ? "MOVE" : "COPY");
		return;
	}
	struct imap_copy_job *cj = imap_job_new(s, sizeof(*cj));
	if (cj == NULL) {
		free(uids);
		return;
	}
	cj->j.run = imap_copy_job_run;
	cj->j.done = imap_copy_job_done;
	cj->j.free = imap_copy_job_free;
	cj->uids = uids;
	cj->n = n;
	cj->move = move;
	cj->uid = uid;
	memcpy(cj->to, to, sizeof(to));
	imap_job_submit_refresh(s, &cj->j);
}

void imap_cmd_copy(struct imap_session *s, const struct imap_command *cmd)
{
	imap_copy(s, cmd, false);
}

void imap_cmd_move(struct imap_session *s, const struct imap_command *cmd)
{
	imap_copy(s, cmd, true);
}

/* ---- APPEND (RFC 9051 6.3.12, RFC 3502 MULTIAPPEND, RFC 4315 APPENDUID) ---- */

struct imap_append_job {
	struct imap_job j;
	char name[STORE_MAILBOX_NAME_MAX + 1];
	struct store_append_msg msgs[IMAP_APPEND_MAX];
	char *flags[IMAP_APPEND_MAX];
	unsigned n;
	uint32_t uidvalidity;
	uint32_t uids[IMAP_APPEND_MAX];
	uint64_t size;
};

static void imap_append_job_free(struct imap_job *j)
{
	struct imap_append_job *aj = (struct imap_append_job *)j;
	for (unsigned i = 0; i < aj->n; i++) {
		store_msg_free(&aj->msgs[i].msg);
		free(aj->flags[i]);
	}
}

static void imap_append_job_run(struct imap_job *j)
{
	struct imap_append_job *aj = (struct imap_append_job *)j;
	j->result = store_append(j->st, j->account, aj->name, aj->msgs, aj->n, &aj->uidvalidity,
	                         aj->uids, &j->error);
}

static void imap_append_job_done(struct imap_job *j)
{
	struct imap_append_job *aj = (struct imap_append_job *)j;
	switch (j->result) {
	case 1:
		break;
	case 0:
	case STORE_NOMAILBOX:
		imap_job_tagged(j, "NO [TRYCREATE] Mailbox does not exist");
		return;
	case STORE_OVERQUOTA:
		imap_job_tagged(j, "NO [OVERQUOTA] Quota exceeded");
		return;
	default:
		imap_job_tempfail(j, "append");
		return;
	}
	struct buf set;
	buf_init(&set, 0);
	imap_buf_uidset(&set, aj->uids, aj->n);
	log_info(j->s->c->sid, "event=append user=%s messages=%u size=%llu", j->account, aj->n,
	         (unsigned long long)aj->size);
	imap_job_tagged(j, "OK [APPENDUID %u %s] APPEND completed", aj->uidvalidity,
	                set.data != NULL ? set.data : "");
	buf_free(&set);
}

/* date-time (RFC 9051 9): "dd-Mon-yyyy hh:mm:ss +zzzz", the day may be " d". */
static int imap_parse_date_time(const char *s, size_t len, int64_t *t_r)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	if (len != 26)
		return -1;
	char d[27];
	memcpy(d, s, 26);
	d[26] = '\0';
	if (d[0] == ' ')
		d[0] = '0';
#define DIG(i) (d[i] >= '0' && d[i] <= '9')
	if (!DIG(0) || !DIG(1) || d[2] != '-' || d[6] != '-' || !DIG(7) || !DIG(8) || !DIG(9) ||
	    !DIG(10) || d[11] != ' ' || !DIG(12) || !DIG(13) || d[14] != ':' || !DIG(15) ||
	    !DIG(16) || d[17] != ':' || !DIG(18) || !DIG(19) || d[20] != ' ' ||
	    (d[21] != '+' && d[21] != '-') || !DIG(22) || !DIG(23) || !DIG(24) || !DIG(25))
		return -1;
#undef DIG
	int mon = -1;
	for (int m = 0; m < 12; m++)
		if (strncasecmp(d + 3, months[m], 3) == 0)
			mon = m;
	struct tm tm = {0};
	tm.tm_mday = (d[0] - '0') * 10 + (d[1] - '0');
	tm.tm_year =
	    (d[7] - '0') * 1000 + (d[8] - '0') * 100 + (d[9] - '0') * 10 + (d[10] - '0') - 1900;
	tm.tm_hour = (d[12] - '0') * 10 + (d[13] - '0');
	tm.tm_min = (d[15] - '0') * 10 + (d[16] - '0');
	tm.tm_sec = (d[18] - '0') * 10 + (d[19] - '0');
	tm.tm_mon = mon;
	int zh = (d[22] - '0') * 10 + (d[23] - '0'), zm = (d[24] - '0') * 10 + (d[25] - '0');
	if (mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60 || zm > 59)
		return -1;
	int64_t t = (int64_t)timegm(&tm);
	int64_t off = (int64_t)(zh * 60 + zm) * 60;
	*t_r = d[21] == '+' ? t - off : t + off;
	return 1;
}

void imap_cmd_append(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_token *a = cmd->args;
	if (cmd->nargs < 2) {
		imap_reply_bad(s, "BAD Expected a mailbox name and a message");
		return;
	}
	char name[STORE_MAILBOX_NAME_MAX + 1];
	if (imap_arg_mailbox(s, &a[0], name) < 0)
		return;
	struct imap_append_job *aj = imap_job_new(s, sizeof(*aj));
	if (aj == NULL)
		return;
	aj->j.run = imap_append_job_run;
	aj->j.done = imap_append_job_done;
	aj->j.free = imap_append_job_free;
	memcpy(aj->name, name, sizeof(name));
	unsigned i = 1;
	unsigned nmsg = 0;
	while (i < cmd->nargs) {
		char *flags = NULL;
		int64_t date = 0;
		if (a[i].type == IMAP_TOKEN_LIST) {
			struct buf b;
			buf_init(&b, 16384);
			if (imap_flags_arg(s, a, i + 1, i + 1 + a[i].span, &b) < 0) {
				buf_free(&b);
				goto fail;
			}
			flags = b.data != NULL ? buf_steal(&b, NULL) : NULL;
			i = imap_token_skip(a, i);
		}
		if (i < cmd->nargs && IMAP_TOKEN_IS_STRING(&a[i])) {
			if (imap_parse_date_time(a[i].data, a[i].len, &date) < 0) {
				free(flags);
				imap_reply_bad(s, "BAD Invalid date-time");
				goto fail;
			}
			i++;
		}
		const struct imap_token *lit = i < cmd->nargs ? &a[i] : NULL;
		if (lit != NULL && lit->type == IMAP_TOKEN_ATOM &&
		    strcasecmp(lit->data, "UTF8") == 0 && i + 2 < cmd->nargs + 1 &&
		    i + 1 < cmd->nargs && a[i + 1].type == IMAP_TOKEN_LIST && a[i + 1].span == 1) {
			/* RFC 6855 4: UTF8 (~{n}) */
			lit = &a[i + 2];
			i += 2;
		}
		if (lit == NULL || lit->type != IMAP_TOKEN_LITERAL_SINK || nmsg >= s->nappend) {
			free(flags);
			imap_reply_bad(s, "BAD Expected a message literal");
			goto fail;
		}
		i++;
		aj->msgs[nmsg].msg = s->append_msgs[nmsg];
		s->append_msgs[nmsg] = NULL;
		aj->msgs[nmsg].flags = flags;
		aj->flags[nmsg] = flags;
		aj->msgs[nmsg].internal_date = date;
		aj->size += store_msg_size(aj->msgs[nmsg].msg);
		nmsg++;
		aj->n = nmsg;
	}
	if (nmsg != s->nappend) {
		imap_reply_bad(s, "BAD Expected a message literal");
		goto fail;
	}
	s->nappend = 0;
	imap_job_submit_refresh(s, &aj->j);
	return;
fail:
	imap_job_free(&aj->j);
}
