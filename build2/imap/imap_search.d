build2/imap/imap_search.o: src/imap/imap_search.c src/imap/imap_search.h \
 src/imap/imap_parse.h src/core/buf.h src/core/str.h src/imap/imap_msg.h \
 src/mail/mime.h src/store/store.h src/mail/date.h src/mail/rfc2047.h \
 src/mail/text.h
src/imap/imap_search.h:
src/imap/imap_parse.h:
src/core/buf.h:
src/core/str.h:
src/imap/imap_msg.h:
src/mail/mime.h:
src/store/store.h:
src/mail/date.h:
src/mail/rfc2047.h:
src/mail/text.h:
