#include "auth/ratelimit.h"
#include "unit.h"

int main(void)
{
	struct ratelimit *rl = ratelimit_new();
	int64_t t = 1000;
	CHECK(ratelimit_take(rl, "a@x", 3, t));
	CHECK(ratelimit_take(rl, "a@x", 3, t));
	CHECK(ratelimit_take(rl, "a@x", 3, t));
	CHECK(!ratelimit_take(rl, "a@x", 3, t));   /* 4th within the hour */
	CHECK(ratelimit_take(rl, "b@x", 3, t));    /* another user is unaffected */
	CHECK(!ratelimit_take(rl, "a@x", 3, t + 1000 * 1000)); /* 1000 s: 0.83 token */
	CHECK(ratelimit_take(rl, "a@x", 3, t + 1200 * 1000));  /* 1200 s: one token back */
	CHECK(ratelimit_take(rl, "a@x", 0, t));    /* 0 = unlimited */
	ratelimit_expire(rl, 3, t + 4 * 3600 * 1000);
	CHECK(ratelimit_take(rl, "a@x", 3, t + 4 * 3600 * 1000));
	ratelimit_free(&rl);
	CHECK(rl == NULL);
	return unit_finish("ratelimit");
}
