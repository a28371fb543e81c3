build2/imap/imap_msg.o: src/imap/imap_msg.c src/imap/imap_msg.h \
 src/mail/mime.h src/core/buf.h src/store/store.h
src/imap/imap_msg.h:
src/mail/mime.h:
src/core/buf.h:
src/store/store.h:
