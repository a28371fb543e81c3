/* Unit tests for password hashing (src/auth/password.c). */
#include "unit.h"

#include "auth/password.h"

#include <stdlib.h>

int main(void)
{
	char *hash = NULL, *hash2 = NULL, *error = NULL;

	CHECK(password_hash("correct horse", &hash, &error) == 1);
	CHECK(hash != NULL && strncmp(hash, "$y$", 3) == 0);
	CHECK(password_verify("correct horse", hash) == 1);
	CHECK(password_verify("correct horsE", hash) == 0);
	CHECK(password_verify("", hash) == 0);
	/* fresh salt every time */
	CHECK(password_hash("correct horse", &hash2, NULL) == 1);
	CHECK(hash2 != NULL && strcmp(hash, hash2) != 0);
	CHECK(password_verify("correct horse", hash2) == 1);
	free(hash);
	free(hash2);

	CHECK(password_hash("", &hash, &error) == -1);
	CHECK_STR(error, "empty password");
	free(error);

	/* other crypt(3) methods libcrypt verifies (made with `openssl passwd -6/-5` and
	 * Python's crypt for bcrypt) */
	CHECK(password_verify("secret",
	                      "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aD"
	                      "ehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1") == 1);
	CHECK(password_verify("secreT",
	                      "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aD"
	                      "ehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1") == 0);
	CHECK(password_verify("secret",
	                      "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA") == 1);
	CHECK(password_verify("secret",
	                      "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sB") == 0);
	CHECK(password_verify("secret",
	                      "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a") == 1);
	CHECK(password_verify("Secret",
	                      "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a") == 0);
	CHECK(password_verify("secret", "") == 0);
	CHECK(password_verify("secret", "!") == 0);
	CHECK(password_verify("secret", "*") == 0);
	CHECK(password_verify("secret", "garbage") == 0);
	CHECK(password_verify(NULL, "$y$x") == 0);
	return unit_finish("password");
}
