/* SASL server mechanisms: PLAIN, LOGIN, SCRAM-SHA-256(-PLUS). See sasl.h. */
#include "auth/sasl.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "mail/address.h"

#define SCRAM_KEY_LEN SHA256_DIGEST_LENGTH
#define SCRAM_NONCE_BYTES 24 /* 32 base64 characters, no padding */
#define SCRAM_NONCE_MAX 128  /* test nonce */
#define SCRAM_SALT_BYTES 16
#define SCRAM_SALT_MAX 64
#define SCRAM_ITER_DEFAULT 4096 /* RFC 7677 4: at least 4096 */
#define SCRAM_ITER_MAX 10000000u
#define SCRAM_PREFIX "SCRAM-SHA-256$"
#define SASL_CB_MAX 64 /* tls-exporter gives 32 bytes (RFC 9266 2) */

enum sasl_state {
	SASL_STATE_INIT,
	SASL_STATE_PLAIN_WAIT,  /* sent the empty challenge, waiting for the message */
	SASL_STATE_LOGIN_USER,  /* sent "Username:" */
	SASL_STATE_LOGIN_PASS,  /* sent "Password:" */
	SASL_STATE_SCRAM_FIRST, /* sent the empty challenge, waiting client-first */
	SASL_STATE_LOOKUP,      /* returned SASL_STEP_LOOKUP */
	SASL_STATE_SCRAM_FINAL, /* sent server-first, waiting client-final */
	SASL_STATE_DONE,
};

struct sasl_server {
	enum sasl_mech mech;
	enum sasl_state state;
	bool have_cb;
	bool plus_offered; /* -PLUS was advertised: "y" is a downgrade */
	unsigned char cb[SASL_CB_MAX];
	size_t cb_len;
	struct sasl_lookup lookup;
	const char *reason;
	char *user; /* canonical account, after OK */
	unsigned char *out;
	size_t outlen;

	/* SCRAM */
	bool cb_used;     /* gs2 flag "p" */
	char *gs2_header; /* as the client sent it, e.g. "n,," */
	char *client_first_bare;
	char *client_nonce;
	char *nonce; /* client nonce + server nonce */
	char *server_first;
	char *test_nonce;
	unsigned char stored_key[SCRAM_KEY_LEN];
	unsigned char server_key[SCRAM_KEY_LEN];
	bool fake; /* unknown user or no SCRAM keys: always fails at the end */
};

static const char *const sasl_mech_names[] = {
    [SASL_MECH_PLAIN] = "PLAIN",
    [SASL_MECH_LOGIN] = "LOGIN",
    [SASL_MECH_SCRAM_SHA_256] = "SCRAM-SHA-256",
    [SASL_MECH_SCRAM_SHA_256_PLUS] = "SCRAM-SHA-256-PLUS",
};

#define SASL_MECH_COUNT (sizeof(sasl_mech_names) / sizeof(sasl_mech_names[0]))

/* The enabled set ([auth] mechanisms): set at start-up, read by every loop. */
static _Atomic unsigned sasl_mechs_enabled = SASL_MECHS_DEFAULT;

int sasl_mech_lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < SASL_MECH_COUNT; i++) {
		if (strlen(sasl_mech_names[i]) == len &&
		    strncasecmp(sasl_mech_names[i], name, len) == 0)
			return (int)i;
	}
	return -1;
}

int sasl_mech_from_name(const char *name, size_t len)
{
	int mech = sasl_mech_lookup(name, len);
	if (mech < 0 || !sasl_mech_enabled((enum sasl_mech)mech))
		return -1;
	return mech;
}

const char *sasl_mech_name(enum sasl_mech mech)
{
	if ((size_t)mech >= SASL_MECH_COUNT)
		return "?";
	return sasl_mech_names[mech];
}

bool sasl_mech_enabled(enum sasl_mech mech)
{
	return (size_t)mech < SASL_MECH_COUNT && (sasl_mechs_enabled & SASL_MECH_BIT(mech)) != 0;
}

void sasl_mechs_set(unsigned mask)
{
	sasl_mechs_enabled = mask & SASL_MECHS_ALL;
}

unsigned sasl_mechs_get(void)
{
	return sasl_mechs_enabled;
}

int sasl_mechs_parse(const char *list, unsigned *mask_r, char *error, size_t error_len)
{
	unsigned mask = 0;
	const char *p = list;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		const char *w = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != ',')
			p++;
		int mech = sasl_mech_lookup(w, (size_t)(p - w));
		if (mech < 0) {
			snprintf(error, error_len,
			         "unknown SASL mechanism '%.*s' (expected SCRAM-SHA-256-PLUS, "
			         "SCRAM-SHA-256, PLAIN, LOGIN)",
			         (int)((size_t)(p - w) > 64 ? 64 : (size_t)(p - w)), w);
			return -1;
		}
		mask |= SASL_MECH_BIT(mech);
	}
	if (mask == 0) {
		snprintf(error, error_len, "no SASL mechanism given");
		return -1;
	}
	*mask_r = mask;
	return 1;
}

/* The advertised list for every (mask, plaintext_ok, channel_binding), built once:
 * the strings are static, so callers on any thread may keep them. */
static char sasl_mechs_lists[SASL_MECHS_ALL + 1][4][64];
static pthread_once_t sasl_mechs_once = PTHREAD_ONCE_INIT;

static void sasl_mechs_build(void)
{
	/* Strongest first: clients that pick the first mechanism they know get SCRAM. */
	static const enum sasl_mech order[] = {SASL_MECH_SCRAM_SHA_256_PLUS,
	                                       SASL_MECH_SCRAM_SHA_256, SASL_MECH_PLAIN,
	                                       SASL_MECH_LOGIN};
	for (unsigned mask = 0; mask <= SASL_MECHS_ALL; mask++) {
		for (unsigned v = 0; v < 4; v++) {
			bool plaintext_ok = (v & 1) != 0, channel_binding = (v & 2) != 0;
			char *out = sasl_mechs_lists[mask][v];
			size_t n = 0;
			for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
				enum sasl_mech m = order[i];
				if ((mask & SASL_MECH_BIT(m)) == 0)
					continue;
				if (m == SASL_MECH_SCRAM_SHA_256_PLUS && !channel_binding)
					continue;
				if ((m == SASL_MECH_PLAIN || m == SASL_MECH_LOGIN) && !plaintext_ok)
					continue;
				n += (size_t)snprintf(out + n, sizeof(sasl_mechs_lists[0][0]) - n,
				                      "%s%s", n > 0 ? " " : "", sasl_mech_names[m]);
			}
		}
	}
}

const char *sasl_mechs_advertised(bool plaintext_ok, bool channel_binding)
{
	pthread_once(&sasl_mechs_once, sasl_mechs_build);
	unsigned v = (plaintext_ok ? 1u : 0u) | (channel_binding ? 2u : 0u);
	return sasl_mechs_lists[sasl_mechs_enabled & SASL_MECHS_ALL][v];
}

/* ---- helpers ---- */

static void free_secret(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

static void lookup_clear_results(struct sasl_lookup *l)
{
	free_secret(&l->scram);
	free(l->account);
	l->account = NULL;
	free(l->error);
	l->error = NULL;
	l->result = -1;
}

static void lookup_clear(struct sasl_lookup *l)
{
	free(l->user);
	l->user = NULL;
	free_secret(&l->password);
	lookup_clear_results(l);
}

static char *memdup_str(const void *p, size_t len)
{
	char *s = malloc(len + 1);
	if (s != NULL) {
		memcpy(s, p, len);
		s[len] = '\0';
	}
	return s;
}

/* A user name or authzid: 1..SASL_FIELD_MAX bytes of UTF-8 without control
 * characters (account addresses never have them; this keeps logs and lookups sane). */
static bool identity_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	if (len == 0 || len > SASL_FIELD_MAX)
		return false;
	for (size_t i = 0; i < len;) {
		if (u[i] < 0x20 || u[i] == 0x7f)
			return false;
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = mail_utf8_seq_len(u + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* The same login: account addresses compare case-insensitively (store.h). */
static bool identity_equal(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

static enum sasl_step finish(struct sasl_server *s, enum sasl_step step, const char *reason)
{
	s->state = SASL_STATE_DONE;
	s->reason = reason;
	return step;
}

static int set_out(struct sasl_server *s, const void *data, size_t len)
{
	free(s->out);
	s->out = (unsigned char *)memdup_str(data, len);
	s->outlen = s->out != NULL ? len : 0;
	return s->out != NULL ? 1 : -1;
}

static enum sasl_step challenge(struct sasl_server *s, const char *text, enum sasl_state next)
{
	if (set_out(s, text, strlen(text)) < 0)
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	s->state = next;
	return SASL_STEP_CHALLENGE;
}

static enum sasl_step start_lookup(struct sasl_server *s)
{
	lookup_clear_results(&s->lookup);
	s->state = SASL_STATE_LOOKUP;
	return SASL_STEP_LOOKUP;
}

/* PLAIN/LOGIN: the lookup verified (or not) the password. */
static enum sasl_step password_result(struct sasl_server *s)
{
	struct sasl_lookup *l = &s->lookup;

	free_secret(&l->password);
	if (l->result < 0)
		return finish(s, SASL_STEP_TEMPFAIL, "credentials lookup failed");
	if (l->result == 0)
		return finish(s, SASL_STEP_FAIL, "unknown user or wrong password");
	s->user = strdup(l->account != NULL ? l->account : l->user);
	if (s->user == NULL)
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	return finish(s, SASL_STEP_OK, "authenticated");
}

/* ---- PLAIN (RFC 4616) ---- */

static enum sasl_step plain_message(struct sasl_server *s, const unsigned char *in, size_t inlen)
{
	/* RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
	const char *m = (const char *)in;
	const char *nul1 = memchr(m, '\0', inlen);
	if (nul1 == NULL)
		return finish(s, SASL_STEP_MALFORMED, "PLAIN: missing NUL");
	size_t zlen = (size_t)(nul1 - m);
	const char *cid = nul1 + 1;
	const char *nul2 = memchr(cid, '\0', inlen - zlen - 1);
	if (nul2 == NULL)
		return finish(s, SASL_STEP_MALFORMED, "PLAIN: missing second NUL");
	size_t clen = (size_t)(nul2 - cid);
	const char *pw = nul2 + 1;
	size_t plen = inlen - zlen - clen - 2;

	if (memchr(pw, '\0', plen) != NULL)
		return finish(s, SASL_STEP_MALFORMED, "PLAIN: NUL in password");
	if (zlen > 0 && !identity_valid(m, zlen))
		return finish(s, SASL_STEP_MALFORMED, "PLAIN: bad authorization identity");
	if (!identity_valid(cid, clen))
		return finish(s, SASL_STEP_MALFORMED, "PLAIN: bad authentication identity");
	/* RFC 4616 2: passwd = 1*SAFE. An empty one is what a user who typed
	 * nothing sends: no account has it, so it is a plain failure (535 / -ERR). */
	if (plen == 0)
		return finish(s, SASL_STEP_FAIL, "PLAIN: empty password");
	if (plen > SASL_FIELD_MAX)
		return finish(s, SASL_STEP_MALFORMED, "PLAIN: bad password length");

	s->lookup.user = memdup_str(cid, clen);
	if (s->lookup.user == NULL)
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	if (zlen > 0) {
		/* No proxy authorization: RFC 4616 2 lets the server refuse an authzid
		 * the authcid may not act as; here that is any other identity. */
		char *authzid = memdup_str(m, zlen);
		if (authzid == NULL)
			return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
		bool same = identity_equal(authzid, s->lookup.user);
		free(authzid);
		if (!same)
			return finish(s, SASL_STEP_FAIL, "PLAIN: authorization identity differs");
	}
	s->lookup.password = memdup_str(pw, plen);
	if (s->lookup.password == NULL)
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	s->lookup.want_scram = false;
	return start_lookup(s);
}

/* ---- LOGIN (draft-murchison-sasl-login) ---- */

static enum sasl_step login_user(struct sasl_server *s, const unsigned char *in, size_t inlen)
{
	if (memchr(in, '\0', inlen) != NULL || !identity_valid((const char *)in, inlen))
		return finish(s, SASL_STEP_MALFORMED, "LOGIN: bad user name");
	s->lookup.user = memdup_str(in, inlen);
	if (s->lookup.user == NULL)
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	/* The challenge texts clients expect (they are not checked by most, but some
	 * old ones do) */
	return challenge(s, "Password:", SASL_STATE_LOGIN_PASS);
}

static enum sasl_step login_pass(struct sasl_server *s, const unsigned char *in, size_t inlen)
{
	if (inlen == 0 || inlen > SASL_FIELD_MAX || memchr(in, '\0', inlen) != NULL)
		return finish(s, SASL_STEP_MALFORMED, "LOGIN: bad password");
	s->lookup.password = memdup_str(in, inlen);
	if (s->lookup.password == NULL)
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	s->lookup.want_scram = false;
	return start_lookup(s);
}

/* ---- SCRAM-SHA-256 (RFC 5802, RFC 7677) ---- */

/* Per-process secret for the fake credentials of unknown users. */
static unsigned char scram_secret[32];
static bool scram_secret_ok;
static pthread_once_t scram_secret_once = PTHREAD_ONCE_INIT;

static void scram_secret_init(void)
{
	scram_secret_ok = RAND_bytes(scram_secret, sizeof(scram_secret)) == 1;
}

static bool hmac_sha256(const unsigned char *key, size_t keylen, const void *data, size_t len,
                        unsigned char out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;
	return HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) != NULL &&
	       outlen == SCRAM_KEY_LEN;
}

/* RFC 5802 7: saslname = 1*(value-safe-char / "=2C" / "=3D"); the server MUST fail
 * on any other '=' sequence. Returns a malloc'd decoded name, or NULL (with *oom
 * set when out of memory). */
static char *scram_saslname_decode(const char *p, size_t len, bool *oom)
{
	char *r = malloc(len + 1);
	size_t o = 0;

	*oom = r == NULL;
	if (r == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (p[i] != '=') {
			r[o++] = p[i];
			continue;
		}
		if (len - i >= 3 && p[i + 1] == '2' && p[i + 2] == 'C')
			r[o++] = ',';
		else if (len - i >= 3 && p[i + 1] == '3' && p[i + 2] == 'D')
			r[o++] = '=';
		else
			goto bad;
		i += 2;
	}
	r[o] = '\0';
	if (!identity_valid(r, o))
		goto bad;
	return r;
bad:
	free(r);
	return NULL;
}

/* RFC 5802 7: printable = %x21-2B / %x2D-7E (a nonce) */
static bool scram_printable(const char *p, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x21 || c > 0x7e || c == ',')
			return false;
	}
	return true;
}

/* attr-val = ALPHA "=" value: the attribute at p (up to the next ',' or end). */
static bool scram_attr(const char *p, const char *end, char name, const char **val, size_t *vlen)
{
	if (end - p < 2 || p[0] != name || p[1] != '=')
		return false;
	const char *c = memchr(p + 2, ',', (size_t)(end - p - 2));
	*val = p + 2;
	*vlen = (size_t)((c != NULL ? c : end) - *val);
	return true;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static enum sasl_step scram_client_first(struct sasl_server *s, const char *m, size_t len)
{
	const char *end = m + len, *p = m, *v, *c;
	size_t vlen;
	bool plus = s->mech == SASL_MECH_SCRAM_SHA_256_PLUS, oom = false;
	char flag;

	/* RFC 5802 7: gs2-header = gs2-cbind-flag "," [ authzid ] "," */
	if (len >= 2 && (m[0] == 'n' || m[0] == 'y') && m[1] == ',') {
		flag = m[0];
		p = m + 2;
	} else if (len >= 2 && m[0] == 'p' && m[1] == '=') {
		flag = 'p';
		c = memchr(m, ',', len);
		if (c == NULL)
			return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad gs2 header");
		/* cb-name = 1*(ALPHA / DIGIT / "." / "-") */
		for (v = m + 2; v < c; v++) {
			if (!is_alpha(*v) && !(*v >= '0' && *v <= '9') && *v != '.' && *v != '-')
				return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad cb-name");
		}
		if (c == m + 2)
			return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad cb-name");
		if (!plus)
			return finish(s, SASL_STEP_MALFORMED,
			              "SCRAM: channel binding requested without -PLUS");
		/* RFC 9266: tls-exporter is the one type we offer */
		if ((size_t)(c - m - 2) != strlen("tls-exporter") ||
		    memcmp(m + 2, "tls-exporter", strlen("tls-exporter")) != 0)
			return finish(s, SASL_STEP_FAIL, "SCRAM: unsupported channel binding type");
		p = c + 1;
	} else {
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad gs2 header");
	}

	if (plus && flag != 'p')
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: -PLUS without channel binding");
	if (plus && !s->have_cb)
		return finish(s, SASL_STEP_FAIL, "SCRAM: no channel binding on this connection");
	/* RFC 5802 6: "y" means the client could have bound the channel but thinks the
	 * server cannot. We offered -PLUS (cb data present), so a man in the middle may
	 * have stripped it from the list: fail. */
	if (flag == 'y' && s->plus_offered)
		return finish(s, SASL_STEP_FAIL, "SCRAM: channel binding downgrade (y flag)");

	char *authzid = NULL;
	if (p < end && *p == 'a') {
		if (!scram_attr(p, end, 'a', &v, &vlen) || v + vlen == end)
			return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad authzid");
		authzid = scram_saslname_decode(v, vlen, &oom);
		if (authzid == NULL)
			return finish(s, oom ? SASL_STEP_TEMPFAIL : SASL_STEP_MALFORMED,
			              oom ? "out of memory" : "SCRAM: bad authzid");
		p = v + vlen;
	}
	if (p >= end || *p != ',') {
		free(authzid);
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad gs2 header");
	}
	p++;
	s->gs2_header = memdup_str(m, (size_t)(p - m));
	s->cb_used = flag == 'p';

	/* client-first-message-bare = [reserved-mext ","] username "," nonce
	 *                             ["," extensions] */
	const char *bare = p;
	if (end - p >= 2 && p[0] == 'm' && p[1] == '=') {
		free(authzid);
		/* RFC 5802 5.1: m= present: the server MUST fail */
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: mandatory extension not supported");
	}
	if (!scram_attr(p, end, 'n', &v, &vlen)) {
		free(authzid);
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: missing user name");
	}
	s->lookup.user = scram_saslname_decode(v, vlen, &oom);
	if (s->lookup.user == NULL) {
		free(authzid);
		return finish(s, oom ? SASL_STEP_TEMPFAIL : SASL_STEP_MALFORMED,
		              oom ? "out of memory" : "SCRAM: bad user name");
	}
	if (authzid != NULL) {
		bool same = identity_equal(authzid, s->lookup.user);
		free(authzid);
		if (!same)
			return finish(s, SASL_STEP_FAIL, "SCRAM: authorization identity differs");
	}
	p = v + vlen;
	if (p == end || !scram_attr(p + 1, end, 'r', &v, &vlen) || !scram_printable(v, vlen))
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad nonce");
	s->client_nonce = memdup_str(v, vlen);
	p = v + vlen;
	/* extensions: well-formed ones are ignored (none are defined) */
	while (p < end) {
		p++; /* ',' */
		/* an extension may not repeat n=, r= or m= */
		if (end - p < 3 || !is_alpha(p[0]) || p[1] != '=' || p[2] == ',' ||
		    strchr("nrm", p[0]) != NULL)
			return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad extension");
		c = memchr(p, ',', (size_t)(end - p));
		p = c != NULL ? c : end;
	}
	s->client_first_bare = memdup_str(bare, (size_t)(end - bare));
	if (s->gs2_header == NULL || s->client_nonce == NULL || s->client_first_bare == NULL)
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	s->lookup.want_scram = true;
	return start_lookup(s);
}

/* Parses "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". */
static bool scram_creds_parse(const char *creds, unsigned *iter_r, unsigned char **salt_r,
                              size_t *salt_len_r, unsigned char stored[SCRAM_KEY_LEN],
                              unsigned char server[SCRAM_KEY_LEN])
{
	size_t plen = strlen(SCRAM_PREFIX);
	const char *p = creds, *c1, *c2, *c3;
	unsigned long iter = 0;
	unsigned char *salt = NULL, *k1 = NULL, *k2 = NULL;
	size_t salt_len = 0, k1len = 0, k2len = 0;
	bool ok = false;

	if (strncmp(p, SCRAM_PREFIX, plen) != 0)
		return false;
	p += plen;
	if (*p < '1' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		iter = iter * 10 + (unsigned long)(*p - '0');
		if (iter > SCRAM_ITER_MAX)
			return false;
	}
	if (*p != ':')
		return false;
	c1 = p + 1;
	c2 = strchr(c1, '$');
	if (c2 == NULL)
		return false;
	c3 = strchr(c2 + 1, ':');
	if (c3 == NULL)
		return false;
	if (base64_decode(c1, (size_t)(c2 - c1), &salt, &salt_len) != 1 ||
	    base64_decode(c2 + 1, (size_t)(c3 - c2 - 1), &k1, &k1len) != 1 ||
	    base64_decode(c3 + 1, strlen(c3 + 1), &k2, &k2len) != 1)
		goto out;
	if (salt_len == 0 || salt_len > SCRAM_SALT_MAX || k1len != SCRAM_KEY_LEN ||
	    k2len != SCRAM_KEY_LEN)
		goto out;
	memcpy(stored, k1, SCRAM_KEY_LEN);
	memcpy(server, k2, SCRAM_KEY_LEN);
	*iter_r = (unsigned)iter;
	*salt_r = salt;
	*salt_len_r = salt_len;
	salt = NULL;
	ok = true;
out:
	free(salt);
	if (k1 != NULL)
		explicit_bzero(k1, k1len);
	if (k2 != NULL)
		explicit_bzero(k2, k2len);
	free(k1);
	free(k2);
	return ok;
}

/* Credentials for a user we cannot authenticate (unknown, no SCRAM keys, or bad
 * stored keys): a salt derived from the (ASCII-lowercased, as the store matches
 * logins) user name and a per-process secret, so repeated attempts see the same
 * salt, as for a real account, and the default iteration count. RFC 5802 9 ("the
 * server SHOULD NOT reveal whether a user exists"). */
static bool scram_fake_creds(struct sasl_server *s, unsigned char salt[SCRAM_SALT_BYTES])
{
	unsigned char mac[SCRAM_KEY_LEN];
	size_t ulen = strlen(s->lookup.user);
	char *lower = malloc(ulen + 6);

	pthread_once(&scram_secret_once, scram_secret_init);
	if (!scram_secret_ok || lower == NULL) {
		free(lower);
		return false;
	}
	memcpy(lower, "salt:", 5);
	for (size_t i = 0; i <= ulen; i++) {
		char ch = s->lookup.user[i];
		lower[5 + i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
	}
	bool ok = hmac_sha256(scram_secret, sizeof(scram_secret), lower, ulen + 5, mac);
	free(lower);
	if (!ok)
		return false;
	memcpy(salt, mac, SCRAM_SALT_BYTES);
	/* keys nobody can match (the proof is checked anyway, then ignored) */
	if (RAND_bytes(s->stored_key, SCRAM_KEY_LEN) != 1 ||
	    RAND_bytes(s->server_key, SCRAM_KEY_LEN) != 1)
		return false;
	s->fake = true;
	return true;
}

static enum sasl_step scram_server_first(struct sasl_server *s)
{
	struct sasl_lookup *l = &s->lookup;
	unsigned char fake_salt[SCRAM_SALT_BYTES];
	unsigned char *salt = NULL;
	size_t salt_len = 0;
	unsigned iter = SCRAM_ITER_DEFAULT;
	char *salt_b64 = NULL;
	char snonce[SCRAM_NONCE_MAX + 1];

	if (l->result < 0)
		return finish(s, SASL_STEP_TEMPFAIL, "credentials lookup failed");
	if (l->result == 1 && l->scram != NULL &&
	    scram_creds_parse(l->scram, &iter, &salt, &salt_len, s->stored_key, s->server_key)) {
		s->fake = false;
	} else {
		/* the reason is only reported at the end, when the proof fails */
		if (!scram_fake_creds(s, fake_salt))
			return finish(s, SASL_STEP_TEMPFAIL, "SCRAM: no randomness");
		iter = SCRAM_ITER_DEFAULT;
		salt = fake_salt;
		salt_len = sizeof(fake_salt);
	}
	free_secret(&l->scram);

	if (s->test_nonce != NULL) {
		snprintf(snonce, sizeof(snonce), "%s", s->test_nonce);
	} else {
		unsigned char rnd[SCRAM_NONCE_BYTES];
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			if (salt != fake_salt)
				free(salt);
			return finish(s, SASL_STEP_TEMPFAIL, "SCRAM: no randomness");
		}
		base64_encode_buf(rnd, sizeof(rnd), snonce);
	}

	int r = base64_encode(salt, salt_len, &salt_b64);
	if (salt != fake_salt)
		free(salt);
	if (r < 0)
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");

	size_t nlen = strlen(s->client_nonce) + strlen(snonce);
	s->nonce = malloc(nlen + 1);
	size_t sflen = nlen + strlen(salt_b64) + 32;
	s->server_first = malloc(sflen);
	if (s->nonce == NULL || s->server_first == NULL) {
		free(salt_b64);
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	}
	snprintf(s->nonce, nlen + 1, "%s%s", s->client_nonce, snonce);
	/* RFC 5802 7: server-first-message = [reserved-mext ","] nonce "," salt ","
	 * iteration-count ["," extensions] */
	int n = snprintf(s->server_first, sflen, "r=%s,s=%s,i=%u", s->nonce, salt_b64, iter);
	free(salt_b64);
	if (n < 0 || (size_t)n >= sflen)
		return finish(s, SASL_STEP_TEMPFAIL, "SCRAM: server-first too long");
	return challenge(s, s->server_first, SASL_STATE_SCRAM_FINAL);
}

static enum sasl_step scram_client_final(struct sasl_server *s, const char *m, size_t len)
{
	const char *end = m + len, *p, *v, *proof_attr = NULL;
	size_t vlen;
	unsigned char *cbind = NULL, *proof = NULL;
	size_t cbind_len = 0, proof_len = 0;
	enum sasl_step step;
	const char *reason;

	/* RFC 5802 7: client-final-message-without-proof = channel-binding "," nonce
	 * ["," extensions]; client-final-message = ... "," proof (always last) */
	for (p = end; p > m; p--) {
		if (p[-1] == ',') {
			proof_attr = p;
			break;
		}
	}
	if (proof_attr == NULL || end - proof_attr < 2 || proof_attr[0] != 'p' ||
	    proof_attr[1] != '=')
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: missing proof");
	const char *without_proof_end = proof_attr - 1;

	if (!scram_attr(m, without_proof_end, 'c', &v, &vlen))
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: missing channel binding");
	if (base64_decode(v, vlen, &cbind, &cbind_len) != 1)
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad channel binding encoding");
	p = v + vlen;
	if (p == without_proof_end || !scram_attr(p + 1, without_proof_end, 'r', &v, &vlen)) {
		free(cbind);
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: missing nonce");
	}
	bool nonce_ok = vlen == strlen(s->nonce) && memcmp(v, s->nonce, vlen) == 0;
	p = v + vlen;
	while (p < without_proof_end) {
		p++;
		/* an extension may not repeat c=, r= or p= */
		if (without_proof_end - p < 3 || !is_alpha(p[0]) || p[1] != '=' || p[2] == ',' ||
		    strchr("crp", p[0]) != NULL) {
			free(cbind);
			return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad extension");
		}
		const char *c = memchr(p, ',', (size_t)(without_proof_end - p));
		p = c != NULL ? c : without_proof_end;
	}
	const char *proof64 = proof_attr + 2;
	if (base64_decode(proof64, (size_t)(end - proof64), &proof, &proof_len) != 1 ||
	    proof_len != SCRAM_KEY_LEN) {
		free(cbind);
		free(proof);
		return finish(s, SASL_STEP_MALFORMED, "SCRAM: bad proof");
	}

	/* RFC 5802 6/7: c= is base64(gs2-header [cbind-data]); cbind-data only with "p" */
	size_t glen = strlen(s->gs2_header);
	size_t want_len = glen + (s->cb_used ? s->cb_len : 0);
	bool cb_ok = cbind_len == want_len && memcmp(cbind, s->gs2_header, glen) == 0 &&
	             (!s->cb_used || CRYPTO_memcmp(cbind + glen, s->cb, s->cb_len) == 0);
	free(cbind);

	/* AuthMessage = client-first-message-bare "," server-first-message ","
	 *               client-final-message-without-proof */
	size_t b = strlen(s->client_first_bare), f = strlen(s->server_first);
	size_t w = (size_t)(without_proof_end - m);
	size_t alen = b + 1 + f + 1 + w;
	char *auth = malloc(alen);
	if (auth == NULL) {
		free(proof);
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	}
	memcpy(auth, s->client_first_bare, b);
	auth[b] = ',';
	memcpy(auth + b + 1, s->server_first, f);
	auth[b + 1 + f] = ',';
	memcpy(auth + b + 1 + f + 1, m, w);

	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof is right
	 * when H(ClientKey) == StoredKey (RFC 5802 3). */
	unsigned char sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], hkey[SCRAM_KEY_LEN];
	bool proof_ok = false, ok = hmac_sha256(s->stored_key, SCRAM_KEY_LEN, auth, alen, sig);
	if (ok) {
		for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
			key[i] = proof[i] ^ sig[i];
		ok = SHA256(key, SCRAM_KEY_LEN, hkey) != NULL;
		proof_ok = ok && CRYPTO_memcmp(hkey, s->stored_key, SCRAM_KEY_LEN) == 0;
	}
	explicit_bzero(key, sizeof(key));
	explicit_bzero(proof, proof_len);
	free(proof);

	if (!ok) {
		step = SASL_STEP_TEMPFAIL;
		reason = "SCRAM: hash failed";
	} else if (!cb_ok) {
		step = SASL_STEP_FAIL;
		reason = "SCRAM: channel binding mismatch";
	} else if (!nonce_ok) {
		step = SASL_STEP_FAIL;
		reason = "SCRAM: nonce mismatch";
	} else if (s->fake) {
		step = SASL_STEP_FAIL;
		reason = s->lookup.result == 1 ? "SCRAM: account has no SCRAM credentials"
		                               : "SCRAM: unknown user";
	} else if (!proof_ok) {
		step = SASL_STEP_FAIL;
		reason = "SCRAM: wrong password";
	} else {
		step = SASL_STEP_OK;
		reason = "authenticated";
	}
	if (step != SASL_STEP_OK) {
		free(auth);
		return finish(s, step, reason);
	}

	/* server-final-message = "v=" base64(HMAC(ServerKey, AuthMessage)) */
	char *sig64 = NULL;
	ok = hmac_sha256(s->server_key, SCRAM_KEY_LEN, auth, alen, sig) &&
	     base64_encode(sig, SCRAM_KEY_LEN, &sig64) == 1;
	free(auth);
	if (!ok)
		return finish(s, SASL_STEP_TEMPFAIL, "SCRAM: hash failed");
	char final[8 + 64];
	snprintf(final, sizeof(final), "v=%s", sig64);
	free(sig64);
	s->user = strdup(s->lookup.account != NULL ? s->lookup.account : s->lookup.user);
	if (s->user == NULL || set_out(s, final, strlen(final)) < 0)
		return finish(s, SASL_STEP_TEMPFAIL, "out of memory");
	return finish(s, SASL_STEP_OK, reason);
}

/* ---- the state machine ---- */

struct sasl_server *sasl_server_new(enum sasl_mech mech, const unsigned char *cb_data,
                                    size_t cb_len)
{
	struct sasl_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->mech = mech;
	s->state = SASL_STATE_INIT;
	s->lookup.result = -1;
	s->reason = "";
	if (cb_data != NULL && cb_len > 0 && cb_len <= SASL_CB_MAX) {
		memcpy(s->cb, cb_data, cb_len);
		s->cb_len = cb_len;
		s->have_cb = true;
		s->plus_offered = sasl_mech_enabled(SASL_MECH_SCRAM_SHA_256_PLUS);
	}
	return s;
}

void sasl_server_free(struct sasl_server **sp)
{
	struct sasl_server *s = *sp;
	if (s == NULL)
		return;
	lookup_clear(&s->lookup);
	free(s->user);
	free(s->out);
	free(s->gs2_header);
	free(s->client_first_bare);
	free(s->client_nonce);
	free(s->nonce);
	free(s->server_first);
	free(s->test_nonce);
	explicit_bzero(s, sizeof(*s));
	free(s);
	*sp = NULL;
}

void sasl_server_set_test_nonce(struct sasl_server *s, const char *nonce)
{
	if (nonce == NULL || strlen(nonce) > SCRAM_NONCE_MAX ||
	    !scram_printable(nonce, strlen(nonce)))
		return;
	free(s->test_nonce);
	s->test_nonce = strdup(nonce);
}

struct sasl_lookup *sasl_server_lookup(struct sasl_server *s)
{
	return &s->lookup;
}

const char *sasl_server_user(const struct sasl_server *s)
{
	return s->user;
}

const char *sasl_server_reason(const struct sasl_server *s)
{
	return s->reason != NULL ? s->reason : "";
}

const char *sasl_server_claimed_user(const struct sasl_server *s)
{
	return s->lookup.user;
}

enum sasl_step sasl_server_step(struct sasl_server *s, const unsigned char *in, size_t inlen,
                                const unsigned char **out, size_t *outlen)
{
	enum sasl_step step;

	*out = NULL;
	*outlen = 0;
	free(s->out);
	s->out = NULL;
	s->outlen = 0;

	if (in == NULL && inlen != 0)
		step = finish(s, SASL_STEP_MALFORMED, "bad call");
	else if (inlen > SASL_MSG_MAX)
		step = finish(s, SASL_STEP_MALFORMED, "message too long");
	else if (s->state == SASL_STATE_LOOKUP && in != NULL)
		step = finish(s, SASL_STEP_MALFORMED, "input during lookup");
	else {
		switch (s->state) {
		case SASL_STATE_INIT:
			if (inlen == 0) {
				/* no (or an empty) initial response */
				if (s->mech == SASL_MECH_LOGIN)
					step = challenge(s, "Username:", SASL_STATE_LOGIN_USER);
				else if (s->mech == SASL_MECH_PLAIN)
					step = challenge(s, "", SASL_STATE_PLAIN_WAIT);
				else
					step = challenge(s, "", SASL_STATE_SCRAM_FIRST);
			} else if (s->mech == SASL_MECH_PLAIN) {
				step = plain_message(s, in, inlen);
			} else if (s->mech == SASL_MECH_LOGIN) {
				/* some clients send the user name as initial response */
				step = login_user(s, in, inlen);
			} else if (memchr(in, '\0', inlen) != NULL) {
				step = finish(s, SASL_STEP_MALFORMED, "SCRAM: NUL in message");
			} else {
				step = scram_client_first(s, (const char *)in, inlen);
			}
			break;
		case SASL_STATE_PLAIN_WAIT:
			step = plain_message(s, in != NULL ? in : (const unsigned char *)"", inlen);
			break;
		case SASL_STATE_LOGIN_USER:
			step = login_user(s, in != NULL ? in : (const unsigned char *)"", inlen);
			break;
		case SASL_STATE_LOGIN_PASS:
			step = login_pass(s, in != NULL ? in : (const unsigned char *)"", inlen);
			break;
		case SASL_STATE_SCRAM_FIRST:
		case SASL_STATE_SCRAM_FINAL:
			if (inlen == 0 || memchr(in, '\0', inlen) != NULL) {
				step = finish(s, SASL_STEP_MALFORMED, "SCRAM: bad message");
			} else if (s->state == SASL_STATE_SCRAM_FIRST) {
				step = scram_client_first(s, (const char *)in, inlen);
			} else {
				step = scram_client_final(s, (const char *)in, inlen);
			}
			break;
		case SASL_STATE_LOOKUP:
			if (s->mech == SASL_MECH_PLAIN || s->mech == SASL_MECH_LOGIN)
				step = password_result(s);
			else
				step = scram_server_first(s);
			break;
		case SASL_STATE_DONE:
		default:
			step = finish(s, SASL_STEP_MALFORMED, "exchange already finished");
			break;
		}
	}
	if (s->out != NULL) {
		*out = s->out;
		*outlen = s->outlen;
	}
	return step;
}

/* ---- stored credentials ---- */

int scram_credentials_make_salt(const char *password, unsigned iter, const unsigned char *salt,
                                size_t salt_len, char **creds_r)
{
	unsigned char salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	unsigned char stored[SCRAM_KEY_LEN], server[SCRAM_KEY_LEN];
	char *salt64 = NULL, *stored64 = NULL, *server64 = NULL;
	int ret = -1;

	if (iter == 0)
		iter = SCRAM_ITER_DEFAULT;
	if (iter < SCRAM_ITER_DEFAULT || iter > SCRAM_ITER_MAX || salt_len == 0 ||
	    salt_len > SCRAM_SALT_MAX || password == NULL)
		return -1;
	/* RFC 5802 3: SaltedPassword = Hi(Normalize(password), salt, i), Hi being
	 * PBKDF2 with HMAC (RFC 2898) and one block of output. No SASLprep (sasl.h). */
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iter,
	                      EVP_sha256(), SCRAM_KEY_LEN, salted) != 1)
		goto out;
	if (!hmac_sha256(salted, SCRAM_KEY_LEN, "Client Key", 10, client_key) ||
	    SHA256(client_key, SCRAM_KEY_LEN, stored) == NULL ||
	    !hmac_sha256(salted, SCRAM_KEY_LEN, "Server Key", 10, server))
		goto out;
	if (base64_encode(salt, salt_len, &salt64) < 0 ||
	    base64_encode(stored, SCRAM_KEY_LEN, &stored64) < 0 ||
	    base64_encode(server, SCRAM_KEY_LEN, &server64) < 0)
		goto out;
	size_t n =
	    strlen(SCRAM_PREFIX) + 12 + strlen(salt64) + strlen(stored64) + strlen(server64) + 4;
	char *creds = malloc(n);
	if (creds == NULL)
		goto out;
	int w = snprintf(creds, n, SCRAM_PREFIX "%u:%s$%s:%s", iter, salt64, stored64, server64);
	if (w < 0 || (size_t)w >= n) {
		free(creds);
		goto out;
	}
	*creds_r = creds;
	ret = 1;
out:
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(stored, sizeof(stored));
	explicit_bzero(server, sizeof(server));
	free_secret(&stored64);
	free_secret(&server64);
	free(salt64);
	return ret;
}

int scram_credentials_make(const char *password, unsigned iter, char **creds_r)
{
	unsigned char salt[SCRAM_SALT_BYTES];

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -1;
	return scram_credentials_make_salt(password, iter, salt, sizeof(salt), creds_r);
}
