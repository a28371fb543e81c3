/* Encoded words (mail_header_decode), body text decoding
 * (mail_text_decoder), charset conversion, case folding and dates. The
 * charset vectors were made with Python's codecs; every body is also fed
 * one octet at a time and in pieces of 7 (the result must not depend on
 * the split). */
#include "mail/date.h"
#include "mail/rfc2047.h"
#include "mail/text.h"
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static const struct {
	const char *in, *want;
} ew_cases[] = {
    {"=?UTF-8?B?R3LDvMOfZSwg5pel5pys6KqeIOKckw==?=",
     "Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93"},
    {"=?utf-8?q?Gr=C3=BC=C3=9Fe,_=E6=97=A5=E6=9C=AC=E8=AA=9E_=E2=9C=93?=",
     "Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93"},
    {"=?ISO-8859-1?B?R2Fy529uIOAgbGEgY3LobWU=?=", "Gar\xc3\xa7on \xc3\xa0 la cr\xc3\xa8me"},
    {"=?iso-8859-1?q?Gar=E7on_=E0_la_cr=E8me?=", "Gar\xc3\xa7on \xc3\xa0 la cr\xc3\xa8me"},
    {"=?ISO-8859-15?B?UHJpeDogNSCkIL11dnJl?=", "Prix: 5 \xe2\x82\xac \xc5\x93uvre"},
    {"=?iso-8859-15?q?Prix:_5_=A4_=BDuvre?=", "Prix: 5 \xe2\x82\xac \xc5\x93uvre"},
    {"=?WINDOWS-1252?B?k1F1b3Rlc5QgliCANSCF?=",
     "\xe2\x80\x9cQuotes\xe2\x80\x9d \xe2\x80\x93 \xe2\x82\xac"
     "5 \xe2\x80\xa6"},
    {"=?windows-1252?q?=93Quotes=94_=96_=805_=85?=",
     "\xe2\x80\x9cQuotes\xe2\x80\x9d \xe2\x80\x93 \xe2\x82\xac"
     "5 \xe2\x80\xa6"},
    {"=?KOI8-R?B?8NLJ18XULCDNydI=?=",
     "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80"},
    {"=?koi8-r?q?=F0=D2=C9=D7=C5=D4,_=CD=C9=D2?=",
     "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80"},
    {"=?ISO-2022-JP?B?GyRCRnxLXDhsJE4lRiUtJTklSBsoQg==?=",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
     "\x88"},
    {"=?GB2312?B?1tDOxNPKvP4=?=", "\xe4\xb8\xad\xe6\x96\x87\xe9\x82\xae\xe4\xbb\xb6"},
    {"=?gb2312?q?=D6=D0=CE=C4=D3=CA=BC=FE?=", "\xe4\xb8\xad\xe6\x96\x87\xe9\x82\xae\xe4\xbb\xb6"},
    {"=?GBK?B?1tDOxOBdvP6cedSH?=",
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6"},
    {"=?gbk?q?=D6=D0=CE=C4=E0]=BC=FE=9Cy=D4=87?=",
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6"},
    {"=?SHIFT_JIS?B?k/qWe4zqg4GBW4OL?=",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\xa1\xe3\x83\xbc\xe3\x83\xab"},
    {"=?shift_jis?q?=93=FA=96{=8C=EA=83=81=81[=83=8B?=",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\xa1\xe3\x83\xbc\xe3\x83\xab"},
    {"=?ISO-8859-7?B?yuHr5+zd8eE=?=",
     "\xce\x9a\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1"},
    {"=?iso-8859-7?q?=CA=E1=EB=E7=EC=DD=F1=E1?=",
     "\xce\x9a\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1"},
    {"=?WINDOWS-1251?B?xO7h8PvpIOTl7fw=?=",
     "\xd0\x94\xd0\xbe\xd0\xb1\xd1\x80\xd1\x8b\xd0\xb9 \xd0\xb4\xd0\xb5\xd0\xbd\xd1\x8c"},
    {"=?windows-1251?q?=C4=EE=E1=F0=FB=E9_=E4=E5=ED=FC?=",
     "\xd0\x94\xd0\xbe\xd0\xb1\xd1\x80\xd1\x8b\xd0\xb9 \xd0\xb4\xd0\xb5\xd0\xbd\xd1\x8c"},
    {"=?BIG5?B?pKSk5blxtmw=?=", "\xe4\xb8\xad\xe6\x96\x87\xe9\x9b\xbb\xe9\x83\xb5"},
    {"=?big5?q?=A4=A4=A4=E5=B9q=B6l?=", "\xe4\xb8\xad\xe6\x96\x87\xe9\x9b\xbb\xe9\x83\xb5"},
    {"=?EUC-KR?B?vsiz58fPvLy/5A==?=",
     "\xec\x95\x88\xeb\x85\x95\xed\x95\x98\xec\x84\xb8\xec\x9a\x94"},
    {"=?euc-kr?q?=BE=C8=B3=E7=C7=CF=BC=BC=BF=E4?=",
     "\xec\x95\x88\xeb\x85\x95\xed\x95\x98\xec\x84\xb8\xec\x9a\x94"},
    {"=?ISO-8859-2?B?o/NkvCCubHW7b3Xoa/0=?=", "\xc5\x81\xc3\xb3"
                                              "d\xc5\xba \xc5\xbdlu\xc5\xa5ou\xc4\x8dk\xc3\xbd"},
    {"=?iso-8859-2?q?=A3=F3d=BC_=AElu=BBou=E8k=FD?=",
     "\xc5\x81\xc3\xb3"
     "d\xc5\xba \xc5\xbdlu\xc5\xa5ou\xc4\x8dk\xc3\xbd"},
    {"=?UTF-16BE?B?AGgA6QBsAGwAbw==?=", "h\xc3\xa9llo"},
};
static const struct {
	const char *charset, *cte, *in, *want;
} body_cases[] = {
    {"koi8-r", "base64", "8NLJ18XULCDNydINCtfUz9LB0SDT1NLPy8ENCg==\x0a",
     "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, "
     "\xd0\xbc\xd0\xb8\xd1\x80\x0d\x0a\xd0\xb2\xd1\x82\xd0\xbe\xd1\x80\xd0\xb0\xd1\x8f "
     "\xd1\x81\xd1\x82\xd1\x80\xd0\xbe\xd0\xba\xd0\xb0\x0d\x0a"},
    {"iso-2022-jp", "7bit", "\x1b$BF|K\\8l$N%F%-%9%H\x1b(B\x0d\x0a\x1b$BFs9TL\\\x1b(B\x0d\x0a",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
     "\x88\x0d\x0a\xe4\xba\x8c\xe8\xa1\x8c\xe7\x9b\xae\x0d\x0a"},
    {"gbk", "base64",
     "1tDOxOBdvP6cedSHINbQzsTgXbz+nHnUhyDW0M7E4F28/"
     "px51Icg1tDOxOBdvP6cedSHINbQzsTg\x0aXbz+nHnUhyDW0M7E4F28/"
     "px51Icg1tDOxOBdvP6cedSHINbQzsTgXbz+nHnUhyDW0M7E4F28/px5\x0a"
     "1Icg1tDOxOBdvP6cedSHINbQzsTgXbz+nHnUhyDW0M7E4F28/"
     "px51Icg1tDOxOBdvP6cedSHINbQ\x0azsTgXbz+nHnUhyDW0M7E4F28/"
     "px51Icg1tDOxOBdvP6cedSHINbQzsTgXbz+nHnUhyDW0M7E4F28\x0a/"
     "px51Icg1tDOxOBdvP6cedSHINbQzsTgXbz+nHnUhyA=\x0a",
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x83\xb5\xe4\xbb\xb6\xe6\xb8\xac\xe8\xa9\xa6 "},
    {"shift_jis", "8bit", "\x93\xfa\x96{\x8c\xea\x83\x81\x81[\x83\x8b\x0a",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\xa1\xe3\x83\xbc\xe3\x83\xab\x0a"},
    {"iso-8859-15", "quoted-printable", "Prix: 5 =A4 =BDuvre =\x0d\x0asuite\x0d\x0a",
     "Prix: 5 \xe2\x82\xac \xc5\x93uvre suite\x0d\x0a"},
    {"windows-1252", "quoted-printable", "=93Quotes=94 =96 =805 =85\x0a",
     "\xe2\x80\x9cQuotes\xe2\x80\x9d \xe2\x80\x93 \xe2\x82\xac"
     "5 \xe2\x80\xa6\x0a"},
    {"utf-8", "base64",
     "R3LDvMOfZSwg5pel5pys6KqeIOKckyBHcsO8w59lLCDml6XmnKzoqp4g4pyTIEdyw7zDn2UsIOaX\x0apeacrOiqniDin"
     "JMgR3LDvMOfZSwg5pel5pys6KqeIOKckyBHcsO8w59lLCDml6XmnKzoqp4g4pyT\x0aIEdyw7zDn2UsIOaXpeacrOiqni"
     "DinJMgR3LDvMOfZSwg5pel5pys6KqeIOKckyBHcsO8w59lLCDm\x0al6XmnKzoqp4g4pyTIEdyw7zDn2UsIOaXpeacrOi"
     "qniDinJMgR3LDvMOfZSwg5pel5pys6KqeIOKc\x0akyBHcsO8w59lLCDml6XmnKzoqp4g4pyTIEdyw7zDn2UsIOaXpeac"
     "rOiqniDinJMgR3LDvMOfZSwg\x0a"
     "5pel5pys6KqeIOKckyBHcsO8w59lLCDml6XmnKzoqp4g4pyTIEdyw7zDn2UsIOaXpeacrOiqniDi\x0anJMgR3LDvMOfZ"
     "Swg5pel5pys6KqeIOKckyBHcsO8w59lLCDml6XmnKzoqp4g4pyTIEdyw7zDn2Us\x0aIOaXpeacrOiqniDinJMgR3LDvM"
     "OfZSwg5pel5pys6KqeIOKckyBHcsO8w59lLCDml6XmnKzoqp4g\x0a"
     "4pyTIEdyw7zDn2UsIOaXpeacrOiqniDinJMgR3LDvMOfZSwg5pel5pys6KqeIOKckyBHcsO8w59l\x0aLCDml6XmnKzoq"
     "p4g4pyTIEdyw7zDn2UsIOaXpeacrOiqniDinJMgR3LDvMOfZSwg5pel5pys6Kqe\x0aIOKckyBHcsO8w59lLCDml6XmnK"
     "zoqp4g4pyTIEdyw7zDn2UsIOaXpeacrOiqniDinJMgR3LDvMOf\x0aZSwg5pel5pys6KqeIOKckyBHcsO8w59lLCDml6X"
     "mnKzoqp4g4pyTIEdyw7zDn2UsIOaXpeacrOiq\x0aniDinJMg\x0a",
     "Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 Gr\xc3\xbc\xc3\x9f"
     "e, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 "},
    {"iso-8859-1", "8bit", "Gar\xe7on \xe0 la cr\xe8me\x0a",
     "Gar\xc3\xa7on \xc3\xa0 la cr\xc3\xa8me\x0a"},
    {"gb2312", "quoted-printable", "=D6=D0=CE=C4=D3=CA=BC=FE\x0d\x0a",
     "\xe4\xb8\xad\xe6\x96\x87\xe9\x82\xae\xe4\xbb\xb6\x0d\x0a"},
};

static void check_hdr(const char *in, const char *want)
{
	struct buf b;
	buf_init(&b, 0);
	CHECK(mail_header_decode(in, strlen(in), &b) == 1);
	if (b.len != strlen(want) || (b.len && memcmp(b.data, want, b.len) != 0))
		fprintf(stderr, "decoding %s\n", in);
	CHECK_STR(b.len ? b.data : "", want);
	buf_free(&b);
}

static void test_rfc2047(void)
{
	for (size_t k = 0; k < sizeof(ew_cases) / sizeof(ew_cases[0]); k++)
		check_hdr(ew_cases[k].in, ew_cases[k].want);
	/* RFC 2047 8 examples */
	check_hdr("=?ISO-8859-1?Q?a?=", "a");
	check_hdr("=?ISO-8859-1?Q?a?= b", "a b");
	check_hdr("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab");
	check_hdr("=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=", "ab");
	check_hdr("=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=", "ab");
	check_hdr("=?ISO-8859-1?Q?a_b?=", "a b");
	check_hdr("=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=", "a b");
	check_hdr("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>",
	          "Keith Moore <moore@cs.utk.edu>");
	check_hdr("=?ISO-8859-1?Q?Andr=E9?= Pirard", "Andr\xc3\xa9 Pirard");
	/* RFC 2231 5: language suffix */
	check_hdr("=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore");
	check_hdr("=?utf-8*de-DE?b?w6Q=?=", "\xc3\xa4");
	/* a character split between adjacent words (same charset) */
	check_hdr("=?utf-8?q?=C3?= =?utf-8?q?=A9?=", "\xc3\xa9");
	check_hdr("=?utf-8?b?5pel?= =?utf-8?b?5pys6Kqe?=", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	check_hdr("=?ISO-2022-JP?B?GyRCRnxLXBsoQg==?= =?ISO-2022-JP?B?GyRCOGwbKEI=?=",
	          "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	check_hdr("=?shift_jis?q?=93?= =?shift_jis?q?=FA?=", "\xe6\x97\xa5");
	/* a cut character before a charset change: U+FFFD */
	check_hdr("=?utf-8?q?=C3?= =?iso-8859-1?q?=E9?=", "\xef\xbf\xbd\xc3\xa9");
	/* blanks after raw text and before it are kept; words inside text */
	check_hdr("re: =?utf-8?q?caf=C3=A9?= ok", "re: caf\xc3\xa9 ok");
	check_hdr("x=?utf-8?q?y?=z", "xyz");
	check_hdr("  lead and trail  ", "  lead and trail  ");
	/* adjacent words without blanks */
	check_hdr("=?utf-8?q?a?==?utf-8?q?b?=", "ab");
	/* not decodable: kept as they are, with their blanks */
	check_hdr("=?x-bogus?q?a?= =?x-bogus?q?b?=", "=?x-bogus?q?a?= =?x-bogus?q?b?=");
	check_hdr("a =?utf-8?b?!!!!?= b", "a =?utf-8?b?!!!!?= b");
	check_hdr("=?utf-8?b?QQ=x?=", "=?utf-8?b?QQ=x?=");
	check_hdr("=?utf-8?b?Q?=", "=?utf-8?b?Q?=");
	check_hdr("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
	check_hdr("=?utf-8?q?no end", "=?utf-8?q?no end");
	check_hdr("=?utf-8?q?a b?=", "=?utf-8?q?a b?=");
	check_hdr("=??q?a?=", "=??q?a?=");
	check_hdr("=?utf-8//TRANSLIT?q?a?=", "=?utf-8//TRANSLIT?q?a?=");
	check_hdr("=?*en?q?a?=", "=?*en?q?a?=");
	/* base64 without padding; a stray "=" in Q stays */
	check_hdr("=?utf-8?b?w6k?=", "\xc3\xa9");
	check_hdr("=?utf-8?q?a=3?=", "a=3");
	check_hdr("=?utf-8?q?100=25=?=", "100%=");
	/* invalid octets in a word's charset: U+FFFD */
	check_hdr("=?utf-8?q?a=FFb?=", "a\xef\xbf\xbd"
	                               "b");
	check_hdr("=?gb2312?q?=D6?=", "\xef\xbf\xbd");
	/* controls from a word become spaces; NUL is dropped */
	check_hdr("=?utf-8?q?a=0D=0Ab=00c?=", "a  bc");
	/* raw 8-bit: UTF-8 kept, else windows-1252 */
	check_hdr("caf\xc3\xa9", "caf\xc3\xa9");
	check_hdr("caf\xe9 \x80 \x81", "caf\xc3\xa9 \xe2\x82\xac \xef\xbf\xbd");
	check_hdr("\xc3", "\xc3\x83");
	/* unfolding: CR and LF removed, the blank kept */
	check_hdr("a\r\n b\n\tc", "a b\tc");
	/* aliases */
	check_hdr("=?latin1?q?=80?=", "\xe2\x82\xac");
	check_hdr("=?us-ascii?q?=E9?=", "\xc3\xa9");
	check_hdr("=?x-sjis?q?=82=A0?=", "\xe3\x81\x82");
	check_hdr("=?ks_c_5601-1987?q?=BE=C8?=", "\xec\x95\x88");

	/* many "=?" starts of words that never end (linear time, see
	 * ew_scan): all raw; a real word after them still decodes */
	struct buf many, got;
	buf_init(&many, 0);
	buf_init(&got, 0);
	for (int k = 0; k < 5000; k++)
		buf_append_str(&many, "=?b?q?x");
	size_t raw_len = many.len;
	buf_append_str(&many, " =?utf-8?q?=C3=A9?=");
	CHECK(mail_header_decode(many.data, many.len, &got) == 1);
	CHECK(got.len == raw_len + 3);
	CHECK(got.len == raw_len + 3 && memcmp(got.data, many.data, raw_len) == 0 &&
	      memcmp(got.data + raw_len, " \xc3\xa9", 3) == 0);
	buf_free(&many);
	buf_free(&got);

	/* more charsets than RFC2047_CHARSETS_MAX: the rest stay (the last
	 * one is still open) */
	struct buf in, b;
	buf_init(&in, 0);
	buf_init(&b, 0);
	for (int k = 0; k < RFC2047_CHARSETS_MAX + 2; k++)
		buf_printf(&in, "=?%s?q?%c?= ", k % 2 ? "iso-8859-2" : "iso-8859-1", 'a' + k % 26);
	CHECK(mail_header_decode(in.data, in.len, &b) == 1);
	CHECK_STR(b.data, "abcdefghijklmnopqrstuvwxyzabcdef =?iso-8859-1?q?g?= h ");
	buf_free(&b);
	buf_free(&in);
}

static void decode_split(const char *cte, const char *charset, const char *in, size_t len,
                         size_t piece, struct buf *out)
{
	struct mail_text_decoder *d = mail_text_decoder_new(cte, cte ? strlen(cte) : 0, charset,
	                                                    charset ? strlen(charset) : 0);
	CHECK(d != NULL);
	if (d == NULL)
		return;
	for (size_t i = 0; i < len; i += piece) {
		size_t n = len - i < piece ? len - i : piece;
		CHECK(mail_text_decoder_feed(d, in + i, n, out) == 1);
	}
	CHECK(mail_text_decoder_finish(d, out) == 1);
	mail_text_decoder_free(&d);
	CHECK(d == NULL);
}

static void check_body(const char *cte, const char *charset, const char *in, size_t len,
                       const char *want)
{
	static const size_t pieces[] = {1, 7, 4096};
	for (size_t p = 0; p < 3; p++) {
		struct buf b;
		buf_init(&b, 0);
		decode_split(cte, charset, in, len, pieces[p], &b);
		if (b.len != strlen(want) || (b.len && memcmp(b.data, want, b.len) != 0))
			fprintf(stderr, "body %s %s piece %zu\n", cte ? cte : "-",
			        charset ? charset : "-", pieces[p]);
		CHECK_STR(b.len ? b.data : "", want);
		buf_free(&b);
	}
}
#define BODY(cte, cs, in, want) check_body(cte, cs, in, sizeof(in) - 1, want)

static void test_decoder(void)
{
	for (size_t k = 0; k < sizeof(body_cases) / sizeof(body_cases[0]); k++)
		check_body(body_cases[k].cte, body_cases[k].charset, body_cases[k].in,
		           strlen(body_cases[k].in), body_cases[k].want);
	/* identity: NULL, 7bit, 8bit, binary, unknown */
	BODY(NULL, NULL, "plain\r\ntext", "plain\r\ntext");
	BODY("7bit", "us-ascii", "a\xc3\xa9", "a\xc3\xa9");
	BODY(" 8BIT ", "utf-8", "a\xe9z", "a\xef\xbf\xbdz");
	BODY("8bit", NULL, "a\xe9z", "a\xc3\xa9z");
	BODY("binary", NULL, "a\0b", "ab");
	BODY("x-uuencode", NULL, "=41", "=41");
	/* unknown charset: as UTF-8 / windows-1252 */
	BODY(NULL, "x-unknown-charset", "\xc3\xa9\x93", "\xc3\xa9\xe2\x80\x9c");
	/* base64: line breaks and junk skipped, '=' ends a quantum, missing
	 * padding, a lone symbol dropped */
	BODY("base64", NULL, "YW\r\nJj\r\n", "abc");
	BODY("BASE64", NULL, "Y W * J j ZA", "abcd");
	BODY("base64", NULL, "YQ==YmM=", "abc");
	BODY("base64", NULL, "YWI", "ab");
	BODY("base64", NULL, "YWJjZ", "abc");
	/* quoted-printable (RFC 2045 6.7) */
	BODY("quoted-printable", NULL, "a=3Db=3db\r\n", "a=b=b\r\n");
	BODY("quoted-printable", NULL, "soft=\r\nbreak=  \r\nx\n", "softbreakx\n");
	BODY("quoted-printable", NULL, "trailing   \r\nblanks\t\n", "trailing\r\nblanks\n");
	BODY("quoted-printable", NULL, "bad =G1 =\x0a", "bad =G1 ");
	BODY("quoted-printable", NULL, "end=4", "end=4");
	BODY("quoted-printable", NULL, "end=", "end");
	BODY("quoted-printable", NULL, "end=41", "endA");
	BODY("quoted-printable", "utf-8", "caf=C3=A9=\r\n=E2=82=AC", "caf\xc3\xa9\xe2\x82\xac");
	/* invalid input replaced */
	BODY(NULL, "utf-8", "a\xed\xa0\x80z", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz");
	BODY(NULL, NULL, "a\xed\xa0\x80z", "a\xc3\xad\xc2\xa0\xe2\x82\xacz");
	BODY(NULL, "utf-8", "\xf0\x9f\x98\x80\xf0\x9f", "\xf0\x9f\x98\x80\xef\xbf\xbd\xef\xbf\xbd");
	BODY(NULL, "shift_jis", "\x82", "\xef\xbf\xbd");
	BODY(NULL, "iso-2022-jp", "\x1b$B\x46\x7c\x1b(Bx\xff", "\xe6\x97\xa5x\xef\xbf\xbd");
	BODY(NULL, "utf-16le", "a\0b\0", "ab");
	BODY(NULL, "utf-16le", "a\0b", "a\xef\xbf\xbd");

	/* a long quoted-printable line (longer than the decoder's line
	 * buffer), escapes at every offset */
	struct buf in, want;
	buf_init(&in, 0);
	buf_init(&want, 0);
	for (int k = 0; k < 3000; k++) {
		buf_append_str(&in, k % 3 ? "x" : "=C3=A9");
		buf_append_str(&want, k % 3 ? "x" : "\xc3\xa9");
	}
	buf_append_str(&in, "  \r\n");
	buf_append_str(&want, "\r\n");
	check_body("quoted-printable", "utf-8", in.data, in.len, want.data);
	buf_free(&in);
	buf_free(&want);
}

static void check_fold(const char *in, const char *want)
{
	struct buf b;
	buf_init(&b, 0);
	CHECK(mail_text_fold(in, strlen(in), &b) == 1);
	CHECK_STR(b.len ? b.data : "", want);
	buf_free(&b);
}

static void test_fold(void)
{
	check_fold("", "");
	check_fold("Hello, WORLD 123", "hello, world 123");
	/* Latin-1, Latin Extended, Greek, Cyrillic, others */
	check_fold("\xc3\x80\xc3\x89\xc3\x8e\xc3\x9e\xc3\x97",
	           "\xc3\xa0\xc3\xa9\xc3\xae\xc3\xbe\xc3\x97");
	check_fold("\xc4\x80\xc5\x81\xc5\xb8\xc7\x85", "\xc4\x81\xc5\x82\xc3\xbf\xc7\x86");
	check_fold("\xce\xa3\xce\x91\xce\xa3 \xcf\x82", "\xcf\x83\xce\xb1\xcf\x83 \xcf\x83");
	check_fold("\xd0\x9f\xd1\x80\xd0\x98\xd0\x92\xd0\x95\xd0\xa2 \xd0\x81",
	           "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd1\x91");
	check_fold("\xd4\xb1 \xe1\x83\x90 \xef\xbc\xa1 \xf0\x90\x90\x80",
	           "\xd5\xa1 \xe1\x83\x90 \xef\xbd\x81 \xf0\x90\x90\xa8");
	/* foldings that are not lower-casings: micro, long s, sharp s,
	 * Greek symbols, Cherokee */
	check_fold("\xc2\xb5\xc5\xbf\xe1\xba\x9e\xcf\x90\xcf\x95", "\xce\xbc"
	                                                           "s"
	                                                           "\xc3\x9f\xce\xb2\xcf\x86");
	check_fold("\xea\xad\xb0\xe1\x8f\xb8\xe1\x8e\xa0", "\xe1\x8e\xa0\xe1\x8f\xb0\xe1\x8e\xa0");
	/* Kelvin sign, capital I with dot */
	check_fold("\xe2\x84\xaa\xc4\xb0", "ki");
	/* not UTF-8: windows-1252 */
	check_fold("CAF\xc9 \x93", "caf\xc3\xa9 \xe2\x80\x9c");
	/* the same text in two cases folds the same */
	struct buf a, b;
	buf_init(&a, 0);
	buf_init(&b, 0);
	const char *up = "\xc3\x9c\x42\x45\xce\xa1 \xd0\x96\xd0\x98\xd0\x97\xd0\xac";
	const char *lo = "\xc3\xbc\x62\x65\xcf\x81 \xd0\xb6\xd0\xb8\xd0\xb7\xd1\x8c";
	CHECK(mail_text_fold(up, strlen(up), &a) == 1);
	CHECK(mail_text_fold(lo, strlen(lo), &b) == 1);
	CHECK_STR(a.data, b.data);
	buf_free(&a);
	buf_free(&b);
}

static void check_date(const char *s, int rc, int64_t t, int off)
{
	int64_t got_t = -1;
	int got_off = -9999;
	int got = mail_date_parse(s, strlen(s), &got_t, &got_off);
	if (got != rc || (rc == 1 && (got_t != t || got_off != off)))
		fprintf(stderr, "date \"%s\": %d %lld %d\n", s, got, (long long)got_t, got_off);
	CHECK(got == rc);
	if (rc == 1) {
		CHECK(got_t == t);
		CHECK(got_off == off);
	}
}

static void test_date(void)
{
	/* RFC 5322 appendix A */
	check_date("Fri, 21 Nov 1997 09:55:06 -0600", 1, 880127706, -360);
	check_date("Tue, 1 Jul 2003 10:52:37 +0200", 1, 1057049557, 120);
	check_date("Thu, 13 Feb 1969 23:32:54 -0330", 1, -27723426, -210);
	check_date("Thu,\r\n      13\r\n        Feb\r\n          1969\r\n      23:32\r\n"
	           "               -0330 (Newfoundland Time)",
	           1, -27723480, -210);
	check_date("21 Nov 97 09:55:06 GMT", 1, 880106106, 0);
	check_date("Fri, 21 Nov 1997 09(comment):   55  :  06 -0600", 1, 880127706, -360);
	/* no day of week, no seconds, 2/3-digit years, named zones */
	check_date("1 Jan 2000 00:00 +0000", 1, 946684800, 0);
	check_date("1 Jan 00 00:00:00 UT", 1, 946684800, 0);
	check_date("1 Jan 49 00:00:00 UTC", 1, 2493072000LL, 0);
	check_date("1 Jan 50 00:00:00 Z", 1, -631152000, 0);
	check_date("1 Jan 100 00:00:00 GMT", 1, 946684800, 0);
	check_date("Sat, 1 Jan 2000 00:00:00 EST", 1, 946702800, -300);
	check_date("Sat, 1 Jan 2000 00:00:00 pdt", 1, 946710000, -420);
	check_date("Sat, 1 Jan 2000 00:00:00 CDT", 1, 946702800, -300);
	check_date("Sat, 1 Jan 2000 00:00:00 MST", 1, 946710000, -420);
	/* military / unknown zones and a missing zone: +0000 */
	check_date("Sat, 1 Jan 2000 00:00:00 A", 1, 946684800, 0);
	check_date("Sat, 1 Jan 2000 00:00:00 CEST", 1, 946684800, 0);
	check_date("Sat, 1 Jan 2000 00:00:00", 1, 946684800, 0);
	/* full names, case, dashes, leap second, leap day */
	check_date("saturday, 01-january-2000 12:30:00 +0530", 1, 946710000, 330);
	check_date("Wed, 31 Dec 2008 23:59:60 +0000", 1, 1230768000, 0);
	check_date("29 Feb 2000 00:00:00 +0000", 1, 951782400, 0);
	check_date("1 Sept 2001 00:00:00 +0000", 1, 999302400, 0);
	/* asctime */
	check_date("Fri Nov 21 09:55:06 1997", 1, 880106106, 0);
	check_date("Fri Nov 21 09:55:06 PST 1997", 1, 880134906, -480);
	/* not dates */
	check_date("", -1, 0, 0);
	check_date("yesterday", -1, 0, 0);
	check_date("29 Feb 1900 00:00:00 +0000", -1, 0, 0);
	check_date("31 Apr 2000 00:00:00 +0000", -1, 0, 0);
	check_date("0 Jan 2000 00:00:00 +0000", -1, 0, 0);
	check_date("1 Foo 2000 00:00:00 +0000", -1, 0, 0);
	check_date("1 Jan 2000 24:00:00 +0000", -1, 0, 0);
	check_date("1 Jan 2000 12:60:00 +0000", -1, 0, 0);
	check_date("1 Jan 2000 12:00:61 +0000", -1, 0, 0);
	check_date("1 Jan 2000 12:00:00 +0060", -1, 0, 0);
	check_date("1 Jan 2000 12:00:00 +01", -1, 0, 0);
	check_date("1 Jan 2000 12 +0000", -1, 0, 0);
	check_date("1 Jan 20000 12:00 +0000", -1, 0, 0);
	check_date("1 Jan 2 12:00 +0000", -1, 0, 0);
	check_date("123 Jan 2000 12:00 +0000", -1, 0, 0);
	check_date("Fri, ", -1, 0, 0);
	check_date("(unterminated", -1, 0, 0);
}

int main(void)
{
	test_rfc2047();
	test_decoder();
	test_fold();
	test_date();
	return unit_finish("text");
}
