/* Unit tests for the SASL mechanisms (src/auth/sasl.c) and their store lookup
 * (src/auth/sasl_lookup.c). The SCRAM client here is written independently from
 * RFC 5802 with OpenSSL's primitives (and OpenSSL's base64), not with sasl.c's. */
#include "unit.h"

#include "auth/password.h"
#include "auth/sasl.h"
#include "store/store.h"

#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- helpers ---- */

static char last_out[2048];
static size_t last_outlen;
static bool last_has_out;

static enum sasl_step step(struct sasl_server *s, const void *in, size_t len)
{
	const unsigned char *out = NULL;
	size_t outlen = 12345;
	enum sasl_step r = sasl_server_step(s, in, len, &out, &outlen);
	last_has_out = out != NULL;
	last_outlen = out != NULL ? outlen : 0;
	if (last_outlen >= sizeof(last_out))
		last_outlen = sizeof(last_out) - 1;
	if (out != NULL)
		memcpy(last_out, out, last_outlen);
	last_out[last_outlen] = '\0';
	if (out == NULL)
		CHECK(outlen == 0);
	return r;
}

static enum sasl_step step_str(struct sasl_server *s, const char *in)
{
	return step(s, in, strlen(in));
}

/* Fills the lookup as sasl_lookup_run would, without a store. */
static void fake_lookup(struct sasl_server *s, int result, const char *scram, const char *account)
{
	struct sasl_lookup *l = sasl_server_lookup(s);
	l->result = result;
	l->scram = scram != NULL ? strdup(scram) : NULL;
	l->account = account != NULL ? strdup(account) : NULL;
	if (result < 0)
		l->error = strdup("database is on fire");
}

/* PLAIN/LOGIN lookup against one account: alice@example.org / "secret". */
static void fake_password_lookup(struct sasl_server *s)
{
	struct sasl_lookup *l = sasl_server_lookup(s);
	CHECK(l->user != NULL && l->password != NULL && !l->want_scram);
	int ok = l->user != NULL && l->password != NULL &&
	         strcasecmp(l->user, "alice@example.org") == 0 &&
	         strcmp(l->password, "secret") == 0;
	fake_lookup(s, ok, NULL, ok ? "alice@example.org" : NULL);
}

/* ---- mechanism names ---- */

static void test_names(void)
{
	char err[160];
	unsigned mask = 0;

	/* the default set: no SCRAM-SHA-256-PLUS */
	CHECK(sasl_mechs_get() == SASL_MECHS_DEFAULT);
	CHECK(!sasl_mech_enabled(SASL_MECH_SCRAM_SHA_256_PLUS));
	CHECK(sasl_mech_from_name("scram-sha-256-plus", 18) == -1);
	CHECK(sasl_mech_lookup("scram-sha-256-plus", 18) == SASL_MECH_SCRAM_SHA_256_PLUS);
	CHECK_STR(sasl_mechs_advertised(true, true), "SCRAM-SHA-256 PLAIN LOGIN");
	CHECK_STR(sasl_mechs_advertised(true, false), "SCRAM-SHA-256 PLAIN LOGIN");
	CHECK_STR(sasl_mechs_advertised(false, true), "SCRAM-SHA-256");

	sasl_mechs_set(SASL_MECHS_ALL);
	CHECK(sasl_mech_from_name("PLAIN", 5) == SASL_MECH_PLAIN);
	CHECK(sasl_mech_from_name("plain", 5) == SASL_MECH_PLAIN);
	CHECK(sasl_mech_from_name("Login", 5) == SASL_MECH_LOGIN);
	CHECK(sasl_mech_from_name("SCRAM-SHA-256", 13) == SASL_MECH_SCRAM_SHA_256);
	CHECK(sasl_mech_from_name("scram-sha-256-plus", 18) == SASL_MECH_SCRAM_SHA_256_PLUS);
	CHECK(sasl_mech_from_name("SCRAM-SHA-256-PLUSX", 18) == SASL_MECH_SCRAM_SHA_256_PLUS);
	CHECK(sasl_mech_from_name("SCRAM-SHA-1", 11) == -1);
	CHECK(sasl_mech_from_name("PLAI", 4) == -1);
	CHECK(sasl_mech_from_name("", 0) == -1);
	CHECK_STR(sasl_mech_name(SASL_MECH_SCRAM_SHA_256_PLUS), "SCRAM-SHA-256-PLUS");
	CHECK_STR(sasl_mechs_advertised(true, true),
	          "SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN");
	CHECK_STR(sasl_mechs_advertised(true, false), "SCRAM-SHA-256 PLAIN LOGIN");
	CHECK_STR(sasl_mechs_advertised(false, true), "SCRAM-SHA-256-PLUS SCRAM-SHA-256");
	CHECK_STR(sasl_mechs_advertised(false, false), "SCRAM-SHA-256");

	/* [auth] mechanisms: blanks or commas, any case, any order; the advertised
	 * order stays strongest first */
	CHECK(sasl_mechs_parse("login, plain,SCRAM-SHA-256-PLUS", &mask, err, sizeof(err)) == 1);
	CHECK(mask == (SASL_MECH_BIT(SASL_MECH_LOGIN) | SASL_MECH_BIT(SASL_MECH_PLAIN) |
	               SASL_MECH_BIT(SASL_MECH_SCRAM_SHA_256_PLUS)));
	sasl_mechs_set(mask);
	CHECK_STR(sasl_mechs_advertised(true, true), "SCRAM-SHA-256-PLUS PLAIN LOGIN");
	CHECK_STR(sasl_mechs_advertised(true, false), "PLAIN LOGIN");
	CHECK_STR(sasl_mechs_advertised(false, false), "");
	CHECK(sasl_mech_from_name("SCRAM-SHA-256", 13) == -1);
	CHECK(sasl_mechs_parse("PLAIN PLAIN", &mask, err, sizeof(err)) == 1);
	CHECK(mask == SASL_MECH_BIT(SASL_MECH_PLAIN));
	mask = 12345;
	CHECK(sasl_mechs_parse("PLAIN CRAM-MD5", &mask, err, sizeof(err)) == -1);
	CHECK_STR(err, "unknown SASL mechanism 'CRAM-MD5' (expected SCRAM-SHA-256-PLUS, "
	               "SCRAM-SHA-256, PLAIN, LOGIN)");
	CHECK(mask == 12345);
	CHECK(sasl_mechs_parse("", &mask, err, sizeof(err)) == -1);
	CHECK_STR(err, "no SASL mechanism given");
	CHECK(sasl_mechs_parse(" , ", &mask, err, sizeof(err)) == -1);
	CHECK(sasl_mechs_parse("PLAIN;LOGIN", &mask, err, sizeof(err)) == -1);
	/* the rest of the tests run with everything enabled */
	sasl_mechs_set(SASL_MECHS_ALL);
}

/* ---- PLAIN ---- */

static enum sasl_step plain_run(const void *msg, size_t len)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_PLAIN, NULL, 0);
	enum sasl_step r = step(s, msg, len);
	if (r == SASL_STEP_LOOKUP) {
		fake_password_lookup(s);
		r = step(s, NULL, 0);
		if (r == SASL_STEP_OK) {
			CHECK_STR(sasl_server_user(s), "alice@example.org");
			CHECK(!last_has_out);
		}
		CHECK(sasl_server_lookup(s)->password == NULL); /* wiped */
	}
	sasl_server_free(&s);
	return r;
}

#define PLAIN(lit) plain_run(lit, sizeof(lit) - 1)

static void test_plain(void)
{
	CHECK(PLAIN("\0alice@example.org\0secret") == SASL_STEP_OK);
	CHECK(PLAIN("alice@example.org\0alice@example.org\0secret") == SASL_STEP_OK);
	CHECK(PLAIN("Alice@Example.org\0alice@example.org\0secret") == SASL_STEP_OK);
	CHECK(PLAIN("\0ALICE@example.org\0secret") == SASL_STEP_OK); /* canonical user */
	CHECK(PLAIN("\0alice@example.org\0Secret") == SASL_STEP_FAIL);
	CHECK(PLAIN("\0bob@example.org\0secret") == SASL_STEP_FAIL);
	/* no proxy authorization */
	CHECK(PLAIN("bob@example.org\0alice@example.org\0secret") == SASL_STEP_FAIL);
	/* malformed */
	CHECK(PLAIN("alice@example.org\0secret") == SASL_STEP_MALFORMED);
	CHECK(PLAIN("alice@example.orgsecret") == SASL_STEP_MALFORMED);
	CHECK(PLAIN("\0\0secret") == SASL_STEP_MALFORMED);
	CHECK(PLAIN("\0alice@example.org\0") == SASL_STEP_FAIL);
	CHECK(PLAIN("\0alice@example.org\0sec\0ret") == SASL_STEP_MALFORMED);
	CHECK(PLAIN("\0\0") == SASL_STEP_MALFORMED);
	CHECK(PLAIN("\0") == SASL_STEP_MALFORMED);
	CHECK(PLAIN("\0al\xffice@example.org\0secret") == SASL_STEP_MALFORMED);
	CHECK(PLAIN("\0al\xc0\xafice@example.org\0secret") == SASL_STEP_MALFORMED); /* overlong */
	CHECK(PLAIN("\0alice@example.org\r\n\0secret") == SASL_STEP_MALFORMED);
	CHECK(PLAIN("x\x01\0alice@example.org\0secret") == SASL_STEP_MALFORMED);
	/* UTF-8 is fine (and any byte but NUL in a password) */
	CHECK(PLAIN("\0j\xc3\xb6rg@example.org\0p\xc3\xa4ss\x01\xff") == SASL_STEP_FAIL);

	/* lengths: 255 each accepted, 256 refused */
	char msg[1100], big[300];
	memset(big, 'a', sizeof(big));
	size_t n = 0;
	msg[n++] = '\0';
	memcpy(msg + n, big, 255);
	n += 255;
	msg[n++] = '\0';
	memcpy(msg + n, big, 255);
	n += 255;
	CHECK(plain_run(msg, n) == SASL_STEP_FAIL);
	CHECK(plain_run(msg, n + 1) == SASL_STEP_MALFORMED); /* 256-byte password */
	memcpy(msg, big, 255); /* authzid 255 'a' + NUL + 255 'a' user + NUL + password */
	msg[255] = '\0';
	memcpy(msg + 256, big, 255);
	msg[511] = '\0';
	memcpy(msg + 512, "pw", 2);
	CHECK(plain_run(msg, 514) == SASL_STEP_FAIL);
	msg[0] = 'b'; /* differs */
	CHECK(plain_run(msg, 514) == SASL_STEP_FAIL);
	n = 0;
	msg[n++] = '\0';
	memcpy(msg + n, big, 256);
	n += 256;
	msg[n++] = '\0';
	msg[n++] = 'x';
	CHECK(plain_run(msg, n) == SASL_STEP_MALFORMED);
	/* the whole message is bounded */
	char huge[SASL_MSG_MAX + 1];
	memset(huge, 'a', sizeof(huge));
	huge[0] = '\0';
	huge[10] = '\0';
	CHECK(plain_run(huge, sizeof(huge)) == SASL_STEP_MALFORMED);

	/* no initial response, or an empty one: empty challenge, then the message */
	for (int empty_ir = 0; empty_ir < 2; empty_ir++) {
		struct sasl_server *s = sasl_server_new(SASL_MECH_PLAIN, NULL, 0);
		CHECK(step(s, empty_ir ? "" : NULL, 0) == SASL_STEP_CHALLENGE);
		CHECK(last_has_out && last_outlen == 0);
		CHECK(step(s, "\0alice@example.org\0secret", 25) == SASL_STEP_LOOKUP);
		CHECK_STR(sasl_server_claimed_user(s), "alice@example.org");
		fake_password_lookup(s);
		CHECK(step(s, NULL, 0) == SASL_STEP_OK);
		CHECK_STR(sasl_server_reason(s), "authenticated");
		/* finished: anything more is refused */
		CHECK(step(s, "x", 1) == SASL_STEP_MALFORMED);
		sasl_server_free(&s);
		CHECK(s == NULL);
	}
	struct sasl_server *s = sasl_server_new(SASL_MECH_PLAIN, NULL, 0);
	CHECK(step(s, NULL, 0) == SASL_STEP_CHALLENGE);
	CHECK(step(s, "", 0) == SASL_STEP_MALFORMED);
	sasl_server_free(&s);
	sasl_server_free(&s); /* NULL is fine */

	/* lookup error: temporary failure */
	s = sasl_server_new(SASL_MECH_PLAIN, NULL, 0);
	CHECK(step(s, "\0alice@example.org\0secret", 25) == SASL_STEP_LOOKUP);
	fake_lookup(s, -1, NULL, NULL);
	CHECK(step(s, NULL, 0) == SASL_STEP_TEMPFAIL);
	CHECK(sasl_server_user(s) == NULL);
	sasl_server_free(&s);

	/* input while a lookup is pending */
	s = sasl_server_new(SASL_MECH_PLAIN, NULL, 0);
	CHECK(step(s, "\0alice@example.org\0secret", 25) == SASL_STEP_LOOKUP);
	CHECK(step(s, "x", 1) == SASL_STEP_MALFORMED);
	sasl_server_free(&s);
}

/* ---- LOGIN ---- */

static void test_login(void)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_LOGIN, NULL, 0);
	CHECK(step(s, NULL, 0) == SASL_STEP_CHALLENGE);
	CHECK_STR(last_out, "Username:");
	CHECK(step_str(s, "alice@example.org") == SASL_STEP_CHALLENGE);
	CHECK_STR(last_out, "Password:");
	CHECK(step_str(s, "secret") == SASL_STEP_LOOKUP);
	fake_password_lookup(s);
	CHECK(step(s, NULL, 0) == SASL_STEP_OK);
	CHECK_STR(sasl_server_user(s), "alice@example.org");
	sasl_server_free(&s);

	/* user name as initial response; wrong password */
	s = sasl_server_new(SASL_MECH_LOGIN, NULL, 0);
	CHECK(step_str(s, "alice@example.org") == SASL_STEP_CHALLENGE);
	CHECK_STR(last_out, "Password:");
	CHECK(step_str(s, "Secret") == SASL_STEP_LOOKUP);
	fake_password_lookup(s);
	CHECK(step(s, NULL, 0) == SASL_STEP_FAIL);
	CHECK(sasl_server_user(s) == NULL);
	sasl_server_free(&s);

	/* empty initial response: asks for the user name */
	s = sasl_server_new(SASL_MECH_LOGIN, NULL, 0);
	CHECK(step(s, "", 0) == SASL_STEP_CHALLENGE);
	CHECK_STR(last_out, "Username:");
	CHECK(step(s, "", 0) == SASL_STEP_MALFORMED);
	sasl_server_free(&s);

	/* empty password, NUL in password, NUL in user */
	s = sasl_server_new(SASL_MECH_LOGIN, NULL, 0);
	CHECK(step_str(s, "alice@example.org") == SASL_STEP_CHALLENGE);
	CHECK(step(s, "", 0) == SASL_STEP_MALFORMED);
	sasl_server_free(&s);
	s = sasl_server_new(SASL_MECH_LOGIN, NULL, 0);
	CHECK(step_str(s, "alice@example.org") == SASL_STEP_CHALLENGE);
	CHECK(step(s, "se\0cret", 7) == SASL_STEP_MALFORMED);
	sasl_server_free(&s);
	s = sasl_server_new(SASL_MECH_LOGIN, NULL, 0);
	CHECK(step(s, "alice\0", 6) == SASL_STEP_MALFORMED);
	sasl_server_free(&s);
}

/* ---- SCRAM: an independent client ---- */

static size_t b64enc(const unsigned char *in, size_t len, char *out)
{
	return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* OpenSSL's decoder pads output to a multiple of 3; the '=' count fixes it up. */
static size_t b64dec(const char *in, size_t len, unsigned char *out)
{
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return 0;
	if (len >= 1 && in[len - 1] == '=')
		n--;
	if (len >= 2 && in[len - 2] == '=')
		n--;
	return (size_t)n;
}

static void hmac(const unsigned char *key, size_t klen, const void *data, size_t len,
                 unsigned char out[32])
{
	unsigned int n = 0;
	HMAC(EVP_sha256(), key, (int)klen, data, len, out, &n);
}

struct scram_case {
	enum sasl_mech mech;
	const unsigned char *server_cb; /* cb_data given to the server */
	size_t server_cb_len;
	const char *gs2;                /* e.g. "n,," */
	const unsigned char *client_cb; /* appended to the gs2 header in c= */
	size_t client_cb_len;
	const char *user; /* saslname as sent */
	const char *password;
	int lookup_result;
	const char *creds; /* stored credentials returned by the lookup */
	const char *account;
	const char *nonce_override; /* r= in client-final instead of the right one */
};

/* Runs a whole exchange; returns the final step. *sig_ok: the server signature
 * matched what the client computed. */
static enum sasl_step scram_run(const struct scram_case *c, bool *sig_ok, char *salt_r)
{
	const char *cnonce = "fyko+d2lbbFgONRv9qkxdawL";
	char first[512], final[1024], auth[4096], cbind[256], tmp[256];
	unsigned char salt[128], salted[32], ck[32], sk[32], srvk[32], sig[32], proof[32];
	enum sasl_step r;

	*sig_ok = false;
	struct sasl_server *s = sasl_server_new(c->mech, c->server_cb, c->server_cb_len);
	snprintf(first, sizeof(first), "%sn=%s,r=%s", c->gs2, c->user, cnonce);
	const char *bare = first + strlen(c->gs2);
	CHECK(step(s, NULL, 0) == SASL_STEP_CHALLENGE);
	CHECK(last_has_out && last_outlen == 0);
	r = step_str(s, first);
	if (r != SASL_STEP_LOOKUP)
		goto out;
	CHECK(sasl_server_lookup(s)->want_scram);
	CHECK(sasl_server_lookup(s)->password == NULL);
	fake_lookup(s, c->lookup_result, c->creds, c->account);
	r = step(s, NULL, 0);
	if (r != SASL_STEP_CHALLENGE)
		goto out;

	/* server-first: r=<cnonce><snonce>,s=<salt>,i=<iter> */
	char server_first[sizeof(last_out)];
	snprintf(server_first, sizeof(server_first), "%s", last_out);
	char *rp = strstr(server_first, "r="), *sp = strstr(server_first, ",s="),
	     *ip = strstr(server_first, ",i=");
	CHECK(rp == server_first && sp != NULL && ip != NULL);
	if (rp != server_first || sp == NULL || ip == NULL)
		goto out;
	CHECK(strncmp(server_first + 2, cnonce, strlen(cnonce)) == 0);
	CHECK(sp - (rp + 2) >= (ptrdiff_t)strlen(cnonce) + 24);
	char nonce[256];
	snprintf(nonce, sizeof(nonce), "%.*s", (int)(sp - rp - 2), rp + 2);
	size_t salt_len = b64dec(sp + 3, (size_t)(ip - sp - 3), salt);
	if (salt_r != NULL)
		snprintf(salt_r, 64, "%.*s", (int)(ip - sp - 3), sp + 3);
	int iter = atoi(ip + 3);
	CHECK(iter >= 4096);

	PKCS5_PBKDF2_HMAC(c->password, (int)strlen(c->password), salt, (int)salt_len, iter,
	                  EVP_sha256(), 32, salted);
	hmac(salted, 32, "Client Key", 10, ck);
	SHA256(ck, 32, sk);
	hmac(salted, 32, "Server Key", 10, srvk);

	memcpy(tmp, c->gs2, strlen(c->gs2));
	if (c->client_cb_len > 0)
		memcpy(tmp + strlen(c->gs2), c->client_cb, c->client_cb_len);
	b64enc((unsigned char *)tmp, strlen(c->gs2) + c->client_cb_len, cbind);
	snprintf(final, sizeof(final), "c=%s,r=%s", cbind,
	         c->nonce_override != NULL ? c->nonce_override : nonce);
	snprintf(auth, sizeof(auth), "%s,%s,%s", bare, server_first, final);
	hmac(sk, 32, auth, strlen(auth), sig);
	for (int i = 0; i < 32; i++)
		proof[i] = ck[i] ^ sig[i];
	size_t fl = strlen(final);
	memcpy(final + fl, ",p=", 3);
	b64enc(proof, 32, final + fl + 3);

	r = step_str(s, final);
	if (r == SASL_STEP_OK) {
		char want[64];
		unsigned char ssig[32];
		hmac(srvk, 32, auth, strlen(auth), ssig);
		memcpy(want, "v=", 2);
		b64enc(ssig, 32, want + 2);
		*sig_ok = last_has_out && strcmp(last_out, want) == 0;
		CHECK_STR(sasl_server_user(s), c->account != NULL ? c->account : "user");
	} else {
		CHECK(sasl_server_user(s) == NULL);
	}
out:
	sasl_server_free(&s);
	return r;
}

/* RFC 7677 3 */
static const char rfc_salt_b64[] = "W22ZaJ0SNY7soEsUEjb6gQ==";
static const char rfc_client_first[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
static const char rfc_snonce[] = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
static const char rfc_server_first[] = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                       "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char rfc_client_final[] =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char rfc_server_final[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

static char *rfc_creds(const char *password)
{
	unsigned char salt[32];
	size_t n = b64dec(rfc_salt_b64, strlen(rfc_salt_b64), salt);
	char *creds = NULL;
	CHECK(n == 16);
	CHECK(scram_credentials_make_salt(password, 4096, salt, n, &creds) == 1);
	return creds;
}

static void test_scram_rfc7677(void)
{
	char *creds = rfc_creds("pencil");
	CHECK(creds != NULL &&
	      strncmp(creds, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$", 44) == 0);

	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	sasl_server_set_test_nonce(s, rfc_snonce);
	CHECK(step_str(s, rfc_client_first) == SASL_STEP_LOOKUP);
	CHECK_STR(sasl_server_lookup(s)->user, "user");
	fake_lookup(s, 1, creds, NULL);
	CHECK(step(s, NULL, 0) == SASL_STEP_CHALLENGE);
	CHECK_STR(last_out, rfc_server_first);
	CHECK(sasl_server_lookup(s)->scram == NULL); /* wiped once parsed */
	CHECK(step_str(s, rfc_client_final) == SASL_STEP_OK);
	CHECK_STR(last_out, rfc_server_final);
	CHECK_STR(sasl_server_user(s), "user");
	sasl_server_free(&s);

	/* the same exchange with the stored keys of another password fails */
	char *wrong = rfc_creds("pencil2");
	s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	sasl_server_set_test_nonce(s, rfc_snonce);
	CHECK(step_str(s, rfc_client_first) == SASL_STEP_LOOKUP);
	fake_lookup(s, 1, wrong, NULL);
	CHECK(step(s, NULL, 0) == SASL_STEP_CHALLENGE);
	CHECK(step_str(s, rfc_client_final) == SASL_STEP_FAIL);
	CHECK_STR(sasl_server_reason(s), "SCRAM: wrong password");
	CHECK(!last_has_out);
	sasl_server_free(&s);
	free(wrong);
	free(creds);
}

static const unsigned char cb1[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char cb2[32] = "0123456789abcdef0123456789abcdeX";

static void test_scram_exchange(void)
{
	char *creds = NULL;
	bool sig_ok;
	CHECK(scram_credentials_make("correct horse", 0, &creds) == 1);
	CHECK(creds != NULL && strncmp(creds, "SCRAM-SHA-256$4096:", 19) == 0);

	struct scram_case base = {
	    .mech = SASL_MECH_SCRAM_SHA_256,
	    .gs2 = "n,,",
	    .user = "alice@example.org",
	    .password = "correct horse",
	    .lookup_result = 1,
	    .creds = creds,
	    .account = "alice@example.org",
	};
	struct scram_case c = base;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_OK);
	CHECK(sig_ok);

	c.password = "correct horsE";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);

	/* authzid equal to the user: fine; other: refused */
	c = base;
	c.gs2 = "n,a=alice@example.org,";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_OK && sig_ok);
	c.gs2 = "n,a=bob@example.org,";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);

	/* saslname escapes: the user "a,b=c" */
	c = base;
	c.user = "a=2Cb=3Dc";
	c.account = "a,b=c";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_OK && sig_ok);

	/* nonce must match */
	c = base;
	c.nonce_override = "fyko+d2lbbFgONRv9qkxdawLxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);

	/* account without SCRAM keys, unknown user: the exchange proceeds, then fails,
	 * with a salt that is stable per user (and per case-folded user) */
	char salt1[64] = "", salt2[64] = "", salt3[64] = "", salt4[64] = "";
	c = base;
	c.lookup_result = 0;
	c.creds = NULL;
	c.account = NULL;
	c.user = "nobody@example.org";
	CHECK(scram_run(&c, &sig_ok, salt1) == SASL_STEP_FAIL);
	CHECK(scram_run(&c, &sig_ok, salt2) == SASL_STEP_FAIL);
	c.user = "NoBody@example.org";
	CHECK(scram_run(&c, &sig_ok, salt3) == SASL_STEP_FAIL);
	c.user = "somebody@example.org";
	CHECK(scram_run(&c, &sig_ok, salt4) == SASL_STEP_FAIL);
	CHECK(strlen(salt1) == 24);
	CHECK_STR(salt1, salt2);
	CHECK_STR(salt1, salt3);
	CHECK(strcmp(salt1, salt4) != 0);
	c = base;
	c.creds = NULL;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);
	c.creds = "SCRAM-SHA-256$4096:bad$bad:bad";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);

	/* lookup error */
	c = base;
	c.lookup_result = -1;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_TEMPFAIL);

	/* -PLUS with tls-exporter */
	c = base;
	c.mech = SASL_MECH_SCRAM_SHA_256_PLUS;
	c.server_cb = cb1;
	c.server_cb_len = 32;
	c.gs2 = "p=tls-exporter,,";
	c.client_cb = cb1;
	c.client_cb_len = 32;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_OK && sig_ok);
	c.gs2 = "p=tls-exporter,a=alice@example.org,";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_OK && sig_ok);
	c.gs2 = "p=tls-exporter,,";
	c.client_cb = cb2; /* a man in the middle sees another TLS session */
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);
	c.client_cb_len = 0; /* no cb data in c= */
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);
	c.client_cb = cb1;
	c.client_cb_len = 32;
	c.gs2 = "p=tls-unique,,";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);
	c.gs2 = "p=tls-exporter,,";
	c.server_cb = NULL; /* no channel binding on this connection */
	c.server_cb_len = 0;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);
	c = base;
	c.mech = SASL_MECH_SCRAM_SHA_256_PLUS;
	c.server_cb = cb1;
	c.server_cb_len = 32;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_MALFORMED); /* "n,," with -PLUS */
	c.gs2 = "y,,";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_MALFORMED);

	/* non-PLUS: "n" is fine even with cb; "y" only when -PLUS was not offered */
	c = base;
	c.server_cb = cb1;
	c.server_cb_len = 32;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_OK && sig_ok);
	c.gs2 = "y,,";
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_FAIL);
	/* -PLUS not enabled, so not offered even with cb data: "y" is no downgrade */
	sasl_mechs_set(SASL_MECHS_DEFAULT);
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_OK && sig_ok);
	sasl_mechs_set(SASL_MECHS_ALL);
	c.server_cb = NULL;
	c.server_cb_len = 0;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_OK && sig_ok);
	c.gs2 = "p=tls-exporter,,";
	c.client_cb = cb1;
	c.client_cb_len = 32;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_MALFORMED);

	/* iteration counts */
	char *tmp = NULL;
	CHECK(scram_credentials_make("pw", 100, &tmp) == -1);
	CHECK(scram_credentials_make("pw", 10000001, &tmp) == -1);
	CHECK(scram_credentials_make("pw", 5000, &tmp) == 1);
	CHECK(tmp != NULL && strncmp(tmp, "SCRAM-SHA-256$5000:", 19) == 0);
	c = base;
	c.password = "pw";
	c.creds = tmp;
	CHECK(scram_run(&c, &sig_ok, NULL) == SASL_STEP_OK && sig_ok);
	free(tmp);
	free(creds);
}

static void test_scram_malformed_first(void)
{
	static const struct {
		const char *msg;
		enum sasl_step want;
	} cases[] = {
	    {"n,,n=user,r=abc", SASL_STEP_LOOKUP},
	    {"n,,n=user,r=abc,x=1,y=z=z", SASL_STEP_LOOKUP}, /* extensions ignored */
	    {"n,,n=user,r=abc,xy=1", SASL_STEP_MALFORMED},
	    {"n,,n=user,r=abc,r=def", SASL_STEP_MALFORMED},
	    {"n,a=user,n=user,r=abc", SASL_STEP_LOOKUP},
	    {"n,a=USER,n=user,r=abc", SASL_STEP_LOOKUP},
	    {"n,,n=us=2Cer,r=abc", SASL_STEP_LOOKUP},
	    {"x,,n=user,r=abc", SASL_STEP_MALFORMED},
	    {"n", SASL_STEP_MALFORMED},
	    {"n,", SASL_STEP_MALFORMED},
	    {"n,,", SASL_STEP_MALFORMED},
	    {"n,n=user,r=abc", SASL_STEP_MALFORMED},
	    {"n,,r=abc", SASL_STEP_MALFORMED},
	    {"n,,n=user", SASL_STEP_MALFORMED},
	    {"n,,n=user,", SASL_STEP_MALFORMED},
	    {"n,,n=user,r=", SASL_STEP_MALFORMED},
	    {"n,,n=,r=abc", SASL_STEP_MALFORMED},
	    {"n,,n=us=er,r=abc", SASL_STEP_MALFORMED},
	    {"n,,n=user=2,r=abc", SASL_STEP_MALFORMED},
	    {"n,,n=user=2c,r=abc", SASL_STEP_MALFORMED},
	    {"n,,n=user\x01,r=abc", SASL_STEP_MALFORMED},
	    {"n,,n=us\xff"
	     "er,r=abc",
	     SASL_STEP_MALFORMED},
	    {"n,,n=user,r=ab\x7f", SASL_STEP_MALFORMED},
	    {"n,,n=user,r=ab c", SASL_STEP_MALFORMED},
	    {"n,,m=ext,n=user,r=abc", SASL_STEP_MALFORMED},
	    {"n,,n=user,r=abc,", SASL_STEP_MALFORMED},
	    {"n,,n=user,r=abc,x", SASL_STEP_MALFORMED},
	    {"n,,n=user,r=abc,x=", SASL_STEP_MALFORMED},
	    {"n,,n=user,r=abc,1=2", SASL_STEP_MALFORMED},
	    {"n,,r=abc,n=user", SASL_STEP_MALFORMED},
	    {"n,a=,n=user,r=abc", SASL_STEP_MALFORMED},
	    {"n,a=user", SASL_STEP_MALFORMED},
	    {"n,b=user,n=user,r=abc", SASL_STEP_MALFORMED},
	    {"n,a=other,n=user,r=abc", SASL_STEP_FAIL},
	    {"p=tls-exporter,,n=user,r=abc", SASL_STEP_MALFORMED}, /* not -PLUS */
	    {"p=,,n=user,r=abc", SASL_STEP_MALFORMED},
	    {"p=tls exporter,,n=user,r=abc", SASL_STEP_MALFORMED},
	    {"p=tls-exporter", SASL_STEP_MALFORMED},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
		enum sasl_step r = step_str(s, cases[i].msg);
		if (r != cases[i].want)
			fprintf(stderr, "case \"%s\": got %d, want %d (%s)\n", cases[i].msg, r,
			        cases[i].want, sasl_server_reason(s));
		CHECK(r == cases[i].want);
		sasl_server_free(&s);
	}

	/* NUL inside, too long */
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	CHECK(step(s, "n,,n=u\0ser,r=abc", 16) == SASL_STEP_MALFORMED);
	sasl_server_free(&s);
	char big[SASL_MSG_MAX + 2];
	snprintf(big, sizeof(big), "n,,n=user,r=");
	memset(big + 12, 'a', sizeof(big) - 13);
	big[sizeof(big) - 1] = '\0';
	s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	CHECK(step(s, big, SASL_MSG_MAX + 1) == SASL_STEP_MALFORMED);
	sasl_server_free(&s);
	s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	CHECK(step(s, big, SASL_MSG_MAX) == SASL_STEP_LOOKUP);
	sasl_server_free(&s);
	/* -PLUS with other gs2 flags */
	s = sasl_server_new(SASL_MECH_SCRAM_SHA_256_PLUS, cb1, 32);
	CHECK(step_str(s, "p=tls-server-end-point,,n=user,r=abc") == SASL_STEP_FAIL);
	sasl_server_free(&s);
}

/* Client-final variants after the RFC 7677 first messages. */
static enum sasl_step rfc_final(const char *final)
{
	char *creds = rfc_creds("pencil");
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	sasl_server_set_test_nonce(s, rfc_snonce);
	CHECK(step_str(s, rfc_client_first) == SASL_STEP_LOOKUP);
	fake_lookup(s, 1, creds, NULL);
	CHECK(step(s, NULL, 0) == SASL_STEP_CHALLENGE);
	enum sasl_step r = step_str(s, final);
	sasl_server_free(&s);
	free(creds);
	return r;
}

static void test_scram_malformed_final(void)
{
#define N "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define P "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	CHECK(rfc_final("c=biws,r=" N ",p=" P) == SASL_STEP_OK);
	CHECK(rfc_final("c=biws,r=" N ",x=ext,p=" P) == SASL_STEP_FAIL); /* proof covers x= */
	CHECK(rfc_final("c=biws,r=" N) == SASL_STEP_MALFORMED);
	CHECK(rfc_final("c=biws,r=" N ",p=") == SASL_STEP_MALFORMED);
	CHECK(rfc_final("c=biws,r=" N ",p=abc") == SASL_STEP_MALFORMED);
	CHECK(rfc_final("c=biws,r=" N ",p=YWJj") == SASL_STEP_MALFORMED); /* 3 bytes */
	CHECK(rfc_final("c=biws,r=" N ",p=" P ",") == SASL_STEP_MALFORMED);
	CHECK(rfc_final("c=biws,r=" N "x,p=" P) == SASL_STEP_FAIL);
	CHECK(rfc_final("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=" P) == SASL_STEP_FAIL);
	CHECK(rfc_final("c=eSws,r=" N ",p=" P) == SASL_STEP_FAIL); /* "y,," */
	CHECK(rfc_final("c=bi ws,r=" N ",p=" P) == SASL_STEP_MALFORMED);
	CHECK(rfc_final("c=biw,r=" N ",p=" P) == SASL_STEP_MALFORMED);
	CHECK(rfc_final("r=" N ",c=biws,p=" P) == SASL_STEP_MALFORMED);
	CHECK(rfc_final("c=biws,p=" P) == SASL_STEP_MALFORMED);
	CHECK(rfc_final("c=biws,r=" N ",p=" P "\x01") == SASL_STEP_MALFORMED);
	CHECK(rfc_final("c=biws,r=" N ",,p=" P) == SASL_STEP_MALFORMED);
	CHECK(rfc_final("p=" P) == SASL_STEP_MALFORMED);
	CHECK(rfc_final(",p=" P) == SASL_STEP_MALFORMED);
	CHECK(rfc_final("c=biws,r=" N ",p=" P ","
	                "p=" P) == SASL_STEP_MALFORMED);
#undef N
#undef P
	/* empty client-final */
	char *creds = rfc_creds("pencil");
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	CHECK(step_str(s, rfc_client_first) == SASL_STEP_LOOKUP);
	fake_lookup(s, 1, creds, NULL);
	CHECK(step(s, NULL, 0) == SASL_STEP_CHALLENGE);
	CHECK(step(s, "", 0) == SASL_STEP_MALFORMED);
	sasl_server_free(&s);
	free(creds);
}

/* ---- sasl_lookup_run against a real store ---- */

static char data_dir[] = "/tmp/hermod-test-sasl-XXXXXX";

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static enum sasl_step store_login(struct store *st, enum sasl_mech mech, const char *user,
                                  const char *password)
{
	struct sasl_server *s = sasl_server_new(mech, NULL, 0);
	enum sasl_step r;
	char msg[600];

	if (mech == SASL_MECH_PLAIN) {
		size_t ul = strlen(user), pl = strlen(password);
		msg[0] = '\0';
		memcpy(msg + 1, user, ul);
		msg[1 + ul] = '\0';
		memcpy(msg + 2 + ul, password, pl);
		r = step(s, msg, 2 + ul + pl);
	} else {
		CHECK(step_str(s, user) == SASL_STEP_CHALLENGE);
		r = step_str(s, password);
	}
	if (r == SASL_STEP_LOOKUP) {
		sasl_lookup_run(st, sasl_server_lookup(s));
		CHECK(sasl_server_lookup(s)->password == NULL);
		r = step(s, NULL, 0);
		if (r == SASL_STEP_OK)
			CHECK_STR(sasl_server_user(s), "carol@example.net");
	}
	sasl_server_free(&s);
	return r;
}

static void test_store_lookup(void)
{
	struct store_options opts = {.data_dir = data_dir, .fsync = false};
	struct store *st = NULL;
	char *error = NULL, *hash = NULL, *scram = NULL;

	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		CHECK(0);
		return;
	}
	CHECK(store_open(&opts, &st, &error) == 1);
	if (st == NULL) {
		fprintf(stderr, "store_open: %s\n", error ? error : "?");
		free(error);
		return;
	}
	CHECK(store_domain_add(st, "example.net", NULL) == 1);
	CHECK(password_hash("hunter2", &hash, NULL) == 1);
	CHECK(store_account_add(st, "carol@example.net", hash, NULL) == 1);

	CHECK(store_login(st, SASL_MECH_PLAIN, "carol@example.net", "hunter2") == SASL_STEP_OK);
	CHECK(store_login(st, SASL_MECH_PLAIN, "Carol@example.net", "hunter2") == SASL_STEP_OK);
	CHECK(store_login(st, SASL_MECH_PLAIN, "carol@example.net", "hunter3") == SASL_STEP_FAIL);
	CHECK(store_login(st, SASL_MECH_PLAIN, "dave@example.net", "hunter2") == SASL_STEP_FAIL);
	CHECK(store_login(st, SASL_MECH_LOGIN, "carol@example.net", "hunter2") == SASL_STEP_OK);
	CHECK(store_login(st, SASL_MECH_LOGIN, "carol@example.net", "x") == SASL_STEP_FAIL);

	/* SCRAM: no keys yet, then keys */
	struct sasl_lookup *l;
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	CHECK(step_str(s, "n,,n=carol@example.net,r=abc") == SASL_STEP_LOOKUP);
	l = sasl_server_lookup(s);
	sasl_lookup_run(st, l);
	CHECK(l->result == 1 && l->scram == NULL);
	sasl_server_free(&s);

	CHECK(scram_credentials_make("hunter2", 0, &scram) == 1);
	CHECK(store_account_set_scram(st, "carol@example.net", scram, NULL) == 1);
	s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	CHECK(step_str(s, "n,,n=CAROL@example.net,r=abc") == SASL_STEP_LOOKUP);
	l = sasl_server_lookup(s);
	sasl_lookup_run(st, l);
	CHECK(l->result == 1);
	CHECK_STR(l->scram, scram);
	CHECK_STR(l->account, "carol@example.net");
	sasl_server_free(&s);
	s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, NULL, 0);
	CHECK(step_str(s, "n,,n=nobody@example.net,r=abc") == SASL_STEP_LOOKUP);
	l = sasl_server_lookup(s);
	sasl_lookup_run(st, l);
	CHECK(l->result == 0 && l->scram == NULL && l->account == NULL);
	CHECK(step(s, NULL, 0) == SASL_STEP_CHALLENGE);
	sasl_server_free(&s);

	free(hash);
	free(scram);
	store_close(&st);
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	test_names();
	test_plain();
	test_login();
	test_scram_rfc7677();
	test_scram_exchange();
	test_scram_malformed_first();
	test_scram_malformed_final();
	test_store_lookup();
	return unit_finish("sasl");
}
