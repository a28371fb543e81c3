/* DKIM signing: relaxed canonicalization (checked through bh= and through
 * deterministic signatures), h= and oversigning, folding, feed splits, limits,
 * key files; then an independent verifier (dkimpy, tests/unit/dkim_verify.py)
 * on signed messages and tampered copies. */
#include "unit.h"

#include "core/base64.h"
#include "core/buf.h"
#include "core/str.h"
#include "policy/dkim_sign.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_NOW 1700000000

static char tmpdir[] = "/tmp/hermod-dkim-XXXXXX";
static char keydir[512];
static struct dkim_key *rsa_key, *ed_key;

/* Signs msg (fed in pieces of step octets; 0 = at once); the signature
 * fields, malloc'd, or NULL on failure (error printed). */
static char *sign(struct dkim_key *const *keys, size_t n, const char *msg, size_t len, size_t step)
{
	struct dkim_signer *s = NULL;
	struct buf out;
	char *error = NULL;
	int ok = 1;

	buf_init(&out, 0);
	if (dkim_signer_new(keys, n, T_NOW, &s, &error) < 0) {
		fprintf(stderr, "signer_new: %s\n", error);
		free(error);
		return NULL;
	}
	if (step == 0)
		step = len > 0 ? len : 1;
	for (size_t i = 0; i < len && ok > 0; i += step)
		ok = dkim_signer_feed(s, msg + i, len - i < step ? len - i : step);
	if (dkim_signer_finish(s, &out, &error) < 0) {
		fprintf(stderr, "finish: %s\n", error ? error : "?");
		free(error);
		dkim_signer_free(&s);
		buf_free(&out);
		return NULL;
	}
	dkim_signer_free(&s);
	if (out.data == NULL)
		return str_dup("");
	return buf_steal(&out, NULL);
}

static char *sign1(struct dkim_key *k, const char *msg, size_t step)
{
	return sign(&k, 1, msg, strlen(msg), step);
}

/* The value of tag in the first signature field of sig, unfolded, without
 * any whitespace; malloc'd, NULL when missing. */
static char *tag(const char *sig, const char *name)
{
	struct buf b;
	size_t nlen = strlen(name);
	const char *end = strstr(sig, "\r\n");

	/* the first field: up to a CRLF not followed by WSP */
	while (end != NULL && (end[2] == '\t' || end[2] == ' '))
		end = strstr(end + 2, "\r\n");
	buf_init(&b, 0);
	for (const char *p = sig; p < (end ? end : sig + strlen(sig)); p++) {
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			buf_append(&b, p, 1);
	}
	buf_append(&b, "", 0);
	char *flat = buf_steal(&b, NULL), *ret = NULL;
	for (char *p = strchr(flat, ':'); p != NULL; p = strchr(p, ';')) {
		p++;
		if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			char *v = p + nlen + 1, *semi = strchr(v, ';');
			ret = str_ndup(v, semi ? (size_t)(semi - v) : strlen(v));
			break;
		}
	}
	free(flat);
	return ret;
}

static char *sha256_b64(const char *s)
{
	unsigned char h[32];
	unsigned int hl = 0;
	char *out = NULL;

	EVP_Digest(s, strlen(s), h, &hl, EVP_sha256(), NULL);
	base64_encode(h, hl, &out);
	return out;
}

static void check_bh(const char *msg, const char *canon_body, int line)
{
	char *sig = sign1(ed_key, msg, 0), *bh = sig ? tag(sig, "bh") : NULL;
	char *want = sha256_b64(canon_body);

	unit_checks++;
	if (bh == NULL || strcmp(bh, want) != 0) {
		unit_failures++;
		fprintf(stderr, "%s:%d: bh %s, want %s (canonical \"%s\")\n", __FILE__, line,
		        bh ? bh : "(null)", want, canon_body);
	}
	free(sig);
	free(bh);
	free(want);
}

static void test_body_canon(void)
{
	/* RFC 6376 3.4.5 */
	check_bh("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n",
	         __LINE__);
	/* empty bodies: the empty string for relaxed (not CRLF) */
	check_bh("From: a@example.com\r\n\r\n", "", __LINE__);
	check_bh("From: a@example.com\r\n\r\n\r\n\r\n", "", __LINE__);
	check_bh("From: a@example.com\r\n\r\n \t\r\n  \r\n", "", __LINE__);
	/* no empty line: all header, empty body */
	check_bh("From: a@example.com\r\nSubject: x\r\n", "", __LINE__);
	check_bh("From: a@example.com", "", __LINE__);
	/* no final CRLF: one added; trailing WSP without CRLF dropped */
	check_bh("From: a@example.com\r\n\r\nabc", "abc\r\n", __LINE__);
	check_bh("From: a@example.com\r\n\r\nabc \t ", "abc\r\n", __LINE__);
	/* WSP runs, leading WSP (kept as one SP), trailing WSP and empty lines */
	check_bh("From: a@example.com\r\n\r\na  \t b \t\r\n \r\n\t\r\n", "a b\r\n", __LINE__);
	check_bh("From: a@example.com\r\n\r\n\t x\r\n\r\ny\r\n", " x\r\n\r\ny\r\n", __LINE__);
	/* empty lines inside the body stay */
	check_bh("From: a@example.com\r\n\r\n\r\n\r\nx\r\n\r\n", "\r\n\r\nx\r\n", __LINE__);
	/* a message that starts with its empty line: no header fields */
	check_bh("\r\nbody\r\n", "body\r\n", __LINE__);
}

static const char *msg_full = "Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                              "From: Alice <alice@example.com>\r\n"
                              "To: bob@example.org,\r\n"
                              "  carol@example.org\r\n"
                              "To: dave@example.org\r\n"
                              "Subject: A folded\r\n"
                              "\t subject  line\r\n"
                              "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                              "Message-ID: <1@example.com>\r\n"
                              "MIME-Version: 1.0\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "List-Id: <list.example.com>\r\n"
                              "X-Other: not signed\r\n"
                              "\r\n"
                              "Hello  there \r\n"
                              "\r\n"
                              "Bye\r\n"
                              "\r\n";

static void test_header_set(void)
{
	char *sig = sign1(ed_key, msg_full, 0), *h = sig ? tag(sig, "h") : NULL;
	char *v;

	CHECK_STR(h, "From:From:To:To:To:Subject:Subject:Date:Message-ID:MIME-Version:"
	             "Content-Type:List-Id");
	CHECK_STR((v = tag(sig, "v")), "1");
	free(v);
	CHECK_STR((v = tag(sig, "a")), "ed25519-sha256");
	free(v);
	CHECK_STR((v = tag(sig, "c")), "relaxed/relaxed");
	free(v);
	CHECK_STR((v = tag(sig, "d")), "example.com");
	free(v);
	CHECK_STR((v = tag(sig, "s")), "sel-e");
	free(v);
	CHECK_STR((v = tag(sig, "t")), "1700000000");
	free(v);
	CHECK((v = tag(sig, "l")) == NULL);
	CHECK((v = tag(sig, "x")) == NULL);
	CHECK((v = tag(sig, "b")) != NULL && strlen(v) == 88); /* 64 octets */
	free(v);
	CHECK(sig != NULL && strncmp(sig, "DKIM-Signature: v=1; a=ed25519-sha256;", 38) == 0);
	free(h);
	free(sig);

	/* a message without To: To and Subject still oversigned (once) */
	sig = sign1(ed_key, "From: a@example.com\r\n\r\nx\r\n", 0);
	h = sig ? tag(sig, "h") : NULL;
	CHECK_STR(h, "From:From:To:Subject");
	free(h);
	free(sig);
}

/* Every line of the signature fields at most 78 octets, CRLF-ended, and
 * the continuation lines start with a tab. */
static void check_lines(const char *sig)
{
	const char *p = sig;
	size_t n = 0;

	CHECK(sig != NULL && strlen(sig) > 2 && strcmp(sig + strlen(sig) - 2, "\r\n") == 0);
	while (sig != NULL && *p != '\0') {
		const char *e = strstr(p, "\r\n");
		if (e == NULL)
			break;
		CHECK((size_t)(e - p) <= 78);
		CHECK(memchr(p, '\n', (size_t)(e - p)) == NULL);
		if (strncmp(p, "DKIM-Signature:", 15) != 0)
			CHECK(*p == '\t');
		n++;
		p = e + 2;
	}
	CHECK(n > 1);
}

static void test_folding_and_splits(void)
{
	struct dkim_key *both[2] = {rsa_key, ed_key};
	size_t len = strlen(msg_full);
	char *whole = sign(both, 2, msg_full, len, 0);

	check_lines(whole);
	/* two fields: rsa first, then ed25519 */
	CHECK(whole != NULL && strncmp(whole, "DKIM-Signature: v=1; a=rsa-sha256;", 34) == 0);
	CHECK(whole != NULL && strstr(whole, "\r\nDKIM-Signature: v=1; a=ed25519-sha256;") != NULL);
	for (size_t step = 1; step <= 7; step++) {
		char *split = sign(both, 2, msg_full, len, step);
		CHECK_STR(split, whole);
		free(split);
	}
	free(whole);
}

/* Relaxed header canonicalization: Ed25519 (and PKCS#1 v1.5) signatures are
 * deterministic, so equivalent headers give the same b=. */
static void test_header_canon(void)
{
	const char *a = "From: Alice <alice@example.com>\r\nSubject: Y Z\r\n\r\nbody\r\n";
	const char *same[] = {
	    "fROM:Alice <alice@example.com>\r\nSUBJECT : Y\t\r\n\tZ  \r\n\r\nbody\r\n",
	    "From :  Alice   <alice@example.com> \r\nsubject:\r\n Y \t Z\r\n\r\nbody\r\n",
	    "From:Alice <alice@example.com>\r\nX-Unsigned: q\r\nSubject:Y Z\r\n\r\nbody\r\n",
	};
	const char *differ[] = {
	    "From: Alice <alice@example.com>\r\nSubject: YZ\r\n\r\nbody\r\n",
	    "From: Alice <alice@example.com>\r\nSubject: Y Z\r\nSubject: Y Z\r\n\r\nbody\r\n",
	    "From: alice <alice@example.com>\r\nSubject: Y Z\r\n\r\nbody\r\n",
	    "From: Alice <alice@example.com>\r\nSubject: Y: Z\r\n\r\nbody\r\n",
	};
	char *sa = sign1(ed_key, a, 0), *ba = sa ? tag(sa, "b") : NULL;

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		char *s = sign1(ed_key, same[i], 1), *b = s ? tag(s, "b") : NULL;
		CHECK_STR(b, ba);
		free(s);
		free(b);
	}
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
		char *s = sign1(ed_key, differ[i], 0), *b = s ? tag(s, "b") : NULL;
		CHECK(b != NULL && ba != NULL && strcmp(b, ba) != 0);
		free(s);
		free(b);
	}
	free(sa);
	free(ba);
}

static void test_limits(void)
{
	struct dkim_signer *s = NULL;
	struct buf out;
	char *error = NULL, line[1000];
	int rc = 1;

	CHECK(dkim_signer_new(NULL, 0, T_NOW, &s, &error) < 0 && error != NULL);
	free(error);
	error = NULL;

	/* just under the limit: signs */
	CHECK(dkim_signer_new(&ed_key, 1, T_NOW, &s, &error) == 1);
	memset(line, 'a', sizeof(line));
	memcpy(line, "X-Pad: ", 7);
	line[998] = '\r';
	line[999] = '\n';
	for (size_t n = 0; n + sizeof(line) <= DKIM_HEADER_MAX && rc > 0; n += sizeof(line))
		rc = dkim_signer_feed(s, line, sizeof(line));
	CHECK(rc == 1);
	CHECK(dkim_signer_feed(s, "\r\nbody\r\n", 8) == 1);
	buf_init(&out, 0);
	CHECK(dkim_signer_finish(s, &out, &error) == 1);
	CHECK(dkim_signer_feed(s, "x", 1) < 0);
	buf_free(&out);
	dkim_signer_free(&s);
	CHECK(s == NULL);

	/* beyond it: refused, with a reason at finish */
	rc = 1;
	CHECK(dkim_signer_new(&ed_key, 1, T_NOW, &s, &error) == 1);
	for (size_t n = 0; n <= DKIM_HEADER_MAX && rc > 0; n += sizeof(line))
		rc = dkim_signer_feed(s, line, sizeof(line));
	CHECK(rc < 0);
	buf_init(&out, 0);
	CHECK(dkim_signer_finish(s, &out, &error) < 0 && error != NULL &&
	      strstr(error, "1 MiB") != NULL);
	CHECK(out.len == 0);
	free(error);
	buf_free(&out);
	dkim_signer_free(&s);
	dkim_signer_free(&s);
}

static char *path_in(const char *fmt, const char *a, const char *b)
{
	return str_printf(fmt, keydir, a, b);
}

static int write_pkey(const char *path, EVP_PKEY *pk)
{
	FILE *f = fopen(path, "w");
	int ok = f != NULL && PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1;

	if (f != NULL)
		fclose(f);
	return ok;
}

struct list_ctx {
	struct buf b;
};

static void list_cb(void *ctx, const char *domain, const char *selector, const char *alg,
                    const char *txt)
{
	struct list_ctx *l = ctx;

	buf_printf(&l->b, "%s %s %s %.20s\n", domain, selector, alg, txt);
}

static void test_keys(void)
{
	struct dkim_key **keys = NULL, *k = NULL;
	char *error = NULL, *txt = NULL, *path;
	struct stat st;
	size_t n = 99;

	snprintf(keydir, sizeof(keydir), "%s/dkim", tmpdir);
	/* nothing yet: no keys, not an error */
	CHECK(dkim_keys_load_domain(keydir, "example.com", &keys, &n, &error) == 1 && n == 0 &&
	      keys == NULL);

	CHECK(dkim_keygen(keydir, "example.com", "sel-r", "rsa", &txt, &error) == 1);
	CHECK(txt != NULL && strncmp(txt, "v=DKIM1; k=rsa; p=MIIBIjAN", 26) == 0);
	free(txt);
	txt = NULL;
	CHECK(dkim_keygen(keydir, "example.com", "sel-e", "ed25519", &txt, &error) == 1);
	/* raw 32-octet key: 44 base64 characters */
	CHECK(txt != NULL && strncmp(txt, "v=DKIM1; k=ed25519; p=", 22) == 0 &&
	      strlen(txt) == 22 + 44);
	free(txt);
	txt = NULL;

	/* modes */
	CHECK(stat(keydir, &st) == 0 && (st.st_mode & 0777) == 0700);
	path = path_in("%s/%s/%s.pem", "example.com", "sel-r");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	/* no overwriting */
	CHECK(dkim_keygen(keydir, "example.com", "sel-r", "ed25519", &txt, &error) < 0 &&
	      error != NULL && strstr(error, "already exists") != NULL);
	free(error);
	error = NULL;
	CHECK(dkim_key_exists(keydir, "example.com", "sel-r", &error) == 1);
	CHECK(dkim_key_exists(keydir, "example.com", "nope", &error) == 0);
	CHECK(dkim_key_exists(keydir, "../etc", "x", &error) < 0);
	free(error);
	error = NULL;

	/* bad names and algorithms */
	CHECK(dkim_keygen(keydir, "example.com", "../x", "rsa", NULL, &error) < 0);
	free(error);
	error = NULL;
	CHECK(dkim_keygen(keydir, "example.com", "x", "dsa", NULL, &error) < 0);
	free(error);
	error = NULL;
	CHECK(dkim_name_valid("a-b.c9") && !dkim_name_valid("") && !dkim_name_valid("-a") &&
	      !dkim_name_valid("a..b") && !dkim_name_valid("a.") && !dkim_name_valid("A") &&
	      !dkim_name_valid("a_b") && !dkim_name_valid("a-.b"));

	/* load one of each kind */
	CHECK(dkim_key_load(path, "Example.COM", "sel-r", &k, &error) == 1);
	CHECK(k != NULL && dkim_key_algorithm(k) == DKIM_ALG_RSA_SHA256);
	CHECK_STR(k ? dkim_key_domain(k) : NULL, "example.com");
	dkim_key_free(&k);
	CHECK(k == NULL);
	free(path);

	CHECK(dkim_keys_load_domain(keydir, "example.com", &keys, &n, &error) == 1 && n == 2);
	if (n == 2) {
		/* sorted by selector */
		CHECK(dkim_key_algorithm(keys[0]) == DKIM_ALG_ED25519_SHA256);
		CHECK_STR(dkim_key_selector(keys[0]), "sel-e");
		CHECK(dkim_key_algorithm(keys[1]) == DKIM_ALG_RSA_SHA256);
		CHECK_STR(dkim_key_selector(keys[1]), "sel-r");
		ed_key = keys[0];
		rsa_key = keys[1];
		free(keys); /* the keys live on until the end */
	}

	/* listing */
	struct list_ctx l;
	buf_init(&l.b, 0);
	CHECK(dkim_key_list(keydir, list_cb, &l, &error) == 1);
	CHECK_STR(l.b.data, "example.com sel-e ed25519 v=DKIM1; k=ed25519; \n"
	                    "example.com sel-r rsa v=DKIM1; k=rsa; p=MI\n");
	buf_free(&l.b);

	/* refused keys: not a key, a small RSA key, an EC key */
	path = path_in("%s/%s/%s", "example.com", "junk.pem");
	FILE *f = fopen(path, "w");
	if (f != NULL) {
		fputs("not a key\n", f);
		fclose(f);
	}
	CHECK(dkim_key_load(path, "example.com", "junk", &k, &error) < 0 && error != NULL);
	free(error);
	error = NULL;
	/* a broken key of a domain is an error, not silently skipped */
	CHECK(dkim_keys_load_domain(keydir, "example.com", &keys, &n, &error) < 0);
	free(error);
	error = NULL;
	unlink(path);
	free(path);

	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	path = path_in("%s/%s%s", "small", ".pem");
	CHECK(small != NULL && write_pkey(path, small));
	CHECK(dkim_key_load(path, "example.com", "x", &k, &error) < 0 && error != NULL &&
	      strstr(error, "512 bits") != NULL);
	free(error);
	error = NULL;
	free(path);
	path = path_in("%s/%s%s", "ec", ".pem");
	CHECK(ec != NULL && write_pkey(path, ec));
	CHECK(dkim_key_load(path, "example.com", "x", &k, &error) < 0 && error != NULL &&
	      strstr(error, "not an RSA or Ed25519") != NULL);
	free(error);
	error = NULL;
	free(path);
	EVP_PKEY_free(small);
	EVP_PKEY_free(ec);
}

/* The same keys used by signers on several threads at once (the caller
 * signs on workers): every result equals the one-thread result. */
struct thread_arg {
	const char *want;
	int bad;
};

static void *sign_thread(void *p)
{
	struct thread_arg *a = p;
	struct dkim_key *both[2] = {rsa_key, ed_key};

	for (int i = 0; i < 10; i++) {
		char *sig = sign(both, 2, msg_full, strlen(msg_full), (size_t)(i + 1));
		if (sig == NULL || strcmp(sig, a->want) != 0)
			a->bad++;
		free(sig);
	}
	return NULL;
}

static void test_threads(void)
{
	struct dkim_key *both[2] = {rsa_key, ed_key};
	char *want = sign(both, 2, msg_full, strlen(msg_full), 0);
	struct thread_arg args[4];
	pthread_t th[4];

	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){want, 0};
		CHECK(pthread_create(&th[i], NULL, sign_thread, &args[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(args[i].bad == 0);
	}
	free(want);
}

/* Writes name with data into tmpdir/verify. */
static void put(const char *name, const char *data)
{
	char *path = str_printf("%s/verify/%s", tmpdir, name);
	FILE *f = fopen(path, "w");

	CHECK(f != NULL && fwrite(data, 1, strlen(data), f) == strlen(data));
	if (f != NULL)
		fclose(f);
	free(path);
}

static void put_signed(const char *name, struct dkim_key *const *keys, size_t n, const char *msg)
{
	char *sig = sign(keys, n, msg, strlen(msg), 3), *all;

	CHECK(sig != NULL);
	all = str_printf("%s%s", sig ? sig : "", msg);
	put(name, all);
	free(all);
	free(sig);
}

/* dkimpy, an independent implementation, verifies every signature and
 * rejects tampered copies (see dkim_verify.py). */
static void test_verifier(void)
{
	struct dkim_key *both[2] = {rsa_key, ed_key};
	char *dir = str_printf("%s/verify", tmpdir), *cmd, *txt = NULL, *error = NULL, *name;
	int rc;

	CHECK(mkdir(dir, 0700) == 0);
	for (size_t i = 0; i < 2; i++) {
		CHECK(dkim_key_txt(both[i], &txt, &error) == 1);
		name = str_printf("%s._domainkey.%s.txt", dkim_key_selector(both[i]),
		                  dkim_key_domain(both[i]));
		put(name, txt);
		free(name);
		free(txt);
		txt = NULL;
	}
	put_signed("rsa.eml", &rsa_key, 1, msg_full);
	put_signed("ed25519.eml", &ed_key, 1, msg_full);
	put_signed("both.eml", both, 2, msg_full);
	/* RFC 6376 3.4.5 (dkimpy refuses "B :" as a header, so Subject folded) */
	put_signed("rfc.eml", both, 2,
	           "From: a@example.com\r\nSubject: Y\t\r\n\tZ  \r\n\r\n C \r\nD \t "
	           "E\r\n\r\n\r\n");
	put_signed("nocrlf.eml", both, 2, "From: a@example.com\r\nSubject: x\r\n\r\nline");
	/* Trailing WSP and no final CRLF: signed as "line" CRLF, which is what the
	 * receiver hashes, as the wire copy always ends with CRLF (smtp_wire_finish).
	 * dkimpy given the octets without that CRLF would keep one SP ("line "). */
	put_signed("nocrlf-wsp.eml", both, 2, "From: a@example.com\r\nSubject: x\r\n\r\nline  ");
	{
		char *p = str_printf("%s/verify/nocrlf-wsp.eml", tmpdir);
		FILE *f = fopen(p, "a");
		CHECK(f != NULL && fputs("\r\n", f) >= 0);
		if (f != NULL)
			fclose(f);
		free(p);
	}
	put_signed("emptybody.eml", both, 2, "From: a@example.com\r\nSubject: empty\r\n\r\n");
	/* no empty line: all header */
	put_signed("noblank.eml", both, 2, "From: a@example.com\r\nSubject: all header\r\n");
	/* the rest of the header set, fields of one name several times */
	put_signed("fields.eml", both, 2,
	           "From: a@example.com\r\nTo: b@example.org\r\nCc: c@example.org\r\n"
	           "Cc: d@example.org\r\nReply-To: e@example.com\r\n"
	           "In-Reply-To: <0@example.org>\r\nReferences: <0@example.org>\r\n"
	           "  <1@example.org>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
	           "Content-Transfer-Encoding: quoted-printable\r\n"
	           "List-Unsubscribe: <https://example.com/u>\r\n"
	           "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
	           "Received: from a by b\r\n\r\ncaf=C3=A9\r\n.leading dot\r\n");

	cmd = str_printf("/usr/bin/python3 tests/unit/dkim_verify.py %s", dir);
	rc = system(cmd);
	if (!(WIFEXITED(rc) && WEXITSTATUS(rc) == 0))
		fprintf(stderr,
		        "dkim_verify.py failed (status %d; exit 2: python3-dkim missing, "
		        "see scripts/deps.sh)\n",
		        rc);
	CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
	free(cmd);
	free(dir);
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_keys();
	if (rsa_key == NULL || ed_key == NULL) {
		fprintf(stderr, "no keys, stopping\n");
		return unit_finish("dkim");
	}
	test_body_canon();
	test_header_set();
	test_header_canon();
	test_folding_and_splits();
	test_limits();
	test_threads();
	test_verifier();
	dkim_key_free(&rsa_key);
	dkim_key_free(&ed_key);
	char *cmd = str_printf("rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	free(cmd);
	return unit_finish("dkim");
}
