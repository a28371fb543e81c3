#include "mail/addrlist.h"

#include <stdlib.h>
#include <string.h>

/* Octets of a field value that are read; the rest is ignored (truncated).
 * Keeps pool offsets far below 4 GiB whatever the caller passes. */
#define ADDRLIST_INPUT_MAX (1024 * 1024)

void mail_addrlist_limits_default(struct mail_addrlist_limits *limits)
{
	limits->max_items = 1000;
	limits->max_string = 1024;
}

void mail_addrlist_init(struct mail_addrlist *list)
{
	memset(list, 0, sizeof(*list));
	buf_init(&list->pool, 0);
}

void mail_addrlist_free(struct mail_addrlist *list)
{
	free(list->items);
	buf_free(&list->pool);
	memset(list, 0, sizeof(*list));
	buf_init(&list->pool, 0);
}

const char *mail_addrlist_str(const struct mail_addrlist *list, struct mail_addr_str s,
                              size_t *len_r)
{
	if (s.off == MAIL_ADDR_NONE || list->pool.data == NULL) {
		if (len_r != NULL)
			*len_r = 0;
		return NULL;
	}
	if (len_r != NULL)
		*len_r = s.len;
	return list->pool.data + s.off;
}

/* ---- the parser ---- */

struct addr_parser {
	const char *v;
	size_t n, i;
	unsigned max_items;
	size_t max_string;
	struct mail_addrlist *list;
	bool in_group;      /* a group start was emitted and not yet ended */
	bool cut;           /* a string of the current element hit max_string */
	bool full;          /* no more items are taken */
	int err;            /* out of memory */
	struct buf phrase;  /* display-name rendering of the words */
	struct buf local;   /* local-part rendering of the words */
	struct buf comment; /* the last comment (for a name when there is no phrase) */
	struct buf host, route, tmp;
};

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 5322 3.2.3 specials (and blanks); anything else is read as atext,
 * 8-bit octets included (RFC 6532 3.2) and, leniently, controls. */
static bool is_atext(unsigned char c)
{
	if (is_wsp(c))
		return false;
	switch (c) {
	case '(':
	case ')':
	case '<':
	case '>':
	case '[':
	case ']':
	case ':':
	case ';':
	case '@':
	case '\\':
	case ',':
	case '.':
	case '"':
		return false;
	default:
		return true;
	}
}

/* Appends to a scratch buffer, keeping at most max_string + 4 octets (the
 * cut to max_string at a character boundary is done when stored). */
static void sappend(struct addr_parser *p, struct buf *b, const char *s, size_t len)
{
	size_t room = p->max_string + 4 > b->len ? p->max_string + 4 - b->len : 0;
	if (len > room) {
		len = room;
		p->cut = true;
	}
	if (len > 0 && buf_append(b, s, len) < 0)
		p->err = 1;
}

/* Reads a comment at v[i] == '(' (nested, quoted-pairs, unterminated ones
 * run to the end); its text (without the outer parentheses, line ends
 * dropped) into keep when not NULL. */
static void read_comment(struct addr_parser *p, struct buf *keep)
{
	unsigned depth = 0;
	if (keep != NULL)
		buf_reset(keep);
	while (p->i < p->n) {
		char c = p->v[p->i++];
		if (c == '\\' && p->i < p->n) {
			if (keep != NULL)
				sappend(p, keep, &p->v[p->i], 1);
			p->i++;
			continue;
		}
		if (c == '(') {
			depth++;
			if (depth == 1)
				continue;
		} else if (c == ')') {
			if (--depth == 0)
				return;
		} else if (c == '\r' || c == '\n') {
			continue;
		}
		if (keep != NULL)
			sappend(p, keep, &c, 1);
	}
}

/* Skips blanks and comments (CFWS); the last comment's text goes to
 * p->comment when keep. Returns whether anything was skipped. */
static bool skip_cfws(struct addr_parser *p, bool keep)
{
	size_t start = p->i;
	while (p->i < p->n) {
		unsigned char c = (unsigned char)p->v[p->i];
		if (is_wsp(c)) {
			p->i++;
		} else if (c == '(') {
			read_comment(p, keep ? &p->comment : NULL);
		} else {
			break;
		}
	}
	return p->i > start;
}

/* A quoted string at v[i] == '"': its content with quoted-pairs undone and
 * line ends dropped (RFC 5322 3.2.4), appended to b (or dropped). An
 * unterminated one runs to the end of the value. */
static void read_quoted(struct addr_parser *p, struct buf *b)
{
	p->i++;
	while (p->i < p->n) {
		/* a run of plain octets in one append */
		size_t j = p->i;
		while (j < p->n && p->v[j] != '"' && p->v[j] != '\\' && p->v[j] != '\r' &&
		       p->v[j] != '\n')
			j++;
		if (j > p->i && b != NULL)
			sappend(p, b, p->v + p->i, j - p->i);
		p->i = j;
		if (p->i >= p->n)
			return;
		char c = p->v[p->i++];
		if (c == '"')
			return;
		if (c == '\\') {
			if (p->i >= p->n)
				return;
			c = p->v[p->i++];
		} else {
			continue; /* CR, LF: unfolding */
		}
		if (b != NULL)
			sappend(p, b, &c, 1);
	}
}

static size_t atom_len(const struct addr_parser *p)
{
	size_t j = p->i;
	while (j < p->n && is_atext((unsigned char)p->v[j]))
		j++;
	return j - p->i;
}

/* A domain literal at v[i] == '[' kept as written (line ends dropped), up
 * to ']'; an unterminated one stops before '>', ',' or ';' (not dtext). */
static void read_dliteral(struct addr_parser *p, struct buf *b)
{
	sappend(p, b, "[", 1);
	p->i++;
	while (p->i < p->n) {
		char c = p->v[p->i];
		if (c == '>' || c == ',' || c == ';')
			return;
		p->i++;
		if (c == '\r' || c == '\n')
			continue;
		if (c == '\\' && p->i < p->n) {
			sappend(p, b, &c, 1);
			c = p->v[p->i++];
		}
		sappend(p, b, &c, 1);
		if (c == ']')
			return;
	}
}

/* Words of a phrase or local part: atoms, quoted strings and dots with
 * CFWS between them (obs-phrase, obs-local-part). Appended to p->phrase
 * (one space where there was CFWS before a word, none before a dot) and
 * p->local (no spaces), unless local_only. Returns the number of words
 * and dots read; *gap_r set when CFWS separated two of them. */
static unsigned collect_words(struct addr_parser *p, bool local_only, bool *gap_r)
{
	unsigned words = 0;
	for (;;) {
		bool gap = skip_cfws(p, false);
		if (p->i >= p->n)
			break;
		unsigned char c = (unsigned char)p->v[p->i];
		bool pair = c == '\\' && p->i + 1 < p->n;
		if (c != '"' && c != '.' && !is_atext(c) && !pair)
			break;
		if (words > 0 && gap && gap_r != NULL)
			*gap_r = true;
		if (!local_only && c != '.' && gap && p->phrase.len > 0)
			sappend(p, &p->phrase, " ", 1);
		if (c == '.') {
			if (!local_only)
				sappend(p, &p->phrase, ".", 1);
			sappend(p, &p->local, ".", 1);
			p->i++;
		} else if (c == '"') {
			size_t start = p->local.len;
			read_quoted(p, &p->local);
			if (!local_only && p->local.len > start)
				sappend(p, &p->phrase, p->local.data + start, p->local.len - start);
		} else {
			/* an atom; a quoted-pair outside quotes (not allowed, but
			 * written: Joe \"Q\" Public) is read as its character */
			while (p->i < p->n) {
				size_t l = atom_len(p);
				if (l == 0 && p->v[p->i] == '\\' && p->i + 1 < p->n) {
					p->i++;
					l = 1;
				} else if (l == 0) {
					break;
				}
				if (!local_only)
					sappend(p, &p->phrase, p->v + p->i, l);
				sappend(p, &p->local, p->v + p->i, l);
				p->i += l;
			}
		}
		words++;
	}
	return words;
}

/* A domain after '@': dot-separated atoms or domain literals, CFWS around
 * the dots tolerated (obs-domain); comments seen go to p->comment. */
static void read_domain(struct addr_parser *p, struct buf *b)
{
	bool want_label = true;
	for (;;) {
		skip_cfws(p, true);
		if (p->i >= p->n)
			return;
		char c = p->v[p->i];
		if (want_label && c == '[') {
			read_dliteral(p, b);
			want_label = false;
		} else if (want_label && is_atext((unsigned char)c)) {
			size_t l = atom_len(p);
			sappend(p, b, p->v + p->i, l);
			p->i += l;
			want_label = false;
		} else if (c == '.') {
			sappend(p, b, ".", 1);
			p->i++;
			want_label = true;
		} else {
			return;
		}
	}
}

/* Skips what is left of an element up to ',' or ';' (not consumed),
 * reading quoted strings and comments whole. stop_gt: also stop after '>'
 * (the end of an angle-addr). */
static void skip_rest(struct addr_parser *p, bool stop_gt)
{
	while (p->i < p->n) {
		char c = p->v[p->i];
		if (c == ',' || c == ';')
			return;
		if (c == '"') {
			read_quoted(p, NULL);
		} else if (c == '(') {
			read_comment(p, NULL);
		} else {
			p->i++;
			if (c == '>' && stop_gt)
				return;
		}
	}
}

/* Stores b (cut to max_string at a UTF-8 character boundary) in the pool. */
static struct mail_addr_str store(struct addr_parser *p, const struct buf *b, bool present)
{
	struct mail_addr_str s = {MAIL_ADDR_NONE, 0};
	if (!present || p->err)
		return s;
	size_t len = b->len;
	if (len > p->max_string) {
		len = p->max_string;
		while (len > 0 && ((unsigned char)b->data[len] & 0xc0) == 0x80)
			len--;
		p->cut = true;
	}
	size_t off = p->list->pool.len;
	if (buf_append(&p->list->pool, len ? b->data : "", len) < 0 ||
	    buf_append(&p->list->pool, "", 1) < 0) {
		p->err = 1;
		return s;
	}
	s.off = (uint32_t)off;
	s.len = (uint32_t)len;
	return s;
}

/* Room for one more item; group ends are always given room (reserved). */
static struct mail_addr *item_new(struct addr_parser *p, enum mail_addr_kind kind)
{
	struct mail_addrlist *l = p->list;
	if (p->err)
		return NULL;
	if (kind != MAIL_ADDR_GROUP_END) {
		unsigned need = kind == MAIL_ADDR_GROUP_START ? 2 : (p->in_group ? 2 : 1);
		if (p->full || l->n + need > p->max_items) {
			p->full = true;
			l->truncated = true;
			return NULL;
		}
	}
	if (l->n == l->cap) {
		unsigned cap = l->cap ? l->cap * 2 : 8;
		struct mail_addr *items = realloc(l->items, (size_t)cap * sizeof(*items));
		if (items == NULL) {
			p->err = 1;
			return NULL;
		}
		l->items = items;
		l->cap = cap;
	}
	struct mail_addr *a = &l->items[l->n++];
	struct mail_addr_str none = {MAIL_ADDR_NONE, 0};
	a->kind = kind;
	a->name = a->route = a->mailbox = a->host = none;
	return a;
}

static void emit_mailbox(struct addr_parser *p, const struct buf *name, bool have_name,
                         bool have_route, bool have_local, bool have_host)
{
	struct mail_addr *a = item_new(p, MAIL_ADDR_MAILBOX);
	if (a == NULL)
		return;
	a->name = store(p, name, have_name);
	a->route = store(p, &p->route, have_route);
	a->mailbox = store(p, &p->local, have_local);
	a->host = store(p, &p->host, have_host);
}

static void group_end(struct addr_parser *p)
{
	if (p->in_group)
		(void)item_new(p, MAIL_ADDR_GROUP_END);
	p->in_group = false;
}

/* After '<': [obs-route ":"] addr-spec [">"]. */
static void parse_angle(struct addr_parser *p, bool have_phrase)
{
	bool have_name;
	p->i++;
	buf_reset(&p->local);
	bool have_route = false, have_host = false;
	size_t last_dom = 0;
	skip_cfws(p, false);
	/* RFC 5322 4.4 obs-route: obs-domain-list ":" with empty elements */
	while (p->i < p->n && (p->v[p->i] == '@' || p->v[p->i] == ',')) {
		if (p->v[p->i] == ',') {
			p->i++;
		} else {
			p->i++;
			buf_reset(&p->tmp);
			read_domain(p, &p->tmp);
			if (p->tmp.len > 0) {
				if (p->route.len > 0)
					sappend(p, &p->route, ",", 1);
				last_dom = p->route.len + 1;
				sappend(p, &p->route, "@", 1);
				sappend(p, &p->route, p->tmp.data, p->tmp.len);
				have_route = true;
			}
		}
		skip_cfws(p, false);
	}
	if (have_route && p->i < p->n && p->v[p->i] == ':') {
		p->i++;
	} else if (have_route) {
		/* "<@host>": no local part, the domain is the host */
		if (last_dom <= p->route.len)
			sappend(p, &p->host, p->route.data + last_dom, p->route.len - last_dom);
		have_host = true;
		have_route = false;
	}
	bool have_local = false;
	if (!have_host) {
		have_local = collect_words(p, true, NULL) > 0;
		if (p->i < p->n && p->v[p->i] == '@') {
			p->i++;
			read_domain(p, &p->host);
			have_host = p->host.len > 0;
		}
	}
	skip_rest(p, true);
	const struct buf *name = &p->phrase;
	if (have_phrase) {
		have_name = p->phrase.len > 0; /* "" <a@b>: no name */
	} else {
		/* "<a@b> (Name)": the comment after it names it */
		buf_reset(&p->comment);
		skip_cfws(p, true);
		have_name = p->comment.len > 0;
		name = &p->comment;
	}
	emit_mailbox(p, name, have_name, have_route, have_local, have_host);
}

/* One element of the list at v[i] (not a separator, not CFWS). */
static void parse_element(struct addr_parser *p)
{
	buf_reset(&p->phrase);
	buf_reset(&p->local);
	buf_reset(&p->comment);
	buf_reset(&p->host);
	buf_reset(&p->route);
	p->cut = false;
	unsigned words = 0;
	bool gap = false;
	for (;;) {
		words += collect_words(p, false, &gap);
		if (p->i >= p->n)
			break;
		char c = p->v[p->i];
		if (c == '<') {
			parse_angle(p, words > 0);
			goto out;
		}
		if (c == '@') {
			p->i++;
			buf_reset(&p->comment);
			read_domain(p, &p->host);
			skip_rest(p, false);
			emit_mailbox(p, &p->comment, p->comment.len > 0, false, words > 0,
			             p->host.len > 0);
			goto out;
		}
		if (c == ':') {
			p->i++;
			/* no nested groups: the phrase is dropped; a group needs a
			 * display name (RFC 5322 3.4), a lone ':' is stray */
			if (p->in_group || words == 0)
				goto out;
			struct mail_addr *a = item_new(p, MAIL_ADDR_GROUP_START);
			if (a != NULL) {
				a->name = store(p, &p->phrase, true);
				p->in_group = true;
			}
			goto out;
		}
		if (c == ',' || c == ';')
			break;
		p->i++; /* a stray special: ignored */
	}
	/* words without '@': one dot-atom is a mailbox without a host; words
	 * separated by blanks ("Joe Public") a name without an address */
	if (words > 0) {
		if (gap)
			emit_mailbox(p, &p->phrase, true, false, false, false);
		else
			emit_mailbox(p, &p->phrase, false, false, true, false);
	}
out:
	if (p->cut)
		p->list->truncated = true;
}

int mail_addrlist_parse(const char *v, size_t len, const struct mail_addrlist_limits *limits,
                        struct mail_addrlist *list)
{
	struct mail_addrlist_limits def;
	if (limits == NULL) {
		mail_addrlist_limits_default(&def);
		limits = &def;
	}
	struct addr_parser p = {
	    .v = v,
	    .n = len,
	    .list = list,
	    .max_items = limits->max_items,
	    .max_string = limits->max_string,
	};
	if (p.max_items < 2)
		p.max_items = 2;
	if (p.max_items > 100000)
		p.max_items = 100000;
	if (p.max_string == 0)
		p.max_string = 1;
	if (p.max_string > 65536)
		p.max_string = 65536;
	if (p.n > ADDRLIST_INPUT_MAX) {
		p.n = ADDRLIST_INPUT_MAX;
		list->truncated = true;
	}
	if (list->n >= p.max_items)
		p.full = true;
	buf_init(&p.phrase, 0);
	buf_init(&p.local, 0);
	buf_init(&p.comment, 0);
	buf_init(&p.host, 0);
	buf_init(&p.route, 0);
	buf_init(&p.tmp, 0);
	while (p.i < p.n && !p.err) {
		skip_cfws(&p, false);
		if (p.i >= p.n)
			break;
		char c = p.v[p.i];
		if (c == ',') {
			p.i++;
		} else if (c == ';') {
			p.i++;
			group_end(&p);
		} else {
			parse_element(&p);
		}
	}
	group_end(&p);
	buf_free(&p.phrase);
	buf_free(&p.local);
	buf_free(&p.comment);
	buf_free(&p.host);
	buf_free(&p.route);
	buf_free(&p.tmp);
	return p.err ? -1 : 1;
}
