build2/imap/imap_uidmap.o: src/imap/imap_uidmap.c src/imap/imap_uidmap.h
src/imap/imap_uidmap.h:
