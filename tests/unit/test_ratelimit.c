#include "auth/ratelimit.h"
#include "unit.h"

#include <stdlib.h>

/* A stand-in implementation: the handle dispatches to it and frees it. */
static int fake_takes, fake_frees;

static bool fake_take(void *impl, const char *key, unsigned per_hour, int64_t now_ms)
{
	fake_takes++;
	return strcmp(key, "deny") != 0;
}

static void fake_expire(void *impl, unsigned per_hour, int64_t now_ms)
{
}

static void fake_free(void *impl)
{
	fake_frees++;
	free(impl);
}

static const struct ratelimit_ops fake_ops = {fake_take, fake_expire, fake_free};

int main(void)
{
	struct ratelimit *rl = ratelimit_new();
	int64_t t = 1000;
	CHECK(ratelimit_take(rl, "a@x", 3, t));
	CHECK(ratelimit_take(rl, "a@x", 3, t));
	CHECK(ratelimit_take(rl, "a@x", 3, t));
	CHECK(!ratelimit_take(rl, "a@x", 3, t));               /* 4th within the hour */
	CHECK(ratelimit_take(rl, "b@x", 3, t));                /* another user is unaffected */
	CHECK(!ratelimit_take(rl, "a@x", 3, t + 1000 * 1000)); /* 1000 s: 0.83 token */
	CHECK(ratelimit_take(rl, "a@x", 3, t + 1200 * 1000));  /* 1200 s: one token back */
	CHECK(ratelimit_take(rl, "a@x", 0, t));                /* 0 = unlimited */
	ratelimit_expire(rl, 3, t + 4 * 3600 * 1000);
	CHECK(ratelimit_take(rl, "a@x", 3, t + 4 * 3600 * 1000));
	/* expire keeps buckets that are not full yet */
	CHECK(ratelimit_take(rl, "c@x", 2, t));
	CHECK(ratelimit_take(rl, "c@x", 2, t));
	ratelimit_expire(rl, 2, t + 1000);
	CHECK(!ratelimit_take(rl, "c@x", 2, t + 1000));
	/* many users, each with its own bucket */
	char key[32];
	int bad = 0;
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "user%d@x", i);
		if (!ratelimit_take(rl, key, 1, t))
			bad++;
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "user%d@x", i);
		if (ratelimit_take(rl, key, 1, t))
			bad++;
	}
	CHECK(bad == 0);
	ratelimit_free(&rl);
	CHECK(rl == NULL);
	ratelimit_free(&rl);

	rl = ratelimit_new_ops(&fake_ops, malloc(1));
	CHECK(ratelimit_take(rl, "ok", 1, t));
	CHECK(!ratelimit_take(rl, "deny", 1, t));
	ratelimit_free(&rl);
	CHECK(fake_takes == 2 && fake_frees == 1);
	return unit_finish("ratelimit");
}
