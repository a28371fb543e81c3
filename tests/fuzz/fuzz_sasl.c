/* libFuzzer target: the SASL server mechanisms (src/auth/sasl.c) with a fake lookup
 * (no store), and strict base64 (src/core/base64.c).
 *
 * Input: one control byte, then client messages separated by 0xFE.
 *   bits 0-1: mechanism (PLAIN, LOGIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS)
 *   bit 2:    channel binding data present
 *   bits 3-4: lookup result: 0 unknown user, 1 found with SCRAM keys (password
 *             "pencil"), 2 found without SCRAM keys, 3 store error
 *   bit 5:    fixed server nonce "fuzz" (so r= can be matched)
 * Every message is also base64-decoded and, when valid, must re-encode to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"
#include "core/base64.h"

#define SEP 0xFE

static char *creds;

static void check_base64(const uint8_t *p, size_t len)
{
	unsigned char *dec = NULL;
	size_t declen = 0;
	if (base64_decode((const char *)p, len, &dec, &declen) != 1)
		return;
	char *enc = NULL;
	if (base64_encode(dec, declen, &enc) != 1)
		abort();
	if (strlen(enc) != len || memcmp(enc, p, len) != 0)
		abort();
	free(enc);
	free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char cb[32] = "fuzz channel binding data 32byte";

	if (creds == NULL) {
		static const unsigned char salt[16] = "0123456789abcdef";
		if (scram_credentials_make_salt("pencil", 4096, salt, sizeof(salt), &creds) != 1)
			abort();
	}
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	enum sasl_mech mech = (enum sasl_mech)(ctl & 3);
	bool with_cb = (ctl & 4) != 0;
	int lookup = (ctl >> 3) & 3;

	struct sasl_server *s = sasl_server_new(mech, with_cb ? cb : NULL, with_cb ? 32 : 0);
	if (s == NULL)
		return 0;
	if (ctl & 32)
		sasl_server_set_test_nonce(s, "fuzz");

	const uint8_t *p = data + 1, *end = data + size;
	bool first = true, done = false;
	while (!done && (p < end || first)) {
		const uint8_t *q = memchr(p, SEP, (size_t)(end - p));
		if (q == NULL)
			q = end;
		size_t len = (size_t)(q - p);
		check_base64(p, len);

		/* heap copy so that ASan sees reads past the message */
		unsigned char *msg = malloc(len > 0 ? len : 1);
		if (msg == NULL)
			break;
		memcpy(msg, p, len);
		const unsigned char *out = NULL;
		size_t outlen = 0;
		enum sasl_step st =
		    sasl_server_step(s, first && len == 0 ? NULL : msg, len, &out, &outlen);
		free(msg);
		first = false;
		p = q < end ? q + 1 : end;

		while (st == SASL_STEP_LOOKUP) {
			struct sasl_lookup *l = sasl_server_lookup(s);
			if (l->user == NULL || strlen(l->user) > SASL_FIELD_MAX)
				abort();
			if (!l->want_scram && (l->password == NULL || l->password[0] == '\0'))
				abort();
			free(l->password);
			l->password = NULL;
			switch (lookup) {
			case 0:
				l->result = 0;
				break;
			case 1:
				l->result = 1;
				l->scram = strdup(creds);
				break;
			case 2:
				l->result = 1;
				break;
			default:
				l->result = -1;
				l->error = strdup("fuzz");
				break;
			}
			st = sasl_server_step(s, NULL, 0, &out, &outlen);
		}
		switch (st) {
		case SASL_STEP_CHALLENGE:
			if (out == NULL)
				abort();
			if (memchr(out, '\0', outlen) != NULL)
				abort();
			break;
		case SASL_STEP_OK:
			if (sasl_server_user(s) == NULL)
				abort();
			/* SCRAM cannot succeed without knowing the password's keys, and the
			 * fuzzer cannot compute HMACs; PLAIN/LOGIN only with lookup result 1 */
			if (mech == SASL_MECH_SCRAM_SHA_256 || mech == SASL_MECH_SCRAM_SHA_256_PLUS)
				abort();
			if (lookup != 1 && lookup != 2)
				abort();
			done = true;
			break;
		case SASL_STEP_LOOKUP:
			abort();
		default:
			if (sasl_server_user(s) != NULL)
				abort();
			done = true;
			break;
		}
		(void)sasl_server_reason(s);
	}
	sasl_server_free(&s);
	return 0;
}
