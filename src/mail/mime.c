/* MIME structure of a message: see mime.h and docs/mime.md. */
#include "mail/mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "mail/address.h"

/* Trees loaded from the cache or built with user limits never nest deeper
 * than this: the IMAP writer recurses once per level. */
#define MIME_DEPTH_CAP 1000

void mime_limits_default(struct mime_limits *limits)
{
	limits->max_depth = 100;
	limits->max_parts = 10000;
	limits->max_header = 64 * 1024;
	limits->max_params = 64;
	limits->max_param_len = 4096;
	limits->max_boundary = 200;
}

/* ---- tree ---- */

void mime_tree_init(struct mime_tree *tree)
{
	memset(tree, 0, sizeof(*tree));
	buf_init(&tree->strings, UINT32_MAX - 1);
}

void mime_tree_free(struct mime_tree *tree)
{
	free(tree->parts);
	free(tree->params);
	buf_free(&tree->strings);
	mime_tree_init(tree);
}

const char *mime_tree_str(const struct mime_tree *tree, struct mime_str s, size_t *len_r)
{
	if (s.off == MIME_NONE) {
		*len_r = 0;
		return NULL;
	}
	*len_r = s.len;
	return tree->strings.data != NULL ? tree->strings.data + s.off : "";
}

static bool str_is(const struct mime_tree *tree, struct mime_str s, const char *lit)
{
	size_t len;
	const char *v = mime_tree_str(tree, s, &len);
	return v != NULL && len == strlen(lit) && memcmp(v, lit, len) == 0;
}

const char *mime_tree_param(const struct mime_tree *tree, uint32_t first, uint32_t count,
                            const char *name, size_t *len_r)
{
	for (uint32_t i = 0; i < count && first + i < tree->nparams; i++) {
		const struct mime_param *pm = &tree->params[first + i];
		if (str_is(tree, pm->name, name))
			return mime_tree_str(tree, pm->value, len_r);
	}
	*len_r = 0;
	return NULL;
}

static const struct mime_str mime_str_none = {MIME_NONE, 0};

/* Appends s to the string pool. 1 ok, -1 out of memory (or pool full). */
static int tree_str_add(struct mime_tree *tree, const void *s, size_t len, struct mime_str *r)
{
	if (tree->strings.len > UINT32_MAX - 2 - len)
		return -1;
	uint32_t off = (uint32_t)tree->strings.len;
	if (len > 0 && buf_append(&tree->strings, s, len) < 0)
		return -1;
	r->off = off;
	r->len = (uint32_t)len;
	return 1;
}

static int tree_param_add(struct mime_tree *tree, struct mime_str name, struct mime_str value)
{
	if (tree->nparams == tree->params_cap) {
		if (tree->params_cap > UINT32_MAX / 4)
			return -1;
		uint32_t cap = tree->params_cap ? tree->params_cap * 2 : 16;
		struct mime_param *n = realloc(tree->params, (size_t)cap * sizeof(*n));
		if (n == NULL)
			return -1;
		tree->params = n;
		tree->params_cap = cap;
	}
	tree->params[tree->nparams].name = name;
	tree->params[tree->nparams].value = value;
	tree->nparams++;
	return 1;
}

static uint32_t tree_part_add(struct mime_tree *tree)
{
	if (tree->nparts == tree->parts_cap) {
		if (tree->parts_cap > UINT32_MAX / 4)
			return MIME_NONE;
		uint32_t cap = tree->parts_cap ? tree->parts_cap * 2 : 8;
		struct mime_part *n = realloc(tree->parts, (size_t)cap * sizeof(*n));
		if (n == NULL)
			return MIME_NONE;
		tree->parts = n;
		tree->parts_cap = cap;
	}
	struct mime_part *pt = &tree->parts[tree->nparts];
	memset(pt, 0, sizeof(*pt));
	pt->parent = pt->child = pt->next = MIME_NONE;
	pt->type = pt->subtype = pt->encoding = pt->id = pt->description = pt->md5 =
	    pt->disposition = pt->location = mime_str_none;
	return tree->nparts++;
}

/* ---- field values (RFC 2045 5.1, 6.1, RFC 2183, RFC 2231) ---- */

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 2045 5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or
 * tspecials>. Octets >= 0x80 are accepted as token octets (8-bit headers). */
static bool is_token(unsigned char c)
{
	if (c <= 0x20 || c == 0x7f)
		return false;
	return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* Skips blanks, line ends and (nested) comments. */
static size_t skip_cfws(const char *v, size_t n, size_t i)
{
	while (i < n) {
		unsigned char c = (unsigned char)v[i];
		if (is_wsp(c)) {
			i++;
		} else if (c == '(') {
			unsigned depth = 0;
			while (i < n) {
				if (v[i] == '\\' && i + 1 < n) {
					i += 2;
					continue;
				}
				if (v[i] == '(')
					depth++;
				else if (v[i] == ')' && --depth == 0) {
					i++;
					break;
				}
				i++;
			}
		} else {
			break;
		}
	}
	return i;
}

static size_t scan_token(const char *v, size_t n, size_t i)
{
	while (i < n && is_token((unsigned char)v[i]))
		i++;
	return i;
}

static void lower(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
}

/* Appends the content of the quoted string starting at v[i] == '"' to out
 * (quoted-pairs unescaped, folding removed); returns the index after it (an
 * unterminated string runs to the end). */
static size_t scan_quoted(const char *v, size_t n, size_t i, struct buf *out, int *err)
{
	i++;
	while (i < n && v[i] != '"') {
		char c = v[i];
		if (c == '\\' && i + 1 < n) {
			c = v[++i];
		} else if (c == '\r' || c == '\n') {
			i++;
			continue;
		}
		if (c != '\0' && buf_append(out, &c, 1) < 0)
			*err = 1;
		i++;
	}
	return i < n ? i + 1 : i;
}

/* Unfolded, trimmed copy of a field value (line ends and NULs removed). */
static int add_unstructured(struct mime_tree *tree, const char *v, size_t n, struct mime_str *r)
{
	size_t a = 0, b = n;
	while (a < b && is_wsp((unsigned char)v[a]))
		a++;
	while (b > a && is_wsp((unsigned char)v[b - 1]))
		b--;
	if (a == b)
		return 1; /* empty: absent */
	struct buf tmp;
	buf_init(&tmp, 0);
	for (size_t i = a; i < b; i++) {
		char c = v[i];
		if (c == '\0' || c == '\n' || (c == '\r' && i + 1 < b && v[i + 1] == '\n'))
			continue;
		if (buf_append(&tmp, &c, 1) < 0) {
			buf_free(&tmp);
			return -1;
		}
	}
	int rc = tree_str_add(tree, tmp.data, tmp.len, r);
	buf_free(&tmp);
	return rc;
}

/* A parameter as written, before RFC 2231 merging. */
struct raw_param {
	size_t name_off, name_len; /* base name (lower-cased) in the scratch buffer */
	size_t val_off, val_len;
	int section;   /* -1: not an RFC 2231 section */
	bool extended; /* name ended in '*': charset'language'%-encoded */
	bool used;
};

static int append_pct_decoded(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int h, l;
		if (c == '%' && i + 2 < n && (h = str_hexval((unsigned char)s[i + 1])) >= 0 &&
		    (l = str_hexval((unsigned char)s[i + 2])) >= 0) {
			c = (char)(h * 16 + l);
			i += 2;
		}
		if (c == '\0')
			continue;
		if (buf_append(out, &c, 1) < 0)
			return -1;
	}
	return 1;
}

static bool valid_utf8(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t l = mail_utf8_seq_len((const unsigned char *)s + i, n - i);
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}

/* Converts in[0..n) from charset to UTF-8 into out. 1 ok, 0 unknown charset
 * or invalid input (out unchanged), -1 out of memory. */
static int charset_to_utf8(const char *charset, const char *in, size_t n, size_t max,
                           struct buf *out)
{
	iconv_t cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return 0;
	size_t cap = n * 4 + 16;
	if (cap > max * 4 + 16)
		cap = max * 4 + 16;
	char *dst = malloc(cap);
	if (dst == NULL) {
		iconv_close(cd);
		return -1;
	}
	char *ip = (char *)in, *op = dst;
	size_t il = n, ol = cap;
	size_t rc = iconv(cd, &ip, &il, &op, &ol);
	int ret = 0;
	if (rc != (size_t)-1 && il == 0 && iconv(cd, NULL, NULL, &op, &ol) != (size_t)-1) {
		size_t got = cap - ol;
		ret = 1;
		for (size_t i = 0; i < got; i++)
			if (dst[i] == '\0')
				ret = 0;
		if (ret == 1 && buf_append(out, dst, got) < 0)
			ret = -1;
	}
	free(dst);
	iconv_close(cd);
	return ret;
}

static bool ascii_ieq(const char *a, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	if (n != l)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = a[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lit[i])
			return false;
	}
	return true;
}

/* Charset conversions per message: iconv_open is costly, and a message
 * could ask for one per parameter; past this budget values keep their
 * octets. */
#define MIME_CONVERSIONS_MAX 1000

/* What params_parse needs from the parser. */
struct param_scratch {
	struct raw_param *raw; /* max_params entries */
	unsigned conv_left;    /* charset conversions left */
};

struct param_ctx {
	const struct mime_limits *lim;
	struct buf scratch;
	struct raw_param *raw;
	unsigned nraw;
	unsigned *conv_left;
};

/* Parses "; attr=value ..." from v[i..n) into ctx->raw. Lenient: a stray
 * ';', an attribute without '=' or other garbage skips to the next ';'; an
 * unquoted value that is not a token runs to the next ';' (trimmed). */
static int params_scan(struct param_ctx *ctx, const char *v, size_t n, size_t i)
{
	int err = 0;
	while (i < n) {
		i = skip_cfws(v, n, i);
		if (i >= n)
			break;
		if (v[i] != ';') {
			/* garbage: skip to the next ';' outside quotes */
			while (i < n && v[i] != ';') {
				if (v[i] == '"') {
					size_t save = ctx->scratch.len;
					i = scan_quoted(v, n, i, &ctx->scratch, &err);
					ctx->scratch.len = save;
				} else {
					i++;
				}
			}
			continue;
		}
		i = skip_cfws(v, n, i + 1);
		size_t a0 = i;
		while (i < n && v[i] != '=' && v[i] != ';' && !is_wsp((unsigned char)v[i]) &&
		       v[i] != '(')
			i++;
		size_t a1 = i;
		i = skip_cfws(v, n, i);
		if (a0 == a1 || i >= n || v[i] != '=')
			continue; /* the loop skips to the next ';' */
		i = skip_cfws(v, n, i + 1);
		size_t name_off = ctx->scratch.len;
		if (buf_append(&ctx->scratch, v + a0, a1 - a0) < 0)
			return -1;
		lower(ctx->scratch.data + name_off, a1 - a0);
		size_t val_off = ctx->scratch.len;
		if (i < n && v[i] == '"') {
			i = scan_quoted(v, n, i, &ctx->scratch, &err);
		} else {
			size_t t = scan_token(v, n, i);
			size_t after = skip_cfws(v, n, t);
			if (after < n && v[after] != ';') {
				/* not a token: take the raw text to the next ';' */
				t = i;
				while (t < n && v[t] != ';')
					t++;
				after = t;
				while (t > i && is_wsp((unsigned char)v[t - 1]))
					t--;
			}
			for (size_t k = i; k < t; k++)
				if (v[k] != '\0' && v[k] != '\r' && v[k] != '\n' &&
				    buf_append(&ctx->scratch, v + k, 1) < 0)
					return -1;
			i = after;
		}
		if (err)
			return -1;
		if (ctx->nraw >= ctx->lim->max_params)
			continue; /* over the limit: dropped */
		struct raw_param *rp = &ctx->raw[ctx->nraw];
		rp->name_off = name_off;
		rp->name_len = a1 - a0;
		rp->val_off = val_off;
		rp->val_len = ctx->scratch.len - val_off;
		rp->section = -1;
		rp->extended = false;
		rp->used = false;
		/* RFC 2231 3, 4: name*, name*N, name*N* */
		const char *nm = ctx->scratch.data + name_off;
		const char *star = memchr(nm, '*', rp->name_len);
		if (star != NULL) {
			size_t base = (size_t)(star - nm);
			const char *s = star + 1, *e = nm + rp->name_len;
			bool ok = base > 0;
			int sec = -1;
			bool ext = false;
			if (s == e) {
				ext = true;
			} else {
				long num = 0;
				const char *d = s;
				while (d < e && *d >= '0' && *d <= '9' && num <= 100000)
					num = num * 10 + (*d++ - '0');
				if (d == s || (d - s > 1 && *s == '0') || num > 100000)
					ok = false;
				if (d < e && *d == '*' && d + 1 == e)
					ext = true;
				else if (d != e)
					ok = false;
				sec = (int)num;
			}
			if (ok) {
				rp->name_len = base;
				rp->section = sec;
				rp->extended = ext;
			}
		}
		ctx->nraw++;
	}
	return 1;
}

/* Merges ctx->raw (RFC 2231 continuations joined, charsets decoded) and
 * appends the parameters to the tree. First occurrence of a name wins; the
 * RFC 2231 form of a name wins over its plain form. */
static int params_store(struct param_ctx *ctx, struct mime_tree *tree, uint32_t *first_r,
                        uint32_t *count_r)
{
	*first_r = tree->nparams;
	*count_r = 0;
	const char *sd = ctx->scratch.data;
	struct buf val, conv;
	buf_init(&val, 0);
	buf_init(&conv, 0);
	int rc = 1;
	for (unsigned i = 0; i < ctx->nraw && rc > 0; i++) {
		struct raw_param *rp = &ctx->raw[i];
		if (rp->used)
			continue;
		const char *nm = sd + rp->name_off;
		size_t nl = rp->name_len;
		/* every raw param of this base name */
		int plain = -1, whole = -1;
		bool has2231 = false;
		for (unsigned j = i; j < ctx->nraw; j++) {
			struct raw_param *q = &ctx->raw[j];
			if (q->used || q->name_len != nl || memcmp(sd + q->name_off, nm, nl) != 0)
				continue;
			q->used = true;
			if (q->section < 0 && !q->extended) {
				if (plain < 0)
					plain = (int)j;
			} else {
				has2231 = true;
				if (q->section < 0 && whole < 0)
					whole = (int)j;
			}
		}
		buf_reset(&val);
		char charset[64] = "";
		bool done = false;
		if (has2231) {
			/* name* alone, else sections 0, 1, ... up to the first gap */
			int sec = 0;
			for (;;) {
				int found = -1;
				if (whole >= 0) {
					if (sec > 0)
						break;
					found = whole;
				} else {
					for (unsigned j = i; j < ctx->nraw; j++) {
						struct raw_param *q = &ctx->raw[j];
						if (q->section == sec && q->name_len == nl &&
						    memcmp(sd + q->name_off, nm, nl) == 0) {
							found = (int)j;
							break;
						}
					}
				}
				if (found < 0)
					break;
				struct raw_param *q = &ctx->raw[found];
				const char *s = sd + q->val_off;
				size_t sl = q->val_len;
				if (q->extended && sec == 0) {
					/* RFC 2231 4: charset'language'value */
					const char *q1 = memchr(s, '\'', sl);
					const char *q2 =
					    q1 ? memchr(q1 + 1, '\'', sl - (size_t)(q1 + 1 - s))
					       : NULL;
					if (q2 != NULL) {
						size_t cl = (size_t)(q1 - s);
						if (cl < sizeof(charset)) {
							memcpy(charset, s, cl);
							charset[cl] = '\0';
						}
						sl -= (size_t)(q2 + 1 - s);
						s = q2 + 1;
					}
				}
				if (q->extended ? append_pct_decoded(&val, s, sl) < 0
				                : buf_append(&val, s, sl) < 0) {
					rc = -1;
					break;
				}
				done = true;
				if (val.len > ctx->lim->max_param_len)
					break;
				sec++;
			}
		}
		if (rc < 0)
			break;
		if (!done && plain >= 0) {
			struct raw_param *q = &ctx->raw[plain];
			if (buf_append(&val, sd + q->val_off, q->val_len) < 0) {
				rc = -1;
				break;
			}
			done = true;
		}
		if (!done || val.len > ctx->lim->max_param_len)
			continue;
		const char *out = val.data ? val.data : "";
		size_t outl = val.len;
		if (charset[0] != '\0' && !ascii_ieq(charset, strlen(charset), "utf-8") &&
		    !ascii_ieq(charset, strlen(charset), "us-ascii") && !valid_utf8(out, outl) &&
		    *ctx->conv_left > 0) {
			(*ctx->conv_left)--;
			buf_reset(&conv);
			int c = charset_to_utf8(charset, out, outl, ctx->lim->max_param_len, &conv);
			if (c < 0) {
				rc = -1;
				break;
			}
			if (c > 0 && conv.len <= ctx->lim->max_param_len) {
				out = conv.data ? conv.data : "";
				outl = conv.len;
			}
		}
		struct mime_str ns, vs;
		if (tree_str_add(tree, nm, nl, &ns) < 0 || tree_str_add(tree, out, outl, &vs) < 0 ||
		    tree_param_add(tree, ns, vs) < 0) {
			rc = -1;
			break;
		}
		(*count_r)++;
	}
	buf_free(&val);
	buf_free(&conv);
	return rc;
}

/* Parses parameters of v[i..n) and stores them. */
static int params_parse(const struct mime_limits *lim, struct param_scratch *scr,
                        struct mime_tree *tree, const char *v, size_t n, size_t i,
                        uint32_t *first_r, uint32_t *count_r)
{
	struct param_ctx ctx = {.lim = lim, .raw = scr->raw, .conv_left = &scr->conv_left};
	buf_init(&ctx.scratch, 0);
	*first_r = tree->nparams;
	*count_r = 0;
	int rc = params_scan(&ctx, v, n, i);
	if (rc > 0)
		rc = params_store(&ctx, tree, first_r, count_r);
	buf_free(&ctx.scratch);
	return rc;
}

/* Content-Type := type "/" subtype *(";" parameter) (RFC 2045 5.1). An
 * invalid value leaves the type absent (the default applies, RFC 2045 5.2). */
static int field_content_type(const struct mime_limits *lim, struct param_scratch *scr,
                              struct mime_tree *tree, uint32_t part, const char *v, size_t n)
{
	size_t i = skip_cfws(v, n, 0);
	size_t t0 = i, t1 = scan_token(v, n, i);
	i = skip_cfws(v, n, t1);
	if (t0 == t1 || i >= n || v[i] != '/')
		return 1;
	i = skip_cfws(v, n, i + 1);
	size_t s0 = i, s1 = scan_token(v, n, i);
	if (s0 == s1)
		return 1;
	struct mime_str ts, ss;
	uint32_t first, count;
	if (tree_str_add(tree, v + t0, t1 - t0, &ts) < 0 ||
	    tree_str_add(tree, v + s0, s1 - s0, &ss) < 0)
		return -1;
	lower(tree->strings.data + ts.off, ts.len);
	lower(tree->strings.data + ss.off, ss.len);
	if (params_parse(lim, scr, tree, v, n, s1, &first, &count) < 0)
		return -1;
	struct mime_part *pt = &tree->parts[part];
	pt->type = ts;
	pt->subtype = ss;
	pt->ct_param = first;
	pt->ct_nparam = count;
	return 1;
}

/* Content-Disposition := disposition-type *(";" parameter) (RFC 2183 2). */
static int field_disposition(const struct mime_limits *lim, struct param_scratch *scr,
                             struct mime_tree *tree, uint32_t part, const char *v, size_t n)
{
	size_t i = skip_cfws(v, n, 0);
	size_t t0 = i, t1 = scan_token(v, n, i);
	if (t0 == t1)
		return 1;
	struct mime_str ds;
	uint32_t first, count;
	if (tree_str_add(tree, v + t0, t1 - t0, &ds) < 0)
		return -1;
	lower(tree->strings.data + ds.off, ds.len);
	if (params_parse(lim, scr, tree, v, n, t1, &first, &count) < 0)
		return -1;
	struct mime_part *pt = &tree->parts[part];
	pt->disposition = ds;
	pt->disp_param = first;
	pt->disp_nparam = count;
	return 1;
}

/* Content-Transfer-Encoding := token (RFC 2045 6.1), lower-cased. */
static int field_encoding(struct mime_tree *tree, uint32_t part, const char *v, size_t n)
{
	size_t i = skip_cfws(v, n, 0);
	size_t t0 = i, t1 = scan_token(v, n, i);
	if (t0 == t1)
		return 1;
	struct mime_str es;
	if (tree_str_add(tree, v + t0, t1 - t0, &es) < 0)
		return -1;
	lower(tree->strings.data + es.off, es.len);
	tree->parts[part].encoding = es;
	return 1;
}

/* Content-Language := Language-List (RFC 3282 2): tags separated by ','. */
static int field_language(const struct mime_limits *lim, struct mime_tree *tree, uint32_t part,
                          const char *v, size_t n)
{
	uint32_t first = tree->nparams, count = 0;
	size_t i = 0;
	while (i < n) {
		i = skip_cfws(v, n, i);
		size_t t0 = i;
		while (i < n && v[i] != ',' && v[i] != '(' && !is_wsp((unsigned char)v[i]))
			i++;
		if (i > t0 && count < lim->max_params && i - t0 <= lim->max_param_len) {
			struct mime_str ls;
			if (tree_str_add(tree, v + t0, i - t0, &ls) < 0 ||
			    tree_param_add(tree, ls, mime_str_none) < 0)
				return -1;
			count++;
		}
		i = skip_cfws(v, n, i);
		if (i < n && v[i] != ',')
			i++; /* garbage octet */
		else if (i < n)
			i++;
	}
	tree->parts[part].lang = first;
	tree->parts[part].nlang = count;
	return 1;
}

enum {
	FIELD_TYPE = 1 << 0,
	FIELD_ENCODING = 1 << 1,
	FIELD_ID = 1 << 2,
	FIELD_DESCRIPTION = 1 << 3,
	FIELD_DISPOSITION = 1 << 4,
	FIELD_LANGUAGE = 1 << 5,
	FIELD_LOCATION = 1 << 6,
	FIELD_MD5 = 1 << 7,
	FIELD_MIME_VERSION = 1 << 8,
};

static const struct {
	const char *name; /* after "content-" */
	unsigned bit;
} mime_fields[] = {
    {"type", FIELD_TYPE},
    {"transfer-encoding", FIELD_ENCODING},
    {"id", FIELD_ID},
    {"description", FIELD_DESCRIPTION},
    {"disposition", FIELD_DISPOSITION},
    {"language", FIELD_LANGUAGE},
    {"location", FIELD_LOCATION},
    {"md5", FIELD_MD5},
};

/* ---- the parser ---- */

enum { ENT_LEAF, ENT_MULTI, ENT_MESSAGE };

struct mime_ent {
	uint32_t part;
	uint32_t last_child;
	uint8_t kind;
	bool closed;      /* multipart: the close delimiter was seen */
	bool digest;      /* multipart/digest: parts default to message/rfc822 */
	uint64_t lf_body; /* LF octets before the body */
	char *boundary;
	size_t blen;
};

struct mime_parser {
	struct mime_limits lim;
	struct mime_tree tree;
	struct mime_ent *stack;
	unsigned nstack;
	unsigned nactive; /* multiparts whose boundary is recognised */
	uint64_t pos, lf;
	uint64_t line_start, line_lf;
	unsigned prev_eol; /* octets of the previous line's end (0 none) */
	char last_byte;
	bool at_line_start;
	bool in_header; /* the top part is in its header section */
	bool opaque;    /* a limit was reached: no more structure */
	bool failed;
	bool finished;
	/* header of the top part */
	struct buf field;  /* the current field (complete lines) then the current line */
	size_t field_line; /* where the current line starts in field */
	size_t hdr_seen;   /* octets of the section seen */
	bool hdr_trunc;
	unsigned seen; /* FIELD_* already parsed (the first of each wins) */
	               /* the first octets of the current line */
	char *head;
	size_t head_len, head_max;
	struct param_scratch scr;
};

static void parser_fail(struct mime_parser *p)
{
	p->failed = true;
}

static void field_process(struct mime_parser *p, const char *f, size_t n)
{
	const char *colon = memchr(f, ':', n);
	if (colon == NULL)
		return;
	size_t nl = (size_t)(colon - f);
	while (nl > 0 && (f[nl - 1] == ' ' || f[nl - 1] == '\t'))
		nl--;
	if (ascii_ieq(f, nl, "mime-version")) {
		p->seen |= FIELD_MIME_VERSION;
		return;
	}
	if (nl < 9 || !ascii_ieq(f, 8, "content-"))
		return;
	const char *v = colon + 1;
	size_t vn = n - (size_t)(v - f);
	uint32_t part = p->stack[p->nstack - 1].part;
	struct mime_tree *t = &p->tree;
	for (size_t k = 0; k < sizeof(mime_fields) / sizeof(mime_fields[0]); k++) {
		if (!ascii_ieq(f + 8, nl - 8, mime_fields[k].name))
			continue;
		unsigned bit = mime_fields[k].bit;
		if (p->seen & bit)
			return;
		p->seen |= bit;
		int rc = 1;
		struct mime_part *pt = &t->parts[part];
		struct mime_str s = mime_str_none;
		switch (bit) {
		case FIELD_TYPE:
			rc = field_content_type(&p->lim, &p->scr, t, part, v, vn);
			break;
		case FIELD_ENCODING:
			rc = field_encoding(t, part, v, vn);
			break;
		case FIELD_DISPOSITION:
			rc = field_disposition(&p->lim, &p->scr, t, part, v, vn);
			break;
		case FIELD_LANGUAGE:
			rc = field_language(&p->lim, t, part, v, vn);
			break;
		default:
			rc = add_unstructured(t, v, vn, &s);
			pt = &t->parts[part];
			if (bit == FIELD_ID)
				pt->id = s;
			else if (bit == FIELD_DESCRIPTION)
				pt->description = s;
			else if (bit == FIELD_LOCATION)
				pt->location = s;
			else
				pt->md5 = s;
		}
		if (rc < 0)
			parser_fail(p);
		return;
	}
}

/* Processes the complete field field[0..end) and keeps the rest. */
static void field_flush(struct mime_parser *p, size_t end)
{
	if (end > 0 && !p->hdr_trunc)
		field_process(p, p->field.data, end);
	if (p->hdr_trunc) {
		p->field.len = 0;
	} else if (end > 0) {
		memmove(p->field.data, p->field.data + end, p->field.len - end);
		p->field.len -= end;
	}
	p->field_line = 0;
}

static void header_reset(struct mime_parser *p)
{
	p->field.len = 0;
	p->field_line = 0;
	p->hdr_seen = 0;
	p->hdr_trunc = false;
	p->seen = 0;
}

/* Starts a part (a child of the top entry, or the root) whose header starts
 * at start. false when the part limit is reached or memory ran out. */
static bool part_start(struct mime_parser *p, uint64_t start, bool digest)
{
	if (p->tree.nparts >= p->lim.max_parts || p->nstack >= p->lim.max_depth)
		return false;
	uint32_t idx = tree_part_add(&p->tree);
	if (idx == MIME_NONE) {
		parser_fail(p);
		return false;
	}
	struct mime_part *pt = &p->tree.parts[idx];
	pt->header_start = start;
	if (p->nstack > 0) {
		struct mime_ent *top = &p->stack[p->nstack - 1];
		struct mime_part *par = &p->tree.parts[top->part];
		pt->parent = top->part;
		pt->depth = (uint16_t)(par->depth + 1);
		if (top->last_child == MIME_NONE)
			par->child = idx;
		else
			p->tree.parts[top->last_child].next = idx;
		top->last_child = idx;
	}
	struct mime_ent *e = &p->stack[p->nstack++];
	memset(e, 0, sizeof(*e));
	e->part = idx;
	e->last_child = MIME_NONE;
	e->kind = ENT_LEAF;
	e->digest = digest; /* used for the default type */
	p->in_header = true;
	header_reset(p);
	return true;
}

/* The header of the top part ended at end (body starts there; lf_body LFs
 * before it). blank: by an empty line (the part's body follows). */
static void header_end(struct mime_parser *p, uint64_t end, uint64_t lf_body, bool blank)
{
	struct mime_ent *e = &p->stack[p->nstack - 1];
	struct mime_tree *t = &p->tree;
	uint32_t idx = e->part;
	struct mime_part *pt = &t->parts[idx];
	p->in_header = false;
	pt->header_len = end - pt->header_start;
	e->lf_body = lf_body;
	if (blank)
		pt->flags |= MIME_PART_HEADER_ENDED;
	if (p->hdr_trunc)
		pt->flags |= MIME_PART_HEADER_TRUNC;
	/* RFC 2045 4: a message without MIME-Version is not MIME. As Dovecot
	 * does, a Content-Type field makes it MIME too; otherwise the other
	 * Content-* fields of a message (not of a body part) are ignored. */
	bool message_root =
	    pt->parent == MIME_NONE || (t->parts[pt->parent].flags & MIME_PART_MESSAGE);
	if (message_root && !(p->seen & (FIELD_MIME_VERSION | FIELD_TYPE))) {
		pt->encoding = pt->id = pt->description = pt->md5 = pt->disposition = pt->location =
		    mime_str_none;
		pt->disp_nparam = pt->nlang = 0;
	}
	header_reset(p);

	const char *bnd = NULL;
	size_t blen = 0;
	if (pt->type.off != MIME_NONE && str_is(t, pt->type, "multipart")) {
		bnd = mime_tree_param(t, pt->ct_param, pt->ct_nparam, "boundary", &blen);
		if (bnd == NULL || blen == 0 || blen > p->lim.max_boundary) {
			/* RFC 2046 5.1.1: the boundary parameter is required; without
			 * a usable one the field is invalid: RFC 2045 5.2 default */
			pt->type = pt->subtype = mime_str_none;
			pt->ct_nparam = 0;
			bnd = NULL;
		}
	}
	if (pt->type.off == MIME_NONE) {
		struct mime_str ts, ss;
		bool msg = e->digest; /* RFC 2046 5.1.5 */
		if (tree_str_add(t, msg ? "message" : "text", msg ? 7 : 4, &ts) < 0 ||
		    tree_str_add(t, msg ? "rfc822" : "plain", msg ? 6 : 5, &ss) < 0) {
			parser_fail(p);
			return;
		}
		pt = &t->parts[idx];
		pt->type = ts;
		pt->subtype = ss;
		pt->ct_param = t->nparams;
		pt->ct_nparam = 0;
		pt->flags |= MIME_PART_DEFAULT_TYPE;
	}
	if (!blank || p->opaque)
		return;
	if (bnd != NULL) {
		pt->flags |= MIME_PART_MULTIPART;
		if (p->nstack >= p->lim.max_depth) {
			p->opaque = true;
			return;
		}
		e->boundary = malloc(blen);
		if (e->boundary == NULL) {
			parser_fail(p);
			return;
		}
		memcpy(e->boundary, bnd, blen);
		e->blen = blen;
		e->kind = ENT_MULTI;
		e->digest = str_is(t, pt->subtype, "digest");
		p->nactive++;
		return;
	}
	if (str_is(t, pt->type, "message") &&
	    (str_is(t, pt->subtype, "rfc822") || str_is(t, pt->subtype, "global"))) {
		/* RFC 2046 5.2.1: no encoding other than 7bit, 8bit or binary is
		 * permitted; an encoded message is an opaque body */
		if (pt->encoding.off != MIME_NONE && !str_is(t, pt->encoding, "7bit") &&
		    !str_is(t, pt->encoding, "8bit") && !str_is(t, pt->encoding, "binary"))
			return;
		e->kind = ENT_MESSAGE;
		if (!part_start(p, end, false)) {
			p->opaque = true;
			e->kind = ENT_LEAF;
			return;
		}
		t->parts[idx].flags |= MIME_PART_MESSAGE;
	}
}

/* Ends the top entry's part at a boundary line starting at L (lf_L LFs
 * before it) and pops it. RFC 2046 5.1.1: the line end before the boundary
 * line belongs to the boundary, so the part ends at E, before that line end;
 * when the part's header (or its empty line) reaches past E, the header is
 * cut there and the body is empty. */
static void ent_end_at(struct mime_parser *p, uint64_t L, uint64_t lf_L)
{
	struct mime_ent *e = &p->stack[p->nstack - 1];
	struct mime_part *pt = &p->tree.parts[e->part];
	uint64_t E = L, lfE = lf_L;
	if (p->prev_eol > 0 && L >= p->prev_eol) {
		E = L - p->prev_eol;
		lfE = lf_L - 1;
	}
	if (pt->header_start > E)
		pt->header_start = E; /* an empty part starting at the boundary line */
	if (p->in_header) {
		field_flush(p, p->field_line);
		header_end(p, E, lfE, false);
		e = &p->stack[p->nstack - 1];
		pt = &p->tree.parts[e->part];
	}
	uint64_t body_start = pt->header_start + pt->header_len;
	if (E >= body_start) {
		pt->body_len = E - body_start;
		pt->body_lines = lfE - e->lf_body;
	} else {
		pt->header_len = E - pt->header_start;
		pt->body_len = 0;
		pt->body_lines = 0;
	}
	if (e->kind == ENT_MULTI && !e->closed)
		p->nactive--;
	free(e->boundary);
	p->nstack--;
}

/* Is the current line a boundary line of an open multipart? The innermost
 * match wins. */
static bool boundary_match(struct mime_parser *p, unsigned *k_r, bool *close_r)
{
	if (p->nactive == 0 || p->opaque || p->head_len < 3 || p->head[0] != '-' ||
	    p->head[1] != '-')
		return false;
	for (unsigned k = p->nstack; k-- > 0;) {
		struct mime_ent *e = &p->stack[k];
		if (e->kind != ENT_MULTI || e->closed)
			continue;
		if (p->head_len >= 2 + e->blen && memcmp(p->head + 2, e->boundary, e->blen) == 0) {
			*k_r = k;
			*close_r = p->head_len >= 4 + e->blen && p->head[2 + e->blen] == '-' &&
			           p->head[3 + e->blen] == '-';
			return true;
		}
	}
	return false;
}

/* A boundary line of stack[k] (eol: its line end, 0 at the end of the
 * message). false when it is not taken as one (part limit). */
static bool boundary_line(struct mime_parser *p, unsigned k, bool close, unsigned eol)
{
	if (!close && eol > 0 && p->tree.nparts >= p->lim.max_parts) {
		p->opaque = true; /* the rest is the body of the open part */
		return false;
	}
	while (p->nstack > k + 1)
		ent_end_at(p, p->line_start, p->line_lf);
	struct mime_ent *m = &p->stack[k];
	if (close) {
		m->closed = true; /* the rest is the epilogue */
		p->nactive--;
		return true;
	}
	if (eol == 0)
		return true; /* a delimiter at the very end starts no part */
	if (!part_start(p, p->pos, m->digest))
		p->opaque = true;
	return true;
}

/* The current line ended (eol octets of line end; 0: the message ended
 * within the line). */
static void line_end(struct mime_parser *p, unsigned eol)
{
	unsigned k;
	bool close;
	if (boundary_match(p, &k, &close) && boundary_line(p, k, close, eol))
		goto done;
	if (!p->in_header)
		goto done;
	uint64_t line_len = p->pos - p->line_start;
	if (eol > 0 && line_len == eol) {
		/* the empty line ending the header section */
		field_flush(p, p->field_line);
		if (!p->failed)
			header_end(p, p->pos, p->lf, true);
		goto done;
	}
	if (p->head[0] == ' ' || p->head[0] == '\t') {
		if (p->hdr_trunc)
			p->field.len = 0;
		goto done; /* a continuation line */
	}
	field_flush(p, p->field_line);
done:
	p->prev_eol = eol;
}

struct mime_parser *mime_parser_new(const struct mime_limits *limits)
{
	struct mime_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	if (limits != NULL)
		p->lim = *limits;
	else
		mime_limits_default(&p->lim);
	if (p->lim.max_depth < 1)
		p->lim.max_depth = 1;
	if (p->lim.max_depth > MIME_DEPTH_CAP)
		p->lim.max_depth = MIME_DEPTH_CAP;
	if (p->lim.max_parts < 1)
		p->lim.max_parts = 1;
	if (p->lim.max_boundary > 4096)
		p->lim.max_boundary = 4096;
	if (p->lim.max_params > 4096)
		p->lim.max_params = 4096;
	mime_tree_init(&p->tree);
	buf_init(&p->field, 0);
	p->head_max = p->lim.max_boundary + 4;
	p->head = malloc(p->head_max);
	p->stack = calloc(p->lim.max_depth, sizeof(*p->stack));
	p->scr.raw = calloc(p->lim.max_params ? p->lim.max_params : 1, sizeof(*p->scr.raw));
	p->scr.conv_left = MIME_CONVERSIONS_MAX;
	p->at_line_start = true;
	if (p->head == NULL || p->stack == NULL || p->scr.raw == NULL || !part_start(p, 0, false)) {
		mime_parser_free(&p);
		return NULL;
	}
	return p;
}

void mime_parser_free(struct mime_parser **parser)
{
	struct mime_parser *p = *parser;
	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->nstack; i++)
		free(p->stack[i].boundary);
	free(p->stack);
	free(p->scr.raw);
	free(p->head);
	buf_free(&p->field);
	mime_tree_free(&p->tree);
	free(p);
	*parser = NULL;
}

size_t mime_parser_mem(const struct mime_parser *p)
{
	size_t n = sizeof(*p) + p->head_max + p->field.cap + p->tree.strings.cap +
	           (size_t)p->lim.max_depth * sizeof(*p->stack) +
	           (size_t)(p->lim.max_params ? p->lim.max_params : 1) * sizeof(*p->scr.raw) +
	           (size_t)p->tree.parts_cap * sizeof(*p->tree.parts) +
	           (size_t)p->tree.params_cap * sizeof(*p->tree.params);
	for (unsigned i = 0; i < p->nstack; i++)
		n += p->stack[i].blen;
	return n;
}

int mime_parser_feed(struct mime_parser *p, const void *data, size_t len)
{
	if (p->failed || p->finished)
		return -1;
	const char *d = data;
	size_t i = 0;
	while (i < len && !p->failed) {
		if (!p->in_header && (p->nactive == 0 || p->opaque)) {
			/* a body no boundary can end: count its LFs */
			const char *s = d + i, *e = d + len;
			const char *nl;
			while (s < e && (nl = memchr(s, '\n', (size_t)(e - s))) != NULL) {
				p->lf++;
				s = nl + 1;
			}
			char before = len - i >= 2 ? d[len - 2] : p->last_byte;
			p->pos += len - i;
			p->last_byte = d[len - 1];
			p->at_line_start = d[len - 1] == '\n';
			if (p->at_line_start)
				p->prev_eol = before == '\r' ? 2 : 1;
			break;
		}
		if (p->at_line_start) {
			p->line_start = p->pos;
			p->line_lf = p->lf;
			p->head_len = 0;
			p->field_line = p->field.len;
			p->at_line_start = false;
		}
		const char *nl = memchr(d + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (d + i)) + 1 : len - i;
		if (p->head_len < p->head_max) {
			size_t c = p->head_max - p->head_len;
			if (c > n)
				c = n;
			memcpy(p->head + p->head_len, d + i, c);
			p->head_len += c;
		}
		if (p->in_header) {
			if (!p->hdr_trunc) {
				if (p->hdr_seen + n > p->lim.max_header) {
					/* the field before this line is complete unless
					 * this line continues it */
					if (p->head[0] != ' ' && p->head[0] != '\t')
						field_flush(p, p->field_line);
					p->hdr_trunc = true;
				} else if (buf_append(&p->field, d + i, n) < 0)
					parser_fail(p);
			}
			p->hdr_seen += n;
		}
		char before = n >= 2 ? d[i + n - 2] : p->last_byte;
		p->pos += n;
		i += n;
		p->last_byte = d[i - 1];
		if (nl != NULL) {
			p->lf++;
			p->at_line_start = true;
			unsigned eol = (before == '\r' && p->pos - p->line_start >= 2) ? 2 : 1;
			line_end(p, eol);
		}
	}
	return p->failed ? -1 : 0;
}

int mime_parser_finish(struct mime_parser *p, struct mime_tree *tree_r)
{
	mime_tree_init(tree_r);
	if (p->failed || p->finished)
		return -1;
	p->finished = true;
	if (!p->at_line_start && (p->in_header || (p->nactive > 0 && !p->opaque)))
		line_end(p, 0);
	if (p->in_header) {
		if (!p->hdr_trunc)
			field_flush(p, p->field.len);
		if (!p->failed)
			header_end(p, p->pos, p->lf, false);
	}
	while (p->nstack > 0 && !p->failed) {
		struct mime_ent *e = &p->stack[p->nstack - 1];
		struct mime_part *pt = &p->tree.parts[e->part];
		uint64_t body_start = pt->header_start + pt->header_len;
		pt->body_len = p->pos - body_start;
		pt->body_lines = p->lf - e->lf_body;
		free(e->boundary);
		e->boundary = NULL;
		p->nstack--;
	}
	if (p->failed)
		return -1;
	*tree_r = p->tree;
	mime_tree_init(&p->tree);
	return 1;
}

int mime_parse(const void *msg, size_t len, const struct mime_limits *limits,
               struct mime_tree *tree_r)
{
	mime_tree_init(tree_r);
	struct mime_parser *p = mime_parser_new(limits);
	if (p == NULL)
		return -1;
	int rc = -1;
	if (mime_parser_feed(p, msg, len) == 0)
		rc = mime_parser_finish(p, tree_r);
	mime_parser_free(&p);
	return rc;
}

/* ---- cached form ----
 * "HMT" 1, then varints: nparts, nparams, strings length, the strings, the
 * params (name, value), the parts (parent + 1, flags, header_start,
 * header_len, body_len, body_lines, the eight strings, the three param
 * ranges). A string is 0 (absent) or off + 1 then len. child and next links
 * and depth are rebuilt from the parents (parts are in pre-order). */

static int put_varint(struct buf *out, uint64_t v)
{
	unsigned char b[10];
	size_t n = 0;
	do {
		unsigned char c = v & 0x7f;
		v >>= 7;
		b[n++] = c | (v ? 0x80 : 0);
	} while (v);
	return buf_append(out, b, n);
}

static int put_str(struct buf *out, struct mime_str s)
{
	if (s.off == MIME_NONE)
		return put_varint(out, 0);
	if (put_varint(out, (uint64_t)s.off + 1) < 0)
		return -1;
	return put_varint(out, s.len);
}

int mime_tree_encode(const struct mime_tree *t, struct buf *out)
{
	if (buf_append(out, "HMT\1", 4) < 0 || put_varint(out, t->nparts) < 0 ||
	    put_varint(out, t->nparams) < 0 || put_varint(out, t->strings.len) < 0)
		return -1;
	if (t->strings.len > 0 && buf_append(out, t->strings.data, t->strings.len) < 0)
		return -1;
	for (uint32_t i = 0; i < t->nparams; i++)
		if (put_str(out, t->params[i].name) < 0 || put_str(out, t->params[i].value) < 0)
			return -1;
	for (uint32_t i = 0; i < t->nparts; i++) {
		const struct mime_part *pt = &t->parts[i];
		uint64_t v[] = {pt->parent == MIME_NONE ? 0 : (uint64_t)pt->parent + 1,
		                pt->flags,
		                pt->header_start,
		                pt->header_len,
		                pt->body_len,
		                pt->body_lines,
		                pt->ct_param,
		                pt->ct_nparam,
		                pt->disp_param,
		                pt->disp_nparam,
		                pt->lang,
		                pt->nlang};
		for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++)
			if (put_varint(out, v[k]) < 0)
				return -1;
		const struct mime_str s[] = {pt->type,        pt->subtype,     pt->encoding,
		                             pt->id,          pt->description, pt->md5,
		                             pt->disposition, pt->location};
		for (size_t k = 0; k < sizeof(s) / sizeof(s[0]); k++)
			if (put_str(out, s[k]) < 0)
				return -1;
	}
	return 1;
}

struct reader {
	const unsigned char *p, *end;
	bool bad;
};

static uint64_t get_varint(struct reader *r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			r->bad = true;
			return 0;
		}
		unsigned char c = *r->p++;
		if (shift == 63 && c > 1) {
			r->bad = true;
			return 0;
		}
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

static struct mime_str get_str(struct reader *r, uint64_t pool_len)
{
	uint64_t off = get_varint(r);
	if (off == 0)
		return mime_str_none;
	uint64_t len = get_varint(r);
	off--;
	if (off > pool_len || len > pool_len - off) {
		r->bad = true;
		return mime_str_none;
	}
	return (struct mime_str){(uint32_t)off, (uint32_t)len};
}

int mime_tree_decode(const void *data, size_t len, struct mime_tree *tree_r)
{
	struct mime_tree *t = tree_r;
	mime_tree_init(t);
	struct reader r = {data, (const unsigned char *)data + len, false};
	if (len < 4 || memcmp(data, "HMT\1", 4) != 0)
		return -1;
	r.p += 4;
	uint64_t nparts = get_varint(&r), nparams = get_varint(&r), slen = get_varint(&r);
	uint64_t left = (uint64_t)(r.end - r.p);
	/* every part takes at least 20 octets, every param 2 */
	if (r.bad || nparts < 1 || nparts > UINT32_MAX / 2 || nparts > left / 20 ||
	    nparams > left / 2 || slen > left || slen >= UINT32_MAX - 2)
		return -1;
	if (slen > 0 && buf_append(&t->strings, r.p, slen) < 0)
		return -1;
	r.p += slen;
	t->parts = calloc(nparts, sizeof(*t->parts));
	t->params = calloc(nparams ? nparams : 1, sizeof(*t->params));
	uint32_t *last = calloc(nparts, sizeof(*last));
	if (t->parts == NULL || t->params == NULL || last == NULL)
		goto bad;
	t->parts_cap = (uint32_t)nparts;
	t->params_cap = nparams ? (uint32_t)nparams : 1;
	for (uint64_t i = 0; i < nparams; i++) {
		t->params[i].name = get_str(&r, slen);
		t->params[i].value = get_str(&r, slen);
		if (r.bad || t->params[i].name.off == MIME_NONE)
			goto bad;
	}
	t->nparams = (uint32_t)nparams;
	for (uint64_t i = 0; i < nparts; i++) {
		struct mime_part *pt = &t->parts[i];
		uint64_t parent = get_varint(&r), flags = get_varint(&r);
		pt->header_start = get_varint(&r);
		pt->header_len = get_varint(&r);
		pt->body_len = get_varint(&r);
		pt->body_lines = get_varint(&r);
		uint64_t pr[6];
		for (int k = 0; k < 6; k++)
			pr[k] = get_varint(&r);
		struct mime_str *s[] = {&pt->type,        &pt->subtype,     &pt->encoding,
		                        &pt->id,          &pt->description, &pt->md5,
		                        &pt->disposition, &pt->location};
		for (size_t k = 0; k < sizeof(s) / sizeof(s[0]); k++)
			*s[k] = get_str(&r, slen);
		if (r.bad || flags & ~(uint64_t)MIME_PART_FLAGS_ALL || pt->type.off == MIME_NONE ||
		    pt->subtype.off == MIME_NONE)
			goto bad;
		for (int k = 0; k < 6; k += 2)
			if (pr[k] > nparams || pr[k + 1] > nparams - pr[k])
				goto bad;
		pt->flags = (uint16_t)flags;
		pt->ct_param = (uint32_t)pr[0];
		pt->ct_nparam = (uint32_t)pr[1];
		pt->disp_param = (uint32_t)pr[2];
		pt->disp_nparam = (uint32_t)pr[3];
		pt->lang = (uint32_t)pr[4];
		pt->nlang = (uint32_t)pr[5];
		pt->child = pt->next = MIME_NONE;
		last[i] = MIME_NONE;
		if (pt->header_len > UINT64_MAX / 4 || pt->header_start > UINT64_MAX / 4 ||
		    pt->body_len > UINT64_MAX / 4 || pt->body_lines > pt->body_len)
			goto bad;
		uint64_t start = pt->header_start;
		uint64_t end = start + pt->header_len + pt->body_len;
		if (i == 0) {
			if (parent != 0 || start != 0)
				goto bad;
			pt->parent = MIME_NONE;
			pt->depth = 0;
			continue;
		}
		if (parent == 0 || parent - 1 >= i)
			goto bad;
		uint32_t par = (uint32_t)(parent - 1);
		struct mime_part *pp = &t->parts[par];
		/* a part lies inside its parent's body, after its previous sibling */
		uint64_t pbody = pp->header_start + pp->header_len;
		uint64_t pend = pbody + pp->body_len;
		if (pp->depth + 1 >= MIME_DEPTH_CAP || start < pbody || end > pend ||
		    !(pp->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE)))
			goto bad;
		if (last[par] != MIME_NONE) {
			const struct mime_part *sb = &t->parts[last[par]];
			if ((pp->flags & MIME_PART_MESSAGE) ||
			    start < sb->header_start + sb->header_len + sb->body_len)
				goto bad;
			t->parts[last[par]].next = (uint32_t)i;
		} else {
			pp->child = (uint32_t)i;
		}
		/* the parts of a parent follow it without a gap in pre-order: a new
		 * child of par means every deeper open part has ended */
		last[par] = (uint32_t)i;
		pt->parent = par;
		pt->depth = (uint16_t)(pp->depth + 1);
	}
	if (r.p != r.end)
		goto bad;
	t->nparts = (uint32_t)nparts;
	free(last);
	return 1;
bad:
	free(last);
	mime_tree_free(t);
	return -1;
}

static bool str_eq(const struct mime_tree *a, struct mime_str sa, const struct mime_tree *b,
                   struct mime_str sb)
{
	size_t la, lb;
	const char *va = mime_tree_str(a, sa, &la), *vb = mime_tree_str(b, sb, &lb);
	if (va == NULL || vb == NULL)
		return va == vb;
	return la == lb && memcmp(va, vb, la) == 0;
}

static bool params_eq(const struct mime_tree *a, uint32_t fa, uint32_t na,
                      const struct mime_tree *b, uint32_t fb, uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (!str_eq(a, a->params[fa + i].name, b, b->params[fb + i].name) ||
		    !str_eq(a, a->params[fa + i].value, b, b->params[fb + i].value))
			return false;
	return true;
}

int mime_tree_equal(const struct mime_tree *a, const struct mime_tree *b)
{
	if (a->nparts != b->nparts)
		return 0;
	for (uint32_t i = 0; i < a->nparts; i++) {
		const struct mime_part *x = &a->parts[i], *y = &b->parts[i];
		if (x->parent != y->parent || x->child != y->child || x->next != y->next ||
		    x->depth != y->depth || x->flags != y->flags ||
		    x->header_start != y->header_start || x->header_len != y->header_len ||
		    x->body_len != y->body_len || x->body_lines != y->body_lines)
			return 0;
		if (!str_eq(a, x->type, b, y->type) || !str_eq(a, x->subtype, b, y->subtype) ||
		    !str_eq(a, x->encoding, b, y->encoding) || !str_eq(a, x->id, b, y->id) ||
		    !str_eq(a, x->description, b, y->description) ||
		    !str_eq(a, x->md5, b, y->md5) ||
		    !str_eq(a, x->disposition, b, y->disposition) ||
		    !str_eq(a, x->location, b, y->location))
			return 0;
		if (!params_eq(a, x->ct_param, x->ct_nparam, b, y->ct_param, y->ct_nparam) ||
		    !params_eq(a, x->disp_param, x->disp_nparam, b, y->disp_param,
		               y->disp_nparam) ||
		    !params_eq(a, x->lang, x->nlang, b, y->lang, y->nlang))
			return 0;
	}
	return 1;
}

/* ---- IMAP BODY / BODYSTRUCTURE (RFC 9051 7.5.2, 9) ---- */

int mime_imap_append_string(struct buf *out, const char *s, size_t len, bool utf8)
{
	/* RFC 9051 9: quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR is a
	 * TEXT-CHAR (no CR, LF, NUL), '\' quoted-specials, or (IMAP4rev2 /
	 * UTF8=ACCEPT) a UTF-8 sequence. Anything else: literal (CHAR8, no NUL). */
	bool quote = true;
	size_t nul = 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0) {
			nul++;
			i++;
		} else if (c == '\r' || c == '\n') {
			quote = false;
			i++;
		} else if (c >= 0x80) {
			size_t l =
			    utf8 ? mail_utf8_seq_len((const unsigned char *)s + i, len - i) : 0;
			if (l == 0) {
				quote = false;
				i++;
			} else {
				i += l;
			}
		} else {
			i++;
		}
	}
	if (!quote && buf_printf(out, "{%zu}\r\n", len - nul) < 0)
		return -1;
	if (quote && buf_append(out, "\"", 1) < 0)
		return -1;
	/* runs of plain octets in one append each */
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && s[j] != '\0' && !(quote && (s[j] == '"' || s[j] == '\\')))
			j++;
		if (j > i && buf_append(out, s + i, j - i) < 0)
			return -1;
		if (j >= len)
			break;
		if (s[j] != '\0' && (buf_append(out, "\\", 1) < 0 || buf_append(out, s + j, 1) < 0))
			return -1;
		i = j + 1;
	}
	if (quote && buf_append(out, "\"", 1) < 0)
		return -1;
	return 1;
}

static int imap_nstring(struct buf *out, const struct mime_tree *t, struct mime_str s, bool utf8)
{
	size_t len;
	const char *v = mime_tree_str(t, s, &len);
	if (v == NULL)
		return buf_append(out, "NIL", 3);
	return mime_imap_append_string(out, v, len, utf8);
}

/* body-fld-param: NIL or ("name" "value" ...). text: add charset=us-ascii
 * when the part has no charset (RFC 2045 5.2 default). */
static int imap_params(struct buf *out, const struct mime_tree *t, uint32_t first, uint32_t count,
                       bool text, bool utf8)
{
	bool charset = !text;
	uint32_t written = 0;
	for (uint32_t i = 0; i < count; i++) {
		const struct mime_param *pm = &t->params[first + i];
		if (pm->value.off == MIME_NONE)
			continue;
		if (str_is(t, pm->name, "charset"))
			charset = true;
		if (buf_append(out, written ? " " : "(", 1) < 0 ||
		    imap_nstring(out, t, pm->name, utf8) < 0 || buf_append(out, " ", 1) < 0 ||
		    imap_nstring(out, t, pm->value, utf8) < 0)
			return -1;
		written++;
	}
	if (!charset && buf_append_str(out, written ? " \"charset\" \"us-ascii\""
	                                            : "(\"charset\" \"us-ascii\"") < 0)
		return -1;
	if (written == 0 && charset)
		return buf_append(out, "NIL", 3);
	return buf_append(out, ")", 1);
}

/* SP body-fld-dsp SP body-fld-lang SP body-fld-loc */
static int imap_ext_common(struct buf *out, const struct mime_tree *t, const struct mime_part *pt,
                           bool utf8)
{
	if (buf_append(out, " ", 1) < 0)
		return -1;
	if (pt->disposition.off == MIME_NONE) {
		if (buf_append(out, "NIL", 3) < 0)
			return -1;
	} else if (buf_append(out, "(", 1) < 0 || imap_nstring(out, t, pt->disposition, utf8) < 0 ||
	           buf_append(out, " ", 1) < 0 ||
	           imap_params(out, t, pt->disp_param, pt->disp_nparam, false, utf8) < 0 ||
	           buf_append(out, ")", 1) < 0) {
		return -1;
	}
	if (buf_append(out, " ", 1) < 0)
		return -1;
	if (pt->nlang == 0) {
		if (buf_append(out, "NIL", 3) < 0)
			return -1;
	} else {
		/* always a list, as Dovecot writes it (a single string is allowed) */
		for (uint32_t i = 0; i < pt->nlang; i++)
			if (buf_append(out, i ? " " : "(", 1) < 0 ||
			    imap_nstring(out, t, t->params[pt->lang + i].name, utf8) < 0)
				return -1;
		if (buf_append(out, ")", 1) < 0)
			return -1;
	}
	if (buf_append(out, " ", 1) < 0 || imap_nstring(out, t, pt->location, utf8) < 0)
		return -1;
	return 1;
}

/* A multipart without parts or a message without a parsed message is not
 * expressible (body-type-mpart needs 1*body): an empty text/plain stands in. */
static int imap_empty_body(struct buf *out, bool ext)
{
	return buf_append_str(out, ext ? "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	                                 "\"7bit\" 0 0 NIL NIL NIL NIL)"
	                               : "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	                                 "\"7bit\" 0 0)");
}

static const char imap_nil_envelope[] = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";

static int imap_body(const struct mime_tree *t, uint32_t idx, unsigned flags,
                     mime_envelope_fn *envelope, void *ctx, struct buf *out)
{
	const struct mime_part *pt = &t->parts[idx];
	bool ext = flags & MIME_IMAP_EXTENDED, utf8 = flags & MIME_IMAP_UTF8;
	if (buf_append(out, "(", 1) < 0)
		return -1;
	if (str_is(t, pt->type, "multipart")) {
		/* body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart] */
		if (pt->child == MIME_NONE) {
			if (imap_empty_body(out, ext) < 0)
				return -1;
		}
		for (uint32_t c = pt->child; c != MIME_NONE; c = t->parts[c].next)
			if (imap_body(t, c, flags, envelope, ctx, out) < 0)
				return -1;
		if (buf_append(out, " ", 1) < 0 || imap_nstring(out, t, pt->subtype, utf8) < 0)
			return -1;
		if (ext && (buf_append(out, " ", 1) < 0 ||
		            imap_params(out, t, pt->ct_param, pt->ct_nparam, false, utf8) < 0 ||
		            imap_ext_common(out, t, pt, utf8) < 0))
			return -1;
		return buf_append(out, ")", 1);
	}
	bool text = str_is(t, pt->type, "text");
	bool msg = str_is(t, pt->type, "message") &&
	           (str_is(t, pt->subtype, "rfc822") || str_is(t, pt->subtype, "global"));
	/* body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP
	 * body-fld-enc SP body-fld-octets */
	if (imap_nstring(out, t, pt->type, utf8) < 0 || buf_append(out, " ", 1) < 0 ||
	    imap_nstring(out, t, pt->subtype, utf8) < 0 || buf_append(out, " ", 1) < 0 ||
	    imap_params(out, t, pt->ct_param, pt->ct_nparam, text, utf8) < 0 ||
	    buf_append(out, " ", 1) < 0 || imap_nstring(out, t, pt->id, utf8) < 0 ||
	    buf_append(out, " ", 1) < 0 || imap_nstring(out, t, pt->description, utf8) < 0 ||
	    buf_append(out, " ", 1) < 0)
		return -1;
	if (pt->encoding.off == MIME_NONE) {
		if (buf_append_str(out, "\"7bit\"") < 0)
			return -1;
	} else if (imap_nstring(out, t, pt->encoding, utf8) < 0) {
		return -1;
	}
	if (buf_printf(out, " %llu", (unsigned long long)pt->body_len) < 0)
		return -1;
	if (msg) {
		/* body-type-msg: ... SP envelope SP body SP body-fld-lines */
		if (buf_append(out, " ", 1) < 0)
			return -1;
		if (pt->child != MIME_NONE && envelope != NULL) {
			if (envelope(ctx, t, pt->child, out) < 0)
				return -1;
		} else if (buf_append_str(out, imap_nil_envelope) < 0) {
			return -1;
		}
		if (buf_append(out, " ", 1) < 0)
			return -1;
		if (pt->child != MIME_NONE) {
			if (imap_body(t, pt->child, flags, envelope, ctx, out) < 0)
				return -1;
		} else if (imap_empty_body(out, ext) < 0) {
			return -1;
		}
	}
	if ((msg || text) && buf_printf(out, " %llu", (unsigned long long)pt->body_lines) < 0)
		return -1;
	/* body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang
	 * [SP body-fld-loc]]] */
	if (ext && (buf_append(out, " ", 1) < 0 || imap_nstring(out, t, pt->md5, utf8) < 0 ||
	            imap_ext_common(out, t, pt, utf8) < 0))
		return -1;
	return buf_append(out, ")", 1);
}

int mime_tree_imap_body(const struct mime_tree *tree, uint32_t part, unsigned flags,
                        mime_envelope_fn *envelope, void *ctx, struct buf *out)
{
	if (part >= tree->nparts)
		return -1;
	return imap_body(tree, part, flags, envelope, ctx, out) < 0 ? -1 : 1;
}

/* ---- IMAP section numbers (RFC 9051 6.4.5) ---- */

int mime_tree_section(const struct mime_tree *tree, const char *spec, size_t len, uint32_t *part_r)
{
	if (tree->nparts == 0)
		return 0;
	uint32_t cur = 0;
	bool message = true; /* cur is a message: a lone body is its part 1 */
	bool missing = false;
	size_t i = 0;
	for (;;) {
		uint64_t n = 0;
		size_t d0 = i;
		while (i < len && spec[i] >= '0' && spec[i] <= '9') {
			if (n > UINT32_MAX)
				return -1;
			n = n * 10 + (uint64_t)(spec[i++] - '0');
		}
		if (i == d0 || n == 0 || spec[d0] == '0' || (i < len && spec[i] != '.'))
			return -1;
		bool last = i == len;
		if (!last && ++i == len)
			return -1; /* a trailing dot */
		if (!missing) {
			const struct mime_part *pt = &tree->parts[cur];
			if (str_is(tree, pt->type, "multipart")) {
				uint32_t c = pt->child;
				for (uint64_t k = 1; k < n && c != MIME_NONE; k++)
					c = tree->parts[c].next;
				if (c == MIME_NONE)
					missing = true;
				else
					cur = c;
			} else if (!message || n != 1) {
				missing = true;
			}
		}
		if (last)
			break;
		if (!missing) {
			const struct mime_part *pt = &tree->parts[cur];
			message = (pt->flags & MIME_PART_MESSAGE) && pt->child != MIME_NONE;
			if (message)
				cur = pt->child;
		}
	}
	if (missing)
		return 0;
	*part_r = cur;
	return 1;
}
