/* IMAP mailbox commands (RFC 9051 6.3, RFC 5258 LIST-EXTENDED, RFC 6154
 * SPECIAL-USE, RFC 5819 LIST-STATUS, RFC 8438 STATUS=SIZE), the selected
 * mailbox's view and the reporting of changes to it (RFC 9051 7.5). */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "imap/imap_session_int.h"
#include "imap/imap_vanished.h"
#include "net/line_session.h"

/* ---- names and strings ---- */

void imap_write_string(struct evbuffer *out, const char *s, size_t len)
{
	bool literal = len > 1024;
	for (size_t i = 0; i < len && !literal; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			literal = true;
	if (literal) {
		evbuffer_add_printf(out, "{%zu}\r\n", len);
		evbuffer_add(out, s, len);
		return;
	}
	evbuffer_add(out, "\"", 1);
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			evbuffer_add(out, s + start, i - start);
			evbuffer_add(out, "\\", 1);
			start = i;
		}
	}
	evbuffer_add(out, s + start, len - start);
	evbuffer_add(out, "\"", 1);
}

/* The name as the client sees it: UTF-8 (UTF8=ACCEPT, IMAP4rev2) or modified
 * UTF-7 (RFC 3501 5.1.3). NULL when it cannot be encoded (not valid UTF-8). */
static char *imap_name_for_client(const struct imap_session *s, const char *name)
{
	size_t len = strlen(name);
	if (imap_utf8(s))
		return strdup(name);
	size_t cap = len * 5 / 2 + 1;
	char *out = malloc(cap);
	const char *err;
	if (out == NULL || imap_mutf7_encode(name, len, out, cap, &err) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

void imap_write_mailbox(struct imap_session *s, struct evbuffer *out, const char *name)
{
	char *n = imap_name_for_client(s, name);
	if (n == NULL) {
		imap_write_string(out, name, strlen(name));
		return;
	}
	imap_write_string(out, n, strlen(n));
	free(n);
}

/* RFC 9051 5.1: no empty levels, no wildcards in names that are created. */
static bool imap_name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > STORE_MAILBOX_NAME_MAX || name[0] == '/' || name[len - 1] == '/')
		return false;
	unsigned depth = 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f || c == '*' || c == '%')
			return false;
		if (c == '/' && (name[i + 1] == '/' || ++depth > STORE_MAILBOX_DEPTH_MAX))
			return false;
	}
	return true;
}

static void imap_name_normalize_inbox(char *name)
{
	/* RFC 9051 5.1: INBOX is case-insensitive */
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/'))
		memcpy(name, "INBOX", 5);
}

int imap_arg_mailbox(struct imap_session *s, const struct imap_token *t, char *out)
{
	if (!IMAP_TOKEN_IS_ASTRING(t)) {
		imap_reply_bad(s, "BAD Expected a mailbox name");
		return -1;
	}
	if (t->len > STORE_MAILBOX_NAME_MAX) {
		imap_reply_bad(s, "BAD [LIMIT] Mailbox name too long");
		return -1;
	}
	if (imap_utf8(s)) {
		memcpy(out, t->data, t->len);
		out[t->len] = '\0';
	} else {
		const char *err;
		if (imap_mutf7_decode(t->data, t->len, out, STORE_MAILBOX_NAME_MAX + 1, &err) < 0) {
			imap_reply_bad(s, "BAD Invalid modified UTF-7 in the mailbox name");
			return -1;
		}
	}
	if (strlen(out) != t->len && imap_utf8(s)) {
		imap_reply_bad(s, "BAD Invalid mailbox name");
		return -1;
	}
	imap_name_normalize_inbox(out);
	return 1;
}

void imap_write_flags(struct evbuffer *out, const char *flags)
{
	evbuffer_add_printf(out, "(%s)", flags != NULL ? flags : "");
}

void imap_write_flags_fetch(struct evbuffer *out, uint32_t seq, const char *flags, uint32_t uid,
                            uint64_t modseq)
{
	evbuffer_add_printf(out, "* %u FETCH (FLAGS ", seq);
	imap_write_flags(out, flags);
	if (uid != 0)
		evbuffer_add_printf(out, " UID %u", uid);
	if (modseq != 0)
		evbuffer_add_printf(out, " MODSEQ (%llu)", (unsigned long long)modseq);
	evbuffer_add(out, ")\r\n", 3);
}

/* ---- the view ---- */

void imap_view_free(struct imap_view **v)
{
	if (*v == NULL)
		return;
	imap_uidmap_free(&(*v)->map);
	free((*v)->told);
	free((*v)->name);
	free(*v);
	*v = NULL;
}

uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid)
{
	return imap_uidmap_seq(&v->map, uid);
}

void imap_view_gone(struct imap_session *s)
{
	if (imap_session_gone(s))
		return;
	char esc[200];
	log_info(s->c->sid, "event=selected-mailbox-gone user=%s mailbox=\"%s\"", s->account,
	         log_escape_str(s->view != NULL ? s->view->name : "-", esc, sizeof(esc)));
	/* RFC 2180 3: the server may end the sessions that have a deleted mailbox
	 * selected; a name re-created since is another mailbox (new UIDVALIDITY,
	 * RFC 9051 2.3.1.1) whose UIDs the client must not take for the old ones */
	imap_session_goodbye(s, "* BYE Selected mailbox was deleted, have to disconnect");
}

void imap_view_expunge_report(struct imap_session *s, uint32_t seq)
{
	struct imap_view *v = s->view;
	uint32_t uid = imap_uidmap_uid(&v->map, seq);
	if (uid == 0)
		return;
	if (imap_uidmap_remove(&v->map, seq) < 0) {
		/* the view would be wrong from here on */
		log_error(s->c->sid, "event=view-oom user=%s", s->account);
		imap_session_goodbye(s, "* BYE [UNAVAILABLE] Out of memory");
		return;
	}
	if (s->enabled & IMAP_EN_QRESYNC) /* RFC 7162 3.2.10: VANISHED instead */
		imap_reply(s, "* VANISHED %u", uid);
	else
		imap_reply(s, "* %u EXPUNGE", seq);
}

void imap_view_told_add(struct imap_view *v, uint32_t uid, uint64_t modseq)
{
	if (v->ntold == v->captold) {
		size_t ncap = v->captold ? v->captold * 2 : 16;
		struct imap_view_told *p = reallocarray(v->told, ncap, sizeof(*p));
		if (p == NULL)
			return; /* the refresh reports it once more: harmless */
		v->told = p;
		v->captold = ncap;
	}
	v->told[v->ntold++] = (struct imap_view_told){.uid = uid, .modseq = modseq};
}

static int imap_told_cmp(const void *a, const void *b)
{
	const struct imap_view_told *x = a, *y = b;
	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->modseq < y->modseq ? -1 : x->modseq > y->modseq;
}

static bool imap_view_was_told(const struct imap_view *v, uint32_t uid, uint64_t modseq)
{
	struct imap_view_told key = {.uid = uid, .modseq = modseq};
	return v->ntold > 0 &&
	       bsearch(&key, v->told, v->ntold, sizeof(key), imap_told_cmp) != NULL;
}

/* ---- entries read for a command (worker) ---- */

struct imap_entries_ctx {
	struct imap_entries *e;
	const struct imap_uidmap *map;
};

static void imap_entries_cb(void *ctx, const struct store_message_info *m)
{
	struct imap_entries_ctx *c = ctx;
	struct imap_entries *e = c->e;
	if (e->oom)
		return;
	if (e->n == e->cap) {
		size_t ncap = e->cap ? e->cap * 2 : 64;
		struct imap_entry *p = reallocarray(e->v, ncap, sizeof(*p));
		if (p == NULL) {
			e->oom = true;
			return;
		}
		e->v = p;
		e->cap = ncap;
	}
	struct imap_entry *x = &e->v[e->n];
	*x = (struct imap_entry){.uid = m->uid,
	                         .seq = c->map != NULL ? imap_uidmap_seq(c->map, m->uid) : 0,
	                         .modseq = m->modseq,
	                         .size = m->size,
	                         .internal_date = m->internal_date};
	x->flags = strdup(m->flags != NULL ? m->flags : "");
	if (x->flags == NULL) {
		e->oom = true;
		return;
	}
	snprintf(x->blob_id, sizeof(x->blob_id), "%s", m->blob_id != NULL ? m->blob_id : "");
	e->n++;
}

int imap_entries_read(struct store *st, const char *account, const char *mailbox,
                      uint32_t uidvalidity, const struct imap_uidmap *map, const uint32_t *uids,
                      size_t n, struct imap_entries *e, char **error_r)
{
	/* one range per run of consecutive UIDs: a range holds no UID the session
	 * does not know, since the UIDs between two it knows were never reused */
	size_t nr = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || uids[i] != uids[i - 1] + 1)
			nr++;
	struct store_uid_range *r = reallocarray(NULL, nr > 0 ? nr : 1, sizeof(*r));
	if (r == NULL) {
		*error_r = strdup("out of memory");
		return -1;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || uids[i] != uids[i - 1] + 1)
			r[k++] = (struct store_uid_range){.first = uids[i], .last = uids[i]};
		else
			r[k - 1].last = uids[i];
	}
	struct imap_entries_ctx c = {.e = e, .map = map};
	int ret = store_message_ranges(st, account, mailbox, uidvalidity, r, nr, imap_entries_cb,
	                               &c, error_r);
	free(r);
	if (ret > 0 && e->oom) {
		*error_r = strdup("out of memory");
		return -1;
	}
	return ret;
}

void imap_entries_clear(struct imap_entries *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i].flags);
	e->n = 0;
	e->oom = false;
}

static int imap_change_push(struct imap_changes *ch, const struct store_message_info *m)
{
	if (ch->n == ch->cap) {
		size_t ncap = ch->cap ? ch->cap * 2 : 64;
		struct imap_change_msg *p = reallocarray(ch->msgs, ncap, sizeof(*p));
		if (p == NULL)
			return -1;
		ch->msgs = p;
		ch->cap = ncap;
	}
	struct imap_change_msg *e = &ch->msgs[ch->n];
	*e = (struct imap_change_msg){.uid = m->uid, .modseq = m->modseq};
	e->flags = strdup(m->flags != NULL ? m->flags : "");
	if (e->flags == NULL)
		return -1;
	ch->n++;
	return 1;
}

static void imap_changes_mailbox_cb(void *ctx, const struct store_mailbox_info *mb)
{
	struct imap_changes *ch = ctx;
	ch->have_info = true;
	ch->noselect = mb->noselect;
	ch->uidvalidity = mb->uidvalidity;
	ch->uidnext = mb->uidnext;
	ch->highestmodseq = mb->highestmodseq;
	ch->expunge_floor = mb->expunge_floor;
}

static void imap_changes_message_cb(void *ctx, const struct store_message_info *m)
{
	struct imap_changes *ch = ctx;
	if (!ch->oom && imap_change_push(ch, m) < 0)
		ch->oom = true;
}

static void imap_changes_vanished_cb(void *ctx, uint32_t first, uint32_t last)
{
	struct imap_changes *ch = ctx;
	if (ch->oom)
		return;
	if (ch->nvanished == ch->capvanished) {
		size_t ncap = ch->capvanished ? ch->capvanished * 2 : 32;
		uint32_t *p = reallocarray(ch->vanished, ncap, 2 * sizeof(*p));
		if (p == NULL) {
			ch->oom = true;
			return;
		}
		ch->vanished = p;
		ch->capvanished = ncap;
	}
	ch->vanished[2 * ch->nvanished] = first;
	ch->vanished[2 * ch->nvanished + 1] = last;
	ch->nvanished++;
}

void imap_changes_free(struct imap_changes *ch)
{
	for (size_t i = 0; i < ch->n; i++)
		free(ch->msgs[i].flags);
	free(ch->msgs);
	free(ch->vanished);
	memset(ch, 0, sizeof(*ch));
}

void imap_changes_collect(struct imap_job *j)
{
	static const struct store_changes_ops ops = {
	    .mailbox = imap_changes_mailbox_cb,
	    .message = imap_changes_message_cb,
	    .vanished = imap_changes_vanished_cb,
	};
	char *error = NULL;
	j->ch_result =
	    store_mailbox_changes(j->st, j->account, j->mailbox, j->since, &ops, &j->ch, &error);
	if (j->ch_result > 0 && j->ch.oom)
		j->ch_result = -1;
	free(error);
}

/* RFC 9051 7.5: expunges first (each renumbers the rest), then flag changes, then
 * the new message count. A flag change is a message whose MODSEQ passed the
 * view's HIGHESTMODSEQ (the store gives a new MODSEQ only to entries whose flags
 * changed), unless the session reported that very change itself. */
void imap_view_apply(struct imap_session *s, struct imap_changes *ch)
{
	struct imap_view *v = s->view;
	struct evbuffer *out = imap_output(s);
	if (v == NULL || out == NULL)
		return;
	if (!ch->have_info || ch->noselect || ch->uidvalidity != v->uidvalidity) {
		imap_view_gone(s);
		return;
	}
	/* vanished: ascending UID ranges (first, last) */
	for (size_t k = 0; k < ch->nvanished; k++) {
		uint32_t hi = ch->vanished[2 * k + 1];
		uint32_t seq = imap_uidmap_lower(&v->map, ch->vanished[2 * k]);
		/* each report removes message seq: the next one moves into its place */
		while (seq <= v->map.n && imap_uidmap_uid(&v->map, seq) <= hi) {
			uint32_t before = v->map.n;
			imap_view_expunge_report(s, seq);
			if (imap_session_gone(s))
				return;
			if (v->map.n == before)
				seq++; /* not removed (out of memory): go on past it */
		}
	}
	if (v->ntold > 1)
		qsort(v->told, v->ntold, sizeof(v->told[0]), imap_told_cmp);
	uint32_t added = 0;
	for (size_t k = 0; k < ch->n; k++) {
		struct imap_change_msg *m = &ch->msgs[k];
		uint32_t seq = imap_view_seq(v, m->uid);
		if (seq > 0) {
			if (imap_view_was_told(v, m->uid, m->modseq))
				continue;
			/* RFC 7162 3.1.4.1 (MODSEQ), RFC 7162 3.2.4 (UID with QRESYNC) */
			imap_write_flags_fetch(out, seq, m->flags,
			                       (s->enabled & IMAP_EN_QRESYNC) ? m->uid : 0,
			                       (s->enabled & IMAP_EN_CONDSTORE) ? m->modseq : 0);
			continue;
		}
		if (m->uid <= imap_uidmap_max(&v->map))
			continue; /* expunged before this session saw it */
		if (imap_uidmap_append(&v->map, m->uid) < 0) {
			log_error(s->c->sid, "event=view-oom user=%s", s->account);
			imap_session_goodbye(s, "* BYE [UNAVAILABLE] Out of memory");
			return;
		}
		added++;
		if (m->uid >= v->uidnext)
			v->uidnext = m->uid + 1;
	}
	if (added > 0)
		evbuffer_add_printf(out, "* %u EXISTS\r\n", v->map.n);
	free(v->told);
	v->told = NULL;
	v->ntold = v->captold = 0;
	if (ch->highestmodseq > v->highestmodseq)
		v->highestmodseq = ch->highestmodseq;
	if (ch->uidnext > v->uidnext)
		v->uidnext = ch->uidnext;
}

/* ---- the mailbox list (worker) ---- */

struct imap_mbox {
	char *name;
	char *special_use;
	uint32_t uidvalidity, uidnext, messages, unseen, deleted;
	uint64_t highestmodseq, size;
	bool subscribed, noselect, children, exists;
};

struct imap_mbox_list {
	struct imap_mbox *v;
	size_t n, cap;
	bool oom;
	const char *only; /* keep only this name (STATUS, SELECT) */
};

static struct imap_mbox *imap_mbox_list_add(struct imap_mbox_list *l)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 16;
		struct imap_mbox *p = reallocarray(l->v, ncap, sizeof(*p));
		if (p == NULL) {
			l->oom = true;
			return NULL;
		}
		l->v = p;
		l->cap = ncap;
	}
	struct imap_mbox *m = &l->v[l->n];
	memset(m, 0, sizeof(*m));
	return m;
}

static void imap_mbox_list_cb(void *ctx, const struct store_mailbox_info *mb)
{
	struct imap_mbox_list *l = ctx;
	if (l->oom || (l->only != NULL && strcmp(mb->name, l->only) != 0))
		return;
	struct imap_mbox *m = imap_mbox_list_add(l);
	if (m == NULL)
		return;
	m->name = strdup(mb->name);
	m->special_use = mb->special_use != NULL ? strdup(mb->special_use) : NULL;
	if (m->name == NULL || (mb->special_use != NULL && m->special_use == NULL)) {
		free(m->name);
		free(m->special_use);
		l->oom = true;
		return;
	}
	m->uidvalidity = mb->uidvalidity;
	m->uidnext = mb->uidnext;
	m->messages = mb->messages;
	m->unseen = mb->unseen;
	m->deleted = mb->deleted;
	m->highestmodseq = mb->highestmodseq;
	m->size = mb->size;
	m->subscribed = mb->subscribed;
	m->noselect = mb->noselect;
	m->children = mb->children;
	m->exists = true;
	l->n++;
}

static void imap_mbox_list_free(struct imap_mbox_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].special_use);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static struct imap_mbox *imap_mbox_list_find(struct imap_mbox_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return &l->v[i];
	return NULL;
}

/* Subscribed names that are not mailboxes become \NonExistent entries. */
static void imap_subscription_cb(void *ctx, const char *name)
{
	struct imap_mbox_list *l = ctx;
	if (l->oom)
		return;
	struct imap_mbox *m = imap_mbox_list_find(l, name);
	if (m != NULL) {
		m->subscribed = true;
		return;
	}
	m = imap_mbox_list_add(l);
	if (m == NULL)
		return;
	m->name = strdup(name);
	if (m->name == NULL) {
		l->oom = true;
		return;
	}
	m->subscribed = true;
	l->n++;
}

/* ---- LIST and LSUB ---- */

/* RFC 9051 6.3.9: "*" matches anything, "%" anything but the hierarchy
 * separator. Dynamic programming over the pattern, O(len(name) * len(pattern)).
 * ci: the first ci octets compare case-insensitively (INBOX). */
static bool imap_pattern_match(const char *pat, size_t plen, const char *name, size_t ci)
{
	size_t nlen = strlen(name);
	bool stack_row[2][257];
	bool *prev = stack_row[0], *cur = stack_row[1];
	bool *heap = NULL;
	if (plen + 1 > 257) {
		heap = calloc(2 * (plen + 1), sizeof(bool));
		if (heap == NULL)
			return false;
		prev = heap;
		cur = heap + plen + 1;
	}
	prev[0] = true;
	for (size_t j = 0; j < plen; j++)
		prev[j + 1] = prev[j] && (pat[j] == '*' || pat[j] == '%');
	for (size_t i = 0; i < nlen; i++) {
		char c = name[i];
		cur[0] = false;
		for (size_t j = 0; j < plen; j++) {
			char p = pat[j];
			if (p == '*')
				cur[j + 1] = cur[j] || prev[j + 1];
			else if (p == '%')
				cur[j + 1] = cur[j] || (prev[j + 1] && c != '/');
			else if (i < ci)
				cur[j + 1] = prev[j] && (p | 0x20) == (c | 0x20) && p != '/';
			else
				cur[j + 1] = prev[j] && p == c;
		}
		bool *t = prev;
		prev = cur;
		cur = t;
	}
	bool r = prev[plen];
	free(heap);
	return r;
}

#define IMAP_LIST_PATTERNS_MAX 32
#define IMAP_LIST_PATTERN_MAX 1024

#define IMAP_SEL_SUBSCRIBED 0x01u
#define IMAP_SEL_SPECIAL_USE 0x02u
#define IMAP_SEL_RECURSIVE 0x04u
#define IMAP_RET_SUBSCRIBED 0x01u
#define IMAP_RET_CHILDREN 0x02u
#define IMAP_RET_SPECIAL_USE 0x04u
#define IMAP_RET_STATUS 0x08u

#define IMAP_STATUS_MESSAGES 0x01u
#define IMAP_STATUS_UIDNEXT 0x02u
#define IMAP_STATUS_UIDVALIDITY 0x04u
#define IMAP_STATUS_UNSEEN 0x08u
#define IMAP_STATUS_DELETED 0x10u
#define IMAP_STATUS_SIZE 0x20u
#define IMAP_STATUS_RECENT 0x40u
#define IMAP_STATUS_HIGHESTMODSEQ 0x80u

struct imap_list_job {
	struct imap_job j;
	bool lsub;
	unsigned sel, ret, status;
	char status_order[8]; /* the STATUS items in the order asked */
	unsigned nstatus;
	char *patterns[IMAP_LIST_PATTERNS_MAX]; /* in the client's form, ref prepended */
	unsigned npatterns;
	bool want_subscriptions;
	struct imap_mbox_list l;
};

static void imap_list_job_free(struct imap_job *j)
{
	struct imap_list_job *lj = (struct imap_list_job *)j;
	for (unsigned i = 0; i < lj->npatterns; i++)
		free(lj->patterns[i]);
	imap_mbox_list_free(&lj->l);
}

static void imap_list_job_run(struct imap_job *j)
{
	struct imap_list_job *lj = (struct imap_list_job *)j;
	j->result = store_mailbox_list(j->st, j->account, imap_mbox_list_cb, &lj->l, &j->error);
	if (j->result > 0 && lj->want_subscriptions) {
		char *error = NULL;
		/* until the backend keeps subscriptions of their own, the mailboxes'
		 * subscribed flag is what there is */
		if (store_subscription_list(j->st, j->account, imap_subscription_cb, &lj->l,
		                            &error) < 0)
			free(error);
	}
	if (j->result > 0 && lj->l.oom) {
		j->result = -1;
		free(j->error);
		j->error = strdup("out of memory");
	}
}

static void imap_write_status_items(struct evbuffer *out, const char *order, unsigned n,
                                    const struct imap_mbox *m)
{
	evbuffer_add(out, "(", 1);
	for (unsigned k = 0; k < n; k++) {
		if (k > 0)
			evbuffer_add(out, " ", 1);
		switch ((unsigned char)order[k]) {
		case IMAP_STATUS_MESSAGES:
			evbuffer_add_printf(out, "MESSAGES %u", m->messages);
			break;
		case IMAP_STATUS_UIDNEXT:
			evbuffer_add_printf(out, "UIDNEXT %u", m->uidnext);
			break;
		case IMAP_STATUS_UIDVALIDITY:
			evbuffer_add_printf(out, "UIDVALIDITY %u", m->uidvalidity);
			break;
		case IMAP_STATUS_UNSEEN:
			evbuffer_add_printf(out, "UNSEEN %u", m->unseen);
			break;
		case IMAP_STATUS_DELETED:
			evbuffer_add_printf(out, "DELETED %u", m->deleted);
			break;
		case IMAP_STATUS_SIZE:
			evbuffer_add_printf(out, "SIZE %llu", (unsigned long long)m->size);
			break;
		case IMAP_STATUS_RECENT:
			evbuffer_add_printf(out, "RECENT 0");
			break;
		case IMAP_STATUS_HIGHESTMODSEQ:
			evbuffer_add_printf(out, "HIGHESTMODSEQ %llu",
			                    (unsigned long long)m->highestmodseq);
			break;
		}
	}
	evbuffer_add(out, ")", 1);
}

static bool imap_list_matches(struct imap_session *s, struct imap_list_job *lj, const char *name)
{
	char *cn = imap_name_for_client(s, name);
	if (cn == NULL)
		return false;
	size_t ci = strncmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/') ? 5 : 0;
	bool match = false;
	for (unsigned p = 0; p < lj->npatterns && !match; p++)
		match = imap_pattern_match(lj->patterns[p], strlen(lj->patterns[p]), cn, ci);
	free(cn);
	return match;
}

static bool imap_has_subscribed_child(const struct imap_mbox_list *l, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].subscribed && strncmp(l->v[i].name, name, len) == 0 &&
		    l->v[i].name[len] == '/')
			return true;
	return false;
}

static void imap_list_job_done(struct imap_job *j)
{
	struct imap_list_job *lj = (struct imap_list_job *)j;
	struct imap_session *s = j->s;
	if (j->result < 0) {
		imap_job_tempfail(j, lj->lsub ? "lsub" : "list");
		return;
	}
	struct evbuffer *out = imap_output(s);
	if (out == NULL)
		return;
	const char *verb = lj->lsub ? "LSUB" : "LIST";
	for (size_t i = 0; i < lj->l.n; i++) {
		struct imap_mbox *m = &lj->l.v[i];
		bool childinfo = false;
		if (lj->lsub || (lj->sel & IMAP_SEL_SUBSCRIBED)) {
			if (!m->subscribed) {
				if (!(lj->sel & IMAP_SEL_RECURSIVE) ||
				    !imap_has_subscribed_child(&lj->l, m->name))
					continue;
				childinfo = true; /* RFC 5258 3.5 */
			}
		}
		if ((lj->sel & IMAP_SEL_SPECIAL_USE) && m->special_use == NULL)
			continue;
		if (!imap_list_matches(s, lj, m->name))
			continue;
		evbuffer_add_printf(out, "* %s (", verb);
		const char *sep = "";
		if (!m->exists) {
			evbuffer_add_printf(out, "%s", lj->lsub ? "\\Noselect" : "\\NonExistent");
			sep = " ";
		} else if (m->noselect) {
			evbuffer_add_printf(out, "\\Noselect");
			sep = " ";
		}
		if (!lj->lsub && m->exists) {
			evbuffer_add_printf(out, "%s%s", sep,
			                    m->children ? "\\HasChildren" : "\\HasNoChildren");
			sep = " ";
		}
		if (!lj->lsub && m->subscribed &&
		    ((lj->ret & IMAP_RET_SUBSCRIBED) || (lj->sel & IMAP_SEL_SUBSCRIBED))) {
			evbuffer_add_printf(out, "%s\\Subscribed", sep);
			sep = " ";
		}
		if (m->special_use != NULL)
			evbuffer_add_printf(out, "%s%s", sep, m->special_use);
		evbuffer_add_printf(out, ") \"/\" ");
		imap_write_mailbox(s, out, m->name);
		if (childinfo && !lj->lsub)
			evbuffer_add_printf(out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
		evbuffer_add(out, "\r\n", 2);
		if ((lj->ret & IMAP_RET_STATUS) && m->exists && !m->noselect) {
			/* RFC 5819 */
			evbuffer_add_printf(out, "* STATUS ");
			imap_write_mailbox(s, out, m->name);
			evbuffer_add(out, " ", 1);
			imap_write_status_items(out, lj->status_order, lj->nstatus, m);
			evbuffer_add(out, "\r\n", 2);
		}
	}
	imap_job_tagged(j, "OK %s completed", verb);
}

/* STATUS items (RFC 9051 6.3.11, RFC 8438 SIZE, RFC 7162 HIGHESTMODSEQ). -1 after
 * replying BAD. */
static int imap_status_items(struct imap_session *s, const struct imap_token *a, unsigned i,
                             char *order, unsigned *n_r, unsigned *mask_r)
{
	if (a[i].type != IMAP_TOKEN_LIST || a[i].span == 0) {
		imap_reply_bad(s, "BAD Expected a list of status items");
		return -1;
	}
	unsigned n = 0, mask = 0;
	for (unsigned k = i + 1; k <= i + a[i].span; k++) {
		static const struct {
			const char *name;
			unsigned bit;
		} items[] = {
		    {"MESSAGES", IMAP_STATUS_MESSAGES},
		    {"UIDNEXT", IMAP_STATUS_UIDNEXT},
		    {"UIDVALIDITY", IMAP_STATUS_UIDVALIDITY},
		    {"UNSEEN", IMAP_STATUS_UNSEEN},
		    {"DELETED", IMAP_STATUS_DELETED},
		    {"SIZE", IMAP_STATUS_SIZE},
		    {"RECENT", IMAP_STATUS_RECENT},
		    {"HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ},
		};
		unsigned bit = 0;
		if (a[k].type == IMAP_TOKEN_ATOM)
			for (size_t x = 0; x < sizeof(items) / sizeof(items[0]); x++)
				if (strcasecmp(a[k].data, items[x].name) == 0)
					bit = items[x].bit;
		if (bit == 0) {
			imap_reply_bad(s, "BAD Unknown status item");
			return -1;
		}
		if (mask & bit)
			continue;
		mask |= bit;
		order[n++] = (char)bit;
	}
	*n_r = n;
	*mask_r = mask;
	return 1;
}

static int imap_list_add_pattern(struct imap_session *s, struct imap_list_job *lj, const char *ref,
                                 size_t rlen, const struct imap_token *t)
{
	if (!(IMAP_TOKEN_IS_STRING(t) ||
	      (t->type == IMAP_TOKEN_ATOM && (t->flags & IMAP_ATOM_LIST_MAILBOX)))) {
		imap_reply_bad(s, "BAD Expected a mailbox pattern");
		return -1;
	}
	if (lj->npatterns == IMAP_LIST_PATTERNS_MAX || t->len + rlen > IMAP_LIST_PATTERN_MAX) {
		imap_reply_bad(s, "BAD [LIMIT] Too many or too long patterns");
		return -1;
	}
	char *p = malloc(rlen + t->len + 1);
	if (p == NULL) {
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return -1;
	}
	memcpy(p, ref, rlen);
	memcpy(p + rlen, t->data, t->len);
	p[rlen + t->len] = '\0';
	lj->patterns[lj->npatterns++] = p;
	return 1;
}

static void imap_list(struct imap_session *s, const struct imap_command *cmd, bool lsub)
{
	const struct imap_token *a = cmd->args;
	unsigned i = 0, sel = 0;
	if (!lsub && i < cmd->nargs && a[i].type == IMAP_TOKEN_LIST) {
		/* RFC 5258 selection options */
		for (unsigned k = i + 1; k <= i + a[i].span; k++) {
			const char *o = a[k].type == IMAP_TOKEN_ATOM ? a[k].data : "";
			if (strcasecmp(o, "SUBSCRIBED") == 0)
				sel |= IMAP_SEL_SUBSCRIBED;
			else if (strcasecmp(o, "SPECIAL-USE") == 0)
				sel |= IMAP_SEL_SPECIAL_USE;
			else if (strcasecmp(o, "RECURSIVEMATCH") == 0)
				sel |= IMAP_SEL_RECURSIVE;
			else if (strcasecmp(o, "REMOTE") != 0) {
				imap_reply_bad(s, "BAD Unknown selection option");
				return;
			}
		}
		/* RFC 5258 3.1: RECURSIVEMATCH needs another option to act on */
		if ((sel & IMAP_SEL_RECURSIVE) && !(sel & IMAP_SEL_SUBSCRIBED)) {
			imap_reply_bad(s, "BAD RECURSIVEMATCH without SUBSCRIBED");
			return;
		}
		i = imap_token_skip(a, i);
	}
	if (i + 2 > cmd->nargs || !IMAP_TOKEN_IS_ASTRING(&a[i])) {
		imap_reply_bad(s, "BAD Expected a reference and a mailbox pattern");
		return;
	}
	struct imap_list_job *lj = imap_job_new(s, sizeof(*lj));
	if (lj == NULL)
		return;
	lj->j.run = imap_list_job_run;
	lj->j.done = imap_list_job_done;
	lj->j.free = imap_list_job_free;
	lj->lsub = lsub;
	lj->sel = sel;
	const char *ref = a[i].data;
	size_t rlen = a[i].len;
	i++;
	bool empty_pattern = false;
	if (a[i].type == IMAP_TOKEN_LIST && !lsub) {
		if (a[i].span == 0) {
			imap_reply_bad(s, "BAD Empty pattern list");
			imap_job_free(&lj->j);
			return;
		}
		for (unsigned k = i + 1; k <= i + a[i].span; k++)
			if (imap_list_add_pattern(s, lj, ref, rlen, &a[k]) < 0) {
				imap_job_free(&lj->j);
				return;
			}
	} else {
		if (imap_list_add_pattern(s, lj, ref, rlen, &a[i]) < 0) {
			imap_job_free(&lj->j);
			return;
		}
		empty_pattern = a[i].len == 0;
	}
	i = imap_token_skip(a, i);
	if (i < cmd->nargs) {
		/* RFC 5258 return options */
		if (lsub || a[i].type != IMAP_TOKEN_ATOM || strcasecmp(a[i].data, "RETURN") != 0 ||
		    i + 1 >= cmd->nargs || a[i + 1].type != IMAP_TOKEN_LIST ||
		    imap_token_skip(a, i + 1) != cmd->nargs) {
			imap_reply_bad(s, "BAD Unexpected arguments");
			imap_job_free(&lj->j);
			return;
		}
		unsigned end = i + 1 + a[i + 1].span;
		for (unsigned k = i + 2; k <= end; k = imap_token_skip(a, k)) {
			const char *o = a[k].type == IMAP_TOKEN_ATOM ? a[k].data : "";
			if (strcasecmp(o, "SUBSCRIBED") == 0) {
				lj->ret |= IMAP_RET_SUBSCRIBED;
			} else if (strcasecmp(o, "CHILDREN") == 0) {
				lj->ret |= IMAP_RET_CHILDREN;
			} else if (strcasecmp(o, "SPECIAL-USE") == 0) {
				lj->ret |= IMAP_RET_SPECIAL_USE;
			} else if (strcasecmp(o, "STATUS") == 0 && k + 1 <= end) {
				unsigned mask;
				if (imap_status_items(s, a, k + 1, lj->status_order, &lj->nstatus,
				                      &mask) < 0) {
					imap_job_free(&lj->j);
					return;
				}
				lj->status = mask;
				lj->ret |= IMAP_RET_STATUS;
				k++; /* the list is skipped below */
			} else {
				imap_reply_bad(s, "BAD Unknown return option");
				imap_job_free(&lj->j);
				return;
			}
		}
	}
	if (empty_pattern && lj->npatterns == 1 && sel == 0) {
		/* RFC 9051 6.3.9: the hierarchy delimiter and root */
		imap_reply(s, "* %s (\\Noselect) \"/\" \"\"", lsub ? "LSUB" : "LIST");
		imap_reply(s, "%s OK %s completed", s->tag, lsub ? "LSUB" : "LIST");
		imap_job_free(&lj->j);
		return;
	}
	lj->want_subscriptions = lsub || (sel & IMAP_SEL_SUBSCRIBED);
	imap_job_submit(s, &lj->j);
}

void imap_cmd_list(struct imap_session *s, const struct imap_command *cmd)
{
	imap_list(s, cmd, false);
}

void imap_cmd_lsub(struct imap_session *s, const struct imap_command *cmd)
{
	imap_list(s, cmd, true);
}

/* ---- STATUS ---- */

struct imap_status_job {
	struct imap_job j;
	char name[STORE_MAILBOX_NAME_MAX + 1];
	char order[8];
	unsigned n;
	struct imap_mbox_list l;
};

static void imap_status_job_free(struct imap_job *j)
{
	imap_mbox_list_free(&((struct imap_status_job *)j)->l);
}

static void imap_status_job_run(struct imap_job *j)
{
	struct imap_status_job *sj = (struct imap_status_job *)j;
	sj->l.only = sj->name;
	j->result = store_mailbox_list(j->st, j->account, imap_mbox_list_cb, &sj->l, &j->error);
	if (j->result > 0 && sj->l.oom)
		j->result = -1;
}

static void imap_status_job_done(struct imap_job *j)
{
	struct imap_status_job *sj = (struct imap_status_job *)j;
	if (j->result < 0) {
		imap_job_tempfail(j, "status");
		return;
	}
	if (sj->l.n == 0 || sj->l.v[0].noselect) {
		imap_job_tagged(j, "NO [NONEXISTENT] Mailbox does not exist");
		return;
	}
	struct evbuffer *out = imap_output(j->s);
	if (out == NULL)
		return;
	evbuffer_add_printf(out, "* STATUS ");
	imap_write_mailbox(j->s, out, sj->name);
	evbuffer_add(out, " ", 1);
	imap_write_status_items(out, sj->order, sj->n, &sj->l.v[0]);
	evbuffer_add(out, "\r\n", 2);
	imap_job_tagged(j, "OK STATUS completed");
}

void imap_cmd_status(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_token *a = cmd->args;
	if (cmd->nargs < 2 || imap_token_skip(a, 1) != cmd->nargs) {
		imap_reply_bad(s, "BAD Expected a mailbox name and a list of status items");
		return;
	}
	char name[STORE_MAILBOX_NAME_MAX + 1];
	if (imap_arg_mailbox(s, &a[0], name) < 0)
		return;
	char order[8];
	unsigned n, mask;
	if (imap_status_items(s, a, 1, order, &n, &mask) < 0)
		return;
	struct imap_status_job *sj = imap_job_new(s, sizeof(*sj));
	if (sj == NULL)
		return;
	sj->j.run = imap_status_job_run;
	sj->j.done = imap_status_job_done;
	sj->j.free = imap_status_job_free;
	memcpy(sj->name, name, sizeof(name));
	memcpy(sj->order, order, sizeof(order));
	sj->n = n;
	imap_job_submit_refresh(s, &sj->j);
}

/* ---- SELECT and EXAMINE ---- */

struct imap_select_job {
	struct imap_job j;
	char name[STORE_MAILBOX_NAME_MAX + 1];
	bool readonly;
	struct imap_mbox_list l;
	struct imap_uidmap map;
	uint32_t first_unseen; /* sequence number, 0: none */
	bool oom;
	/* QRESYNC (RFC 7162 3.2.5): what the client knew */
	bool qresync;
	uint32_t q_uidvalidity;
	uint64_t q_modseq;
	struct imap_seqset q_known;        /* known UIDs (n == 0: all) */
	struct imap_seqset q_mseq, q_muid; /* sequence match data (n == 0: none) */
	struct imap_changes q_ch;          /* vanished since q_modseq */
	struct evbuffer *q_vanished;       /* the VANISHED (EARLIER) response, made on the worker */
};

static void imap_select_job_free(struct imap_job *j)
{
	struct imap_select_job *sj = (struct imap_select_job *)j;
	imap_seqset_free(&sj->q_known);
	imap_seqset_free(&sj->q_mseq);
	imap_seqset_free(&sj->q_muid);
	imap_changes_free(&sj->q_ch);
	if (sj->q_vanished != NULL)
		evbuffer_free(sj->q_vanished);
	imap_mbox_list_free(&sj->l);
	imap_uidmap_free(&sj->map);
}

static void imap_select_message_cb(void *ctx, const struct store_message_info *m)
{
	struct imap_select_job *sj = ctx;
	if (sj->oom || imap_uidmap_append(&sj->map, m->uid) < 0) {
		sj->oom = true;
		return;
	}
	if (sj->first_unseen == 0 && strstr(m->flags, "\\Seen") == NULL)
		sj->first_unseen = sj->map.n;
	if (sj->qresync && m->modseq > sj->q_modseq && imap_change_push(&sj->q_ch, m) < 0)
		sj->oom = true;
}

static void imap_select_mailbox_cb(void *ctx, const struct store_mailbox_info *mb)
{
	struct imap_select_job *sj = ctx;
	imap_mbox_list_cb(&sj->l, mb);
}

/* RFC 7162 3.2.5.2, on a message list when the expunge log no longer reaches
 * back to the client's MODSEQ: a pair of the sequence match data whose message
 * number still has that UID shows that none of the messages the client knew up
 * to that UID went (none can come below it). The highest such UID, or 0. */
static uint32_t imap_select_seq_match(const struct imap_select_job *sj)
{
	struct imap_seqset seqs, uids;
	uint64_t cs = 0, cu = 0, seq, uid;
	uint32_t above = 0;
	uint32_t n = sj->map.n;
	if (sj->q_mseq.n == 0 || n == 0 || imap_seqset_resolve(&sj->q_mseq, n, &seqs) < 0)
		return 0;
	if (imap_seqset_resolve(&sj->q_muid, imap_uidmap_max(&sj->map), &uids) < 0) {
		imap_seqset_free(&seqs);
		return 0;
	}
	/* pairs in ascending order, as many as there are messages at most */
	while (imap_seqset_next(&seqs, n, &cs, &seq) > 0 &&
	       imap_seqset_next(&uids, UINT32_MAX, &cu, &uid) > 0) {
		if (imap_uidmap_uid(&sj->map, (uint32_t)seq) == uid)
			above = (uint32_t)uid;
	}
	imap_seqset_free(&seqs);
	imap_seqset_free(&uids);
	return above;
}

/* RFC 7162 3.2.5.2: VANISHED (EARLIER) for the UIDs expunged since the client's
 * MODSEQ that it knows (known-uids; all when not given), never one that is in
 * the message list the view is made of (a later expunge is reported to the
 * view). When the log was pruned past that MODSEQ, the store names every UID
 * without an entry and the sequence match data narrows it. Made on the worker
 * into sj->q_vanished. 1, -1 out of memory. */
static int imap_select_vanished(struct imap_select_job *sj)
{
	struct imap_seqset known = {0};
	struct imap_changes *ch = &sj->q_ch;
	sj->q_vanished = evbuffer_new();
	if (sj->q_vanished == NULL)
		return -1;
	struct imap_vanished w = {.out = sj->q_vanished};
	if (sj->q_known.n > 0) {
		uint32_t max = sj->l.v[0].uidnext > 1 ? sj->l.v[0].uidnext - 1 : 1;
		if (imap_seqset_resolve(&sj->q_known, max, &known) < 0)
			return -1;
		w.only = &known;
	}
	if (sj->q_modseq < ch->expunge_floor)
		w.above = imap_select_seq_match(sj);
	/* the message list's UIDs are skipped */
	for (size_t k = 0; k < ch->nvanished; k++) {
		uint64_t a = ch->vanished[2 * k], b = ch->vanished[2 * k + 1];
		while (a <= b) {
			uint32_t seq = imap_uidmap_lower(&sj->map, (uint32_t)a);
			uint32_t u = seq <= sj->map.n ? imap_uidmap_uid(&sj->map, seq) : 0;
			if (u == 0 || u > b) {
				imap_vanished_add(&w, (uint32_t)a, (uint32_t)b);
				break;
			}
			if (u > a)
				imap_vanished_add(&w, (uint32_t)a, u - 1);
			a = (uint64_t)u + 1;
		}
	}
	imap_vanished_end(&w);
	imap_seqset_free(&known);
	return 1;
}

/* The mailbox's status and its UIDs in one snapshot (store_mailbox_changes since
 * 0): the view's HIGHESTMODSEQ is exactly the state its UIDs show. */
static void imap_select_job_run(struct imap_job *j)
{
	struct imap_select_job *sj = (struct imap_select_job *)j;
	static const struct store_changes_ops ops = {
	    .mailbox = imap_select_mailbox_cb,
	    .message = imap_select_message_cb,
	};
	sj->l.only = sj->name;
	j->result = store_mailbox_changes(j->st, j->account, sj->name, 0, &ops, sj, &j->error);
	if (j->result > 0 && (sj->l.oom || sj->l.n == 0 || sj->l.v[0].noselect))
		return;
	if (j->result > 0 && sj->oom)
		j->result = -1;
	if (j->result > 0 && sj->qresync && sj->l.v[0].uidvalidity == sj->q_uidvalidity) {
		static const struct store_changes_ops vops = {
		    .mailbox = imap_changes_mailbox_cb,
		    .vanished = imap_changes_vanished_cb,
		};
		char *error = NULL;
		if (store_mailbox_changes(j->st, j->account, sj->name, sj->q_modseq, &vops,
		                          &sj->q_ch, &error) < 0 ||
		    sj->q_ch.oom || imap_select_vanished(sj) < 0) {
			j->result = -1;
			j->error = error;
		}
	}
}

/* RFC 7162 3.2.5.2: what changed since the client's MODSEQ, after the SELECT
 * responses: VANISHED (EARLIER) for the known UIDs expunged meanwhile, FETCH
 * for the messages changed (or new) meanwhile. */
static void imap_select_qresync_report(struct imap_select_job *sj, struct evbuffer *out)
{
	struct imap_view *v = sj->j.s->view;
	if (sj->l.v[0].uidvalidity != sj->q_uidvalidity)
		return;
	if (sj->q_vanished != NULL)
		evbuffer_add_buffer(out, sj->q_vanished);
	for (size_t k = 0; k < sj->q_ch.n; k++) {
		const struct imap_change_msg *c = &sj->q_ch.msgs[k];
		evbuffer_add_printf(out, "* %u FETCH (UID %u FLAGS ", imap_view_seq(v, c->uid),
		                    c->uid);
		imap_write_flags(out, c->flags);
		evbuffer_add_printf(out, " MODSEQ (%llu))\r\n", (unsigned long long)c->modseq);
	}
}

static void imap_select_job_done(struct imap_job *j)
{
	struct imap_select_job *sj = (struct imap_select_job *)j;
	struct imap_session *s = j->s;
	const char *verb = sj->readonly ? "EXAMINE" : "SELECT";
	if (j->result < 0 || sj->l.oom) {
		imap_job_tempfail(j, "select");
		return;
	}
	if (j->result == 0 || sj->l.n == 0) {
		imap_job_tagged(j, "NO [NONEXISTENT] Mailbox does not exist");
		return;
	}
	struct imap_mbox *m = &sj->l.v[0];
	if (m->noselect) {
		imap_job_tagged(j, "NO [CANNOT] Mailbox cannot be selected");
		return;
	}
	struct imap_view *v = calloc(1, sizeof(*v));
	if (v == NULL || (v->name = strdup(sj->name)) == NULL) {
		free(v);
		imap_job_tagged(j, "NO [UNAVAILABLE] Out of memory");
		return;
	}
	v->readonly = sj->readonly;
	v->uidvalidity = m->uidvalidity;
	v->uidnext = m->uidnext;
	v->highestmodseq = m->highestmodseq;
	v->map = sj->map;
	memset(&sj->map, 0, sizeof(sj->map));
	imap_uidmap_trim(&v->map); /* it lives as long as the selection: no slack */
	uint32_t max = imap_uidmap_max(&v->map);
	if (max >= v->uidnext)
		v->uidnext = max + 1;
	s->view = v;
	imap_session_set_state(s, IMAP_STATE_SELECTED);
	struct evbuffer *out = imap_output(s);
	if (out == NULL)
		return;
	/* RFC 9051 6.3.2 */
	evbuffer_add_printf(out, "* %u EXISTS\r\n", v->map.n);
	bool rev2 = (s->enabled & IMAP_EN_REV2) != 0;
	if (!rev2) {
		/* RFC 3501 6.3.1: RECENT (hermod keeps no \Recent) and the first unseen */
		evbuffer_add_printf(out, "* 0 RECENT\r\n");
		if (sj->first_unseen > 0)
			evbuffer_add_printf(out, "* OK [UNSEEN %u] First unseen\r\n",
			                    sj->first_unseen);
	}
	evbuffer_add_printf(out, "* OK [UIDVALIDITY %u] UIDs valid\r\n", v->uidvalidity);
	evbuffer_add_printf(out, "* OK [UIDNEXT %u] Predicted next UID\r\n", v->uidnext);
	evbuffer_add_printf(out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n");
	if (v->readonly)
		evbuffer_add_printf(out, "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
	else
		evbuffer_add_printf(out,
		                    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
		                    "\\Draft \\*)] Flags permitted\r\n");
	/* RFC 7162 3.1.2.1 (CONDSTORE is advertised) */
	evbuffer_add_printf(out, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
	                    (unsigned long long)v->highestmodseq);
	if (rev2) {
		evbuffer_add_printf(out, "* LIST () \"/\" ");
		imap_write_mailbox(s, out, v->name);
		evbuffer_add(out, "\r\n", 2);
	}
	if (sj->qresync)
		imap_select_qresync_report(sj, out);
	char esc[200];
	log_info(s->c->sid, "event=select user=%s mailbox=\"%s\" messages=%u readonly=%d",
	         s->account, log_escape_str(v->name, esc, sizeof(esc)), v->map.n, v->readonly);
	imap_job_tagged(j, "OK [%s] %s completed", v->readonly ? "READ-ONLY" : "READ-WRITE", verb);
}

static void imap_deselect(struct imap_session *s)
{
	imap_view_free(&s->view);
	if (s->state == IMAP_STATE_SELECTED)
		imap_session_set_state(s, IMAP_STATE_AUTH);
}

static void imap_select(struct imap_session *s, const struct imap_command *cmd, bool readonly)
{
	const struct imap_token *a = cmd->args;
	if (cmd->nargs == 0) {
		imap_reply_bad(s, "BAD Expected a mailbox name");
		return;
	}
	unsigned i = imap_token_skip(a, 0);
	bool condstore = false, qresync = false;
	uint32_t q_uidvalidity = 0;
	uint64_t q_modseq = 0;
	struct imap_seqset known = {0}, mseq = {0}, muid = {0};
	if (i < cmd->nargs) {
		/* RFC 4466 select-params: (CONDSTORE) RFC 7162 3.1.8, (QRESYNC (uidvalidity
		 * modseq [known-uids [seq-match-data]])) RFC 7162 3.2.5 */
		bool ok = a[i].type == IMAP_TOKEN_LIST && imap_token_skip(a, i) == cmd->nargs;
		unsigned end = i + a[i].span;
		for (unsigned k = i + 1; ok && k <= end; k = imap_token_skip(a, k)) {
			if (a[k].type == IMAP_TOKEN_ATOM &&
			    strcasecmp(a[k].data, "CONDSTORE") == 0) {
				condstore = true;
				continue;
			}
			if (a[k].type != IMAP_TOKEN_ATOM || strcasecmp(a[k].data, "QRESYNC") != 0 ||
			    k + 1 > end || a[k + 1].type != IMAP_TOKEN_LIST) {
				ok = false;
				break;
			}
			if (!(s->enabled & IMAP_EN_QRESYNC)) {
				imap_reply_bad(s, "BAD QRESYNC is not enabled");
				return;
			}
			const struct imap_token *q = &a[k + 1];
			unsigned qn = q->span, q0 = k + 2;
			const char *err;
			/* qn counts the tokens inside: (uidvalidity modseq [known-uids
			 * [(known-sequence-set known-uid-set)]]) is 2, 3 or 6 */
			if ((qn != 2 && qn != 3 && qn != 6) || a[q0].type != IMAP_TOKEN_ATOM ||
			    !(a[q0].flags & IMAP_ATOM_NZ) || !(a[q0].flags & IMAP_ATOM_NUMBER32) ||
			    a[q0 + 1].type != IMAP_TOKEN_ATOM ||
			    !(a[q0 + 1].flags & IMAP_ATOM_NZ) ||
			    (qn >= 3 &&
			     (a[q0 + 2].type != IMAP_TOKEN_ATOM ||
			      !(a[q0 + 2].flags & IMAP_ATOM_SEQSET) ||
			      imap_seqset_parse(a[q0 + 2].data, a[q0 + 2].len,
			                        IMAP_SEQSET_RANGES_MAX, &known, &err) < 0)) ||
			    (qn == 6 &&
			     (a[q0 + 3].type != IMAP_TOKEN_LIST || a[q0 + 3].span != 2 ||
			      a[q0 + 4].type != IMAP_TOKEN_ATOM ||
			      !(a[q0 + 4].flags & IMAP_ATOM_SEQSET) ||
			      a[q0 + 5].type != IMAP_TOKEN_ATOM ||
			      !(a[q0 + 5].flags & IMAP_ATOM_SEQSET) ||
			      imap_seqset_parse(a[q0 + 4].data, a[q0 + 4].len,
			                        IMAP_SEQSET_RANGES_MAX, &mseq, &err) < 0 ||
			      imap_seqset_parse(a[q0 + 5].data, a[q0 + 5].len,
			                        IMAP_SEQSET_RANGES_MAX, &muid, &err) < 0))) {
				imap_seqset_free(&known);
				imap_seqset_free(&mseq);
				imap_seqset_free(&muid);
				imap_reply_bad(s, "BAD Invalid QRESYNC parameters");
				return;
			}
			qresync = true;
			q_uidvalidity = (uint32_t)a[q0].num;
			q_modseq = a[q0 + 1].num;
			k++; /* its list is skipped by the loop */
		}
		if (!ok) {
			imap_seqset_free(&known);
			imap_seqset_free(&mseq);
			imap_seqset_free(&muid);
			imap_reply_bad(s, "BAD Unexpected arguments");
			return;
		}
	}
	char name[STORE_MAILBOX_NAME_MAX + 1];
	if (imap_arg_mailbox(s, &a[0], name) < 0) {
		imap_seqset_free(&known);
		imap_seqset_free(&mseq);
		imap_seqset_free(&muid);
		return;
	}
	if (condstore)
		s->enabled |= IMAP_EN_CONDSTORE;
	/* RFC 9051 6.3.2: the selected mailbox is closed first, even when this fails */
	if (s->view != NULL) {
		imap_deselect(s);
		imap_reply(s, "* OK [CLOSED] Previous mailbox closed");
	}
	struct imap_select_job *sj = imap_job_new(s, sizeof(*sj));
	if (sj == NULL) {
		imap_seqset_free(&known);
		imap_seqset_free(&mseq);
		imap_seqset_free(&muid);
		return;
	}
	sj->j.run = imap_select_job_run;
	sj->j.done = imap_select_job_done;
	sj->j.free = imap_select_job_free;
	memcpy(sj->name, name, sizeof(name));
	sj->readonly = readonly;
	sj->qresync = qresync;
	sj->q_uidvalidity = q_uidvalidity;
	sj->q_modseq = q_modseq;
	sj->q_known = known;
	sj->q_mseq = mseq;
	sj->q_muid = muid;
	imap_job_submit(s, &sj->j);
}

void imap_cmd_select(struct imap_session *s, const struct imap_command *cmd)
{
	imap_select(s, cmd, false);
}

void imap_cmd_examine(struct imap_session *s, const struct imap_command *cmd)
{
	imap_select(s, cmd, true);
}

/* CLOSE: RFC 9051 6.4.1, \Deleted messages removed silently (read-write only). */
static void imap_close_job_run(struct imap_job *j)
{
	j->result = store_mailbox_expunge_deleted(j->st, j->account, j->mailbox, NULL, 0, NULL,
	                                          NULL, &j->error);
}

static void imap_close_job_done(struct imap_job *j)
{
	if (j->result < 0) {
		/* the mailbox is closed all the same */
		char esc[300];
		log_error(j->s->c->sid, "event=close-expunge-failed error=\"%s\"",
		          log_escape_str(j->error != NULL ? j->error : "-", esc, sizeof(esc)));
	}
	imap_deselect(j->s);
	imap_job_tagged(j, "OK CLOSE completed");
}

void imap_cmd_close(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs != 0) {
		imap_reply_bad(s, "BAD Unexpected arguments");
		return;
	}
	if (s->view->readonly) {
		imap_deselect(s);
		imap_reply(s, "%s OK CLOSE completed", s->tag);
		return;
	}
	struct imap_job *j = imap_job_new(s, sizeof(*j));
	if (j == NULL)
		return;
	j->mailbox = strdup(s->view->name);
	if (j->mailbox == NULL) {
		imap_job_free(j);
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
		return;
	}
	j->run = imap_close_job_run;
	j->done = imap_close_job_done;
	imap_job_submit(s, j);
}

/* RFC 3691 / RFC 9051 6.4.2 */
void imap_cmd_unselect(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs != 0) {
		imap_reply_bad(s, "BAD Unexpected arguments");
		return;
	}
	imap_deselect(s);
	imap_reply(s, "%s OK UNSELECT completed", s->tag);
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE ---- */

enum imap_mbox_op { IMAP_OP_CREATE, IMAP_OP_DELETE, IMAP_OP_RENAME, IMAP_OP_SUB, IMAP_OP_UNSUB };

struct imap_mbox_job {
	struct imap_job j;
	enum imap_mbox_op op;
	char name[STORE_MAILBOX_NAME_MAX + 1];
	char to[STORE_MAILBOX_NAME_MAX + 1];
	const char *special_use;
};

static void imap_mbox_job_run(struct imap_job *j)
{
	struct imap_mbox_job *mj = (struct imap_mbox_job *)j;
	switch (mj->op) {
	case IMAP_OP_CREATE:
		j->result =
		    store_mailbox_create(j->st, j->account, mj->name, mj->special_use, &j->error);
		break;
	case IMAP_OP_DELETE:
		j->result = store_mailbox_delete(j->st, j->account, mj->name, &j->error);
		break;
	case IMAP_OP_RENAME:
		j->result = store_mailbox_rename(j->st, j->account, mj->name, mj->to, &j->error);
		break;
	case IMAP_OP_SUB:
	case IMAP_OP_UNSUB:
		j->result = store_mailbox_subscribe(j->st, j->account, mj->name,
		                                    mj->op == IMAP_OP_SUB, &j->error);
		break;
	}
}

static void imap_mbox_job_done(struct imap_job *j)
{
	struct imap_mbox_job *mj = (struct imap_mbox_job *)j;
	static const char *const verbs[] = {"CREATE", "DELETE", "RENAME", "SUBSCRIBE",
	                                    "UNSUBSCRIBE"};
	const char *verb = verbs[mj->op];
	char esc[300];
	switch (j->result) {
	case 1:
		log_info(j->s->c->sid, "event=%s user=%s", verb, j->account);
		imap_job_tagged(j, "OK %s completed", verb);
		break;
	case 0:
		imap_job_tagged(j, "NO [NONEXISTENT] Mailbox does not exist");
		break;
	case STORE_EXISTS:
		imap_job_tagged(j, "NO [ALREADYEXISTS] Mailbox already exists");
		break;
	case STORE_CANNOT:
		if (mj->op == IMAP_OP_CREATE && mj->special_use != NULL)
			imap_job_tagged(j, "NO [USEATTR] Special-use attribute not permitted");
		else
			imap_job_tagged(
			    j, "NO [CANNOT] %s",
			    log_escape_str(j->error != NULL ? j->error : "Not permitted", esc,
			                   sizeof(esc)));
		break;
	case STORE_OVERQUOTA:
		imap_job_tagged(j, "NO [OVERQUOTA] Quota exceeded");
		break;
	default:
		imap_job_tempfail(j, "mailbox-change");
		break;
	}
}

static struct imap_mbox_job *imap_mbox_job(struct imap_session *s, enum imap_mbox_op op,
                                           const char *name)
{
	if (!imap_name_valid(name)) {
		imap_reply_bad(s, "NO [CANNOT] Invalid mailbox name");
		return NULL;
	}
	struct imap_mbox_job *mj = imap_job_new(s, sizeof(*mj));
	if (mj == NULL)
		return NULL;
	mj->j.run = imap_mbox_job_run;
	mj->j.done = imap_mbox_job_done;
	mj->op = op;
	snprintf(mj->name, sizeof(mj->name), "%s", name);
	return mj;
}

/* RFC 6154 5.1: CREATE name (USE (\Sent)) */
static const char *imap_special_use(const struct imap_token *t)
{
	static const char *const uses[] = {"\\Archive", "\\Drafts", "\\Junk",   "\\Sent",
	                                   "\\Trash",   "\\All",    "\\Flagged"};
	if (t->type != IMAP_TOKEN_ATOM || !(t->flags & IMAP_ATOM_FLAG))
		return NULL;
	for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++)
		if (strcasecmp(t->data, uses[i]) == 0)
			return uses[i];
	return "";
}

void imap_cmd_create(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_token *a = cmd->args;
	const char *use = NULL;
	if (cmd->nargs == 0) {
		imap_reply_bad(s, "BAD Expected a mailbox name");
		return;
	}
	unsigned i = imap_token_skip(a, 0);
	if (i < cmd->nargs) {
		/* (USE (\Special)) */
		if (a[i].type != IMAP_TOKEN_LIST || a[i].span < 2 ||
		    imap_token_skip(a, i) != cmd->nargs || a[i + 1].type != IMAP_TOKEN_ATOM ||
		    strcasecmp(a[i + 1].data, "USE") != 0 || a[i + 2].type != IMAP_TOKEN_LIST ||
		    a[i + 2].span + 2 != a[i].span) {
			imap_reply_bad(s, "BAD Expected (USE (attributes))");
			return;
		}
		if (a[i + 2].span > 1) {
			imap_reply(s, "%s NO [USEATTR] Only one special-use attribute per mailbox",
			           s->tag);
			return;
		}
		if (a[i + 2].span == 1) {
			use = imap_special_use(&a[i + 3]);
			if (use == NULL) {
				imap_reply_bad(s, "BAD Expected a special-use attribute");
				return;
			}
			if (use[0] == '\0') {
				imap_reply(s, "%s NO [USEATTR] Unknown special-use attribute",
				           s->tag);
				return;
			}
		}
	}
	char name[STORE_MAILBOX_NAME_MAX + 1];
	if (imap_arg_mailbox(s, &a[0], name) < 0)
		return;
	/* RFC 9051 6.3.4: a trailing separator says the name will hold others */
	size_t len = strlen(name);
	if (len > 1 && name[len - 1] == '/')
		name[len - 1] = '\0';
	if (strcmp(name, "INBOX") == 0) {
		imap_reply(s, "%s NO [ALREADYEXISTS] Mailbox already exists", s->tag);
		return;
	}
	struct imap_mbox_job *mj = imap_mbox_job(s, IMAP_OP_CREATE, name);
	if (mj == NULL)
		return;
	mj->special_use = use;
	imap_job_submit(s, &mj->j);
}

void imap_cmd_delete(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs != 1) {
		imap_reply_bad(s, "BAD Expected a mailbox name");
		return;
	}
	char name[STORE_MAILBOX_NAME_MAX + 1];
	if (imap_arg_mailbox(s, &cmd->args[0], name) < 0)
		return;
	if (strcmp(name, "INBOX") == 0) {
		/* RFC 9051 6.3.5 */
		imap_reply(s, "%s NO [CANNOT] INBOX cannot be deleted", s->tag);
		return;
	}
	struct imap_mbox_job *mj = imap_mbox_job(s, IMAP_OP_DELETE, name);
	if (mj != NULL)
		imap_job_submit(s, &mj->j);
}

void imap_cmd_rename(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs != 2) {
		imap_reply_bad(s, "BAD Expected two mailbox names");
		return;
	}
	char from[STORE_MAILBOX_NAME_MAX + 1], to[STORE_MAILBOX_NAME_MAX + 1];
	if (imap_arg_mailbox(s, &cmd->args[0], from) < 0 ||
	    imap_arg_mailbox(s, &cmd->args[1], to) < 0)
		return;
	if (!imap_name_valid(to)) {
		imap_reply_bad(s, "NO [CANNOT] Invalid mailbox name");
		return;
	}
	if (strcmp(to, "INBOX") == 0) {
		imap_reply(s, "%s NO [ALREADYEXISTS] Mailbox already exists", s->tag);
		return;
	}
	struct imap_mbox_job *mj = imap_mbox_job(s, IMAP_OP_RENAME, from);
	if (mj == NULL)
		return;
	snprintf(mj->to, sizeof(mj->to), "%s", to);
	imap_job_submit(s, &mj->j);
}

static void imap_subscribe(struct imap_session *s, const struct imap_command *cmd, bool on)
{
	if (cmd->nargs != 1) {
		imap_reply_bad(s, "BAD Expected a mailbox name");
		return;
	}
	char name[STORE_MAILBOX_NAME_MAX + 1];
	if (imap_arg_mailbox(s, &cmd->args[0], name) < 0)
		return;
	struct imap_mbox_job *mj = imap_mbox_job(s, on ? IMAP_OP_SUB : IMAP_OP_UNSUB, name);
	if (mj != NULL)
		imap_job_submit(s, &mj->j);
}

void imap_cmd_subscribe(struct imap_session *s, const struct imap_command *cmd)
{
	imap_subscribe(s, cmd, true);
}

void imap_cmd_unsubscribe(struct imap_session *s, const struct imap_command *cmd)
{
	imap_subscribe(s, cmd, false);
}
