build2/imap/imap_vanished.o: src/imap/imap_vanished.c \
 src/imap/imap_vanished.h src/imap/imap_parse.h
src/imap/imap_vanished.h:
src/imap/imap_parse.h:
