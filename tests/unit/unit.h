/* Minimal table-friendly unit test helpers. Each test program has main() calling
 * its test functions, then returns unit_finish(). */
#ifndef HERMOD_TESTS_UNIT_H
#define HERMOD_TESTS_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_checks, unit_failures;

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		unit_checks++;                                                               \
		if (!(cond)) {                                                               \
			unit_failures++;                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                                      \
	do {                                                                                 \
		const char *unit_a_ = (a), *unit_b_ = (b);                                   \
		unit_checks++;                                                               \
		if (unit_a_ == NULL || unit_b_ == NULL || strcmp(unit_a_, unit_b_) != 0) {   \
			unit_failures++;                                                     \
			fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", __FILE__, \
				__LINE__, unit_a_ ? unit_a_ : "(null)",                      \
				unit_b_ ? unit_b_ : "(null)");                               \
		}                                                                            \
	} while (0)

static inline int unit_finish(const char *name)
{
	printf("unit %s: %d checks, %d failures\n", name, unit_checks, unit_failures);
	return unit_failures == 0 ? 0 : 1;
}

#endif
