build2/imap/imap_parse.o: src/imap/imap_parse.c src/imap/imap_parse.h \
 src/core/buf.h
src/imap/imap_parse.h:
src/core/buf.h:
