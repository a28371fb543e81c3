/* IMAP SEARCH: compiling a search program (RFC 9051 6.4.4 and section 9
 * "search-key", RFC 3501 6.4.4, RFC 4731 RETURN options, RFC 5182 "$", RFC 7162
 * 3.1.5 MODSEQ), evaluating it for one message, and the SEARCH / ESEARCH
 * replies. See imap_search.h for the contracts and docs/imap.md "SEARCH". */
#include "imap/imap_search.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <strings.h>

#include "core/buf.h"
#include "core/str.h"
#include "imap/imap_msg.h"
#include "mail/date.h"
#include "mail/mime.h"
#include "mail/rfc2047.h"
#include "mail/text.h"

/* ---- text keys (matched by the part at the end of this file) ---- */

enum tri { TRI_FALSE, TRI_TRUE, TRI_UNKNOWN };

enum search_text_kind {
	SEARCH_TEXT_HEADER, /* one header field (SUBJECT, FROM, ..., HEADER name) */
	SEARCH_TEXT_BODY,   /* the text of the body */
	SEARCH_TEXT_TEXT,   /* header and body */
};

struct search_text {
	enum search_text_kind kind;
	char *field;  /* SEARCH_TEXT_HEADER: the field name */
	char *needle; /* case-folded UTF-8 */
	size_t needle_len;
};

/* What is known of one message beyond its metadata while it is read. */
struct search_state {
	enum tri text[IMAP_SEARCH_TEXT_KEYS_MAX]; /* per struct search_text */
	bool have_sent_day;
	int64_t sent_day; /* 00:00 UTC of the Date: header's day in its own zone */
};

static int search_text_needle_set(struct search_text *t, const char *s, size_t len);
static void search_text_clear(struct search_text *t);
static int search_msg_match(const struct imap_search *s, const struct imap_search_ctx *c,
                            struct store *st, const struct imap_search_item *m, char **error_r);

/* ---- compiled form ----
 * The program is a tree of nodes in pre-order: a node is followed by its
 * children, `span` counts all its descendants (like imap_token). The top level
 * is one AND node. */

enum node_type {
	N_AND,    /* all children */
	N_OR,     /* two children */
	N_NOT,    /* one child */
	N_ALL,    /* every message */
	N_SEQ,    /* sequence set on the sequence number */
	N_UID,    /* sequence set on the UID */
	N_SAVED,  /* "$" (as a sequence set or after UID): UID in ctx->saved */
	N_FLAG,   /* flag present (want) or absent (!want) */
	N_BEFORE, /* INTERNALDATE */
	N_ON,
	N_SINCE,
	N_SENTBEFORE, /* Date: header */
	N_SENTON,
	N_SENTSINCE,
	N_LARGER,
	N_SMALLER,
	N_MODSEQ,
	N_TEXT_KEY, /* header field / BODY / TEXT: text[tidx] */
};

/* A sequence set in a form that answers "is n in it" in O(log ranges) for any
 * "*": the ranges without "*" resolved once (sorted, merged), and the ranges
 * with "*" folded into one lower bound (lo:* holds min(lo, max)..max; "*" alone
 * holds max). */
struct search_set {
	struct imap_seqset fixed; /* resolved, or n == 0 */
	bool star;                /* some range has "*" */
	uint64_t star_lo;         /* smallest lo of those (IMAP_SEQ_STAR: "*" alone) */
};

struct node {
	enum node_type type;
	unsigned span;
	bool want;     /* N_FLAG */
	char *flag;    /* N_FLAG: the flag name */
	int64_t value; /* dates: 00:00 UTC of the day; sizes, modseq */
	uint64_t uvalue;
	struct search_set set; /* N_SEQ, N_UID */
	unsigned tidx;         /* N_TEXT_KEY */
};

#define RET_MIN 0x01
#define RET_MAX 0x02
#define RET_ALL 0x04
#define RET_COUNT 0x08
#define RET_SAVE 0x10

struct imap_search {
	struct node *nodes;
	unsigned nnodes, cap;
	unsigned ret;    /* RET_* */
	bool esearch;    /* RETURN given (or forced by IMAP4rev2) */
	bool has_modseq; /* the MODSEQ key was used */
	unsigned nkeys;  /* search keys compiled (the limit) */
	struct search_text text[IMAP_SEARCH_TEXT_KEYS_MAX];
	unsigned ntext;
	bool needs_header, needs_body, needs_date;
};

static bool search_needs_sent(const struct imap_search *s)
{
	return s->needs_date;
}

/* ---- compiling ---- */

struct compiler {
	struct imap_search *s;
	const struct imap_token *args;
	unsigned end;
	const char *error;
	const char *code;
};

#define E_UNKNOWN "Unknown search key"
#define E_MISSING "Missing search key argument"
#define E_EMPTY "Missing search key"
#define E_DATE "Invalid date"
#define E_NUMBER "Invalid number"
#define E_STRING "Invalid search string"
#define E_UTF8 "Invalid UTF-8 in search string"
#define E_LONG "Search string too long"
#define E_KEYWORD "Invalid keyword"
#define E_DEEP "Search program too deeply nested"
#define E_MANY "Too many search keys"
#define E_MANY_TEXT "Too many text search keys"
#define E_LIST "Empty search key list"
#define E_RETURN "Invalid RETURN option"
#define E_CHARSET "Unsupported charset"
#define E_ENTRY "Invalid MODSEQ entry"
#define E_MEM "Out of memory"

static int fail(struct compiler *c, const char *error)
{
	if (c->error == NULL)
		c->error = error;
	return -1;
}

static bool atom_is(const struct imap_token *t, const char *word)
{
	return t->type == IMAP_TOKEN_ATOM && strcasecmp(t->data, word) == 0;
}

/* Appends a node; returns its index or -1 (out of memory). */
static int node_add(struct compiler *c, enum node_type type)
{
	struct imap_search *s = c->s;
	if (s->nnodes == s->cap) {
		unsigned ncap = s->cap == 0 ? 16 : s->cap * 2;
		struct node *n = realloc(s->nodes, ncap * sizeof(*n));
		if (n == NULL)
			return fail(c, E_MEM);
		s->nodes = n;
		s->cap = ncap;
	}
	struct node *n = &s->nodes[s->nnodes];
	memset(n, 0, sizeof(*n));
	n->type = type;
	return (int)s->nnodes++;
}

static void node_close(struct compiler *c, int idx)
{
	c->s->nodes[idx].span = c->s->nnodes - (unsigned)idx - 1;
}

static const char *const month_names[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                            "jul", "aug", "sep", "oct", "nov", "dec"};

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; m 1..12). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int imap_search_date_parse(const char *s, size_t len, int64_t *day_r)
{
	/* RFC 9051 9: date-text = date-day "-" date-month "-" date-year;
	 * date-day = 1*2DIGIT; date-year = 4DIGIT */
	size_t p = 0;
	unsigned day = 0;
	while (p < len && p < 2 && s[p] >= '0' && s[p] <= '9')
		day = day * 10 + (unsigned)(s[p++] - '0');
	if (p == 0 || p >= len || s[p] != '-')
		return -1;
	p++;
	if (len - p != 3 + 1 + 4 || s[p + 3] != '-')
		return -1;
	int month = -1;
	for (int k = 0; k < 12; k++)
		if (strncasecmp(s + p, month_names[k], 3) == 0)
			month = k + 1;
	if (month < 0)
		return -1;
	p += 4;
	int year = 0;
	for (size_t k = 0; k < 4; k++) {
		if (s[p + k] < '0' || s[p + k] > '9')
			return -1;
		year = year * 10 + (s[p + k] - '0');
	}
	static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned dmax = mdays[month - 1] + (month == 2 && leap_year(year));
	if (day < 1 || day > dmax)
		return -1;
	*day_r = days_from_civil(year, (unsigned)month, day) * 86400;
	return 1;
}

/* The next argument of a key: args[*i] exists (else "missing"). */
static const struct imap_token *arg_next(struct compiler *c, unsigned *i)
{
	if (*i >= c->end) {
		fail(c, E_MISSING);
		return NULL;
	}
	return &c->args[(*i)++];
}

static bool utf8_valid(const unsigned char *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char b = p[i];
		if (b < 0x80) {
			if (b == 0)
				return false;
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (b >= 0xc2 && b <= 0xdf) {
			n = 1;
			cp = b & 0x1f;
		} else if (b >= 0xe0 && b <= 0xef) {
			n = 2;
			cp = b & 0x0f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			n = 3;
			cp = b & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += n + 1;
	}
	return true;
}

/* An astring argument (RFC 9051 9: the text keys take astring), valid UTF-8
 * (US-ASCII is a subset), at most IMAP_SEARCH_STRING_MAX octets. */
static const struct imap_token *arg_string(struct compiler *c, unsigned *i)
{
	const struct imap_token *t = arg_next(c, i);
	if (t == NULL)
		return NULL;
	if (!IMAP_TOKEN_IS_ASTRING(t)) {
		fail(c, E_STRING);
		return NULL;
	}
	if (t->len > IMAP_SEARCH_STRING_MAX) {
		fail(c, E_LONG);
		return NULL;
	}
	if (!utf8_valid((const unsigned char *)t->data, t->len)) {
		fail(c, E_UTF8);
		return NULL;
	}
	return t;
}

static int compile_date(struct compiler *c, unsigned *i, enum node_type type)
{
	const struct imap_token *t = arg_next(c, i);
	if (t == NULL)
		return -1;
	int64_t day;
	if ((t->type != IMAP_TOKEN_ATOM && t->type != IMAP_TOKEN_QUOTED) ||
	    imap_search_date_parse(t->data, t->len, &day) != 1)
		return fail(c, E_DATE);
	int n = node_add(c, type);
	if (n < 0)
		return -1;
	c->s->nodes[n].value = day;
	if (type == N_SENTBEFORE || type == N_SENTON || type == N_SENTSINCE)
		c->s->needs_date = true;
	return 1;
}

static int compile_number(struct compiler *c, unsigned *i, enum node_type type)
{
	const struct imap_token *t = arg_next(c, i);
	if (t == NULL)
		return -1;
	/* RFC 9051 9: LARGER / SMALLER number64 (RFC 3501 had number) */
	if (t->type != IMAP_TOKEN_ATOM || !(t->flags & IMAP_ATOM_NUMBER))
		return fail(c, E_NUMBER);
	int n = node_add(c, type);
	if (n < 0)
		return -1;
	c->s->nodes[n].uvalue = t->num;
	return 1;
}

static int compile_flag(struct compiler *c, const char *flag, bool want)
{
	int n = node_add(c, N_FLAG);
	if (n < 0)
		return -1;
	c->s->nodes[n].want = want;
	c->s->nodes[n].flag = str_dup(flag);
	if (c->s->nodes[n].flag == NULL)
		return fail(c, E_MEM);
	return 1;
}

static int compile_keyword(struct compiler *c, unsigned *i, bool want)
{
	const struct imap_token *t = arg_next(c, i);
	if (t == NULL)
		return -1;
	/* RFC 9051 9: "KEYWORD" SP flag-keyword, flag-keyword = atom */
	if (t->type != IMAP_TOKEN_ATOM || !(t->flags & IMAP_ATOM_ATOM))
		return fail(c, E_KEYWORD);
	return compile_flag(c, t->data, want);
}

/* Builds a search_set from a parsed set. */
static int set_build(struct compiler *c, const struct imap_seqset *parsed, struct search_set *out)
{
	struct imap_seqset fixed = {0};
	memset(out, 0, sizeof(*out));
	out->star_lo = IMAP_SEQ_STAR;
	fixed.ranges = malloc((parsed->n ? parsed->n : 1) * sizeof(*fixed.ranges));
	if (fixed.ranges == NULL)
		return fail(c, E_MEM);
	for (unsigned k = 0; k < parsed->n; k++) {
		const struct imap_seq_range *r = &parsed->ranges[k];
		if (r->lo == IMAP_SEQ_STAR || r->hi == IMAP_SEQ_STAR) {
			uint64_t lo = r->lo == IMAP_SEQ_STAR ? r->hi : r->lo;
			out->star = true;
			if (lo < out->star_lo)
				out->star_lo = lo;
		} else {
			fixed.ranges[fixed.n++] = *r;
		}
	}
	int rc = 1;
	if (fixed.n > 0 && imap_seqset_resolve(&fixed, UINT32_MAX, &out->fixed) != 1)
		rc = fail(c, E_MEM);
	imap_seqset_free(&fixed);
	return rc;
}

static bool set_contains(const struct search_set *set, uint64_t n, uint64_t max)
{
	if (n == 0 || n > max)
		return false;
	if (set->star) {
		uint64_t lo = set->star_lo < max ? set->star_lo : max;
		if (n >= lo)
			return true;
	}
	return set->fixed.n > 0 && imap_seqset_contains(&set->fixed, n, UINT32_MAX);
}

static int compile_set(struct compiler *c, const struct imap_token *t, enum node_type type)
{
	struct imap_seqset parsed;
	const char *err;
	if (t->type != IMAP_TOKEN_ATOM || !(t->flags & IMAP_ATOM_SEQSET))
		return fail(c, "Invalid sequence set");
	if (imap_seqset_parse(t->data, t->len, IMAP_SEARCH_RANGES_MAX, &parsed, &err) != 1)
		return fail(c, err);
	int n = node_add(c, parsed.last_result ? N_SAVED : type);
	if (n >= 0 && !parsed.last_result && set_build(c, &parsed, &c->s->nodes[n].set) != 1)
		n = -1;
	imap_seqset_free(&parsed);
	return n < 0 ? -1 : 1;
}

static int compile_text(struct compiler *c, unsigned *i, enum search_text_kind kind,
                        const char *field)
{
	struct imap_search *s = c->s;
	const struct imap_token *name = NULL;
	if (kind == SEARCH_TEXT_HEADER && field == NULL) {
		/* HEADER field-name string; field-name = astring */
		name = arg_string(c, i);
		if (name == NULL)
			return -1;
	}
	const struct imap_token *t = arg_string(c, i);
	if (t == NULL)
		return -1;
	if (s->ntext == IMAP_SEARCH_TEXT_KEYS_MAX)
		return fail(c, E_MANY_TEXT);
	int n = node_add(c, N_TEXT_KEY);
	if (n < 0)
		return -1;
	struct search_text *st = &s->text[s->ntext];
	s->nodes[n].tidx = s->ntext++;
	st->kind = kind;
	if (name != NULL)
		st->field = str_ndup(name->data, name->len);
	else if (field != NULL)
		st->field = str_dup(field);
	if ((name != NULL || field != NULL) && st->field == NULL)
		return fail(c, E_MEM);
	if (search_text_needle_set(st, t->data, t->len) != 1)
		return fail(c, E_MEM);
	if (kind == SEARCH_TEXT_HEADER || kind == SEARCH_TEXT_TEXT)
		s->needs_header = true;
	if (kind == SEARCH_TEXT_BODY || kind == SEARCH_TEXT_TEXT)
		s->needs_body = true;
	return 1;
}

static int compile_modseq(struct compiler *c, unsigned *i)
{
	/* RFC 7162 3.1.5 / 7: "MODSEQ" [SP entry-name SP entry-type-req] SP
	 * mod-sequence-valzer; entry-name = DQUOTE "/flags/" attr-flag DQUOTE;
	 * entry-type-req = "priv" / "shared" / "all". One MODSEQ per message here,
	 * so the entry only has to be valid. */
	const struct imap_token *t = arg_next(c, i);
	if (t == NULL)
		return -1;
	if (t->type == IMAP_TOKEN_QUOTED) {
		if (t->len <= 7 || strncasecmp(t->data, "/flags/", 7) != 0)
			return fail(c, E_ENTRY);
		const char *flag = t->data + 7;
		/* attr-flag: "\\" system flag name, or a keyword (atom) */
		for (const char *p = flag[0] == '\\' ? flag + 1 : flag; *p != '\0'; p++)
			if (*p <= ' ' || *p >= 0x7f || strchr("(){%*\"\\]", *p) != NULL)
				return fail(c, E_ENTRY);
		if (flag[0] == '\\' && flag[1] == '\0')
			return fail(c, E_ENTRY);
		const struct imap_token *ty = arg_next(c, i);
		if (ty == NULL)
			return -1;
		if (!atom_is(ty, "priv") && !atom_is(ty, "shared") && !atom_is(ty, "all"))
			return fail(c, E_ENTRY);
		t = arg_next(c, i);
		if (t == NULL)
			return -1;
	}
	if (t->type != IMAP_TOKEN_ATOM || !(t->flags & IMAP_ATOM_NUMBER))
		return fail(c, E_NUMBER);
	int n = node_add(c, N_MODSEQ);
	if (n < 0)
		return -1;
	c->s->nodes[n].uvalue = t->num;
	c->s->has_modseq = true;
	return 1;
}

static int compile_key(struct compiler *c, unsigned *i, unsigned depth);

/* Keys args[*i .. stop) as children of an AND node (at least one). */
static int compile_and(struct compiler *c, unsigned *i, unsigned stop, unsigned depth)
{
	int n = node_add(c, N_AND);
	if (n < 0)
		return -1;
	if (*i >= stop)
		return fail(c, depth == 0 ? E_EMPTY : E_LIST);
	unsigned save_end = c->end;
	c->end = stop;
	while (*i < stop)
		if (compile_key(c, i, depth) != 1) {
			c->end = save_end;
			return -1;
		}
	c->end = save_end;
	node_close(c, n);
	return 1;
}

static const struct {
	const char *name;
	const char *flag;
	bool want;
} flag_keys[] = {
    {"ANSWERED", "\\Answered", true},    {"DELETED", "\\Deleted", true},
    {"DRAFT", "\\Draft", true},          {"FLAGGED", "\\Flagged", true},
    {"RECENT", "\\Recent", true},        {"SEEN", "\\Seen", true},
    {"UNANSWERED", "\\Answered", false}, {"UNDELETED", "\\Deleted", false},
    {"UNDRAFT", "\\Draft", false},       {"UNFLAGGED", "\\Flagged", false},
    {"UNSEEN", "\\Seen", false},         {"OLD", "\\Recent", false},
};

static const struct {
	const char *name;
	enum node_type type;
} date_keys[] = {
    {"BEFORE", N_BEFORE},         {"ON", N_ON},         {"SINCE", N_SINCE},
    {"SENTBEFORE", N_SENTBEFORE}, {"SENTON", N_SENTON}, {"SENTSINCE", N_SENTSINCE},
};

static const struct {
	const char *name;
	const char *field; /* NULL: HEADER takes the name */
	enum search_text_kind kind;
} text_keys[] = {
    {"BCC", "Bcc", SEARCH_TEXT_HEADER},   {"CC", "Cc", SEARCH_TEXT_HEADER},
    {"FROM", "From", SEARCH_TEXT_HEADER}, {"SUBJECT", "Subject", SEARCH_TEXT_HEADER},
    {"TO", "To", SEARCH_TEXT_HEADER},     {"HEADER", NULL, SEARCH_TEXT_HEADER},
    {"BODY", NULL, SEARCH_TEXT_BODY},     {"TEXT", NULL, SEARCH_TEXT_TEXT},
};

static int compile_key(struct compiler *c, unsigned *i, unsigned depth)
{
	if (depth >= IMAP_SEARCH_DEPTH_MAX)
		return fail(c, E_DEEP);
	if (++c->s->nkeys > IMAP_SEARCH_KEYS_MAX)
		return fail(c, E_MANY);
	const struct imap_token *t = &c->args[(*i)++];
	if (t->type == IMAP_TOKEN_LIST) {
		/* "(" search-key *(SP search-key) ")" */
		return compile_and(c, i, *i + t->span, depth + 1);
	}
	if (t->type != IMAP_TOKEN_ATOM)
		return fail(c, E_UNKNOWN);
	if (t->flags & IMAP_ATOM_SEQSET)
		return compile_set(c, t, N_SEQ);
	const char *w = t->data;
	for (size_t k = 0; k < sizeof(flag_keys) / sizeof(flag_keys[0]); k++)
		if (strcasecmp(w, flag_keys[k].name) == 0)
			return compile_flag(c, flag_keys[k].flag, flag_keys[k].want);
	for (size_t k = 0; k < sizeof(date_keys) / sizeof(date_keys[0]); k++)
		if (strcasecmp(w, date_keys[k].name) == 0)
			return compile_date(c, i, date_keys[k].type);
	for (size_t k = 0; k < sizeof(text_keys) / sizeof(text_keys[0]); k++)
		if (strcasecmp(w, text_keys[k].name) == 0)
			return compile_text(c, i, text_keys[k].kind, text_keys[k].field);
	if (strcasecmp(w, "ALL") == 0)
		return node_add(c, N_ALL) < 0 ? -1 : 1;
	if (strcasecmp(w, "NEW") == 0) {
		/* RFC 3501 6.4.4: NEW is (RECENT UNSEEN) */
		int n = node_add(c, N_AND);
		if (n < 0 || compile_flag(c, "\\Recent", true) != 1 ||
		    compile_flag(c, "\\Seen", false) != 1)
			return -1;
		node_close(c, n);
		return 1;
	}
	if (strcasecmp(w, "KEYWORD") == 0)
		return compile_keyword(c, i, true);
	if (strcasecmp(w, "UNKEYWORD") == 0)
		return compile_keyword(c, i, false);
	if (strcasecmp(w, "LARGER") == 0)
		return compile_number(c, i, N_LARGER);
	if (strcasecmp(w, "SMALLER") == 0)
		return compile_number(c, i, N_SMALLER);
	if (strcasecmp(w, "MODSEQ") == 0)
		return compile_modseq(c, i);
	if (strcasecmp(w, "UID") == 0) {
		const struct imap_token *a = arg_next(c, i);
		return a == NULL ? -1 : compile_set(c, a, N_UID);
	}
	if (strcasecmp(w, "NOT") == 0) {
		int n = node_add(c, N_NOT);
		if (n < 0)
			return -1;
		if (*i >= c->end)
			return fail(c, E_MISSING);
		if (compile_key(c, i, depth + 1) != 1)
			return -1;
		node_close(c, n);
		return 1;
	}
	if (strcasecmp(w, "OR") == 0) {
		int n = node_add(c, N_OR);
		if (n < 0)
			return -1;
		for (int k = 0; k < 2; k++) {
			if (*i >= c->end)
				return fail(c, E_MISSING);
			if (compile_key(c, i, depth + 1) != 1)
				return -1;
		}
		node_close(c, n);
		return 1;
	}
	return fail(c, E_UNKNOWN);
}

/* RETURN (opts): RFC 4731 3.1; "RETURN ()" is RETURN (ALL). */
static int compile_return(struct compiler *c, const struct imap_token *list)
{
	if (list->type != IMAP_TOKEN_LIST)
		return fail(c, E_RETURN);
	const struct imap_token *a = list + 1;
	for (unsigned k = 0; k < list->span; k++) {
		static const struct {
			const char *name;
			unsigned bit;
		} opts[] = {{"MIN", RET_MIN},
		            {"MAX", RET_MAX},
		            {"ALL", RET_ALL},
		            {"COUNT", RET_COUNT},
		            {"SAVE", RET_SAVE}};
		unsigned bit = 0;
		for (size_t o = 0; o < sizeof(opts) / sizeof(opts[0]); o++)
			if (atom_is(&a[k], opts[o].name))
				bit = opts[o].bit;
		if (bit == 0)
			return fail(c, E_RETURN);
		c->s->ret |= bit;
	}
	if (c->s->ret == 0)
		c->s->ret = RET_ALL;
	c->s->esearch = true;
	return 1;
}

int imap_search_compile(const struct imap_token *args, unsigned i, unsigned end,
                        struct imap_search **s_r, const char **code_r, const char **error_r)
{
	struct compiler c = {.args = args, .end = end};
	*s_r = NULL;
	*code_r = NULL;
	c.s = calloc(1, sizeof(*c.s));
	if (c.s == NULL) {
		*error_r = E_MEM;
		return -1;
	}
	int rc = 1;
	/* RFC 4731 / RFC 9051 9: search = "SEARCH" [search-return-opts] SP
	 * search-program; search-program = ["CHARSET" SP charset SP] search-key
	 * *(SP search-key) */
	if (i < end && atom_is(&args[i], "RETURN")) {
		if (i + 1 >= end)
			rc = fail(&c, E_RETURN);
		else
			rc = compile_return(&c, &args[i + 1]);
		if (rc == 1)
			i = imap_token_skip(args, i + 1);
	}
	if (rc == 1 && i < end && atom_is(&args[i], "CHARSET")) {
		const struct imap_token *cs = i + 1 < end ? &args[i + 1] : NULL;
		if (cs == NULL || (cs->type != IMAP_TOKEN_ATOM && !IMAP_TOKEN_IS_STRING(cs)) ||
		    (cs->type == IMAP_TOKEN_ATOM && !(cs->flags & IMAP_ATOM_ATOM))) {
			rc = fail(&c, E_MISSING);
		} else if (strcasecmp(cs->data, "UTF-8") != 0 &&
		           strcasecmp(cs->data, "US-ASCII") != 0) {
			/* RFC 9051 6.4.4: an unsupported charset is NO [BADCHARSET] */
			c.code = "BADCHARSET (US-ASCII UTF-8)";
			rc = fail(&c, E_CHARSET);
		}
		i += 2;
	}
	if (rc == 1)
		rc = compile_and(&c, &i, end, 0);
	if (rc != 1) {
		*error_r = c.error != NULL ? c.error : E_MEM;
		*code_r = c.code;
		imap_search_free(&c.s);
		return -1;
	}
	*s_r = c.s;
	return 1;
}

void imap_search_free(struct imap_search **sp)
{
	struct imap_search *s = *sp;
	if (s == NULL)
		return;
	for (unsigned k = 0; k < s->nnodes; k++) {
		free(s->nodes[k].flag);
		imap_seqset_free(&s->nodes[k].set.fixed);
	}
	for (unsigned k = 0; k < s->ntext; k++)
		search_text_clear(&s->text[k]);
	free(s->nodes);
	free(s);
	*sp = NULL;
}

bool imap_search_needs_msg(const struct imap_search *s)
{
	return s->ntext > 0 || s->needs_date;
}

bool imap_search_wants_modseq(const struct imap_search *s)
{
	return s->has_modseq;
}

void imap_search_force_esearch(struct imap_search *s)
{
	if (!s->esearch) {
		s->esearch = true;
		s->ret = RET_ALL;
	}
}

bool imap_search_saves(const struct imap_search *s)
{
	return (s->ret & RET_SAVE) != 0;
}

bool imap_search_replies(const struct imap_search *s)
{
	return !s->esearch || (s->ret & ~RET_SAVE) != 0;
}

size_t imap_search_save_select(const struct imap_search *s, const uint32_t *uids, size_t n,
                               uint32_t *out)
{
	unsigned others = s->ret & (RET_ALL | RET_COUNT);
	unsigned mm = s->ret & (RET_MIN | RET_MAX);
	if (others != 0 || mm == 0 || n == 0) {
		if (n > 0)
			memcpy(out, uids, n * sizeof(*uids));
		return n;
	}
	size_t k = 0;
	if (mm & RET_MIN)
		out[k++] = uids[0];
	if ((mm & RET_MAX) && (k == 0 || uids[n - 1] != out[0]))
		out[k++] = uids[n - 1];
	return k;
}

/* ---- evaluating ---- */

static bool flag_has(const char *flags, const char *flag)
{
	size_t fl = strlen(flag);
	const char *p = flags != NULL ? flags : "";
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		const char *e = p;
		while (*e != '\0' && *e != ' ')
			e++;
		/* flags and keywords compare case-insensitively (RFC 9051 2.3.2) */
		if ((size_t)(e - p) == fl && strncasecmp(p, flag, fl) == 0)
			return true;
		p = e;
	}
	return false;
}

static bool saved_has(const struct imap_search_ctx *c, uint32_t uid)
{
	size_t lo = 0, hi = c->saved != NULL ? c->nsaved : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->saved[mid] == uid)
			return true;
		if (c->saved[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int64_t day_floor(int64_t t)
{
	int64_t d = t / 86400;
	if (t % 86400 < 0)
		d--;
	return d * 86400;
}

static enum tri tri_not(enum tri v)
{
	return v == TRI_UNKNOWN ? TRI_UNKNOWN : v == TRI_TRUE ? TRI_FALSE : TRI_TRUE;
}

static enum tri tri_bool(bool b)
{
	return b ? TRI_TRUE : TRI_FALSE;
}

/* Evaluates node k; text keys and SENT* keys take their values from st (NULL:
 * unknown yet). */
static enum tri eval(const struct imap_search *s, unsigned k, const struct imap_search_ctx *c,
                     const struct imap_search_item *m, const struct search_state *st)
{
	const struct node *n = &s->nodes[k];
	switch (n->type) {
	case N_AND: {
		enum tri v = TRI_TRUE;
		for (unsigned j = k + 1; j <= k + n->span; j += 1 + s->nodes[j].span) {
			enum tri w = eval(s, j, c, m, st);
			if (w == TRI_FALSE)
				return TRI_FALSE;
			if (w == TRI_UNKNOWN)
				v = TRI_UNKNOWN;
		}
		return v;
	}
	case N_OR: {
		unsigned a = k + 1, b = a + 1 + s->nodes[a].span;
		enum tri va = eval(s, a, c, m, st);
		if (va == TRI_TRUE)
			return TRI_TRUE;
		enum tri vb = eval(s, b, c, m, st);
		if (vb == TRI_TRUE)
			return TRI_TRUE;
		return va == TRI_FALSE && vb == TRI_FALSE ? TRI_FALSE : TRI_UNKNOWN;
	}
	case N_NOT:
		return tri_not(eval(s, k + 1, c, m, st));
	case N_ALL:
		return TRI_TRUE;
	case N_SEQ:
		return tri_bool(set_contains(&n->set, m->seq, c->exists));
	case N_UID:
		return tri_bool(set_contains(&n->set, m->uid, c->max_uid));
	case N_SAVED:
		return tri_bool(saved_has(c, m->uid));
	case N_FLAG:
		return tri_bool(flag_has(m->flags, n->flag) == n->want);
	case N_BEFORE:
		return tri_bool(m->internal_date < n->value);
	case N_ON:
		return tri_bool(day_floor(m->internal_date) == n->value);
	case N_SINCE:
		return tri_bool(m->internal_date >= n->value);
	case N_SENTBEFORE:
	case N_SENTON:
	case N_SENTSINCE: {
		if (st == NULL || !st->have_sent_day)
			return TRI_UNKNOWN;
		int64_t d = st->sent_day;
		return tri_bool(n->type == N_SENTBEFORE ? d < n->value
		                : n->type == N_SENTON   ? d == n->value
		                                        : d >= n->value);
	}
	case N_LARGER:
		return tri_bool(m->size > n->uvalue);
	case N_SMALLER:
		return tri_bool(m->size < n->uvalue);
	case N_MODSEQ:
		/* RFC 7162 3.1.5: mod-sequence equal to or greater than the value */
		return tri_bool(m->modseq >= n->uvalue);
	case N_TEXT_KEY:
		return st == NULL ? TRI_UNKNOWN : st->text[n->tidx];
	}
	return TRI_FALSE;
}

int imap_search_match(const struct imap_search *s, const struct imap_search_ctx *c,
                      struct store *st, const struct imap_search_item *m, char **error_r)
{
	enum tri v = eval(s, 0, c, m, NULL);
	if (v != TRI_UNKNOWN)
		return v == TRI_TRUE;
	return search_msg_match(s, c, st, m, error_r);
}

/* ---- replies ---- */

/* Appends nums[0..n) (ascending) as a sequence set: "1:3,5". */
static int reply_set(struct evbuffer *out, const uint32_t *nums, size_t n)
{
	size_t k = 0;
	while (k < n) {
		size_t j = k;
		while (j + 1 < n && nums[j + 1] == nums[j] + 1)
			j++;
		int rc = j == k
		             ? evbuffer_add_printf(out, "%s%u", k ? "," : "", nums[k])
		             : evbuffer_add_printf(out, "%s%u:%u", k ? "," : "", nums[k], nums[j]);
		if (rc < 0)
			return -1;
		k = j + 1;
	}
	return 1;
}

static uint64_t max_modseq(const uint64_t *modseqs, size_t from, size_t to)
{
	uint64_t mx = 0;
	for (size_t k = from; k < to; k++)
		if (modseqs[k] > mx)
			mx = modseqs[k];
	return mx;
}

int imap_search_reply(const struct imap_search *s, const char *tag, bool uid, const uint32_t *nums,
                      const uint64_t *modseqs, size_t n, struct evbuffer *out)
{
	bool modseq = s->has_modseq && modseqs != NULL && n > 0;
	if (!s->esearch) {
		if (evbuffer_add(out, "* SEARCH", 8) < 0)
			return -1;
		for (size_t k = 0; k < n; k++)
			if (evbuffer_add_printf(out, " %u", nums[k]) < 0)
				return -1;
		/* RFC 7162 3.1.5: the highest mod-sequence of the messages returned */
		if (modseq &&
		    evbuffer_add_printf(out, " (MODSEQ %llu)",
		                        (unsigned long long)max_modseq(modseqs, 0, n)) < 0)
			return -1;
		return evbuffer_add(out, "\r\n", 2) < 0 ? -1 : 1;
	}
	if (!imap_search_replies(s))
		return 1; /* RFC 5182 2.1: RETURN (SAVE) alone gets no ESEARCH */
	/* RFC 4731 3.1: nothing but COUNT 0 for no match */
	if (evbuffer_add_printf(out, "* ESEARCH (TAG \"%s\")%s", tag, uid ? " UID" : "") < 0)
		return -1;
	if (n > 0 && (s->ret & RET_MIN) && evbuffer_add_printf(out, " MIN %u", nums[0]) < 0)
		return -1;
	if (n > 0 && (s->ret & RET_MAX) && evbuffer_add_printf(out, " MAX %u", nums[n - 1]) < 0)
		return -1;
	if ((s->ret & RET_COUNT) && evbuffer_add_printf(out, " COUNT %zu", n) < 0)
		return -1;
	if (n > 0 && (s->ret & RET_ALL)) {
		if (evbuffer_add(out, " ALL ", 5) < 0 || reply_set(out, nums, n) < 0)
			return -1;
	}
	if (modseq) {
		/* RFC 7162 3.1.5: with ALL or COUNT, the highest mod-sequence of all
		 * matching messages; with MIN and/or MAX alone, of those returned */
		uint64_t mx;
		if (s->ret & (RET_ALL | RET_COUNT))
			mx = max_modseq(modseqs, 0, n);
		else {
			mx = 0;
			if ((s->ret & RET_MIN) && modseqs[0] > mx)
				mx = modseqs[0];
			if ((s->ret & RET_MAX) && modseqs[n - 1] > mx)
				mx = modseqs[n - 1];
		}
		if (mx > 0 && evbuffer_add_printf(out, " MODSEQ %llu", (unsigned long long)mx) < 0)
			return -1;
	}
	return evbuffer_add(out, "\r\n", 2) < 0 ? -1 : 1;
}

/* ---- text keys and SENT* ----
 * The message is opened (bytes by range and MIME tree, imap/imap_msg.h) only
 * when the metadata left the result open. Its header section is read once
 * (at most SEARCH_HEADER_MAX octets) and every header key, the Date: of the
 * SENT* keys and the header half of TEXT are decided from it; then, if still
 * open, the text parts of the body are decoded in chunks of SEARCH_CHUNK
 * octets (Content-Transfer-Encoding and charset, mail/text.h), case-folded and
 * searched, stopping as soon as the program is decided. No body is held in
 * memory: each key keeps the last needle-length - 1 folded octets of the text
 * before the chunk, so that a match across chunks is found. */

#define SEARCH_HEADER_MAX (1024u * 1024u)
#define SEARCH_CHUNK (64u * 1024u)

static int search_text_needle_set(struct search_text *t, const char *s, size_t len)
{
	struct buf b;
	buf_init(&b, 0);
	if (mail_text_fold(s, len, &b) != 1) {
		buf_free(&b);
		return -1;
	}
	t->needle = buf_steal(&b, &t->needle_len);
	if (t->needle == NULL) {
		t->needle = str_dup("");
		t->needle_len = 0;
	}
	return t->needle != NULL ? 1 : -1;
}

static void search_text_clear(struct search_text *t)
{
	free(t->field);
	free(t->needle);
	t->field = t->needle = NULL;
}

/* One text key being matched against a stream of folded text. */
struct matcher {
	const struct search_text *t;
	char *tail;  /* room for needle_len - 1 octets */
	char *joint; /* scratch: room for 2 * (needle_len - 1) octets */
	size_t ntail;
};

static void matcher_reset(struct matcher *mt)
{
	mt->ntail = 0;
}

/* Searches the folded text d[0..len), continuing the text fed since the last
 * reset. */
static bool matcher_feed(struct matcher *mt, const char *d, size_t len)
{
	size_t nl = mt->t->needle_len;
	const char *needle = mt->t->needle;
	if (nl == 0)
		return true;
	if (mt->ntail > 0) {
		/* a match starting in the tail ends in the first nl - 1 octets */
		size_t take = len < nl - 1 ? len : nl - 1;
		memcpy(mt->joint, mt->tail, mt->ntail);
		memcpy(mt->joint + mt->ntail, d, take);
		if (memmem(mt->joint, mt->ntail + take, needle, nl) != NULL)
			return true;
	}
	if (memmem(d, len, needle, nl) != NULL)
		return true;
	/* keep the last nl - 1 octets of tail + d */
	size_t keep = nl - 1;
	if (len >= keep) {
		memcpy(mt->tail, d + len - keep, keep);
		mt->ntail = keep;
	} else {
		size_t from_tail = mt->ntail + len > keep ? keep - len : mt->ntail;
		memmove(mt->tail, mt->tail + mt->ntail - from_tail, from_tail);
		memcpy(mt->tail + from_tail, d, len);
		mt->ntail = from_tail + len;
	}
	return false;
}

struct msg_search {
	const struct imap_search *s;
	const struct imap_search_ctx *c;
	const struct imap_search_item *item;
	struct search_state state;
	struct matcher mt[IMAP_SEARCH_TEXT_KEYS_MAX];
	struct imap_msg msg;
	struct buf dec, fold; /* scratch: decoded and folded text */
	char *chunk;
	char *tails; /* the matchers' tail and joint buffers */
};

static bool decided(struct msg_search *ms)
{
	return eval(ms->s, 0, ms->c, ms->item, &ms->state) != TRI_UNKNOWN;
}

/* Folds the UTF-8 text d[0..len) and feeds it to the open keys of the kinds
 * given. -1 out of memory. */
static int feed_text(struct msg_search *ms, const char *d, size_t len, bool body)
{
	buf_reset(&ms->fold);
	if (len == 0)
		return 1;
	if (mail_text_fold(d, len, &ms->fold) != 1)
		return -1;
	for (unsigned k = 0; k < ms->s->ntext; k++) {
		const struct search_text *t = &ms->s->text[k];
		if (ms->state.text[k] != TRI_UNKNOWN || t->kind == SEARCH_TEXT_HEADER ||
		    (body && t->kind != SEARCH_TEXT_BODY && t->kind != SEARCH_TEXT_TEXT) ||
		    (!body && t->kind != SEARCH_TEXT_TEXT))
			continue;
		if (ms->fold.len > 0 && matcher_feed(&ms->mt[k], ms->fold.data, ms->fold.len))
			ms->state.text[k] = TRI_TRUE;
	}
	return 1;
}

static void reset_matchers(struct msg_search *ms)
{
	for (unsigned k = 0; k < ms->s->ntext; k++)
		matcher_reset(&ms->mt[k]);
}

/* Calls field(ms, name, nlen, value, vlen) for each field of the header
 * section h[0..len): the name before ':' and the raw value after it through its
 * continuation lines (line ends included but the last). */
typedef int field_fn(struct msg_search *ms, const char *name, size_t nlen, const char *value,
                     size_t vlen, bool body);

static int header_fields(struct msg_search *ms, const char *h, size_t len, field_fn *fn, bool body)
{
	size_t p = 0;
	while (p < len) {
		size_t start = p;
		/* the field's lines: this one and those starting with a blank */
		size_t e = p;
		for (;;) {
			const char *nl = memchr(h + e, '\n', len - e);
			e = nl ? (size_t)(nl - h) + 1 : len;
			if (e >= len || (h[e] != ' ' && h[e] != '\t'))
				break;
		}
		p = e;
		size_t end = e;
		if (end > start && h[end - 1] == '\n')
			end--;
		if (end > start && h[end - 1] == '\r')
			end--;
		if (end == start)
			break; /* the empty line ending the section */
		const char *colon = memchr(h + start, ':', end - start);
		if (colon == NULL)
			continue;
		size_t nlen = (size_t)(colon - (h + start));
		while (nlen > 0 && (h[start + nlen - 1] == ' ' || h[start + nlen - 1] == '\t'))
			nlen--; /* RFC 5322 4.5: obsolete blanks before the colon */
		size_t v = (size_t)(colon - h) + 1;
		int rc = fn(ms, h + start, nlen, h + v, end - v, body);
		if (rc != 1)
			return rc;
	}
	return 1;
}

static bool name_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

/* A field of the message's own header: header keys, Date:, TEXT. */
static int top_field(struct msg_search *ms, const char *name, size_t nlen, const char *value,
                     size_t vlen, bool body)
{
	if (search_needs_sent(ms->s) && !ms->state.have_sent_day && name_is(name, nlen, "Date")) {
		int64_t t;
		int off;
		if (mail_date_parse(value, vlen, &t, &off) == 1) {
			/* RFC 9051 6.4.4: the date in the header's own zone */
			ms->state.sent_day = day_floor(t + (int64_t)off * 60);
			ms->state.have_sent_day = true;
		}
	}
	bool want = false, text = false;
	for (unsigned k = 0; k < ms->s->ntext; k++) {
		const struct search_text *t = &ms->s->text[k];
		if (ms->state.text[k] != TRI_UNKNOWN)
			continue;
		if (t->kind == SEARCH_TEXT_TEXT)
			text = true;
		else if (t->kind == SEARCH_TEXT_HEADER && name_is(name, nlen, t->field))
			want = true;
	}
	if (!want && !text)
		return 1;
	buf_reset(&ms->dec);
	if (mail_header_decode(value, vlen, &ms->dec) != 1)
		return -1;
	const char *d = ms->dec.data != NULL ? ms->dec.data : "";
	size_t dlen = ms->dec.len;
	while (dlen > 0 && (*d == ' ' || *d == '\t'))
		d++, dlen--;
	if (want) {
		buf_reset(&ms->fold);
		if (dlen > 0 && mail_text_fold(d, dlen, &ms->fold) != 1)
			return -1;
		for (unsigned k = 0; k < ms->s->ntext; k++) {
			const struct search_text *t = &ms->s->text[k];
			if (ms->state.text[k] != TRI_UNKNOWN || t->kind != SEARCH_TEXT_HEADER ||
			    !name_is(name, nlen, t->field))
				continue;
			/* an empty string matches every message that has the field */
			if (t->needle_len == 0 ||
			    (ms->fold.len >= t->needle_len &&
			     memmem(ms->fold.data, ms->fold.len, t->needle, t->needle_len) != NULL))
				ms->state.text[k] = TRI_TRUE;
		}
	}
	if (text) {
		/* TEXT sees each field as "Name: decoded value" */
		reset_matchers(ms);
		struct buf line;
		buf_init(&line, 0);
		int rc = buf_append(&line, name, nlen) == 1 && buf_append(&line, ": ", 2) == 1 &&
		                 buf_append(&line, d, dlen) == 1
		             ? feed_text(ms, line.data, line.len, false)
		             : -1;
		buf_free(&line);
		if (rc != 1)
			return -1;
	}
	return 1;
}

/* A field of an embedded message's header: body text of the outer message. */
static int inner_field(struct msg_search *ms, const char *name, size_t nlen, const char *value,
                       size_t vlen, bool body)
{
	buf_reset(&ms->dec);
	if (buf_append(&ms->dec, name, nlen) != 1 || buf_append(&ms->dec, ": ", 2) != 1 ||
	    mail_header_decode(value, vlen, &ms->dec) != 1)
		return -1;
	reset_matchers(ms);
	struct buf copy = ms->dec; /* feed_text reuses fold, not dec */
	return feed_text(ms, copy.data, copy.len, true);
}

static _Thread_local uint64_t octets_read;

uint64_t imap_search_octets_read(void)
{
	return octets_read;
}

static int read_range(struct msg_search *ms, uint64_t off, uint64_t len, char *buf, size_t *got_r,
                      char **error_r)
{
	long n = imap_msg_read(&ms->msg, buf, (size_t)len, off);
	if (n < 0)
		return str_error(error_r, "reading message: %s", strerror(errno));
	octets_read += (uint64_t)n;
	*got_r = (size_t)n;
	return 1;
}

static int search_header(struct msg_search *ms, const struct mime_part *root, char **error_r)
{
	uint64_t hlen = root->header_len;
	if (hlen > SEARCH_HEADER_MAX)
		hlen = SEARCH_HEADER_MAX; /* the rest of a huge header is not searched */
	char *h = malloc(hlen + 1);
	if (h == NULL)
		return str_error(error_r, "out of memory");
	size_t got = 0;
	int rc = read_range(ms, root->header_start, hlen, h, &got, error_r);
	if (rc == 1) {
		rc = header_fields(ms, h, got, top_field, false);
		if (rc != 1)
			rc = str_error(error_r, "out of memory");
	}
	free(h);
	return rc;
}

/* Decodes and searches one text part's body. */
static int search_part_body(struct msg_search *ms, const struct mime_tree *tree,
                            const struct mime_part *p, char **error_r)
{
	size_t cte_len = 0, cs_len = 0;
	const char *cte = mime_tree_str(tree, p->encoding, &cte_len);
	const char *cs = mime_tree_param(tree, p->ct_param, p->ct_nparam, "charset", &cs_len);
	struct mail_text_decoder *d = mail_text_decoder_new(cte, cte_len, cs, cs_len);
	if (d == NULL)
		return str_error(error_r, "out of memory");
	reset_matchers(ms);
	uint64_t off = p->header_start + p->header_len, left = p->body_len;
	int rc = 1;
	while (rc == 1 && left > 0 && !decided(ms)) {
		size_t got = 0;
		uint64_t want = left < SEARCH_CHUNK ? left : SEARCH_CHUNK;
		rc = read_range(ms, off, want, ms->chunk, &got, error_r);
		if (rc != 1)
			break;
		if (got == 0)
			break; /* the blob is shorter than its tree says */
		off += got;
		left -= got;
		buf_reset(&ms->dec);
		if (mail_text_decoder_feed(d, ms->chunk, got, &ms->dec) != 1 ||
		    (left == 0 && mail_text_decoder_finish(d, &ms->dec) != 1)) {
			rc = str_error(error_r, "out of memory");
			break;
		}
		/* the decoder ends its output on whole characters: fold it at once */
		struct buf dec = ms->dec;
		if (feed_text(ms, dec.data, dec.len, true) != 1)
			rc = str_error(error_r, "out of memory");
	}
	mail_text_decoder_free(&d);
	return rc;
}

static int search_body(struct msg_search *ms, char **error_r)
{
	const struct mime_tree *tree = &ms->msg.tree;
	for (uint32_t k = 0; k < tree->nparts && !decided(ms); k++) {
		const struct mime_part *p = &tree->parts[k];
		/* an embedded message's header is text of the outer body */
		if (k > 0 && p->parent != MIME_NONE &&
		    (tree->parts[p->parent].flags & MIME_PART_MESSAGE)) {
			uint64_t hlen =
			    p->header_len < SEARCH_HEADER_MAX ? p->header_len : SEARCH_HEADER_MAX;
			char *h = malloc(hlen + 1);
			size_t got = 0;
			if (h == NULL)
				return str_error(error_r, "out of memory");
			int rc = read_range(ms, p->header_start, hlen, h, &got, error_r);
			if (rc == 1 && header_fields(ms, h, got, inner_field, true) != 1)
				rc = str_error(error_r, "out of memory");
			free(h);
			if (rc != 1)
				return rc;
		}
		if (p->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE))
			continue;
		size_t tlen;
		const char *type = mime_tree_str(tree, p->type, &tlen);
		if (type == NULL || tlen != 4 || memcmp(type, "text", 4) != 0)
			continue; /* only text parts are searched (not attachments) */
		int rc = search_part_body(ms, tree, p, error_r);
		if (rc != 1)
			return rc;
	}
	return 1;
}

static int search_msg_match(const struct imap_search *s, const struct imap_search_ctx *c,
                            struct store *st, const struct imap_search_item *m, char **error_r)
{
	struct msg_search *ms = calloc(1, sizeof(*ms));
	if (ms == NULL)
		return str_error(error_r, "out of memory");
	ms->s = s;
	ms->c = c;
	ms->item = m;
	ms->msg.r.fd = -1;
	size_t room = 0;
	for (unsigned k = 0; k < s->ntext; k++)
		room += 3 * s->text[k].needle_len; /* both bounded by the compiler */
	ms->tails = malloc(room + 1);
	if (ms->tails == NULL) {
		free(ms);
		return str_error(error_r, "out of memory");
	}
	room = 0;
	for (unsigned k = 0; k < s->ntext; k++) {
		ms->state.text[k] = TRI_UNKNOWN;
		ms->mt[k].t = &s->text[k];
		ms->mt[k].tail = ms->tails + room;
		ms->mt[k].joint = ms->tails + room + s->text[k].needle_len;
		room += 3 * s->text[k].needle_len;
	}
	buf_init(&ms->dec, 0);
	buf_init(&ms->fold, 0);
	int rc = imap_msg_open(&ms->msg, st, m->blob_id, true, error_r);
	if (rc != 1)
		goto out; /* 0: the blob is gone (expunged meanwhile): no match */
	if (!ms->msg.have_tree || ms->msg.tree.nparts == 0) {
		rc = str_error(error_r, "message without a MIME tree");
		goto out;
	}
	rc = search_header(ms, &ms->msg.tree.parts[0], error_r);
	if (rc != 1)
		goto out;
	if (search_needs_sent(s) && !ms->state.have_sent_day) {
		/* no usable Date: the INTERNALDATE's day stands in (as Dovecot does) */
		ms->state.sent_day = day_floor(m->internal_date);
		ms->state.have_sent_day = true;
	}
	/* the header has decided every header key */
	for (unsigned k = 0; k < s->ntext; k++)
		if (s->text[k].kind == SEARCH_TEXT_HEADER && ms->state.text[k] == TRI_UNKNOWN)
			ms->state.text[k] = TRI_FALSE;
	if (!decided(ms) && s->needs_body) {
		ms->chunk = malloc(SEARCH_CHUNK);
		if (ms->chunk == NULL) {
			rc = str_error(error_r, "out of memory");
			goto out;
		}
		rc = search_body(ms, error_r);
		if (rc != 1)
			goto out;
	}
	for (unsigned k = 0; k < s->ntext; k++)
		if (ms->state.text[k] == TRI_UNKNOWN)
			ms->state.text[k] = TRI_FALSE;
	rc = eval(s, 0, c, m, &ms->state) == TRI_TRUE;
out:
	imap_msg_close(&ms->msg);
	buf_free(&ms->dec);
	buf_free(&ms->fold);
	free(ms->chunk);
	free(ms->tails);
	free(ms);
	return rc;
}
