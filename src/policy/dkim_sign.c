/* DKIM signer (RFC 6376 with relaxed/relaxed canonicalization; RFC 8463 for
 * ed25519-sha256). See dkim_sign.h.
 *
 * The header section is kept (bounded) because h= and the header hash need
 * all of it; the body goes through a streaming relaxed canonicalizer straight
 * into one SHA-256 (every signature has the same c= and no l=, so one body
 * hash serves them all). */
#include "policy/dkim_int.h"

#include "core/base64.h"
#include "core/buf.h"
#include "core/str.h"

#include <openssl/err.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DKIM_LINE_MAX 78  /* RFC 5322 2.1.1: lines SHOULD be at most 78 octets */
#define DKIM_SIG_MAX 1024 /* octets of one signature (RSA 8192 bits) */
#define DKIM_CANON_CHUNK 4096

/* The fields signed (h=), each listed once per occurrence; the oversigned ones
 * once more, so that a field of that name added later breaks the signature
 * (RFC 6376 8.15). RFC 8058 4 wants List-Unsubscribe-Post signed too. */
static const struct {
	const char *name;
	bool oversign;
} dkim_signed_fields[] = {
    {"From", true},
    {"To", true},
    {"Cc", false},
    {"Subject", true},
    {"Date", false},
    {"Message-ID", false},
    {"Reply-To", false},
    {"In-Reply-To", false},
    {"References", false},
    {"MIME-Version", false},
    {"Content-Type", false},
    {"Content-Transfer-Encoding", false},
    {"List-Id", false},
    {"List-Unsubscribe", false},
    {"List-Unsubscribe-Post", false},
};

/* Streaming relaxed body canonicalization (RFC 6376 3.4.4). Nothing is
 * written until it is known to stay: WSP runs wait for the next non-WSP octet
 * of their line (trailing WSP is dropped), line ends wait for the next
 * non-empty line (empty lines at the end are dropped). */
struct dkim_body {
	EVP_MD_CTX *md;
	unsigned char out[DKIM_CANON_CHUNK];
	size_t outlen;
	uint64_t pending_crlf; /* line ends not written yet */
	bool pending_wsp;      /* a WSP run not written yet */
	bool pending_cr;       /* a CR whose next octet is not seen yet */
	bool nonempty;         /* some non-WSP octet written */
	bool failed;
};

struct dkim_signer {
	struct dkim_key **keys;
	size_t nkeys;
	int64_t now;

	struct buf header; /* the header section, then the empty line */
	bool header_done;
	size_t line_len; /* octets of the current header line so far */
	bool prev_cr;

	struct dkim_body body;
	bool finished;
	bool failed; /* a feed failed: finish fails too */
	char *error; /* why (NULL if memory ran out formatting it) */
};

/* ---- body ---- */

static void dkim_body_flush(struct dkim_body *b)
{
	if (b->outlen > 0 && EVP_DigestUpdate(b->md, b->out, b->outlen) != 1)
		b->failed = true;
	b->outlen = 0;
}

static void dkim_body_put(struct dkim_body *b, const void *data, size_t len)
{
	if (b->outlen + len > sizeof(b->out))
		dkim_body_flush(b);
	memcpy(b->out + b->outlen, data, len);
	b->outlen += len;
}

/* A non-WSP octet of a line: what waited before it is written first. */
static void dkim_body_content(struct dkim_body *b, unsigned char c)
{
	for (; b->pending_crlf > 0; b->pending_crlf--)
		dkim_body_put(b, "\r\n", 2);
	if (b->pending_wsp) {
		/* RFC 6376 3.4.4: a WSP run within a line becomes one SP */
		dkim_body_put(b, " ", 1);
		b->pending_wsp = false;
	}
	dkim_body_put(b, &c, 1);
	b->nonempty = true;
}

static void dkim_body_feed(struct dkim_body *b, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (b->pending_cr) {
			b->pending_cr = false;
			if (c == '\n') {
				/* RFC 6376 3.4.4: WSP at the end of a line is ignored */
				b->pending_wsp = false;
				b->pending_crlf++;
				continue;
			}
			/* a bare CR is body text like any other octet */
			dkim_body_content(b, '\r');
		}
		if (c == '\r')
			b->pending_cr = true;
		else if (c == ' ' || c == '\t')
			b->pending_wsp = true;
		else
			dkim_body_content(b, c);
	}
}

/* RFC 6376 3.4.4: empty lines at the end are ignored; a non-empty body ends
 * with CRLF (added when missing); an empty body stays empty (erratum 3133: no
 * CRLF for relaxed, unlike simple). */
static void dkim_body_end(struct dkim_body *b)
{
	if (b->pending_cr) {
		b->pending_cr = false;
		dkim_body_content(b, '\r');
	}
	b->pending_wsp = false;
	if (b->nonempty)
		dkim_body_put(b, "\r\n", 2);
	b->pending_crlf = 0;
	dkim_body_flush(b);
}

/* ---- header ---- */

struct dkim_field {
	const char *name, *raw; /* into the kept header section */
	size_t name_len, raw_len;
};

static bool dkim_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Appends the relaxed canonical form of one header field raw[0..len) (without
 * its final CRLF) to out, RFC 6376 3.4.2: the name lower-cased, the field
 * unfolded, WSP runs as one SP, no WSP around the colon nor at the end; then
 * CRLF when crlf. */
static int dkim_canon_header(struct buf *out, const char *raw, size_t len, bool crlf)
{
	const char *colon = memchr(raw, ':', len);
	size_t name_len, i;
	bool wsp = false, started = false;

	if (colon == NULL)
		return -1;
	name_len = (size_t)(colon - raw);
	while (name_len > 0 && dkim_wsp(raw[name_len - 1]))
		name_len--;
	for (i = 0; i < name_len; i++) {
		char c = raw[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (buf_append(out, &c, 1) < 0)
			return -1;
	}
	if (buf_append(out, ":", 1) < 0)
		return -1;
	for (i = (size_t)(colon - raw) + 1; i < len; i++) {
		char c = raw[i];

		if (c == '\r' && i + 1 < len && raw[i + 1] == '\n') {
			i++; /* unfolding: the CRLF goes, the WSP after it stays */
			continue;
		}
		if (dkim_wsp(c)) {
			wsp = true;
			continue;
		}
		/* WSP right after the colon is dropped: nothing written yet */
		if (wsp && started && buf_append(out, " ", 1) < 0)
			return -1;
		wsp = false;
		started = true;
		if (buf_append(out, &c, 1) < 0)
			return -1;
	}
	if (crlf && buf_append(out, "\r\n", 2) < 0)
		return -1;
	return 1;
}

/* Splits the header section into fields (a field ends at a CRLF not followed
 * by WSP). Lines without a colon are no field and are skipped. */
static int dkim_split_fields(const char *h, size_t len, struct dkim_field **fields_r, size_t *n_r)
{
	struct dkim_field *fields = NULL, *grown;
	size_t n = 0, cap = 0, start = 0;

	for (size_t i = 0; i <= len; i++) {
		bool end = i == len;
		size_t fend = i;

		if (!end) {
			if (h[i] != '\n' || i == 0 || h[i - 1] != '\r')
				continue;
			if (i + 1 < len && dkim_wsp(h[i + 1]))
				continue; /* folded */
			fend = i - 1;
		}
		if (fend > start) {
			const char *colon = memchr(h + start, ':', fend - start);

			if (colon != NULL) {
				size_t nl = (size_t)(colon - (h + start));

				while (nl > 0 && dkim_wsp(h[start + nl - 1]))
					nl--;
				if (n == cap) {
					cap = cap == 0 ? 32 : cap * 2;
					if ((grown = realloc(fields, cap * sizeof(*fields))) ==
					    NULL) {
						free(fields);
						return -1;
					}
					fields = grown;
				}
				fields[n++] =
				    (struct dkim_field){h + start, h + start, nl, fend - start};
			}
		}
		start = i + 1;
	}
	*fields_r = fields;
	*n_r = n;
	return 1;
}

/* ---- the signature field ---- */

struct dkim_fold {
	struct buf *b;
	size_t col; /* octets on the current line */
};

/* Appends tok, after a SP when space (or a fold instead, when the line would
 * grow beyond DKIM_LINE_MAX; a fold is FWS, allowed wherever tokens meet). */
static int dkim_fold_token(struct dkim_fold *f, const char *tok, bool space)
{
	size_t len = strlen(tok);

	if (f->col + (space ? 1 : 0) + len > DKIM_LINE_MAX && f->col > 1) {
		if (buf_append(f->b, "\r\n\t", 3) < 0)
			return -1;
		f->col = 1;
	} else if (space) {
		if (buf_append(f->b, " ", 1) < 0)
			return -1;
		f->col++;
	}
	if (buf_append(f->b, tok, len) < 0)
		return -1;
	f->col += len;
	return 1;
}

/* A base64 value, filling lines (FWS is allowed inside, RFC 6376 2.4). */
static int dkim_fold_base64(struct dkim_fold *f, const char *s)
{
	size_t left = strlen(s);

	while (left > 0) {
		size_t k;

		if (f->col >= DKIM_LINE_MAX) {
			if (buf_append(f->b, "\r\n\t", 3) < 0)
				return -1;
			f->col = 1;
		}
		k = DKIM_LINE_MAX - f->col;
		if (k > left)
			k = left;
		if (buf_append(f->b, s, k) < 0)
			return -1;
		f->col += k;
		s += k;
		left -= k;
	}
	return 1;
}

/* The DKIM-Signature field up to and including "b=" (empty), into sig. */
static int dkim_sig_start(const struct dkim_key *k, int64_t now, const char *hlist, const char *bh,
                          struct dkim_fold *f)
{
	const char *a = k->alg == DKIM_ALG_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
	const char *tok_end;
	char tok[600];
	size_t pos = 0;

	if (buf_append_str(f->b, "DKIM-Signature:") < 0)
		return -1;
	f->col = strlen("DKIM-Signature:");
	if (dkim_fold_token(f, "v=1;", true) < 0)
		return -1;
	if (snprintf(tok, sizeof(tok), "a=%s;", a) >= (int)sizeof(tok) ||
	    dkim_fold_token(f, tok, true) < 0 || dkim_fold_token(f, "c=relaxed/relaxed;", true) < 0)
		return -1;
	if (snprintf(tok, sizeof(tok), "d=%s;", k->domain) >= (int)sizeof(tok) ||
	    dkim_fold_token(f, tok, true) < 0)
		return -1;
	if (snprintf(tok, sizeof(tok), "s=%s;", k->selector) >= (int)sizeof(tok) ||
	    dkim_fold_token(f, tok, true) < 0)
		return -1;
	if (snprintf(tok, sizeof(tok), "t=%lld;", (long long)now) >= (int)sizeof(tok) ||
	    dkim_fold_token(f, tok, true) < 0)
		return -1;
	/* h=, one token per name ("h=From:", "To:", ..., "Cc;"): FWS may go
	 * around the colons (RFC 6376 3.5) */
	while (hlist[pos] != '\0') {
		size_t len;
		bool first = pos == 0;

		tok_end = strchr(hlist + pos, ':');
		len = tok_end != NULL ? (size_t)(tok_end - (hlist + pos)) : strlen(hlist + pos);
		if (snprintf(tok, sizeof(tok), "%s%.*s%c", first ? "h=" : "", (int)len, hlist + pos,
		             tok_end != NULL ? ':' : ';') >= (int)sizeof(tok) ||
		    dkim_fold_token(f, tok, first) < 0)
			return -1;
		pos += len + (tok_end != NULL ? 1 : 0);
	}
	if (snprintf(tok, sizeof(tok), "bh=%s;", bh) >= (int)sizeof(tok) ||
	    dkim_fold_token(f, tok, true) < 0 || dkim_fold_token(f, "b=", true) < 0)
		return -1;
	return 1;
}

/* Signs hdata (the canonical signed fields) followed by sigc (the canonical
 * DKIM-Signature field with an empty b=). */
static int dkim_sign_data(const struct dkim_key *k, const struct buf *hdata, const struct buf *sigc,
                          unsigned char *sig, size_t *siglen, char **error_r)
{
	char ebuf[256];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = 0;

	if (ctx == NULL)
		return str_error(error_r, "out of memory");
	ERR_clear_error();
	if (k->alg == DKIM_ALG_RSA_SHA256) {
		/* RFC 6376 3.3.1: RSASSA-PKCS1-v1_5 with SHA-256 */
		ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
		     EVP_DigestSignUpdate(ctx, hdata->data, hdata->len) == 1 &&
		     EVP_DigestSignUpdate(ctx, sigc->data, sigc->len) == 1 &&
		     EVP_DigestSignFinal(ctx, NULL, siglen) == 1 && *siglen <= DKIM_SIG_MAX &&
		     EVP_DigestSignFinal(ctx, sig, siglen) == 1;
	} else {
		/* RFC 8463 3: PureEdDSA Ed25519 over the SHA-256 hash of the
		 * header data (32 octets), not over the data itself */
		unsigned char hash[SHA256_DIGEST_LENGTH];
		unsigned int hlen = 0;

		ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
		     EVP_DigestUpdate(ctx, hdata->data, hdata->len) == 1 &&
		     EVP_DigestUpdate(ctx, sigc->data, sigc->len) == 1 &&
		     EVP_DigestFinal_ex(ctx, hash, &hlen) == 1 && hlen == sizeof(hash) &&
		     EVP_MD_CTX_reset(ctx) == 1;
		*siglen = DKIM_SIG_MAX;
		ok = ok && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
		     EVP_DigestSign(ctx, sig, siglen, hash, sizeof(hash)) == 1;
	}
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return str_error(error_r, "DKIM signing with %s/%s failed: %s", k->domain,
		                 k->selector, dkim_ssl_error(ebuf, sizeof(ebuf)));
	return 1;
}

/* ---- the signer ---- */

static int dkim_signer_fail(struct dkim_signer *s, const char *why)
{
	if (!s->failed)
		s->error = str_dup(why);
	s->failed = true;
	return -1;
}

int dkim_signer_new(struct dkim_key *const *keys, size_t nkeys, int64_t now,
                    struct dkim_signer **s_r, char **error_r)
{
	struct dkim_signer *s;

	if (nkeys == 0)
		return str_error(error_r, "DKIM signer without keys");
	for (size_t i = 0; i < nkeys; i++) {
		if (!dkim_name_valid(keys[i]->domain) || !dkim_name_valid(keys[i]->selector))
			return str_error(error_r, "invalid DKIM domain or selector '%s'/'%s'",
			                 keys[i]->domain, keys[i]->selector);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->keys = calloc(nkeys, sizeof(*s->keys))) == NULL ||
	    (s->body.md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(s->body.md, EVP_sha256(), NULL) != 1) {
		dkim_signer_free(&s);
		return str_error(error_r, "out of memory");
	}
	memcpy(s->keys, keys, nkeys * sizeof(*keys));
	s->nkeys = nkeys;
	s->now = now;
	/* the header section plus its empty line */
	buf_init(&s->header, DKIM_HEADER_MAX + 2);
	*s_r = s;
	return 1;
}

int dkim_signer_feed(struct dkim_signer *s, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i = 0;

	if (s->failed)
		return -1;
	if (s->finished)
		return dkim_signer_fail(s, "DKIM signer fed after finish");
	if (!s->header_done) {
		/* the header section ends at the first empty line (RFC 5322 2.1) */
		for (; i < len && !s->header_done; i++) {
			if (p[i] == '\n' && s->prev_cr && s->line_len == 1)
				s->header_done = true;
			s->prev_cr = p[i] == '\r';
			s->line_len = p[i] == '\n' ? 0 : s->line_len + 1;
		}
		if (buf_append(&s->header, p, i) < 0)
			return dkim_signer_fail(s, "message header section too large to DKIM-sign "
			                           "(more than 1 MiB) or out of memory");
		if (s->header_done)
			s->header.len -= 2; /* the empty line */
	}
	dkim_body_feed(&s->body, p + i, len - i);
	if (s->body.failed)
		return dkim_signer_fail(s, "DKIM body hash failed");
	return 1;
}

/* h= and the canonical signed fields: for each signed name, its fields from
 * the last to the first (RFC 6376 5.4.2), then one more listing when
 * oversigned, which selects no field (the null string, 5.4). */
static int dkim_select(const struct dkim_field *fields, size_t n, struct buf *hlist,
                       struct buf *hdata)
{
	for (size_t j = 0; j < sizeof(dkim_signed_fields) / sizeof(dkim_signed_fields[0]); j++) {
		const char *name = dkim_signed_fields[j].name;
		size_t nlen = strlen(name);

		for (size_t i = n; i-- > 0;) {
			if (fields[i].name_len != nlen ||
			    strncasecmp(fields[i].name, name, nlen) != 0)
				continue;
			if ((hlist->len > 0 && buf_append(hlist, ":", 1) < 0) ||
			    buf_append_str(hlist, name) < 0 ||
			    dkim_canon_header(hdata, fields[i].raw, fields[i].raw_len, true) < 0)
				return -1;
		}
		if (dkim_signed_fields[j].oversign &&
		    ((hlist->len > 0 && buf_append(hlist, ":", 1) < 0) ||
		     buf_append_str(hlist, name) < 0))
			return -1;
	}
	return 1;
}

int dkim_signer_finish(struct dkim_signer *s, struct buf *out, char **error_r)
{
	struct buf hlist, hdata, sig, sigc;
	struct dkim_field *fields = NULL;
	unsigned char bh_raw[SHA256_DIGEST_LENGTH], sigbin[DKIM_SIG_MAX];
	char bh[64], *b64 = NULL;
	unsigned int bhlen = 0;
	size_t nfields = 0;
	int ret = -1;

	if (s->failed)
		return str_error(error_r, "%s", s->error != NULL ? s->error : "out of memory");
	if (s->finished)
		return str_error(error_r, "DKIM signer finished twice");
	s->finished = true;
	dkim_body_end(&s->body);
	if (s->body.failed || EVP_DigestFinal_ex(s->body.md, bh_raw, &bhlen) != 1 ||
	    bhlen != sizeof(bh_raw))
		return str_error(error_r, "DKIM body hash failed");
	base64_encode_buf(bh_raw, sizeof(bh_raw), bh);

	buf_init(&hlist, 0);
	buf_init(&hdata, 0);
	buf_init(&sig, 0);
	buf_init(&sigc, 0);
	if (dkim_split_fields(s->header.data != NULL ? s->header.data : "", s->header.len, &fields,
	                      &nfields) < 0 ||
	    dkim_select(fields, nfields, &hlist, &hdata) < 0) {
		str_error(error_r, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s->nkeys; i++) {
		struct dkim_fold f = {&sig, 0};
		size_t siglen = 0, start = out->len;

		buf_reset(&sig);
		buf_reset(&sigc);
		if (dkim_sig_start(s->keys[i], s->now, hlist.data, bh, &f) < 0 ||
		    dkim_canon_header(&sigc, sig.data, sig.len, false) < 0) {
			str_error(error_r, "out of memory");
			goto out;
		}
		if (dkim_sign_data(s->keys[i], &hdata, &sigc, sigbin, &siglen, error_r) < 0)
			goto out;
		if (base64_encode(sigbin, siglen, &b64) < 0 || dkim_fold_base64(&f, b64) < 0 ||
		    buf_append(&sig, "\r\n", 2) < 0 || buf_append(out, sig.data, sig.len) < 0) {
			out->len = start;
			str_error(error_r, "out of memory");
			goto out;
		}
		free(b64);
		b64 = NULL;
	}
	ret = 1;
out:
	free(b64);
	free(fields);
	buf_free(&hlist);
	buf_free(&hdata);
	buf_free(&sig);
	buf_free(&sigc);
	return ret;
}

void dkim_signer_free(struct dkim_signer **sp)
{
	struct dkim_signer *s = *sp;

	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->body.md);
	buf_free(&s->header);
	free(s->keys);
	free(s->error);
	free(s);
	*sp = NULL;
}
