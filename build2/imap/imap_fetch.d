build2/imap/imap_fetch.o: src/imap/imap_fetch.c src/imap/imap_fetch.h \
 src/imap/imap_parse.h src/store/store.h src/core/buf.h src/core/str.h \
 src/imap/imap_msg.h src/mail/mime.h src/mail/envelope.h
src/imap/imap_fetch.h:
src/imap/imap_parse.h:
src/store/store.h:
src/core/buf.h:
src/core/str.h:
src/imap/imap_msg.h:
src/mail/mime.h:
src/mail/envelope.h:
