/* FETCH: compiling the attribute list and writing responses (see imap_fetch.h).
 * Grammar references are to RFC 9051 section 9 unless said otherwise. */
#include "imap/imap_fetch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/str.h"
#include "imap/imap_msg.h"
#include "mail/envelope.h"
#include "mail/mime.h"

/* ---- the compiled list ---- */

enum fetch_kind {
	FK_FLAGS,
	FK_INTERNALDATE,
	FK_RFC822_SIZE,
	FK_ENVELOPE,
	FK_BODY,
	FK_BODYSTRUCTURE,
	FK_UID,
	FK_MODSEQ,
	FK_SECTION,     /* BODY[...], BINARY[...], RFC822, RFC822.HEADER, RFC822.TEXT */
	FK_BINARY_SIZE, /* BINARY.SIZE[...] */
};

struct fetch_att {
	enum fetch_kind kind;
	/* FK_SECTION and FK_BINARY_SIZE */
	bool binary; /* BINARY[...] / BINARY.SIZE: content-transfer-encoding undone */
	unsigned nparts;
	uint32_t parts[IMAP_SECTION_PARTS_MAX];
	enum imap_section_text text;
	bool partial;
	uint64_t poff, pcount;
	unsigned nfields;
	char **fields; /* HEADER.FIELDS (.NOT) names, upper case */
	size_t *field_lens;
	char *name; /* the response's item name without the partial */
};

struct imap_fetch {
	struct fetch_att *atts;
	unsigned n, cap;
	unsigned simple_seen; /* bit per simple fetch_kind already in atts */
	bool needs_msg, needs_tree, sets_seen, wants_modseq, vanished;
	uint64_t changedsince;
};

static void att_free(struct fetch_att *a)
{
	for (unsigned i = 0; i < a->nfields; i++)
		free(a->fields[i]);
	free(a->fields);
	free(a->field_lens);
	free(a->name);
}

void imap_fetch_free(struct imap_fetch **f)
{
	if (f == NULL || *f == NULL)
		return;
	for (unsigned i = 0; i < (*f)->n; i++)
		att_free(&(*f)->atts[i]);
	free((*f)->atts);
	free(*f);
	*f = NULL;
}

bool imap_fetch_needs_msg(const struct imap_fetch *f)
{
	return f->needs_msg;
}

bool imap_fetch_sets_seen(const struct imap_fetch *f)
{
	return f->sets_seen;
}

bool imap_fetch_wants_modseq(const struct imap_fetch *f)
{
	return f->wants_modseq;
}

uint64_t imap_fetch_changedsince(const struct imap_fetch *f)
{
	return f->changedsince;
}

bool imap_fetch_vanished(const struct imap_fetch *f)
{
	return f->vanished;
}

static const char *const oom = "Out of memory";

/* Appends a (taking over what it owns) unless an identical item is there
 * already: FETCH (FLAGS FLAGS) answers FLAGS once. 1 ok, -1 out of memory (a
 * freed). */
static int fetch_add(struct imap_fetch *f, struct fetch_att *a)
{
	if (a->kind != FK_SECTION && a->kind != FK_BINARY_SIZE) {
		if (f->simple_seen & (1u << a->kind))
			return 1;
		f->simple_seen |= 1u << a->kind;
	} else {
		for (unsigned k = 0; k < f->n; k++) {
			const struct fetch_att *b = &f->atts[k];
			if (b->kind == a->kind && strcmp(b->name, a->name) == 0 &&
			    b->partial == a->partial && b->poff == a->poff &&
			    b->pcount == a->pcount) {
				att_free(a);
				return 1;
			}
		}
	}
	if (f->n == f->cap) {
		unsigned cap = f->cap == 0 ? 8 : f->cap * 2;
		struct fetch_att *na = realloc(f->atts, cap * sizeof(*na));
		if (na == NULL) {
			att_free(a);
			return -1;
		}
		f->atts = na;
		f->cap = cap;
	}
	switch (a->kind) {
	case FK_ENVELOPE:
	case FK_BODY:
	case FK_BODYSTRUCTURE:
		f->needs_msg = f->needs_tree = true;
		break;
	case FK_SECTION:
	case FK_BINARY_SIZE:
		f->needs_msg = true;
		if (a->nparts > 0 || a->text != IMAP_SECTION_NONE)
			f->needs_tree = true;
		break;
	case FK_MODSEQ:
		f->wants_modseq = true;
		break;
	default:
		break;
	}
	f->atts[f->n++] = *a;
	return 1;
}

static int add_simple(struct imap_fetch *f, enum fetch_kind k)
{
	struct fetch_att a = {.kind = k};
	return fetch_add(f, &a);
}

/* RFC822 (= BODY[]), RFC822.HEADER (= BODY.PEEK[HEADER]), RFC822.TEXT (=
 * BODY[TEXT]): RFC 3501 6.4.5, answered under their own names. */
static int add_rfc822(struct imap_fetch *f, const char *name, enum imap_section_text text,
                      bool seen)
{
	struct fetch_att a = {.kind = FK_SECTION, .text = text};
	a.name = strdup(name);
	if (a.name == NULL)
		return -1;
	if (seen)
		f->sets_seen = true;
	return fetch_add(f, &a);
}

static const char *const text_names[] = {
    [IMAP_SECTION_NONE] = "",
    [IMAP_SECTION_HEADER] = "HEADER",
    [IMAP_SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
    [IMAP_SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
    [IMAP_SECTION_TEXT] = "TEXT",
    [IMAP_SECTION_MIME] = "MIME",
};

/* Whether s can be echoed as an atom (astring chars only). */
static bool is_atom_text(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\", c) != NULL)
			return false;
	}
	return true;
}

/* A SECTION token args[i] and its field names. */
static int add_section(struct imap_fetch *f, const struct imap_token *args, unsigned i,
                       const char **error_r)
{
	const struct imap_token *t = &args[i];
	const struct imap_section *s = t->section;
	struct fetch_att a = {.kind = FK_SECTION};
	const char *base;
	bool peek = false;
	if (strcmp(s->name, "BODY") == 0) {
		base = "BODY";
	} else if (strcmp(s->name, "BODY.PEEK") == 0) {
		base = "BODY";
		peek = true;
	} else if (strcmp(s->name, "BINARY") == 0) {
		base = "BINARY";
		a.binary = true;
	} else if (strcmp(s->name, "BINARY.PEEK") == 0) {
		base = "BINARY";
		a.binary = true;
		peek = true;
	} else if (strcmp(s->name, "BINARY.SIZE") == 0) {
		base = "BINARY.SIZE";
		a.binary = true;
		a.kind = FK_BINARY_SIZE;
		peek = true;
	} else {
		*error_r = "Unknown FETCH attribute";
		return -1;
	}
	if (s->nparts > IMAP_SECTION_PARTS_MAX) {
		*error_r = "Invalid section";
		return -1;
	}
	a.nparts = s->nparts;
	memcpy(a.parts, s->parts, s->nparts * sizeof(s->parts[0]));
	a.text = s->text;
	/* the parser already refuses these; they stay errors here too */
	if ((a.text == IMAP_SECTION_MIME && a.nparts == 0) ||
	    (a.binary && a.text != IMAP_SECTION_NONE)) {
		*error_r = "Invalid section";
		return -1;
	}
	if (s->partial) {
		if (a.kind == FK_BINARY_SIZE || s->partial_count == 0) {
			*error_r = "Invalid partial";
			return -1;
		}
		a.partial = true;
		a.poff = s->partial_offset;
		a.pcount = s->partial_count;
	}

	struct buf name;
	buf_init(&name, 0);
	int ok = buf_append_str(&name, base) == 1 && buf_append(&name, "[", 1) == 1;
	for (unsigned k = 0; ok && k < a.nparts; k++)
		ok = buf_printf(&name, k == 0 ? "%u" : ".%u", (unsigned)a.parts[k]) == 1;
	if (ok && a.text != IMAP_SECTION_NONE)
		ok = buf_printf(&name, "%s%s", a.nparts > 0 ? "." : "", text_names[a.text]) == 1;
	if (a.text == IMAP_SECTION_HEADER_FIELDS || a.text == IMAP_SECTION_HEADER_FIELDS_NOT) {
		unsigned nf = 0, end = imap_token_skip(args, i);
		for (unsigned k = i + 1; k < end; k++)
			nf++;
		if (nf == 0) {
			buf_free(&name);
			*error_r = "Empty header field list";
			return -1;
		}
		a.fields = calloc(nf, sizeof(*a.fields));
		a.field_lens = calloc(nf, sizeof(*a.field_lens));
		ok = ok && a.fields != NULL && a.field_lens != NULL &&
		     buf_append(&name, " (", 2) == 1;
		for (unsigned k = i + 1; ok && k < end; k++) {
			const struct imap_token *ft = &args[k];
			if (ft->type == IMAP_TOKEN_LIST || ft->type == IMAP_TOKEN_SECTION ||
			    ft->type == IMAP_TOKEN_LITERAL_SINK || ft->data == NULL) {
				buf_free(&name);
				att_free(&a);
				*error_r = "Invalid header field name";
				return -1;
			}
			char *up = malloc(ft->len + 1);
			if (up == NULL) {
				ok = 0;
				break;
			}
			for (size_t c = 0; c < ft->len; c++) {
				char ch = ft->data[c];
				up[c] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
			}
			up[ft->len] = '\0';
			a.fields[a.nfields] = up;
			a.field_lens[a.nfields++] = ft->len;
			if (k > i + 1)
				ok = buf_append(&name, " ", 1) == 1;
			/* echoed as given: an atom as an atom, a string quoted */
			if (ok && ft->type == IMAP_TOKEN_ATOM && is_atom_text(up, ft->len))
				ok = buf_append(&name, up, ft->len) == 1;
			else if (ok)
				ok = mime_imap_append_string(&name, up, ft->len, true) == 1;
		}
		ok = ok && buf_append(&name, ")", 1) == 1;
	}
	ok = ok && buf_append(&name, "]", 1) == 1;
	if (!ok) {
		buf_free(&name);
		att_free(&a);
		*error_r = oom;
		return -1;
	}
	a.name = buf_steal(&name, NULL);
	if (!peek)
		f->sets_seen = true;
	if (fetch_add(f, &a) < 0) {
		*error_r = oom;
		return -1;
	}
	return 1;
}

static bool atom_is(const struct imap_token *t, const char *name)
{
	return t->type == IMAP_TOKEN_ATOM && t->len == strlen(name) &&
	       strncasecmp(t->data, name, t->len) == 0;
}

/* One fetch-att (an atom or a section). */
static int add_att(struct imap_fetch *f, const struct imap_token *args, unsigned i,
                   const char **error_r)
{
	const struct imap_token *t = &args[i];
	if (t->type == IMAP_TOKEN_SECTION)
		return add_section(f, args, i, error_r);
	if (t->type != IMAP_TOKEN_ATOM) {
		*error_r = "Invalid FETCH attribute";
		return -1;
	}
	static const struct {
		const char *name;
		enum fetch_kind kind;
	} simple[] = {
	    {"FLAGS", FK_FLAGS},
	    {"INTERNALDATE", FK_INTERNALDATE},
	    {"RFC822.SIZE", FK_RFC822_SIZE},
	    {"ENVELOPE", FK_ENVELOPE},
	    {"BODY", FK_BODY},
	    {"BODYSTRUCTURE", FK_BODYSTRUCTURE},
	    {"UID", FK_UID},
	    {"MODSEQ", FK_MODSEQ},
	};
	int r = 0;
	for (size_t k = 0; k < sizeof(simple) / sizeof(simple[0]); k++)
		if (atom_is(t, simple[k].name)) {
			r = add_simple(f, simple[k].kind);
			goto done;
		}
	if (atom_is(t, "RFC822"))
		r = add_rfc822(f, "RFC822", IMAP_SECTION_NONE, true);
	else if (atom_is(t, "RFC822.HEADER"))
		r = add_rfc822(f, "RFC822.HEADER", IMAP_SECTION_HEADER, false);
	else if (atom_is(t, "RFC822.TEXT"))
		r = add_rfc822(f, "RFC822.TEXT", IMAP_SECTION_TEXT, true);
	else if (atom_is(t, "ALL") || atom_is(t, "FAST") || atom_is(t, "FULL")) {
		*error_r = "FETCH macros cannot be combined with other attributes";
		return -1;
	} else {
		/* "FLAGS[1]", "RFC822.HEADER<0.5>": a known name with a section or
		 * a partial that only BODY and BINARY take */
		size_t n = strcspn(t->data, "[<");
		if (n < t->len) {
			for (size_t k = 0; k < sizeof(simple) / sizeof(simple[0]); k++)
				if (strlen(simple[k].name) == n &&
				    strncasecmp(t->data, simple[k].name, n) == 0)
					goto nonbody;
			if ((n == 6 && strncasecmp(t->data, "RFC822", 6) == 0) ||
			    (n == 13 && (strncasecmp(t->data, "RFC822.HEADER", 13) == 0)) ||
			    (n == 11 && strncasecmp(t->data, "RFC822.TEXT", 11) == 0))
				goto nonbody;
		}
		*error_r = "Unknown FETCH attribute";
		return -1;
	nonbody:
		*error_r = t->data[n] == '[' ? "Only BODY, BODY.PEEK and BINARY take a section"
		                             : "Only BODY and BINARY sections take a partial";
		return -1;
	}
done:
	if (r < 0) {
		*error_r = oom;
		return -1;
	}
	return 1;
}

/* "(" fetch-modifier *(SP fetch-modifier) ")" of RFC 4466 2.4 as RFC 7162
 * defines them: CHANGEDSINCE mod-sequence-value and VANISHED. */
static int parse_modifiers(struct imap_fetch *f, const struct imap_token *args, unsigned i,
                           bool uid, const char **error_r)
{
	unsigned end = imap_token_skip(args, i);
	bool changedsince = false;
	if (args[i].type != IMAP_TOKEN_LIST || args[i].span == 0) {
		*error_r = "Invalid FETCH modifiers";
		return -1;
	}
	for (unsigned k = i + 1; k < end; k++) {
		const struct imap_token *t = &args[k];
		if (atom_is(t, "CHANGEDSINCE") && !changedsince) {
			if (k + 1 >= end || args[k + 1].type != IMAP_TOKEN_ATOM ||
			    !(args[k + 1].flags & IMAP_ATOM_NUMBER)) {
				*error_r = "CHANGEDSINCE needs a mod-sequence value";
				return -1;
			}
			changedsince = true;
			f->changedsince = args[k + 1].num;
			f->wants_modseq = true;
			k++;
		} else if (atom_is(t, "VANISHED") && !f->vanished) {
			f->vanished = true;
		} else {
			*error_r = t->type == IMAP_TOKEN_ATOM &&
			                   (atom_is(t, "CHANGEDSINCE") || atom_is(t, "VANISHED"))
			               ? "Duplicate FETCH modifier"
			               : "Unknown FETCH modifier";
			return -1;
		}
	}
	/* RFC 7162 3.2.6: VANISHED only with CHANGEDSINCE, in UID FETCH */
	if (f->vanished && !uid) {
		*error_r = "VANISHED is only allowed with UID FETCH";
		return -1;
	}
	if (f->vanished && !changedsince) {
		*error_r = "VANISHED needs CHANGEDSINCE";
		return -1;
	}
	/* RFC 7162 3.1.4.1: CHANGEDSINCE implies MODSEQ in the response */
	if (changedsince && add_simple(f, FK_MODSEQ) < 0) {
		*error_r = oom;
		return -1;
	}
	return 1;
}

int imap_fetch_compile(const struct imap_token *args, unsigned i, unsigned end, bool uid,
                       struct imap_fetch **f_r, const char **error_r)
{
	*f_r = NULL;
	if (i >= end) {
		*error_r = "Missing FETCH attributes";
		return -1;
	}
	struct imap_fetch *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		*error_r = oom;
		return -1;
	}
	/* UID FETCH: UID answered first, whether or not asked (RFC 9051 6.4.9) */
	if (uid && add_simple(f, FK_UID) < 0) {
		*error_r = oom;
		goto fail;
	}
	const struct imap_token *t = &args[i];
	unsigned next = imap_token_skip(args, i);
	if (next > end) {
		*error_r = "Invalid FETCH attributes";
		goto fail;
	}
	if (atom_is(t, "ALL") || atom_is(t, "FAST") || atom_is(t, "FULL")) {
		/* RFC 9051 6.4.5 macros */
		if (add_simple(f, FK_FLAGS) < 0 || add_simple(f, FK_INTERNALDATE) < 0 ||
		    add_simple(f, FK_RFC822_SIZE) < 0 ||
		    (!atom_is(t, "FAST") && add_simple(f, FK_ENVELOPE) < 0) ||
		    (atom_is(t, "FULL") && add_simple(f, FK_BODY) < 0)) {
			*error_r = oom;
			goto fail;
		}
	} else if (t->type == IMAP_TOKEN_LIST) {
		if (t->span == 0) {
			*error_r = "Empty FETCH attribute list";
			goto fail;
		}
		for (unsigned k = i + 1; k < next; k = imap_token_skip(args, k)) {
			if (args[k].type == IMAP_TOKEN_LIST) {
				*error_r = "Invalid FETCH attribute";
				goto fail;
			}
			if (add_att(f, args, k, error_r) < 0)
				goto fail;
		}
	} else if (add_att(f, args, i, error_r) < 0) {
		goto fail;
	}
	if (next < end) {
		if (args[next].type != IMAP_TOKEN_LIST) {
			*error_r = "Unexpected arguments after FETCH attributes";
			goto fail;
		}
		if (parse_modifiers(f, args, next, uid, error_r) < 0)
			goto fail;
		if (imap_token_skip(args, next) != end) {
			*error_r = "Unexpected arguments after FETCH modifiers";
			goto fail;
		}
	}
	*f_r = f;
	return 1;
fail:
	imap_fetch_free(&f);
	return -1;
}

/* ---- transforms of section bytes ----
 * A section's octets are a range of the blob passed through one transform:
 * identity, the HEADER.FIELDS (.NOT) filter, or the base64 / quoted-printable
 * decoders of BINARY. Each takes its input in pieces of any size and keeps
 * bounded state, so a section is produced (or measured) in one pass of chunked
 * reads. */

enum xform_kind { XF_IDENT, XF_FIELDS, XF_BASE64, XF_QP };

/* Header field names longer than this match no requested name (RFC 5322 2.1.1
 * lines are at most 998 octets anyway). */
#define HF_NAME_MAX 1000
/* Blanks held back by the quoted-printable decoder (trailing white space is
 * removed, RFC 2045 6.7 (3)); a longer run goes out as it is. */
#define QP_WS_MAX 256

enum hf_state { HF_LINE_START, HF_NAME, HF_VALUE, HF_DONE };
enum qp_state { QP_TEXT, QP_EQ, QP_HEX1, QP_EQ_CR, QP_EQ_WS };

struct xform {
	enum xform_kind kind;
	const struct fetch_att *att; /* XF_FIELDS */
	/* XF_FIELDS */
	enum hf_state hf;
	bool include, last_lf, any;
	size_t nlen;
	char name[HF_NAME_MAX];
	/* XF_BASE64 */
	uint32_t acc;
	unsigned nq;
	/* XF_QP */
	enum qp_state qp;
	char hex1;
	size_t nws;
	char ws[QP_WS_MAX];
};

static void xform_init(struct xform *x, enum xform_kind kind, const struct fetch_att *att)
{
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	x->att = att;
	x->last_lf = true;
}

static int hf_emit(struct xform *x, struct buf *out, const void *p, size_t n)
{
	if (n == 0)
		return 1;
	x->any = true;
	x->last_lf = ((const char *)p)[n - 1] == '\n';
	return buf_append(out, p, n);
}

/* The field name x->name[0..nlen) (blanks before the colon removed, RFC 5322
 * 4.5): whether the field is answered. */
static bool hf_decide(const struct xform *x, bool have_name)
{
	bool not = x->att->text == IMAP_SECTION_HEADER_FIELDS_NOT;
	if (!have_name)
		return not ;
	size_t n = x->nlen;
	while (n > 0 && (x->name[n - 1] == ' ' || x->name[n - 1] == '\t'))
		n--;
	for (unsigned k = 0; k < x->att->nfields; k++)
		if (x->att->field_lens[k] == n && strncasecmp(x->att->fields[k], x->name, n) == 0)
			return !not ;
	return not ;
}

static int hf_feed(struct xform *x, const unsigned char *p, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = (char)p[i];
		switch (x->hf) {
		case HF_DONE:
			return 1;
		case HF_LINE_START:
			if (c == '\n') {
				/* the empty line: the section's own line end closes it */
				x->hf = HF_DONE;
				if (buf_append(out, "\n", 1) < 0)
					return -1;
				continue;
			}
			if (c == ' ' || c == '\t') {
				/* a continuation line belongs to the field before */
				if (x->nlen == 0 && !x->any)
					x->include = hf_decide(x, false);
				x->hf = HF_VALUE;
				if (x->include && hf_emit(x, out, &c, 1) < 0)
					return -1;
				continue;
			}
			x->hf = HF_NAME;
			x->nlen = 0;
			/* fall through */
		case HF_NAME:
			if (c == '\n' && x->nlen == 1 && x->name[0] == '\r') {
				x->hf = HF_DONE;
				if (buf_append(out, "\r\n", 2) < 0)
					return -1;
				continue;
			}
			if (c == ':') {
				x->include = hf_decide(x, true);
				x->hf = HF_VALUE;
				if (x->include && (hf_emit(x, out, x->name, x->nlen) < 0 ||
				                   hf_emit(x, out, &c, 1) < 0))
					return -1;
				continue;
			}
			if (c == '\n' || x->nlen == HF_NAME_MAX) {
				/* a line without a colon, or a name too long to match */
				x->include = hf_decide(x, false);
				if (x->include && (hf_emit(x, out, x->name, x->nlen) < 0 ||
				                   hf_emit(x, out, &c, 1) < 0))
					return -1;
				x->hf = c == '\n' ? HF_LINE_START : HF_VALUE;
				continue;
			}
			x->name[x->nlen++] = c;
			continue;
		case HF_VALUE:
			if (x->include && hf_emit(x, out, &c, 1) < 0)
				return -1;
			if (c == '\n')
				x->hf = HF_LINE_START;
			continue;
		}
	}
	return 1;
}

static int hf_finish(struct xform *x, struct buf *out)
{
	if (x->hf == HF_DONE)
		return 1;
	/* the section ended without an empty line (a message without a body) */
	if (x->hf == HF_NAME && x->nlen > 0) {
		x->include = hf_decide(x, false);
		if (x->include && hf_emit(x, out, x->name, x->nlen) < 0)
			return -1;
	}
	if (!x->last_lf && buf_append(out, "\r\n", 2) < 0)
		return -1;
	x->hf = HF_DONE;
	return buf_append(out, "\r\n", 2);
}

/* base64 alphabet values, -1 outside it */
static const signed char b64_values[256] = {
    ['A'] = 0,  ['B'] = 1,  ['C'] = 2,  ['D'] = 3,  ['E'] = 4,  ['F'] = 5,  ['G'] = 6,  ['H'] = 7,
    ['I'] = 8,  ['J'] = 9,  ['K'] = 10, ['L'] = 11, ['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15,
    ['Q'] = 16, ['R'] = 17, ['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
    ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29, ['e'] = 30, ['f'] = 31,
    ['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35, ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39,
    ['o'] = 40, ['p'] = 41, ['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47,
    ['w'] = 48, ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53, ['2'] = 54, ['3'] = 55,
    ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59, ['8'] = 60, ['9'] = 61, ['+'] = 62, ['/'] = 63,
};

/* The table's zero entries other than 'A' are outside the alphabet. */
static int b64_value(unsigned char c)
{
	int v = b64_values[c];
	return v != 0 || c == 'A' ? v : -1;
}

/* A quantum cut short by "=" or the end: its whole octets. */
static int b64_flush(struct xform *x, struct buf *out)
{
	unsigned char o[2];
	size_t n = 0;
	if (x->nq == 2) {
		o[0] = (unsigned char)(x->acc >> 4);
		n = 1;
	} else if (x->nq == 3) {
		o[0] = (unsigned char)(x->acc >> 10);
		o[1] = (unsigned char)(x->acc >> 2);
		n = 2;
	}
	x->nq = 0;
	x->acc = 0;
	return n > 0 ? buf_append(out, o, n) : 1;
}

/* Lenient like mail readers (RFC 2045 6.8): characters outside the alphabet
 * are ignored; "=" ends a quantum. */
static int b64_feed(struct xform *x, const unsigned char *p, size_t len, struct buf *out)
{
	unsigned char o[3 * 256];
	size_t no = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(p[i]);
		if (v >= 0) {
			x->acc = (x->acc << 6) | (uint32_t)v;
			if (++x->nq == 4) {
				o[no++] = (unsigned char)(x->acc >> 16);
				o[no++] = (unsigned char)(x->acc >> 8);
				o[no++] = (unsigned char)x->acc;
				x->nq = 0;
				x->acc = 0;
				if (no == sizeof(o)) {
					if (buf_append(out, o, no) < 0)
						return -1;
					no = 0;
				}
			}
		} else if (p[i] == '=') {
			if ((no > 0 && buf_append(out, o, no) < 0) || b64_flush(x, out) < 0)
				return -1;
			no = 0;
		}
	}
	return no > 0 ? buf_append(out, o, no) : 1;
}

static int qp_put(struct buf *out, const void *p, size_t n)
{
	return n > 0 ? buf_append(out, p, n) : 1;
}

/* RFC 2045 6.7: "=XX" octets, "=" at a line end a soft line break (blanks
 * between them allowed), trailing blanks of a line removed; what is not valid
 * (a "=" not followed by two hex digits) is kept as it is. Line ends stay as
 * they are (CRLF or LF). */
static int qp_feed(struct xform *x, const unsigned char *p, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = (char)p[i];
	again:
		switch (x->qp) {
		case QP_TEXT:
			if (x->nws == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n' &&
			    c != '=') {
				/* a run of plain octets goes out in one append */
				size_t e = i + 1;
				while (e < len && p[e] != ' ' && p[e] != '\t' && p[e] != '\r' &&
				       p[e] != '\n' && p[e] != '=')
					e++;
				if (buf_append(out, p + i, e - i) < 0)
					return -1;
				i = e - 1;
				continue;
			}
			if (c == ' ' || c == '\t') {
				if (x->nws == QP_WS_MAX) {
					if (qp_put(out, x->ws, x->nws) < 0)
						return -1;
					x->nws = 0;
				}
				x->ws[x->nws++] = c;
				continue;
			}
			if (c == '\r' || c == '\n') {
				x->nws = 0; /* trailing blanks go */
			} else if (qp_put(out, x->ws, x->nws) < 0) {
				return -1;
			} else {
				x->nws = 0;
			}
			if (c == '=') {
				x->qp = QP_EQ;
				continue;
			}
			if (buf_append(out, &c, 1) < 0)
				return -1;
			continue;
		case QP_EQ:
			if (str_hexval((unsigned char)c) >= 0) {
				x->hex1 = c;
				x->qp = QP_HEX1;
				continue;
			}
			if (c == '\n') {
				x->qp = QP_TEXT;
				continue;
			}
			if (c == '\r') {
				x->qp = QP_EQ_CR;
				continue;
			}
			if (c == ' ' || c == '\t') {
				x->qp = QP_EQ_WS;
				x->ws[x->nws++] = c;
				continue;
			}
			if (buf_append(out, "=", 1) < 0)
				return -1;
			x->qp = QP_TEXT;
			goto again;
		case QP_HEX1:
			x->qp = QP_TEXT;
			if (str_hexval((unsigned char)c) >= 0) {
				unsigned char o =
				    (unsigned char)(str_hexval((unsigned char)x->hex1) * 16 +
				                    str_hexval((unsigned char)c));
				if (buf_append(out, &o, 1) < 0)
					return -1;
				continue;
			}
			if (buf_append(out, "=", 1) < 0 || buf_append(out, &x->hex1, 1) < 0)
				return -1;
			goto again;
		case QP_EQ_CR:
			x->qp = QP_TEXT;
			if (c == '\n')
				continue;
			if (buf_append(out, "=\r", 2) < 0)
				return -1;
			goto again;
		case QP_EQ_WS:
			if ((c == ' ' || c == '\t') && x->nws < QP_WS_MAX) {
				x->ws[x->nws++] = c;
				continue;
			}
			if (c == '\n' || c == '\r') {
				/* "=" and padding at a line end: a soft line break */
				x->nws = 0;
				x->qp = c == '\r' ? QP_EQ_CR : QP_TEXT;
				continue;
			}
			if (buf_append(out, "=", 1) < 0 || qp_put(out, x->ws, x->nws) < 0)
				return -1;
			x->nws = 0;
			x->qp = QP_TEXT;
			goto again;
		}
	}
	return 1;
}

static int qp_finish(struct xform *x, struct buf *out)
{
	int r = 1;
	switch (x->qp) {
	case QP_TEXT:
	case QP_EQ_WS:
		break; /* trailing blanks / a soft break at the end */
	case QP_EQ:
		r = buf_append(out, "=", 1);
		break;
	case QP_HEX1:
		r = buf_append(out, "=", 1) == 1 ? buf_append(out, &x->hex1, 1) : -1;
		break;
	case QP_EQ_CR:
		r = buf_append(out, "=\r", 2);
		break;
	}
	x->nws = 0;
	x->qp = QP_TEXT;
	return r;
}

static int xform_feed(struct xform *x, const void *p, size_t len, struct buf *out)
{
	switch (x->kind) {
	case XF_IDENT:
		return len > 0 ? buf_append(out, p, len) : 1;
	case XF_FIELDS:
		return hf_feed(x, p, len, out);
	case XF_BASE64:
		return b64_feed(x, p, len, out);
	case XF_QP:
		return qp_feed(x, p, len, out);
	}
	return -1;
}

static int xform_finish(struct xform *x, struct buf *out)
{
	switch (x->kind) {
	case XF_FIELDS:
		return hf_finish(x, out);
	case XF_BASE64:
		return b64_flush(x, out);
	case XF_QP:
		return qp_finish(x, out);
	default:
		return 1;
	}
}

/* ---- writing ---- */

/* Where a section's octets come from. */
struct section_src {
	bool nil;          /* no such part: empty (BINARY.SIZE: 0) */
	uint64_t off, len; /* the range of the message */
	enum xform_kind xf;
};

/* A literal being streamed: the transform over [src_pos, src_end) of the
 * message, its output cut to the window [skip, skip + remain). */
struct stream {
	struct xform x;
	uint64_t src_pos, src_end;
	uint64_t out_pos; /* transformed octets produced so far */
	uint64_t skip;    /* first octet of the window */
	uint64_t remain;  /* window octets not yet written */
	bool finished;    /* xform_finish done */
	struct buf pending;
	size_t pending_off;
};

struct imap_fetch_cursor {
	bool started; /* the message opened (if needed) and "* n FETCH (" written */
	bool msg_open;
	struct imap_msg msg;
	unsigned att; /* the item being written */
	bool in_lit;  /* its literal is being streamed */
	struct stream s;
	char *chunk; /* IMAP_FETCH_CHUNK octets for reads */
};

void imap_fetch_cursor_free(struct imap_fetch_cursor **cur)
{
	if (cur == NULL || *cur == NULL)
		return;
	struct imap_fetch_cursor *c = *cur;
	if (c->msg_open)
		imap_msg_close(&c->msg);
	buf_free(&c->s.pending);
	free(c->chunk);
	free(c);
	*cur = NULL;
}

static void set_error(char **error_r, const char *fmt, const char *arg)
{
	if (error_r == NULL)
		return;
	char msg[256];
	snprintf(msg, sizeof(msg), fmt, arg);
	free(*error_r);
	*error_r = strdup(msg);
}

static bool str_eq(const struct mime_tree *t, struct mime_str s, const char *lit)
{
	size_t n;
	const char *p = mime_tree_str(t, s, &n);
	return p != NULL && n == strlen(lit) && strncasecmp(p, lit, n) == 0;
}

/* The transform BINARY needs for part p: 1 with *xf, 0 an unknown encoding. */
static int binary_xform(const struct mime_tree *t, uint32_t p, enum xform_kind *xf)
{
	const struct mime_part *pt = &t->parts[p];
	*xf = XF_IDENT;
	if (pt->encoding.off == MIME_NONE || (pt->flags & MIME_PART_MULTIPART) ||
	    str_eq(t, pt->encoding, "7bit") || str_eq(t, pt->encoding, "8bit") ||
	    str_eq(t, pt->encoding, "binary"))
		return 1;
	if (str_eq(t, pt->encoding, "base64")) {
		*xf = XF_BASE64;
		return 1;
	}
	if (str_eq(t, pt->encoding, "quoted-printable")) {
		*xf = XF_QP;
		return 1;
	}
	return 0;
}

/* Resolves a section of the open message. 1 ok, 0 unknown content-transfer-
 * encoding (BINARY), -1 error. */
static int section_resolve(const struct fetch_att *a, struct imap_msg *m, struct section_src *s,
                           char **error_r)
{
	memset(s, 0, sizeof(*s));
	s->xf = XF_IDENT;
	if (a->nparts == 0 && a->text == IMAP_SECTION_NONE) {
		s->len = imap_msg_size(m);
		return 1;
	}
	const struct mime_tree *t = &m->tree;
	if (!m->have_tree || t->nparts == 0) {
		set_error(error_r, "%s", "no MIME structure");
		return -1;
	}
	uint32_t p = 0;
	if (a->nparts > 0) {
		char spec[IMAP_SECTION_PARTS_MAX * 11];
		size_t n = 0;
		for (unsigned k = 0; k < a->nparts; k++)
			n += (size_t)snprintf(spec + n, sizeof(spec) - n, k == 0 ? "%u" : ".%u",
			                      (unsigned)a->parts[k]);
		if (mime_tree_section(t, spec, n, &p) != 1) {
			s->nil = true;
			return 1;
		}
	}
	const struct mime_part *pt = &t->parts[p];
	switch (a->text) {
	case IMAP_SECTION_NONE:
		s->off = pt->header_start + pt->header_len;
		s->len = pt->body_len;
		if (a->binary && binary_xform(t, p, &s->xf) == 0) {
			size_t n;
			const char *e = mime_tree_str(t, pt->encoding, &n);
			char enc[64];
			snprintf(enc, sizeof(enc), "%.*s", (int)(n < 40 ? n : 40), e);
			set_error(error_r, "Unknown Content-Transfer-Encoding %s", enc);
			return 0;
		}
		return 1;
	case IMAP_SECTION_MIME:
		s->off = pt->header_start;
		s->len = pt->header_len;
		return 1;
	default:
		break;
	}
	/* HEADER, HEADER.FIELDS (.NOT), TEXT: of the message itself, or of the
	 * message embedded in a message/rfc822 part (RFC 9051 6.4.5); of any other
	 * part they are empty */
	if (a->nparts > 0) {
		if (!(pt->flags & MIME_PART_MESSAGE) || pt->child == MIME_NONE) {
			s->off = pt->header_start;
			s->len = 0;
			return 1;
		}
		pt = &t->parts[pt->child];
	}
	if (a->text == IMAP_SECTION_TEXT) {
		s->off = pt->header_start + pt->header_len;
		s->len = pt->body_len;
	} else {
		s->off = pt->header_start;
		s->len = pt->header_len;
		if (a->text != IMAP_SECTION_HEADER)
			s->xf = XF_FIELDS;
	}
	return 1;
}

static void read_error(char **error_r)
{
	set_error(error_r, "reading message: %s", strerror(errno));
}

/* Runs the whole source through its transform: *total_r octets come out, and
 * *nul_r says whether any of the window [woff, woff + wlen) is NUL. 1, -1. */
static int section_measure(struct imap_fetch_cursor *c, const struct fetch_att *a,
                           const struct section_src *s, uint64_t woff, uint64_t wlen,
                           uint64_t *total_r, bool *nul_r, char **error_r)
{
	struct xform x;
	xform_init(&x, s->xf, a);
	struct buf out;
	buf_init(&out, 0);
	uint64_t pos = s->off, end = s->off + s->len, total = 0;
	bool nul = false, fin = false;
	int rc = 1;
	while (rc == 1) {
		out.len = 0;
		if (pos < end) {
			size_t want =
			    end - pos < IMAP_FETCH_CHUNK ? (size_t)(end - pos) : IMAP_FETCH_CHUNK;
			long n = imap_msg_read(&c->msg, c->chunk, want, pos);
			if (n <= 0) {
				/* the tree said more octets were there */
				if (n < 0)
					read_error(error_r);
				else
					set_error(error_r, "%s",
					          "message shorter than its structure");
				rc = -1;
				break;
			}
			pos += (uint64_t)n;
			if (s->xf == XF_IDENT) {
				total += (uint64_t)n;
				/* only the window matters for NUL */
				uint64_t b = total - (uint64_t)n;
				for (long k = 0; k < n && nul_r != NULL && !nul; k++)
					if (b + (uint64_t)k >= woff &&
					    b + (uint64_t)k - woff < wlen && c->chunk[k] == '\0')
						nul = true;
				continue;
			}
			if (xform_feed(&x, c->chunk, (size_t)n, &out) < 0)
				rc = -2;
		} else if (!fin) {
			fin = true;
			if (xform_finish(&x, &out) < 0)
				rc = -2;
		} else {
			break;
		}
		if (rc != 1)
			break;
		for (size_t k = 0; k < out.len && nul_r != NULL && !nul; k++)
			if (total + k >= woff && total + k - woff < wlen && out.data[k] == '\0')
				nul = true;
		total += out.len;
	}
	buf_free(&out);
	if (rc == -2) {
		set_error(error_r, "%s", "out of memory");
		rc = -1;
	}
	*total_r = total;
	if (nul_r != NULL)
		*nul_r = nul;
	return rc;
}

static int out_add(struct evbuffer *out, const void *p, size_t n, char **error_r)
{
	if (n > 0 && evbuffer_add(out, p, n) != 0) {
		set_error(error_r, "%s", "out of memory");
		return -1;
	}
	return 1;
}

static int out_printf(struct evbuffer *out, char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int out_printf(struct evbuffer *out, char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	if (r < 0) {
		set_error(error_r, "%s", "out of memory");
		return -1;
	}
	return 1;
}

/* ENVELOPE of the header section hdr[0..len) (src/mail/envelope.h). */
static int fetch_envelope(const char *hdr, size_t len, bool utf8, struct buf *out)
{
	return mail_envelope_imap(hdr, len, utf8, out);
}

/* The envelope of the message whose root is part (the message itself or one
 * embedded in a message/rfc822 part), its header read from the blob. */
struct envelope_ctx {
	struct imap_msg *msg;
	bool utf8;
};

static int envelope_part(void *ctx, const struct mime_tree *tree, uint32_t part, struct buf *out)
{
	struct envelope_ctx *e = ctx;
	const struct mime_part *pt = &tree->parts[part];
	uint64_t len = pt->header_len;
	if (len > IMAP_FETCH_ENVELOPE_HEADER_MAX)
		len = IMAP_FETCH_ENVELOPE_HEADER_MAX;
	char *hdr = malloc((size_t)len + 1);
	if (hdr == NULL)
		return -1;
	long n = imap_msg_read(e->msg, hdr, (size_t)len, pt->header_start);
	int r = n < 0 ? -1 : fetch_envelope(hdr, (size_t)n, e->utf8, out);
	free(hdr);
	return r;
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* A non-literal item, whole. 1, -1. */
static int write_simple(const struct fetch_att *a, struct imap_fetch_cursor *c,
                        const struct imap_fetch_item *m, bool utf8, struct evbuffer *out,
                        char **error_r)
{
	switch (a->kind) {
	case FK_FLAGS:
		return out_printf(out, error_r, "FLAGS (%s)", m->flags != NULL ? m->flags : "");
	case FK_INTERNALDATE: {
		/* date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP
		 * time SP zone DQUOTE; we keep UTC */
		time_t tt = (time_t)m->internal_date;
		struct tm tm;
		if (gmtime_r(&tt, &tm) == NULL) {
			tt = 0;
			gmtime_r(&tt, &tm);
		}
		return out_printf(out, error_r, "INTERNALDATE \"%2d-%s-%04d %02d:%02d:%02d +0000\"",
		                  tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
		                  tm.tm_min, tm.tm_sec);
	}
	case FK_RFC822_SIZE:
		return out_printf(out, error_r, "RFC822.SIZE %llu", (unsigned long long)m->size);
	case FK_UID:
		return out_printf(out, error_r, "UID %u", (unsigned)m->uid);
	case FK_MODSEQ:
		/* RFC 7162 3.1.4.1: MODSEQ (n) */
		return out_printf(out, error_r, "MODSEQ (%llu)", (unsigned long long)m->modseq);
	case FK_ENVELOPE:
	case FK_BODY:
	case FK_BODYSTRUCTURE: {
		struct envelope_ctx e = {&c->msg, utf8};
		struct buf b;
		buf_init(&b, 0);
		int r;
		if (a->kind == FK_ENVELOPE) {
			r = buf_append_str(&b, "ENVELOPE ");
			if (r == 1)
				r = envelope_part(&e, &c->msg.tree, 0, &b);
		} else {
			r = buf_append_str(&b, a->kind == FK_BODY ? "BODY " : "BODYSTRUCTURE ");
			unsigned fl = (a->kind == FK_BODYSTRUCTURE ? MIME_IMAP_EXTENDED : 0) |
			              (utf8 ? MIME_IMAP_UTF8 : 0);
			if (r == 1)
				r = mime_tree_imap_body(&c->msg.tree, 0, fl, envelope_part, &e, &b);
		}
		if (r == 1)
			r = out_add(out, b.data, b.len, error_r);
		else
			set_error(error_r, "%s",
			          a->kind == FK_BODY            ? "writing BODY failed"
			          : a->kind == FK_BODYSTRUCTURE ? "writing BODYSTRUCTURE failed"
			                                        : "writing ENVELOPE failed");
		buf_free(&b);
		return r;
	}
	default:
		return -1;
	}
}

/* Starts a section item: writes its name and literal size, and sets up the
 * stream (c->in_lit) when there are octets to write. 1, -1. */
static int section_start(const struct fetch_att *a, struct imap_fetch_cursor *c,
                         struct evbuffer *out, char **error_r)
{
	struct section_src s;
	int r = section_resolve(a, &c->msg, &s, error_r);
	if (r <= 0)
		return -1; /* unknown encodings were found before the response began */
	if (a->kind == FK_BINARY_SIZE) {
		uint64_t total = s.nil ? 0 : s.len;
		if (!s.nil && s.xf != XF_IDENT &&
		    section_measure(c, a, &s, 0, 0, &total, NULL, error_r) < 0)
			return -1;
		return out_printf(out, error_r, "%s %llu", a->name, (unsigned long long)total);
	}
	if (out_add(out, a->name, strlen(a->name), error_r) < 0)
		return -1;
	/* RFC 9051 7.5.2: a partial answer names only its origin octet */
	if (a->partial && out_printf(out, error_r, "<%llu>", (unsigned long long)a->poff) < 0)
		return -1;
	/* a part that does not exist is empty, as Dovecot answers it */
	if (s.nil)
		return out_add(out, " {0}\r\n", 6, error_r);
	uint64_t total = s.len, woff = 0, wlen;
	bool nul = false;
	if (a->partial)
		woff = a->poff;
	uint64_t ww = a->partial ? a->pcount : UINT64_MAX;
	if (s.xf != XF_IDENT &&
	    section_measure(c, a, &s, woff, ww, &total, a->binary ? &nul : NULL, error_r) < 0)
		return -1;
	/* a partial whose origin is past the end is empty (RFC 9051 6.4.5) */
	wlen = woff >= total ? 0 : total - woff;
	if (a->partial && wlen > a->pcount)
		wlen = a->pcount;
	if (s.xf == XF_IDENT && a->binary && wlen > 0) {
		/* only the octets sent are scanned for NUL */
		struct section_src win = s;
		uint64_t ignored;
		win.off += woff;
		win.len = wlen;
		if (section_measure(c, a, &win, 0, wlen, &ignored, &nul, error_r) < 0)
			return -1;
	}
	/* RFC 3516 4.2: literal8 for what may hold NUL octets; like Dovecot, for
	 * every decoded section, and for an identity one that does hold a NUL */
	if (s.xf == XF_BASE64 || s.xf == XF_QP)
		nul = true;
	if (out_printf(out, error_r, " %s{%llu}\r\n", nul ? "~" : "", (unsigned long long)wlen) < 0)
		return -1;
	if (wlen == 0)
		return 1;
	struct stream *st = &c->s;
	xform_init(&st->x, s.xf, a);
	st->finished = false;
	st->out_pos = 0;
	st->pending.len = 0;
	st->pending_off = 0;
	if (s.xf == XF_IDENT) {
		/* identity: the window is a range of the message */
		st->src_pos = s.off + woff;
		st->src_end = st->src_pos + wlen;
		st->skip = 0;
	} else {
		st->src_pos = s.off;
		st->src_end = s.off + s.len;
		st->skip = woff;
	}
	st->remain = wlen;
	c->in_lit = true;
	return 1;
}

/* Streams the current literal until it is done or `room` octets went out.
 * 1 done, 0 room used up, -1 error. */
static int section_stream(struct imap_fetch_cursor *c, struct evbuffer *out, size_t *room,
                          char **error_r)
{
	struct stream *st = &c->s;
	while (st->remain > 0) {
		size_t have = st->pending.len - st->pending_off;
		if (have > 0) {
			if (*room == 0)
				return 0;
			size_t n = have < *room ? have : *room;
			if ((uint64_t)n > st->remain)
				n = (size_t)st->remain;
			if (out_add(out, st->pending.data + st->pending_off, n, error_r) < 0)
				return -1;
			st->pending_off += n;
			st->remain -= n;
			*room -= n;
			continue;
		}
		st->pending.len = 0;
		st->pending_off = 0;
		uint64_t before = st->out_pos;
		int r;
		if (st->src_pos < st->src_end) {
			size_t want = st->src_end - st->src_pos < IMAP_FETCH_CHUNK
			                  ? (size_t)(st->src_end - st->src_pos)
			                  : IMAP_FETCH_CHUNK;
			long n = imap_msg_read(&c->msg, c->chunk, want, st->src_pos);
			if (n <= 0) {
				if (n < 0)
					read_error(error_r);
				else
					set_error(error_r, "%s",
					          "message shorter than its structure");
				return -1;
			}
			st->src_pos += (uint64_t)n;
			r = xform_feed(&st->x, c->chunk, (size_t)n, &st->pending);
		} else if (!st->finished) {
			st->finished = true;
			r = xform_finish(&st->x, &st->pending);
		} else {
			/* the measured size and the stream disagree: cannot happen, as
			 * both run the same transform over the same immutable bytes */
			set_error(error_r, "%s", "section shorter than measured");
			return -1;
		}
		if (r < 0) {
			set_error(error_r, "%s", "out of memory");
			return -1;
		}
		st->out_pos += st->pending.len;
		/* cut to the window */
		if (st->out_pos <= st->skip) {
			st->pending.len = 0;
		} else if (before < st->skip) {
			st->pending_off = (size_t)(st->skip - before);
		}
	}
	return 1;
}

int imap_fetch_write(const struct imap_fetch *f, struct store *st, const struct imap_fetch_item *m,
                     bool utf8, struct imap_fetch_cursor **cur, struct evbuffer *out, size_t budget,
                     char **error_r)
{
	struct imap_fetch_cursor *c = *cur;
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			set_error(error_r, "%s", "out of memory");
			return -1;
		}
		c->msg.r.fd = -1;
		buf_init(&c->s.pending, 0);
		*cur = c;
	}
	size_t room = budget;
	int rc;
	if (!c->started) {
		if (f->needs_msg) {
			c->chunk = malloc(IMAP_FETCH_CHUNK);
			if (c->chunk == NULL) {
				set_error(error_r, "%s", "out of memory");
				rc = -1;
				goto end;
			}
			int r = imap_msg_open(&c->msg, st, m->blob_id, f->needs_tree, error_r);
			if (r <= 0) {
				rc = r == 0 ? 1 : -1; /* gone: no response */
				goto end;
			}
			c->msg_open = true;
			/* RFC 3516 4.3: an unknown encoding is a NO before anything */
			for (unsigned k = 0; k < f->n; k++) {
				const struct fetch_att *a = &f->atts[k];
				struct section_src s;
				if ((a->kind == FK_SECTION || a->kind == FK_BINARY_SIZE) &&
				    a->binary) {
					r = section_resolve(a, &c->msg, &s, error_r);
					if (r <= 0) {
						rc = r == 0 ? IMAP_FETCH_UNKNOWN_CTE : -1;
						goto end;
					}
				}
			}
		}
		c->started = true;
		if (out_printf(out, error_r, "* %u FETCH (", (unsigned)m->seq) < 0) {
			rc = -1;
			goto end;
		}
	}
	size_t start_len = evbuffer_get_length(out);
	while (c->att < f->n) {
		const struct fetch_att *a = &f->atts[c->att];
		if (!c->in_lit) {
			size_t used = evbuffer_get_length(out) - start_len;
			if (used >= budget) {
				rc = 0;
				goto end;
			}
			room = budget - used;
			if (c->att > 0 && out_add(out, " ", 1, error_r) < 0) {
				rc = -1;
				goto end;
			}
			int r = a->kind == FK_SECTION || a->kind == FK_BINARY_SIZE
			            ? section_start(a, c, out, error_r)
			            : write_simple(a, c, m, utf8, out, error_r);
			if (r < 0) {
				rc = -1;
				goto end;
			}
			if (!c->in_lit) {
				c->att++;
				continue;
			}
		}
		size_t used = evbuffer_get_length(out) - start_len;
		room = used >= budget ? 0 : budget - used;
		int r = section_stream(c, out, &room, error_r);
		if (r < 0) {
			rc = -1;
			goto end;
		}
		if (r == 0) {
			rc = 0;
			goto end;
		}
		c->in_lit = false;
		c->att++;
	}
	rc = 1;
	if (m->add_flags && !(f->simple_seen & (1u << FK_FLAGS))) {
		struct fetch_att a = {.kind = FK_FLAGS};
		rc = out_add(out, " ", 1, error_r) < 0 ? -1
		                                       : write_simple(&a, c, m, utf8, out, error_r);
	}
	if (rc == 1 && m->add_modseq && !(f->simple_seen & (1u << FK_MODSEQ))) {
		struct fetch_att a = {.kind = FK_MODSEQ};
		rc = out_add(out, " ", 1, error_r) < 0 ? -1
		                                       : write_simple(&a, c, m, utf8, out, error_r);
	}
	if (rc == 1)
		rc = out_add(out, ")\r\n", 3, error_r) < 0 ? -1 : 1;
end:
	if (rc != 0)
		imap_fetch_cursor_free(cur);
	return rc;
}
