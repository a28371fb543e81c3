/* Dates of message header fields (Date:, Resent-Date:, Received: after
 * the ';'): RFC 5322 3.3 date-time with the obsolete forms of RFC 5322 4.3
 * tolerated. Pure, thread-safe (no locale, no time zone database). */
#ifndef HERMOD_MAIL_DATE_H
#define HERMOD_MAIL_DATE_H

#include <stddef.h>
#include <stdint.h>

/* Parses s[0 .. len): 1 with *t_r (UTC unix seconds) and *tzoff_min_r (the
 * zone, minutes east of UTC), -1 not a date. Read:
 *   [day-of-week [","]] day month year hour ":" minute [":" second] [zone]
 * with CFWS (comments included) between the parts, names of days and
 * months case-insensitive and in full or in three letters, "-" or "/"
 * allowed between day, month and year, 2-digit years as 19xx (50..99) or
 * 20xx (00..49) and 3-digit ones as 1900 + n (RFC 5322 4.3); zones as
 * "+hhmm" / "-hhmm", UT, GMT, UTC, Z, the US zones EST EDT CST CDT MST MDT
 * PST PDT, and military letters or unknown names as +0000 (RFC 5322 4.3
 * says to read them as -0000); a missing zone as +0000. The asctime form
 * "Fri Nov 21 09:55:06 [zone] 1997" is also taken. What follows the zone
 * is ignored. The day must exist in its month (leap years included), the
 * time be 00:00:00..23:59:60, the zone's minutes below 60. */
int mail_date_parse(const char *s, size_t len, int64_t *t_r, int *tzoff_min_r);

#endif
