/* IMAP command parser: see imap_parse.h. Grammar references are to RFC 9051
 * section 9 unless said otherwise. */
#include "imap/imap_parse.h"

#include "core/buf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NUMBER64_MAX ((uint64_t)INT64_MAX) /* number64 = 1*DIGIT, 0..2^63-1 */

void imap_parse_limits_default(struct imap_parse_limits *l)
{
	/* Dovecot: imap_max_line_length 64k (ours is bounded by the line layer's
	 * 16384 octets with CRLF); no literal over a few KiB before login. RFC 7162
	 * 4 asks servers to take lines of at least 8192 octets. */
	l->line_max = 16382;
	l->literal_max = 64u * 1024 * 1024;
	l->literal_keep_max = 65536;
	l->command_max = 1024 * 1024;
	l->depth_max = 32;
	l->args_max = 4096;
	l->nonsync_max = UINT64_MAX;
	l->line_max_preauth = 8192;
	l->literal_keep_max_preauth = 4096;
	l->command_max_preauth = 16384;
	l->depth_max_preauth = 4;
	l->args_max_preauth = 128;
}

/* Buffers kept across commands up to these sizes (see imap_parser_reset). */
#define IDLE_ARENA_MAX 4096
#define IDLE_TOKENS_MAX 64

enum parser_state {
	ST_START,   /* waiting for the first line of a command */
	ST_ARGS,    /* waiting for the line that continues after a literal */
	ST_LITERAL, /* literal octets */
	ST_SKIP,    /* the command failed; its remaining lines are dropped */
	ST_DONE,    /* COMMAND or ERROR returned: reset first */
};

enum frame_kind { FR_LIST, FR_SECTION };

struct frame {
	enum frame_kind kind;
	unsigned tok;
};

struct imap_parser {
	struct imap_parse_limits lim;
	struct imap_literal_sink sink;
	bool has_sink;
	bool authenticated;
	bool cmd_authenticated; /* the state the current command started in */

	/* the limits of the current command */
	size_t line_max, keep_max, command_max;
	unsigned depth_max, args_max;
	uint64_t discard_max; /* largest non-synchronizing literal read and dropped */

	enum parser_state state;
	char tag[IMAP_TAG_MAX + 1];
	char name[IMAP_TAG_MAX + 1];
	char uid_name[IMAP_TAG_MAX + 1];
	bool have_tag, have_uid;
	bool is_fetch, is_append;

	struct imap_token *toks;
	unsigned ntoks, tokcap;
	struct imap_section *secs;
	unsigned nsecs, seccap;
	char *arena;
	size_t alen, acap;
	size_t cmd_size; /* counted against command_max */

	struct frame *stack;
	unsigned depth;
	bool need_sep;     /* a token ended: SP, ")" or the end must follow */
	unsigned top_args; /* depth-0 arguments so far */
	unsigned sink_index;

	struct imap_literal_info lit;
	uint64_t lit_left;
	unsigned lit_tok;
	bool lit_dropping; /* the rest of this literal is dropped (error inside) */
	bool sink_open;

	bool deferred; /* err holds an error reported when the command ends */
	struct imap_parse_error err;
	struct imap_command cmd;
};

/* ---- character classes (RFC 9051 9) ---- */

/* ATOM-CHAR: any CHAR except atom-specials: "(" ")" "{" SP CTL list-wildcards
 * ("%" "*") quoted-specials (DQUOTE "\") resp-specials ("]"). */
static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(':
	case ')':
	case '{':
	case '%':
	case '*':
	case '"':
	case '\\':
	case ']':
		return false;
	default:
		return true;
	}
}

static bool is_astring_char(unsigned char c)
{
	return is_atom_char(c) || c == ']';
}

static bool is_list_char(unsigned char c)
{
	return is_astring_char(c) || c == '%' || c == '*';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Characters a bare word is scanned over; its class is decided afterwards. */
static bool is_word_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

/* Parses 1*DIGIT at s[*pos] up to max; 1 ok, -1 no digits or over max. */
static int parse_digits(const char *s, size_t len, size_t *pos, uint64_t max, uint64_t *r)
{
	size_t i = *pos;
	uint64_t v = 0;
	if (i >= len || !is_digit((unsigned char)s[i]))
		return -1;
	for (; i < len && is_digit((unsigned char)s[i]); i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*pos = i;
	*r = v;
	return 1;
}

/* ---- sequence sets ---- */

/* seq-number = nz-number / "*"; nz-number at most 4294967295. */
static int seq_number(const char *s, size_t len, size_t *pos, uint64_t *r)
{
	if (*pos < len && s[*pos] == '*') {
		(*pos)++;
		*r = IMAP_SEQ_STAR;
		return 1;
	}
	if (*pos < len && s[*pos] == '0')
		return -1; /* nz-number = digit-nz *DIGIT */
	return parse_digits(s, len, pos, UINT32_MAX, r);
}

/* Walks a sequence set; stores ranges when out is not NULL. Returns the number
 * of items, or -1. */
static long seqset_walk(const char *s, size_t len, unsigned max_ranges, struct imap_seq_range *out,
                        bool *last_r, const char **error_r)
{
	*last_r = false;
	if (len == 1 && s[0] == '$') {
		*last_r = true; /* RFC 5182: seq-last-command, alone */
		return 0;
	}
	size_t pos = 0;
	unsigned n = 0;
	for (;;) {
		uint64_t lo, hi;
		if (seq_number(s, len, &pos, &lo) < 0) {
			*error_r = "Invalid sequence set";
			return -1;
		}
		hi = lo;
		if (pos < len && s[pos] == ':') {
			pos++;
			if (seq_number(s, len, &pos, &hi) < 0) {
				*error_r = "Invalid sequence set";
				return -1;
			}
		}
		if (n >= max_ranges) {
			*error_r = "Too many ranges in sequence set";
			return -1;
		}
		if (out != NULL) {
			out[n].lo = lo;
			out[n].hi = hi;
		}
		n++;
		if (pos == len)
			return n;
		if (s[pos] != ',') {
			*error_r = "Invalid sequence set";
			return -1;
		}
		pos++;
	}
}

int imap_seqset_parse(const char *s, size_t len, unsigned max_ranges, struct imap_seqset *set,
                      const char **error_r)
{
	memset(set, 0, sizeof(*set));
	bool last;
	long n = seqset_walk(s, len, max_ranges, NULL, &last, error_r);
	if (n < 0)
		return -1;
	set->last_result = last;
	if (n == 0)
		return 1;
	set->ranges = calloc((size_t)n, sizeof(*set->ranges));
	if (set->ranges == NULL) {
		*error_r = "Out of memory";
		return -1;
	}
	set->n = (unsigned)seqset_walk(s, len, max_ranges, set->ranges, &last, error_r);
	return 1;
}

void imap_seqset_free(struct imap_seqset *set)
{
	free(set->ranges);
	set->ranges = NULL;
	set->n = 0;
}

/* A range resolved against max: [*lo_r, *hi_r], lo <= hi. */
static void range_resolve(const struct imap_seq_range *r, uint64_t max, uint64_t *lo_r,
                          uint64_t *hi_r)
{
	uint64_t a = r->lo == IMAP_SEQ_STAR ? max : r->lo;
	uint64_t b = r->hi == IMAP_SEQ_STAR ? max : r->hi;
	*lo_r = a < b ? a : b;
	*hi_r = a < b ? b : a;
}

/* Resolved sets: the index of the first range whose hi >= n (set->n if none). */
static unsigned resolved_find(const struct imap_seqset *set, uint64_t n)
{
	unsigned lo = 0, hi = set->n;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (set->ranges[mid].hi < n)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int range_cmp(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

int imap_seqset_resolve(const struct imap_seqset *set, uint64_t max, struct imap_seqset *out)
{
	memset(out, 0, sizeof(*out));
	out->last_result = set->last_result;
	out->resolved = true;
	if (set->n == 0 || max == 0)
		return 1;
	out->ranges = calloc(set->n, sizeof(*out->ranges));
	if (out->ranges == NULL)
		return -1;
	unsigned k = 0;
	for (unsigned i = 0; i < set->n; i++) {
		uint64_t lo, hi;
		range_resolve(&set->ranges[i], max, &lo, &hi);
		if (lo > max)
			continue;
		out->ranges[k].lo = lo;
		out->ranges[k].hi = hi > max ? max : hi;
		k++;
	}
	qsort(out->ranges, k, sizeof(*out->ranges), range_cmp);
	unsigned m = 0;
	for (unsigned i = 0; i < k; i++) {
		if (m > 0 && out->ranges[i].lo - 1 <= out->ranges[m - 1].hi) { /* lo >= 1 */
			if (out->ranges[i].hi > out->ranges[m - 1].hi)
				out->ranges[m - 1].hi = out->ranges[i].hi;
		} else {
			out->ranges[m++] = out->ranges[i];
		}
	}
	out->n = m;
	return 1;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint64_t n, uint64_t max)
{
	if (max == 0 || n == 0 || n > max)
		return false;
	if (set->resolved) {
		unsigned i = resolved_find(set, n);
		return i < set->n && set->ranges[i].lo <= n;
	}
	for (unsigned i = 0; i < set->n; i++) {
		uint64_t lo, hi;
		range_resolve(&set->ranges[i], max, &lo, &hi);
		if (n >= lo && n <= hi)
			return true;
	}
	return false;
}

bool imap_seqset_in_range(const struct imap_seqset *set, uint64_t max)
{
	for (unsigned i = 0; i < set->n; i++) {
		if (set->ranges[i].lo != IMAP_SEQ_STAR && set->ranges[i].lo > max)
			return false;
		if (set->ranges[i].hi != IMAP_SEQ_STAR && set->ranges[i].hi > max)
			return false;
	}
	return true;
}

int imap_seqset_next(const struct imap_seqset *set, uint64_t max, uint64_t *cursor, uint64_t *n_r)
{
	/* the smallest member above *cursor: the minimum over ranges of
	 * max(lo, cursor + 1) where that is <= hi (and <= max) */
	uint64_t best = 0;
	bool found = false;
	if (*cursor >= max)
		return 0;
	if (set->resolved) {
		unsigned i = resolved_find(set, *cursor + 1);
		if (i >= set->n)
			return 0;
		uint64_t c = set->ranges[i].lo > *cursor ? set->ranges[i].lo : *cursor + 1;
		if (c > max)
			return 0;
		*cursor = c;
		*n_r = c;
		return 1;
	}
	for (unsigned i = 0; i < set->n; i++) {
		uint64_t lo, hi;
		range_resolve(&set->ranges[i], max, &lo, &hi);
		if (hi > max)
			hi = max;
		uint64_t c = lo > *cursor ? lo : *cursor + 1;
		if (c == 0 || c > hi)
			continue;
		if (!found || c < best) {
			best = c;
			found = true;
		}
	}
	if (!found)
		return 0;
	*cursor = best;
	*n_r = best;
	return 1;
}

/* ---- the parser ---- */

struct imap_parser *imap_parser_new(const struct imap_parse_limits *limits,
                                    const struct imap_literal_sink *sink)
{
	struct imap_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	if (limits != NULL)
		p->lim = *limits;
	else
		imap_parse_limits_default(&p->lim);
	unsigned dmax = p->lim.depth_max > p->lim.depth_max_preauth ? p->lim.depth_max
	                                                            : p->lim.depth_max_preauth;
	p->stack = calloc(dmax + 1, sizeof(*p->stack));
	if (p->stack == NULL) {
		free(p);
		return NULL;
	}
	if (sink != NULL) {
		p->sink = *sink;
		p->has_sink = true;
	}
	imap_parser_reset(p);
	return p;
}

static void sink_close(struct imap_parser *p, bool ok)
{
	if (p->sink_open) {
		p->sink_open = false;
		if (p->sink.end != NULL)
			p->sink.end(p->sink.ctx, ok);
	}
}

void imap_parser_reset(struct imap_parser *p)
{
	sink_close(p, false);
	if (p->arena != NULL)
		explicit_bzero(p->arena, p->alen);
	p->alen = 0;
	/* an idle session keeps little: what one large command grew is given back */
	if (p->acap > IDLE_ARENA_MAX) {
		free(p->arena);
		p->arena = NULL;
		p->acap = 0;
	}
	if (p->tokcap > IDLE_TOKENS_MAX) {
		free(p->toks);
		p->toks = NULL;
		p->tokcap = 0;
	}
	p->ntoks = 0;
	p->nsecs = 0;
	p->cmd_size = 0;
	p->depth = 0;
	p->need_sep = false;
	p->top_args = 0;
	p->sink_index = 0;
	p->have_tag = false;
	p->have_uid = false;
	p->is_fetch = false;
	p->is_append = false;
	p->tag[0] = p->name[0] = p->uid_name[0] = '\0';
	p->deferred = false;
	p->lit_dropping = false;
	p->lit_left = 0;
	memset(&p->lit, 0, sizeof(p->lit));
	memset(&p->err, 0, sizeof(p->err));
	memset(&p->cmd, 0, sizeof(p->cmd));
	p->state = ST_START;
	bool a = p->authenticated;
	p->cmd_authenticated = a;
	p->line_max = a ? p->lim.line_max : p->lim.line_max_preauth;
	p->keep_max = a ? p->lim.literal_keep_max : p->lim.literal_keep_max_preauth;
	p->command_max = a ? p->lim.command_max : p->lim.command_max_preauth;
	p->depth_max = a ? p->lim.depth_max : p->lim.depth_max_preauth;
	p->args_max = a ? p->lim.args_max : p->lim.args_max_preauth;
	p->discard_max = a ? p->lim.literal_max : p->lim.literal_keep_max_preauth;
}

void imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;
	if (p == NULL)
		return;
	imap_parser_reset(p);
	free(p->arena);
	free(p->toks);
	free(p->secs);
	free(p->stack);
	free(p);
	*pp = NULL;
}

void imap_parser_set_authenticated(struct imap_parser *p, bool authenticated)
{
	p->authenticated = authenticated;
	if (p->state == ST_START)
		imap_parser_reset(p);
}

const struct imap_literal_info *imap_parser_literal(const struct imap_parser *p)
{
	return &p->lit;
}

const struct imap_command *imap_parser_command(const struct imap_parser *p)
{
	return &p->cmd;
}

const struct imap_parse_error *imap_parser_error(const struct imap_parser *p)
{
	return &p->err;
}

/* Room for n more octets in the arena (bounded by command_max, which every
 * stored octet has been counted against already). */
static int arena_reserve(struct imap_parser *p, size_t n)
{
	if (p->acap - p->alen > n)
		return 1;
	size_t need;
	if (size_add(p->alen, n, &need) < 0 || size_add(need, 1, &need) < 0)
		return -1;
	size_t cap = p->acap < 256 ? 256 : p->acap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *a = malloc(cap);
	if (a == NULL)
		return -1;
	if (p->arena != NULL) {
		memcpy(a, p->arena, p->alen);
		explicit_bzero(p->arena, p->acap);
		free(p->arena);
	}
	p->arena = a;
	p->acap = cap;
	return 1;
}

static void arena_put(struct imap_parser *p, const char *data, size_t n)
{
	memcpy(p->arena + p->alen, data, n);
	p->alen += n;
}

/* Sets the error; kind decides status and code. */
static void set_error(struct imap_parser *p, enum imap_parse_error_kind kind, const char *text)
{
	struct imap_parse_error *e = &p->err;
	e->kind = kind;
	e->text = text;
	e->tag = p->have_tag ? p->tag : NULL;
	e->status = "BAD";
	e->code = NULL;
	e->bye = false;
	switch (kind) {
	case IMAP_PARSE_ERR_LINE_TOO_LONG:
	case IMAP_PARSE_ERR_LITERAL_TOO_BIG:
	case IMAP_PARSE_ERR_NONSYNC_TOO_BIG:
		e->code = "TOOBIG";
		break;
	case IMAP_PARSE_ERR_APPEND_TOO_BIG:
		e->code = "TOOBIG"; /* RFC 7889 4: NO [TOOBIG] */
		e->status = "NO";
		break;
	case IMAP_PARSE_ERR_COMMAND_TOO_BIG:
	case IMAP_PARSE_ERR_TOO_DEEP:
	case IMAP_PARSE_ERR_TOO_MANY_ARGS:
		e->code = "LIMIT"; /* RFC 9051 7.1 */
		break;
	case IMAP_PARSE_ERR_SINK:
		e->status = "NO";
		break;
	case IMAP_PARSE_ERR_ABUSE:
		e->bye = true;
		break;
	default:
		break;
	}
	if (e->bye)
		e->status = "BYE";
}

static void make_bye(struct imap_parser *p)
{
	p->err.bye = true;
	p->err.status = "BYE";
}

/* A line ends with a non-synchronizing literal announcement "{n+}" or "~{n+}":
 * 1 with its size, 0 when it does not (a synchronizing literal, nothing, or
 * something malformed: no octets follow unasked). */
static int tail_nonsync(const char *line, size_t len, uint64_t *size_r, bool *sync_r)
{
	*sync_r = false;
	if (len < 3 || line[len - 1] != '}')
		return 0;
	size_t end = len - 1, i;
	bool plus = line[end - 1] == '+';
	if (plus)
		end--;
	i = end;
	while (i > 0 && is_digit((unsigned char)line[i - 1]))
		i--;
	if (i == end || i == 0 || line[i - 1] != '{')
		return 0;
	size_t pos = i;
	uint64_t v;
	if (parse_digits(line, end, &pos, NUMBER64_MAX, &v) < 0 || pos != end)
		return 0;
	if (!plus) {
		*sync_r = true;
		return 0;
	}
	*size_r = v;
	return 1;
}

/* The command failed in line: records the error, and when the line announced a
 * non-synchronizing literal (its octets are on the way) asks for them to be
 * dropped first. Returns what feed_line returns. */
static int fail_line(struct imap_parser *p, const char *line, size_t len,
                     enum imap_parse_error_kind kind, const char *text)
{
	set_error(p, kind, text);
	sink_close(p, false);
	uint64_t size;
	bool sync;
	if (!p->err.bye && tail_nonsync(line, len, &size, &sync) == 1) {
		if (size > p->discard_max) {
			make_bye(p);
		} else {
			p->deferred = true;
			memset(&p->lit, 0, sizeof(p->lit));
			p->lit.size = size;
			p->lit.discard = true;
			p->lit_left = size;
			p->lit_dropping = true;
			p->state = ST_LITERAL;
			return IMAP_PARSE_NEED_LITERAL;
		}
	}
	p->state = ST_DONE;
	return IMAP_PARSE_ERROR;
}

static int push_token(struct imap_parser *p, enum imap_token_type type, struct imap_token **t_r)
{
	if (p->ntoks >= p->args_max)
		return -1;
	if (p->ntoks == p->tokcap) {
		unsigned cap = p->tokcap == 0 ? 16 : p->tokcap * 2;
		struct imap_token *t = realloc(p->toks, cap * sizeof(*t));
		if (t == NULL)
			return -1;
		p->toks = t;
		p->tokcap = cap;
	}
	struct imap_token *t = &p->toks[p->ntoks++];
	memset(t, 0, sizeof(*t));
	t->type = type;
	t->depth = p->depth;
	if (p->depth == 0)
		p->top_args++;
	*t_r = t;
	return 1;
}

/* Text for the token being built: copied into the arena, NUL-terminated. */
static int token_text(struct imap_parser *p, struct imap_token *t, const char *s, size_t n)
{
	if (arena_reserve(p, n) < 0)
		return -1;
	t->off_ = p->alen;
	t->len = n;
	arena_put(p, s, n);
	p->arena[p->alen++] = '\0';
	return 1;
}

static bool in_header_list(const struct imap_parser *p)
{
	return p->depth > 0 && p->stack[p->depth - 1].kind == FR_SECTION;
}

/* Classifies a bare word; 0 when it fits no class. */
static unsigned word_class(const char *s, size_t n, uint64_t *num_r)
{
	unsigned f = IMAP_ATOM_ATOM | IMAP_ATOM_ASTRING | IMAP_ATOM_LIST_MAILBOX;
	bool digits = true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!is_atom_char(c))
			f &= ~(unsigned)IMAP_ATOM_ATOM;
		if (!is_astring_char(c))
			f &= ~(unsigned)IMAP_ATOM_ASTRING;
		if (!is_list_char(c))
			f &= ~(unsigned)IMAP_ATOM_LIST_MAILBOX;
		if (!is_digit(c))
			digits = false;
	}
	if (n >= 2 && s[0] == '\\') {
		bool ok = true;
		for (size_t i = 1; i < n; i++)
			ok = ok && is_atom_char((unsigned char)s[i]);
		if (ok)
			f |= IMAP_ATOM_FLAG;
	}
	if (digits) {
		size_t pos = 0;
		uint64_t v;
		if (parse_digits(s, n, &pos, NUMBER64_MAX, &v) == 1) {
			f |= IMAP_ATOM_NUMBER;
			if (v <= UINT32_MAX)
				f |= IMAP_ATOM_NUMBER32;
			if (v != 0)
				f |= IMAP_ATOM_NZ;
			*num_r = v;
		}
	}
	bool last;
	const char *err;
	if ((is_digit((unsigned char)s[0]) || s[0] == '*' || s[0] == '$') &&
	    seqset_walk(s, n, UINT32_MAX, NULL, &last, &err) >= 0)
		f |= IMAP_ATOM_SEQSET;
	if (n == 3 && strncasecmp(s, "NIL", 3) == 0)
		f |= IMAP_ATOM_NIL;
	return f;
}

static const char *const section_names[] = {"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK",
                                            "BINARY.SIZE"};

static int section_name(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(section_names) / sizeof(section_names[0]); i++)
		if (strlen(section_names[i]) == n && strncasecmp(s, section_names[i], n) == 0)
			return (int)i;
	return -1;
}

static bool keyword_at(const char *s, size_t len, size_t pos, const char *kw, size_t *end_r)
{
	size_t k = strlen(kw);
	if (len - pos < k || strncasecmp(s + pos, kw, k) != 0)
		return false;
	*end_r = pos + k;
	return true;
}

/* After "]": the optional partial "<" number64 "." nz-number64 ">". Returns the
 * position after it, or -1 with *why set. */
static long section_tail(struct imap_section *sec, bool binary_size, const char *s, size_t len,
                         size_t pos, const char **why)
{
	if (pos < len && s[pos] == '<') {
		if (binary_size) {
			*why = "BINARY.SIZE takes no partial";
			return -1;
		}
		pos++;
		uint64_t off, cnt;
		if (parse_digits(s, len, &pos, NUMBER64_MAX, &off) < 0 || pos >= len ||
		    s[pos] != '.') {
			*why = "Invalid partial";
			return -1;
		}
		pos++;
		if (parse_digits(s, len, &pos, NUMBER64_MAX, &cnt) < 0 || cnt == 0 || pos >= len ||
		    s[pos] != '>') {
			*why = "Invalid partial";
			return -1;
		}
		pos++;
		sec->partial = true;
		sec->partial_offset = off;
		sec->partial_count = cnt;
	}
	return (long)pos;
}

/* FETCH: name "[" ... at s[start..]; bracket is the position of "[". Parses up to
 * the end of the section (or into a HEADER.FIELDS list, which the caller
 * continues as a frame). Returns the new position or -1 with kind/why set. */
static long parse_section(struct imap_parser *p, const char *s, size_t len, size_t bracket,
                          int which, enum imap_parse_error_kind *kind, const char **why)
{
	*kind = IMAP_PARSE_ERR_SYNTAX;
	if (p->nsecs == p->seccap) {
		unsigned cap = p->seccap == 0 ? 4 : p->seccap * 2;
		struct imap_section *ns = realloc(p->secs, cap * sizeof(*ns));
		if (ns == NULL) {
			*why = "Out of memory";
			return -1;
		}
		p->secs = ns;
		p->seccap = cap;
	}
	struct imap_token *t;
	if (push_token(p, IMAP_TOKEN_SECTION, &t) < 0) {
		*kind = IMAP_PARSE_ERR_TOO_MANY_ARGS;
		*why = "Too many arguments";
		return -1;
	}
	struct imap_section *sec = &p->secs[p->nsecs];
	memset(sec, 0, sizeof(*sec));
	/* fits: the longest name is 11 octets */
	memcpy(sec->name, section_names[which], strlen(section_names[which]) + 1);
	t->section_ = p->nsecs++;
	if (token_text(p, t, sec->name, strlen(sec->name)) < 0) {
		*why = "Out of memory";
		return -1;
	}
	bool binary = which >= 2;
	size_t pos = bracket + 1;
	/* section-part = nz-number *("." nz-number) */
	while (pos < len && is_digit((unsigned char)s[pos])) {
		uint64_t v;
		if (s[pos] == '0' || parse_digits(s, len, &pos, UINT32_MAX, &v) < 0) {
			*why = "Invalid section part number";
			return -1;
		}
		if (sec->nparts == IMAP_SECTION_PARTS_MAX) {
			*kind = IMAP_PARSE_ERR_TOO_DEEP;
			*why = "Too many section parts";
			return -1;
		}
		sec->parts[sec->nparts++] = (uint32_t)v;
		if (pos < len && s[pos] == '.' && pos + 1 < len &&
		    is_digit((unsigned char)s[pos + 1]))
			pos++;
		else
			break;
	}
	if (!binary && pos < len && s[pos] != ']') {
		if (sec->nparts > 0) {
			if (s[pos] != '.') {
				*why = "Invalid section";
				return -1;
			}
			pos++;
		}
		size_t e;
		if (keyword_at(s, len, pos, "HEADER.FIELDS.NOT", &e))
			sec->text = IMAP_SECTION_HEADER_FIELDS_NOT;
		else if (keyword_at(s, len, pos, "HEADER.FIELDS", &e))
			sec->text = IMAP_SECTION_HEADER_FIELDS;
		else if (keyword_at(s, len, pos, "HEADER", &e))
			sec->text = IMAP_SECTION_HEADER;
		else if (keyword_at(s, len, pos, "TEXT", &e))
			sec->text = IMAP_SECTION_TEXT;
		else if (sec->nparts > 0 && keyword_at(s, len, pos, "MIME", &e))
			sec->text = IMAP_SECTION_MIME;
		else {
			*why = "Invalid section";
			return -1;
		}
		pos = e;
		if (sec->text == IMAP_SECTION_HEADER_FIELDS ||
		    sec->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
			/* SP header-list: the names are parsed as the frame's tokens */
			if (pos + 1 >= len || s[pos] != ' ' || s[pos + 1] != '(') {
				*why = "Missing header field list";
				return -1;
			}
			if (p->depth >= p->depth_max) {
				*kind = IMAP_PARSE_ERR_TOO_DEEP;
				*why = "Too deeply nested";
				return -1;
			}
			p->stack[p->depth].kind = FR_SECTION;
			p->stack[p->depth].tok = p->ntoks - 1;
			p->depth++;
			p->need_sep = false;
			return (long)(pos + 2);
		}
	}
	if (pos >= len || s[pos] != ']') {
		*why = "Invalid section";
		return -1;
	}
	pos++;
	long r = section_tail(sec, which == 4, s, len, pos, why);
	p->need_sep = true;
	return r;
}

/* Closes the innermost frame at ")" (s[pos]); returns the new position or -1. */
static long close_frame(struct imap_parser *p, const char *s, size_t len, size_t pos,
                        const char **why)
{
	if (p->depth == 0) {
		*why = "Unexpected )";
		return -1;
	}
	struct frame *f = &p->stack[p->depth - 1];
	struct imap_token *t = &p->toks[f->tok];
	t->span = p->ntoks - f->tok - 1;
	p->depth--;
	pos++;
	if (f->kind == FR_SECTION) {
		if (t->span == 0) {
			*why = "Empty header field list";
			return -1;
		}
		if (pos >= len || s[pos] != ']') {
			*why = "Invalid section";
			return -1;
		}
		long r = section_tail(&p->secs[t->section_], false, s, len, pos + 1, why);
		if (r < 0)
			return -1;
		pos = (size_t)r;
	}
	p->need_sep = true;
	return (long)pos;
}

/* UTF8-2 / UTF8-3 / UTF8-4 of RFC 3629 at s[pos]; returns its length or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len, size_t pos)
{
	unsigned char c = s[pos];
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (len - pos < n)
		return 0;
	if (s[pos + 1] < lo || s[pos + 1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[pos + i] < 0x80 || s[pos + i] > 0xbf)
			return 0;
	return n;
}

/* quoted = DQUOTE *QUOTED-CHAR DQUOTE at s[pos] == '"'. */
static long parse_quoted(struct imap_parser *p, const char *s, size_t len, size_t pos,
                         struct imap_token *t, const char **why)
{
	const unsigned char *u = (const unsigned char *)s;
	/* the unescaped text is no longer than the line: reserve once */
	if (arena_reserve(p, len - pos) < 0) {
		*why = "Out of memory";
		return -1;
	}
	t->off_ = p->alen;
	for (size_t i = pos + 1; i < len;) {
		unsigned char c = u[i];
		if (c == '"') {
			t->len = p->alen - t->off_;
			p->arena[p->alen++] = '\0';
			return (long)(i + 1);
		}
		if (c == '\\') {
			/* quoted-specials only: \" and \\ */
			if (i + 1 >= len || (s[i + 1] != '"' && s[i + 1] != '\\')) {
				*why = "Invalid escape in quoted string";
				return -1;
			}
			p->arena[p->alen++] = s[i + 1];
			i += 2;
			continue;
		}
		if (c == 0 || c == '\r' || c == '\n') {
			/* TEXT-CHAR: CHAR (no NUL) except CR and LF */
			*why = "Invalid character in quoted string";
			return -1;
		}
		if (c >= 0x80) {
			size_t n = utf8_seq(u, len, i);
			if (n == 0) {
				*why = "Invalid UTF-8 in quoted string";
				return -1;
			}
			memcpy(p->arena + p->alen, s + i, n);
			p->alen += n;
			i += n;
			continue;
		}
		p->arena[p->alen++] = (char)c;
		i++;
	}
	*why = "Unterminated quoted string";
	return -1;
}

static int finish_command(struct imap_parser *p)
{
	for (unsigned i = 0; i < p->ntoks; i++) {
		struct imap_token *t = &p->toks[i];
		if (t->type != IMAP_TOKEN_LIST && t->type != IMAP_TOKEN_LITERAL_SINK)
			t->data = p->arena + t->off_;
		if (t->type == IMAP_TOKEN_SECTION)
			t->section = &p->secs[t->section_];
	}
	p->cmd.tag = p->tag;
	p->cmd.name = p->name;
	p->cmd.uid_name = p->have_uid ? p->uid_name : NULL;
	p->cmd.args = p->toks;
	p->cmd.nargs = p->ntoks;
	p->state = ST_DONE;
	return IMAP_PARSE_COMMAND;
}

/* RFC 6855 4 (UTF8=ACCEPT): append-data =/ "UTF8" SP "(" literal8 ")": inside
 * the list that follows a top-level UTF8 atom. */
static bool utf8_data(const struct imap_parser *p)
{
	if (p->depth != 1 || p->stack[0].kind != FR_LIST)
		return false;
	unsigned list = p->stack[0].tok;
	if (list == 0)
		return false;
	const struct imap_token *a = &p->toks[list - 1];
	return a->depth == 0 && a->type == IMAP_TOKEN_ATOM && a->len == 4 &&
	       strncasecmp(p->arena + a->off_, "UTF8", 4) == 0;
}

/* A literal announcement "{n}", "{n+}", "~{n}" or "~{n+}" at s[pos]. */
static int start_literal(struct imap_parser *p, const char *s, size_t len, size_t pos)
{
	bool lit8 = s[pos] == '~';
	size_t i = pos + (lit8 ? 2 : 1);
	uint64_t size;
	if (parse_digits(s, len, &i, NUMBER64_MAX, &size) < 0)
		return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX, "Invalid literal size");
	bool nonsync = i < len && s[i] == '+';
	if (nonsync)
		i++;
	if (i >= len || s[i] != '}')
		return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX, "Invalid literal");
	if (i + 1 != len)
		return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX, "Literal must end the line");
	/* APPEND: every top-level literal after the mailbox name is message data
	 * (RFC 9051 6.3.12, RFC 3502 MULTIAPPEND); literal8 only there (RFC 3516 4.4) */
	bool message = p->is_append && p->top_args >= 1 && (p->depth == 0 || utf8_data(p));
	if (lit8 && !message)
		return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX,
		                 "literal8 is only allowed for APPEND message data");
	bool to_sink = message && p->has_sink && p->cmd_authenticated;

	enum imap_parse_error_kind kind = IMAP_PARSE_ERR_NONE;
	const char *why = NULL;
	if (to_sink && size > p->lim.literal_max) {
		kind = IMAP_PARSE_ERR_APPEND_TOO_BIG;
		why = "Message too large";
	} else if (nonsync && size > p->lim.nonsync_max) {
		/* RFC 7888 4: LITERAL- servers reject larger non-synchronizing literals */
		kind = IMAP_PARSE_ERR_NONSYNC_TOO_BIG;
		why = "Non-synchronizing literal too large";
	} else if (!to_sink && size > p->keep_max) {
		kind = IMAP_PARSE_ERR_LITERAL_TOO_BIG;
		why = "Literal too large";
	} else if (!to_sink && size > p->command_max - p->cmd_size) {
		kind = IMAP_PARSE_ERR_COMMAND_TOO_BIG;
		why = "Command too large";
	}
	/* a non-synchronizing literal too large to read and drop ends the
	 * connection (fail_line: discard_max) */
	if (kind != IMAP_PARSE_ERR_NONE)
		return fail_line(p, s, len, kind, why);
	struct imap_token *t;
	if (push_token(p, to_sink ? IMAP_TOKEN_LITERAL_SINK : IMAP_TOKEN_LITERAL, &t) < 0)
		return fail_line(p, s, len, IMAP_PARSE_ERR_TOO_MANY_ARGS, "Too many arguments");
	t->flags = lit8 ? IMAP_LITERAL_8 : 0;
	t->len = (size_t)size; /* <= literal_max or keep_max: fits */
	memset(&p->lit, 0, sizeof(p->lit));
	p->lit.size = size;
	p->lit.sync = !nonsync;
	p->lit.literal8 = lit8;
	p->lit.to_sink = to_sink;
	p->lit_left = size;
	p->lit_tok = p->ntoks - 1;
	p->lit_dropping = false;
	if (to_sink) {
		p->sink_open = true;
		if (p->sink.begin != NULL &&
		    p->sink.begin(p->sink.ctx, p->sink_index, size, lit8) < 0) {
			p->sink_open = false;
			return fail_line(p, s, len, IMAP_PARSE_ERR_SINK, "Message refused");
		}
		p->sink_index++;
	} else {
		p->cmd_size += (size_t)size;
		if (arena_reserve(p, (size_t)size) < 0)
			return fail_line(p, s, len, IMAP_PARSE_ERR_COMMAND_TOO_BIG,
			                 "Command too large");
		t->off_ = p->alen;
	}
	p->state = ST_LITERAL;
	return IMAP_PARSE_NEED_LITERAL;
}

/* Parses the tokens of line from pos on (the command's tag and name are read). */
static int parse_args(struct imap_parser *p, const char *s, size_t len, size_t pos)
{
	const char *why;
	for (;;) {
		if (pos == len) {
			if (p->depth > 0)
				return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX,
				                 in_header_list(p) ? "Unterminated section"
				                                   : "Missing )");
			return finish_command(p);
		}
		unsigned char c = (unsigned char)s[pos];
		if (c == ')') {
			/* after a token or right after "(" ("( )" and "a )" fail at
			 * the space) */
			long r = close_frame(p, s, len, pos, &why);
			if (r < 0)
				return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX, why);
			pos = (size_t)r;
			continue;
		}
		if (p->need_sep) {
			if (c != ' ')
				return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX,
				                 c < 0x20 || c >= 0x7f ? "Invalid character"
				                                       : "Missing space");
			pos++;
			p->need_sep = false;
			if (pos == len || s[pos] == ' ' || s[pos] == ')')
				return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX, "Extra space");
			c = (unsigned char)s[pos];
		} else if (c == ' ')
			return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX, "Extra space");
		bool fields = in_header_list(p);
		struct imap_token *t;
		if (c == '(') {
			if (fields)
				return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX,
				                 "Invalid header field name");
			if (p->depth >= p->depth_max)
				return fail_line(p, s, len, IMAP_PARSE_ERR_TOO_DEEP,
				                 "Too deeply nested");
			if (push_token(p, IMAP_TOKEN_LIST, &t) < 0)
				return fail_line(p, s, len, IMAP_PARSE_ERR_TOO_MANY_ARGS,
				                 "Too many arguments");
			p->stack[p->depth].kind = FR_LIST;
			p->stack[p->depth].tok = p->ntoks - 1;
			p->depth++;
			pos++;
			continue;
		}
		if (c == '"') {
			if (push_token(p, IMAP_TOKEN_QUOTED, &t) < 0)
				return fail_line(p, s, len, IMAP_PARSE_ERR_TOO_MANY_ARGS,
				                 "Too many arguments");
			long r = parse_quoted(p, s, len, pos, t, &why);
			if (r < 0)
				return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX, why);
			pos = (size_t)r;
			p->need_sep = true;
			continue;
		}
		if (c == '{' || (c == '~' && pos + 1 < len && s[pos + 1] == '{'))
			return start_literal(p, s, len, pos);
		size_t start = pos;
		while (pos < len && is_word_char((unsigned char)s[pos])) {
			if (s[pos] == '[' && p->is_fetch && !fields) {
				int which = section_name(s + start, pos - start);
				if (which >= 0) {
					enum imap_parse_error_kind kind;
					long r = parse_section(p, s, len, pos, which, &kind, &why);
					if (r < 0)
						return fail_line(p, s, len, kind, why);
					pos = (size_t)r;
					goto next;
				}
			}
			pos++;
		}
		if (pos == start)
			return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX,
			                 c == '{' || c == '~' ? "Invalid literal"
			                                      : "Invalid character");
		uint64_t num = 0;
		unsigned cls = word_class(s + start, pos - start, &num);
		if (cls == 0)
			return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX,
			                 "Invalid characters in atom");
		if (fields && !(cls & IMAP_ATOM_ASTRING))
			return fail_line(p, s, len, IMAP_PARSE_ERR_SYNTAX,
			                 "Invalid header field name");
		if (push_token(p, IMAP_TOKEN_ATOM, &t) < 0)
			return fail_line(p, s, len, IMAP_PARSE_ERR_TOO_MANY_ARGS,
			                 "Too many arguments");
		t->flags = cls;
		t->num = num;
		if (token_text(p, t, s + start, pos - start) < 0)
			return fail_line(p, s, len, IMAP_PARSE_ERR_COMMAND_TOO_BIG,
			                 "Command too large");
		p->need_sep = true;
	next:;
	}
}

/* tag = 1*<any ASTRING-CHAR except "+">; then SP command-name. */
static int parse_start(struct imap_parser *p, const char *s, size_t len)
{
	size_t i = 0;
	if (len == 0) {
		set_error(p, IMAP_PARSE_ERR_EMPTY, "Empty command line");
		p->state = ST_DONE;
		return IMAP_PARSE_ERROR;
	}
	while (i < len && is_astring_char((unsigned char)s[i]) && s[i] != '+')
		i++;
	if (i == 0 || i > IMAP_TAG_MAX || (i < len && s[i] != ' ')) {
		return fail_line(p, s, len, IMAP_PARSE_ERR_TAG, "Invalid tag");
	}
	memcpy(p->tag, s, i);
	p->tag[i] = '\0';
	p->have_tag = true;
	if (len > p->line_max)
		return fail_line(p, s, len, IMAP_PARSE_ERR_LINE_TOO_LONG, "Command line too long");
	if (i == len || i + 1 == len)
		return fail_line(p, s, len, IMAP_PARSE_ERR_COMMAND, "Missing command name");
	i++;
	for (int round = 0; round < 2; round++) {
		size_t st = i;
		while (i < len && is_atom_char((unsigned char)s[i]))
			i++;
		if (i == st || i - st > IMAP_TAG_MAX || (i < len && s[i] != ' '))
			return fail_line(p, s, len, IMAP_PARSE_ERR_COMMAND, "Invalid command name");
		char *dst = round == 0 ? p->name : p->uid_name;
		for (size_t k = st; k < i; k++) {
			char ch = s[k];
			dst[k - st] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
		}
		dst[i - st] = '\0';
		if (round == 1)
			p->have_uid = true;
		if (round == 0 && strcmp(p->name, "UID") == 0) {
			/* UID SP (copy / move / fetch / search / store / uid-expunge) */
			if (i + 1 >= len)
				return fail_line(p, s, len, IMAP_PARSE_ERR_COMMAND,
				                 "Missing UID command name");
			i++;
			continue;
		}
		break;
	}
	const char *verb = p->have_uid ? p->uid_name : p->name;
	p->is_fetch = strcmp(verb, "FETCH") == 0;
	p->is_append = !p->have_uid && strcmp(p->name, "APPEND") == 0;
	p->need_sep = true;
	return parse_args(p, s, len, i);
}

int imap_parser_feed_line(struct imap_parser *p, const char *line, size_t len)
{
	switch (p->state) {
	case ST_START:
		p->cmd_size = len + 2;
		if (p->cmd_size > p->command_max && len <= p->line_max)
			return fail_line(p, line, len, IMAP_PARSE_ERR_COMMAND_TOO_BIG,
			                 "Command too large");
		p->state = ST_ARGS;
		return parse_start(p, line, len);
	case ST_ARGS:
		if (len > p->line_max)
			return fail_line(p, line, len, IMAP_PARSE_ERR_LINE_TOO_LONG,
			                 "Command line too long");
		if (len + 2 > p->command_max - p->cmd_size || p->cmd_size > p->command_max)
			return fail_line(p, line, len, IMAP_PARSE_ERR_COMMAND_TOO_BIG,
			                 "Command too large");
		p->cmd_size += len + 2;
		return parse_args(p, line, len, 0);
	case ST_SKIP: {
		/* the rest of a failed command: only its literal announcements matter */
		p->cmd_size += len + 2;
		uint64_t size;
		bool sync;
		if (tail_nonsync(line, len, &size, &sync) == 1) {
			if (size > p->discard_max || p->cmd_size > p->command_max) {
				make_bye(p);
			} else {
				memset(&p->lit, 0, sizeof(p->lit));
				p->lit.size = size;
				p->lit.discard = true;
				p->lit_left = size;
				p->lit_dropping = true;
				p->state = ST_LITERAL;
				return IMAP_PARSE_NEED_LITERAL;
			}
		}
		p->deferred = false;
		p->state = ST_DONE;
		return IMAP_PARSE_ERROR;
	}
	case ST_LITERAL:
	case ST_DONE:
	default:
		/* a driver bug: keep the contract simple, fail the command */
		set_error(p, IMAP_PARSE_ERR_ABUSE, "Protocol state error");
		p->state = ST_DONE;
		return IMAP_PARSE_ERROR;
	}
}

int imap_parser_feed_literal(struct imap_parser *p, const char *data, size_t len, size_t *used_r)
{
	*used_r = 0;
	if (p->state != ST_LITERAL)
		return IMAP_PARSE_NEED_LINE;
	size_t n = len < p->lit_left ? len : (size_t)p->lit_left;
	*used_r = n;
	p->lit_left -= n;
	if (!p->lit_dropping && n > 0) {
		/* RFC 9051 9: literal = ... *CHAR8 (no NUL); NUL needs literal8. The
		 * octets before a NUL are passed on as usual, so that what the sink
		 * sees does not depend on how the literal was split. */
		const char *nul = p->lit.literal8 ? NULL : memchr(data, '\0', n);
		size_t take = nul != NULL ? (size_t)(nul - data) : n;
		if (p->lit.to_sink) {
			if (take > 0 && p->sink.data != NULL &&
			    p->sink.data(p->sink.ctx, data, take) < 0) {
				set_error(p, IMAP_PARSE_ERR_SINK, "Message refused");
				nul = NULL;
				p->deferred = true;
				p->lit_dropping = true;
				sink_close(p, false);
			}
		} else {
			arena_put(p, data, take);
		}
		if (nul != NULL) {
			set_error(p, IMAP_PARSE_ERR_LITERAL_NUL, "NUL in a literal (use literal8)");
			p->deferred = true;
			p->lit_dropping = true;
			sink_close(p, false);
		}
	}
	if (p->lit_left > 0)
		return IMAP_PARSE_NEED_LITERAL;
	if (p->deferred) {
		p->state = ST_SKIP;
		return IMAP_PARSE_NEED_LINE;
	}
	if (p->lit.to_sink) {
		sink_close(p, true);
	} else {
		p->arena[p->alen++] = '\0';
	}
	p->need_sep = true;
	p->state = ST_ARGS;
	return IMAP_PARSE_NEED_LINE;
}

int imap_parser_line_dropped(struct imap_parser *p)
{
	sink_close(p, false);
	set_error(p, IMAP_PARSE_ERR_ABUSE, "Command line too long");
	p->err.code = "TOOBIG";
	p->state = ST_DONE;
	return IMAP_PARSE_ERROR;
}

/* ---- modified UTF-7 (RFC 3501 5.1.3) ---- */

static const char mb64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int mb64_value(unsigned char c)
{
	const char *q = c != 0 ? strchr(mb64, c) : NULL;
	return q == NULL ? -1 : (int)(q - mb64);
}

static int out_put(char *out, size_t size, size_t *o, const char *s, size_t n)
{
	if (size - *o <= n)
		return -1;
	memcpy(out + *o, s, n);
	*o += n;
	return 1;
}

static size_t utf8_put(uint32_t cp, char *b)
{
	if (cp < 0x80) {
		b[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	b[0] = (char)(0xf0 | (cp >> 18));
	b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	b[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

long imap_mutf7_decode(const char *in, size_t len, char *out, size_t out_size, const char **error_r)
{
	size_t o = 0;
	bool after_run = false; /* the previous item was an encoded run */
	if (out_size == 0) {
		*error_r = "Output too small";
		return -1;
	}
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c > 0x7e) {
			*error_r = "Invalid character in mailbox name";
			return -1;
		}
		if (c != '&') {
			after_run = false;
			if (out_put(out, out_size, &o, in + i, 1) < 0)
				goto small;
			i++;
			continue;
		}
		i++;
		if (i < len && in[i] == '-') {
			after_run = false;
			if (out_put(out, out_size, &o, "&", 1) < 0)
				goto small;
			i++;
			continue;
		}
		if (after_run) {
			/* "&...-&...-": two runs back to back must be one */
			*error_r = "Adjacent encoded runs";
			return -1;
		}
		uint32_t bits = 0, high = 0;
		unsigned nbits = 0, units = 0;
		while (i < len && in[i] != '-') {
			int v = mb64_value((unsigned char)in[i]);
			if (v < 0) {
				*error_r = "Invalid modified BASE64";
				return -1;
			}
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			i++;
			if (nbits < 16)
				continue;
			nbits -= 16;
			uint32_t u = (bits >> nbits) & 0xffff;
			bits &= (1u << nbits) - 1;
			units++;
			uint32_t cp;
			if (high != 0) {
				if (u < 0xdc00 || u > 0xdfff) {
					*error_r = "Invalid UTF-16 surrogate";
					return -1;
				}
				cp = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
				high = 0;
			} else if (u >= 0xd800 && u <= 0xdbff) {
				high = u;
				continue;
			} else if (u >= 0xdc00 && u <= 0xdfff) {
				*error_r = "Invalid UTF-16 surrogate";
				return -1;
			} else {
				cp = u;
			}
			if (cp >= 0x20 && cp <= 0x7e) {
				*error_r = "Printable ASCII must not be encoded";
				return -1;
			}
			if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
				*error_r = "Invalid character in mailbox name";
				return -1;
			}
			char b[4];
			size_t n = utf8_put(cp, b);
			if (out_put(out, out_size, &o, b, n) < 0)
				goto small;
		}
		if (i >= len) {
			*error_r = "Unterminated encoded run";
			return -1;
		}
		i++; /* '-' */
		if (high != 0) {
			*error_r = "Invalid UTF-16 surrogate";
			return -1;
		}
		if (units == 0 || nbits >= 6 || bits != 0) {
			*error_r = "Invalid modified BASE64";
			return -1;
		}
		after_run = true;
	}
	out[o] = '\0';
	return (long)o;
small:
	*error_r = "Output too small";
	return -1;
}

/* An encoded run being written: bits not yet output. */
struct mb64_run {
	bool open;
	uint32_t bits;
	unsigned nbits;
};

static int mb64_unit(struct mb64_run *r, char *out, size_t size, size_t *o, uint16_t u)
{
	if (!r->open) {
		if (out_put(out, size, o, "&", 1) < 0)
			return -1;
		r->open = true;
		r->bits = 0;
		r->nbits = 0;
	}
	r->bits = (r->bits << 16) | u;
	r->nbits += 16;
	while (r->nbits >= 6) {
		r->nbits -= 6;
		if (out_put(out, size, o, &mb64[(r->bits >> r->nbits) & 0x3f], 1) < 0)
			return -1;
	}
	r->bits &= (1u << r->nbits) - 1;
	return 1;
}

static int mb64_close(struct mb64_run *r, char *out, size_t size, size_t *o)
{
	if (!r->open)
		return 1;
	r->open = false;
	if (r->nbits > 0 && out_put(out, size, o, &mb64[(r->bits << (6 - r->nbits)) & 0x3f], 1) < 0)
		return -1;
	return out_put(out, size, o, "-", 1);
}

long imap_mutf7_encode(const char *in, size_t len, char *out, size_t out_size, const char **error_r)
{
	const unsigned char *u = (const unsigned char *)in;
	size_t o = 0;
	struct mb64_run run = {0};
	if (out_size == 0) {
		*error_r = "Output too small";
		return -1;
	}
	for (size_t i = 0; i < len;) {
		unsigned char c = u[i];
		if (c >= 0x20 && c <= 0x7e) {
			if (mb64_close(&run, out, out_size, &o) < 0)
				goto small;
			if (out_put(out, out_size, &o, c == '&' ? "&-" : in + i, c == '&' ? 2 : 1) <
			    0)
				goto small;
			i++;
			continue;
		}
		size_t n = c < 0x80 ? 0 : utf8_seq(u, len, i);
		if (n == 0) {
			*error_r = c < 0x80 ? "Invalid character in mailbox name" : "Invalid UTF-8";
			return -1;
		}
		uint32_t cp = n == 2   ? (uint32_t)(c & 0x1f)
		              : n == 3 ? (uint32_t)(c & 0x0f)
		                       : (uint32_t)(c & 0x07);
		for (size_t k = 1; k < n; k++)
			cp = (cp << 6) | (u[i + k] & 0x3f);
		if (cp >= 0x7f && cp < 0xa0) {
			*error_r = "Invalid character in mailbox name";
			return -1;
		}
		i += n;
		int r;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			r = mb64_unit(&run, out, out_size, &o, (uint16_t)(0xd800 + (cp >> 10)));
			if (r > 0)
				r = mb64_unit(&run, out, out_size, &o,
				              (uint16_t)(0xdc00 + (cp & 0x3ff)));
		} else {
			r = mb64_unit(&run, out, out_size, &o, (uint16_t)cp);
		}
		if (r < 0)
			goto small;
	}
	if (mb64_close(&run, out, out_size, &o) < 0)
		goto small;
	out[o] = '\0';
	return (long)o;
small:
	*error_r = "Output too small";
	return -1;
}
